//! The `squall.toml` manifest: which apps to serve, where, and under which limits.
//!
//! ```toml
//! [server]
//! listen = "127.0.0.1:8080"
//!
//! [app.hello]
//! source = "examples/hello"   # a guest crate directory or a .wasm component
//! routes = ["/"]              # path prefixes; the longest match wins
//! memory = "64MiB"
//! timeout = "30s"
//! outbound = ["https://api.example.com"]   # what fetch may reach
//! ```
//!
//! Unknown keys are errors, and every error names the file, line and key.

mod values;

#[cfg(test)]
use values::{parse_duration, parse_size};

use crate::policy::{OutboundPolicy, TopicPolicy};
use anyhow::{Context, Result, bail};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A parsed, validated manifest.
#[derive(Debug, Clone)]
pub(crate) struct Manifest {
    pub(crate) server: ServerConfig,
    pub(crate) apps: Vec<AppConfig>,
}

/// The `[server]` table.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct ServerConfig {
    /// Address to listen on.
    pub(crate) listen: SocketAddr,
    /// Most instances alive at once, over all apps (the pooling allocator's size).
    pub(crate) max_instances: u32,
    /// How long a graceful shutdown waits for in-flight requests.
    #[serde(deserialize_with = "values::duration")]
    pub(crate) drain_timeout: Duration,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            max_instances: 1000,
            drain_timeout: Duration::from_secs(10),
        }
    }
}

/// One `[app.NAME]` table.
#[derive(Debug, Clone)]
pub(crate) struct AppConfig {
    pub(crate) name: String,
    /// A guest crate directory or a `.wasm` component, resolved against the manifest's directory.
    pub(crate) source: PathBuf,
    /// Path prefixes this app serves.
    pub(crate) routes: Vec<String>,
    pub(crate) limits: Limits,
    /// Where outbound requests may go.
    pub(crate) outbound: OutboundPolicy,
    /// The pub/sub topics it may use.
    pub(crate) pubsub: TopicPolicy,
    /// Messages each of its topics keeps for late readers.
    pub(crate) pubsub_history: usize,
    /// Routes that accept WebSocket upgrades, and how.
    pub(crate) websockets: Vec<WebSocketRoute>,
}

/// One `[[app.NAME.websocket]]` table.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct WebSocketRoute {
    /// Path prefixes whose upgrade requests become WebSocket connections.
    #[serde(deserialize_with = "values::routes")]
    pub(crate) routes: Vec<String>,
    #[serde(default)]
    pub(crate) mode: WebSocketMode,
    /// Origins allowed besides the request's own (Tornado's `check_origin`).
    #[serde(default)]
    pub(crate) origins: Vec<String>,
    /// Largest message accepted from a client (close 1009 beyond).
    #[serde(default = "default_max_message", deserialize_with = "values::size")]
    pub(crate) max_message: u64,
    /// How often the host pings an idle client.
    #[serde(
        default = "default_ping_interval",
        deserialize_with = "values::duration"
    )]
    pub(crate) ping_interval: Duration,
    /// How long a ping may go unanswered before the connection is closed.
    #[serde(
        default = "default_ping_timeout",
        deserialize_with = "values::duration"
    )]
    pub(crate) ping_timeout: Duration,
    /// Messages queued for a client before a slow reader is closed.
    #[serde(default = "default_send_queue")]
    pub(crate) send_queue: usize,
}

/// How a WebSocket route runs its guest.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum WebSocketMode {
    /// One instance per connection for its whole life: state lives in
    /// guest memory, like a Tornado `WebSocketHandler` object.
    Live,
    /// An instance per event only; an idle connection costs no instance.
    #[default]
    Hibernate,
}

fn default_max_message() -> u64 {
    64 << 10
}

fn default_ping_interval() -> Duration {
    Duration::from_secs(30)
}

fn default_ping_timeout() -> Duration {
    Duration::from_secs(10)
}

fn default_send_queue() -> usize {
    256
}

/// Messages a topic keeps unless the manifest says otherwise.
pub(crate) const DEFAULT_PUBSUB_HISTORY: usize = 100;

/// Per-app limits; each has a default.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Limits {
    /// Linear memory of one instance, in bytes.
    pub(crate) memory: u64,
    /// Wall-clock time for one request, including time spent awaiting the host.
    pub(crate) timeout: Duration,
    /// Time one request may spend running guest code.
    pub(crate) cpu_time: Duration,
    /// Largest request body accepted, in bytes (`413` beyond).
    pub(crate) max_body: u64,
    /// Largest response body a `fetch` may deliver, in bytes.
    pub(crate) fetch_max_body: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            memory: 64 << 20,
            timeout: Duration::from_secs(30),
            cpu_time: Duration::from_secs(10),
            max_body: 10 << 20,
            fetch_max_body: 64 << 20,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawManifest {
    #[serde(default)]
    server: ServerConfig,
    #[serde(default)]
    app: BTreeMap<String, RawApp>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawApp {
    source: PathBuf,
    #[serde(default = "default_routes", deserialize_with = "values::routes")]
    routes: Vec<String>,
    #[serde(default, deserialize_with = "values::optional_size")]
    memory: Option<u64>,
    #[serde(default, deserialize_with = "values::optional_duration")]
    timeout: Option<Duration>,
    #[serde(default, deserialize_with = "values::optional_duration")]
    cpu_time: Option<Duration>,
    #[serde(default, deserialize_with = "values::optional_size")]
    max_body: Option<u64>,
    #[serde(default, deserialize_with = "values::optional_size")]
    fetch_max_body: Option<u64>,
    #[serde(default, deserialize_with = "values::outbound")]
    outbound: OutboundPolicy,
    #[serde(default, deserialize_with = "values::topics")]
    pubsub: TopicPolicy,
    #[serde(default)]
    pubsub_history: Option<usize>,
    #[serde(default)]
    websocket: Vec<WebSocketRoute>,
}

fn default_routes() -> Vec<String> {
    vec!["/".to_owned()]
}

impl Manifest {
    /// Read and validate the manifest at `path`.
    pub(crate) fn load(path: &Path) -> Result<Manifest> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read manifest {}", path.display()))?;
        let base = path.parent().unwrap_or(Path::new("."));
        Manifest::parse(&text, &path.display().to_string(), base)
    }

    /// Parse manifest `text`; `file` names it in errors and relative sources
    /// resolve against `base`.
    pub(crate) fn parse(text: &str, file: &str, base: &Path) -> Result<Manifest> {
        let raw: RawManifest = deserialize(text, file)?;
        let mut apps = Vec::new();
        for (name, raw_app) in raw.app {
            if !is_valid_name(&name) {
                bail!(
                    "{}: app name {name:?} must be letters, digits, '-' or '_'",
                    locate(text, file, &format!("app.{name}"), None)
                );
            }
            let defaults = Limits::default();
            apps.push(AppConfig {
                source: base.join(&raw_app.source),
                routes: raw_app.routes,
                limits: Limits {
                    memory: raw_app.memory.unwrap_or(defaults.memory),
                    timeout: raw_app.timeout.unwrap_or(defaults.timeout),
                    cpu_time: raw_app.cpu_time.unwrap_or(defaults.cpu_time),
                    max_body: raw_app.max_body.unwrap_or(defaults.max_body),
                    fetch_max_body: raw_app.fetch_max_body.unwrap_or(defaults.fetch_max_body),
                },
                outbound: raw_app.outbound,
                pubsub: raw_app.pubsub,
                pubsub_history: raw_app
                    .pubsub_history
                    .unwrap_or(DEFAULT_PUBSUB_HISTORY)
                    .max(1),
                websockets: raw_app.websocket,
                name,
            });
        }
        if apps.is_empty() {
            bail!("{file}: the manifest declares no app: add an [app.NAME] table with a source");
        }
        check_routes_unique(&apps, text, file)?;
        Ok(Manifest {
            server: raw.server,
            apps,
        })
    }

    /// A manifest serving one app at `/` with default limits.
    pub(crate) fn single(name: &str, source: PathBuf) -> Manifest {
        Manifest {
            server: ServerConfig::default(),
            apps: vec![AppConfig {
                name: name.to_owned(),
                source,
                routes: default_routes(),
                limits: Limits::default(),
                outbound: OutboundPolicy::default(),
                pubsub: TopicPolicy::default(),
                pubsub_history: DEFAULT_PUBSUB_HISTORY,
                websockets: Vec::new(),
            }],
        }
    }
}

fn deserialize<T: serde::de::DeserializeOwned>(text: &str, file: &str) -> Result<T> {
    let deserializer = toml::de::Deserializer::parse(text).map_err(|err| {
        anyhow::anyhow!("{}: {}", position(text, file, err.span()), err.message())
    })?;
    serde_path_to_error::deserialize(deserializer).map_err(|err| {
        let key = err.path().to_string();
        let inner = err.into_inner();
        anyhow::anyhow!(
            "{}: {}{}",
            position(text, file, inner.span()),
            if key == "." {
                String::new()
            } else {
                format!("{key}: ")
            },
            inner.message()
        )
    })
}

/// `file:line:column` for a byte span of `text`.
fn position(text: &str, file: &str, span: Option<std::ops::Range<usize>>) -> String {
    match span {
        Some(span) => {
            let before = &text[..span.start.min(text.len())];
            let line = before.matches('\n').count() + 1;
            let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
            format!("{file}:{line}:{column}")
        }
        None => file.to_owned(),
    }
}

/// `file:line:column` of a dotted `key` (e.g. `app.hello.routes`), found by
/// looking for its table header and then the key inside it.
fn locate(text: &str, file: &str, table: &str, key: Option<&str>) -> String {
    let header = format!("[{table}]");
    let Some(start) = text.find(&header) else {
        return file.to_owned();
    };
    let offset = key
        .and_then(|key| {
            text[start..]
                .lines()
                .scan(start, |pos, line| {
                    let here = *pos;
                    *pos += line.len() + 1;
                    Some((here, line))
                })
                .find(|(_, line)| line.trim_start().starts_with(key))
                .map(|(pos, _)| pos)
        })
        .unwrap_or(start);
    position(text, file, Some(offset..offset))
}

fn check_routes_unique(apps: &[AppConfig], text: &str, file: &str) -> Result<()> {
    let mut seen: BTreeMap<&str, &str> = BTreeMap::new();
    for app in apps {
        for route in &app.routes {
            if let Some(other) = seen.insert(route, &app.name) {
                bail!(
                    "{}: app.{}.routes: route {route:?} is already served by app {other:?}",
                    locate(text, file, &format!("app.{}", app.name), Some("routes")),
                    app.name
                );
            }
        }
    }
    Ok(())
}

fn is_valid_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Manifest> {
        Manifest::parse(text, "squall.toml", Path::new("/srv"))
    }

    fn error(text: &str) -> String {
        format!(
            "{:#}",
            parse(text).expect_err("manifest should be rejected")
        )
    }

    #[test]
    fn a_full_manifest_parses_with_defaults() {
        let manifest = parse(
            "[server]\nlisten = \"127.0.0.1:9000\"\n\n[app.hello]\nsource = \"hello.wasm\"\nmemory = \"32MiB\"\ntimeout = \"5s\"\n",
        )
        .expect("valid manifest");
        assert_eq!(manifest.server.listen.port(), 9000);
        let app = &manifest.apps[0];
        assert_eq!(app.name, "hello");
        assert_eq!(app.source, Path::new("/srv/hello.wasm"));
        assert_eq!(app.routes, vec!["/"]);
        assert_eq!(app.limits.memory, 32 << 20);
        assert_eq!(app.limits.timeout, Duration::from_secs(5));
        assert_eq!(app.limits.max_body, 10 << 20);
    }

    #[test]
    fn unknown_keys_name_file_line_and_key() {
        let message = error("[app.hello]\nsource = \"x.wasm\"\nmemroy = \"1MiB\"\n");
        assert!(message.starts_with("squall.toml:3:"), "{message}");
        assert!(message.contains("memroy"), "{message}");
    }

    #[test]
    fn bad_values_name_file_line_and_key() {
        let message = error("[app.hello]\nsource = \"x.wasm\"\n\nmemory = \"64XB\"\n");
        assert!(message.starts_with("squall.toml:4:"), "{message}");
        assert!(message.contains("app.hello.memory"), "{message}");
        assert!(message.contains("64XB"), "{message}");

        let message = error("[app.hello]\nsource = \"x.wasm\"\nroutes = [\"api\"]\n");
        assert!(message.starts_with("squall.toml:3:"), "{message}");
        assert!(message.contains("app.hello.routes"), "{message}");
    }

    #[test]
    fn outbound_rules_are_checked() {
        let manifest = parse("[app.a]\nsource = \"a.wasm\"\noutbound = [\"http://127.0.0.1:*\"]\n")
            .expect("valid manifest");
        assert!(
            manifest.apps[0]
                .outbound
                .allows(&"http://127.0.0.1:9/".parse().expect("uri"))
        );
        let message = error("[app.a]\nsource = \"a.wasm\"\noutbound = [\"example.com\"]\n");
        assert!(message.starts_with("squall.toml:3:"), "{message}");
        assert!(message.contains("app.a.outbound"), "{message}");
    }

    #[test]
    fn websocket_routes_and_topics() {
        let manifest = parse(
            "[app.chat]\nsource = \"c.wasm\"\npubsub = [\"chat\"]\n\n[[app.chat.websocket]]\nroutes = [\"/ws\"]\nmode = \"live\"\nping_interval = \"5s\"\n",
        )
        .expect("valid manifest");
        let app = &manifest.apps[0];
        assert!(app.pubsub.allows("chat"));
        assert_eq!(app.websockets.len(), 1);
        assert_eq!(app.websockets[0].mode, WebSocketMode::Live);
        assert_eq!(app.websockets[0].ping_interval, Duration::from_secs(5));
        assert_eq!(app.websockets[0].max_message, 64 << 10);

        let message = error(
            "[app.chat]\nsource = \"c.wasm\"\n[[app.chat.websocket]]\nroutes = [\"/ws\"]\nmode = \"sleepy\"\n",
        );
        assert!(message.starts_with("squall.toml:5:"), "{message}");
        assert!(message.contains("app.chat.websocket"), "{message}");
    }

    #[test]
    fn duplicate_routes_are_rejected() {
        let message = error(
            "[app.a]\nsource = \"a.wasm\"\nroutes = [\"/x\"]\n[app.b]\nsource = \"b.wasm\"\nroutes = [\"/x\"]\n",
        );
        assert!(message.starts_with("squall.toml:6:"), "{message}");
        assert!(message.contains("already served by app \"a\""), "{message}");
    }

    #[test]
    fn sizes_and_durations() {
        assert_eq!(parse_size("64MiB"), Ok(64 << 20));
        assert_eq!(parse_size("10MB"), Ok(10_000_000));
        assert_eq!(parse_size("123"), Ok(123));
        assert!(parse_size("lots").is_err());
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("5 fortnights").is_err());
    }
}

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

use crate::policy::{OutboundPolicy, OutboundRule};
use anyhow::{Context, Result, bail};
use serde::Deserialize;
use serde::de::{self, Deserializer};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A parsed, validated manifest.
#[derive(Debug, Clone)]
pub struct Manifest {
    pub server: ServerConfig,
    pub apps: Vec<AppConfig>,
}

/// The `[server]` table.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// Most instances alive at once, over all apps (the pooling allocator's size).
    pub max_instances: u32,
    /// How long a graceful shutdown waits for in-flight requests.
    #[serde(deserialize_with = "duration")]
    pub drain_timeout: Duration,
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
pub struct AppConfig {
    pub name: String,
    /// A guest crate directory or a `.wasm` component, resolved against the manifest's directory.
    pub source: PathBuf,
    /// Path prefixes this app serves.
    pub routes: Vec<String>,
    pub limits: Limits,
    /// Where outbound requests may go.
    pub outbound: OutboundPolicy,
}

/// Per-app limits; each has a default.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Linear memory of one instance, in bytes.
    pub memory: u64,
    /// Wall-clock time for one request, including time spent awaiting the host.
    pub timeout: Duration,
    /// Time one request may spend running guest code.
    pub cpu_time: Duration,
    /// Largest request body accepted, in bytes (`413` beyond).
    pub max_body: u64,
    /// Largest response body a `fetch` may deliver, in bytes.
    pub fetch_max_body: u64,
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
    #[serde(default = "default_routes", deserialize_with = "routes")]
    routes: Vec<String>,
    #[serde(default, deserialize_with = "optional_size")]
    memory: Option<u64>,
    #[serde(default, deserialize_with = "optional_duration")]
    timeout: Option<Duration>,
    #[serde(default, deserialize_with = "optional_duration")]
    cpu_time: Option<Duration>,
    #[serde(default, deserialize_with = "optional_size")]
    max_body: Option<u64>,
    #[serde(default, deserialize_with = "optional_size")]
    fetch_max_body: Option<u64>,
    #[serde(default, deserialize_with = "outbound")]
    outbound: OutboundPolicy,
}

fn default_routes() -> Vec<String> {
    vec!["/".to_owned()]
}

impl Manifest {
    /// Read and validate the manifest at `path`.
    pub fn load(path: &Path) -> Result<Manifest> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read manifest {}", path.display()))?;
        let base = path.parent().unwrap_or(Path::new("."));
        Manifest::parse(&text, &path.display().to_string(), base)
    }

    /// Parse manifest `text`; `file` names it in errors and relative sources
    /// resolve against `base`.
    pub fn parse(text: &str, file: &str, base: &Path) -> Result<Manifest> {
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
    pub fn single(name: &str, source: PathBuf) -> Manifest {
        Manifest {
            server: ServerConfig::default(),
            apps: vec![AppConfig {
                name: name.to_owned(),
                source,
                routes: default_routes(),
                limits: Limits::default(),
                outbound: OutboundPolicy::default(),
            }],
        }
    }
}

fn deserialize<T: de::DeserializeOwned>(text: &str, file: &str) -> Result<T> {
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

/// Parse a size such as `64MiB`, `512KiB`, `10MB` or a plain byte count.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, unit) = text.split_at(split);
    let number: u64 = digits
        .parse()
        .map_err(|_| format!("invalid size {text:?}: expected e.g. \"64MiB\""))?;
    let scale: u64 = match unit.trim() {
        "" | "B" => 1,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        "KB" | "kB" => 1_000,
        "MB" => 1_000_000,
        "GB" => 1_000_000_000,
        other => {
            return Err(format!(
                "invalid size unit {other:?} in {text:?}: use B, KiB, MiB, GiB, KB, MB or GB"
            ));
        }
    };
    number
        .checked_mul(scale)
        .ok_or_else(|| format!("size {text:?} is too large"))
}

/// Parse a duration such as `30s`, `250ms`, `2m` or `1h`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, unit) = text.split_at(split);
    let number: u64 = digits
        .parse()
        .map_err(|_| format!("invalid duration {text:?}: expected e.g. \"30s\" or \"250ms\""))?;
    let duration = match unit.trim() {
        "ms" => Duration::from_millis(number),
        "s" => Duration::from_secs(number),
        "m" => Duration::from_secs(number.saturating_mul(60)),
        "h" => Duration::from_secs(number.saturating_mul(3600)),
        other => {
            return Err(format!(
                "invalid duration unit {other:?} in {text:?}: use ms, s, m or h"
            ));
        }
    };
    if duration.is_zero() {
        return Err(format!("duration {text:?} must be more than zero"));
    }
    Ok(duration)
}

fn duration<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
    let text = String::deserialize(deserializer)?;
    parse_duration(&text).map_err(de::Error::custom)
}

fn optional_duration<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Duration>, D::Error> {
    duration(deserializer).map(Some)
}

fn optional_size<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<u64>, D::Error> {
    let text = String::deserialize(deserializer)?;
    parse_size(&text).map(Some).map_err(de::Error::custom)
}

fn outbound<'de, D: Deserializer<'de>>(deserializer: D) -> Result<OutboundPolicy, D::Error> {
    let patterns = Vec::<String>::deserialize(deserializer)?;
    let rules = patterns
        .iter()
        .map(|pattern| OutboundRule::parse(pattern))
        .collect::<Result<_, _>>()
        .map_err(de::Error::custom)?;
    Ok(OutboundPolicy::new(rules))
}

fn routes<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<String>, D::Error> {
    let routes = Vec::<String>::deserialize(deserializer)?;
    if routes.is_empty() {
        return Err(de::Error::custom(
            "an app needs at least one route, e.g. [\"/\"]",
        ));
    }
    for route in &routes {
        if !route.starts_with('/') {
            return Err(de::Error::custom(format!(
                "route {route:?} must be a path prefix starting with '/'"
            )));
        }
    }
    Ok(routes)
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

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

mod app;
mod consumer_tables;
mod schedule_tables;
mod server;
mod settings;
mod tcp_tables;
mod values;

pub(crate) use app::{
    AppConfig, JOBS_PAYLOAD_CEILING, Limits, Reuse, StaticDir, WebSocketMode, WebSocketRoute,
};
pub(crate) use consumer_tables::{ConsumerConfig, is_queue_name};
pub(crate) use schedule_tables::{ScheduleConfig, When};
pub(crate) use server::{BackendConfig, CertificateConfig, ServerConfig};
pub(crate) use settings::Settings;
pub(crate) use tcp_tables::{TcpListenerConfig, TcpMode};
#[cfg(test)]
use values::parse_percent;
pub(crate) use values::{parse_duration, parse_size};

use crate::policy::{OutboundPolicy, TopicPolicy};
use crate::routes::{Claim, RouteTable};
use anyhow::{Context, Result, bail};
use app::{DEFAULT_PUBSUB_HISTORY, PoolDefaults, RawApp, default_routes};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// A parsed, validated manifest.
#[derive(Debug, Clone)]
pub(crate) struct Manifest {
    /// The `[server]` table.
    pub(crate) server: ServerConfig,
    /// The apps, by name.
    pub(crate) apps: Vec<AppConfig>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawManifest {
    #[serde(default)]
    server: ServerConfig,
    #[serde(default)]
    app: BTreeMap<String, RawApp>,
}

impl Manifest {
    /// Read and validate the manifest at `path`, leaving out the config
    /// keys `given` over it.
    fn load_given(path: &Path, given: &[String]) -> Result<Manifest> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read manifest {}", path.display()))?;
        let base = path.parent().unwrap_or(Path::new("."));
        Manifest::parse_given(&text, &path.display().to_string(), base, given)
    }

    /// Parse manifest `text`; `file` names it in errors and relative sources
    /// resolve against `base`.
    pub(crate) fn parse(text: &str, file: &str, base: &Path) -> Result<Manifest> {
        Manifest::parse_given(text, file, base, &[])
    }

    /// [`Manifest::parse`], leaving out the config keys `given` over it (a
    /// test's own values: a secret's variable need not be set).
    fn parse_given(text: &str, file: &str, base: &Path, given: &[String]) -> Result<Manifest> {
        let raw: RawManifest = deserialize(text, file)?;
        let pool = raw.server.max_instances.max(1);
        let count = u32::try_from(raw.app.len()).unwrap_or(u32::MAX);
        let explicit: Vec<u32> = raw
            .app
            .values()
            .filter_map(|app| app.reserved_instances)
            .collect();
        let defaults = PoolDefaults::new(
            pool,
            count,
            u32::try_from(explicit.len()).unwrap_or(u32::MAX),
            explicit.iter().fold(0u32, |sum, n| sum.saturating_add(*n)),
        );
        let mut apps = Vec::new();
        for (name, mut raw_app) in raw.app {
            if !is_valid_name(&name) {
                bail!(
                    "{}: app name {name:?} must be letters, digits, '-' or '_'",
                    locate(text, file, &format!("app.{name}"), None)
                );
            }
            let settings = Settings::resolve(std::mem::take(&mut raw_app.config), base, given)
                .map_err(|(key, why)| {
                    anyhow::anyhow!(
                        "{}: app.{name}.config.{key}: {why}",
                        locate(text, file, &format!("app.{name}.config"), Some(&key))
                    )
                })?;
            apps.push(raw_app.resolve(name, base, pool, defaults, settings));
        }
        if apps.is_empty() {
            bail!("{file}: the manifest declares no app: add an [app.NAME] table with a source");
        }
        check_shares(&apps, pool, text, file)?;
        check_claims(&apps, text, file)?;
        check_tcp_listeners(&apps, &raw.server, text, file)?;
        let mut server = raw.server;
        server.data_dir = base.join(&server.data_dir);
        server.cache_dir = base.join(&server.cache_dir);
        server.admin_token_file = server.admin_token_file.map(|file| base.join(file));
        for certificate in &mut server.certificates {
            certificate.cert = base.join(&certificate.cert);
            certificate.key = base.join(&certificate.key);
        }
        if server.https_listen.is_some() && server.certificates.is_empty() {
            bail!(
                "{file}: server.https_listen needs a certificate: add a [[server.certificates]] \
                 table with cert and key"
            );
        }
        if server.https_redirect && server.https_listen.is_none() {
            bail!("{file}: server.https_redirect needs server.https_listen");
        }
        Ok(Manifest { server, apps })
    }

    /// The manifest `app` names, as `squall serve APP` reads it: the file
    /// itself if it is a `.toml`, a directory's `squall.toml` if it has one,
    /// else one app (a crate directory, a Python app or a `.wasm`) at `/`.
    pub(crate) fn for_app(app: &Path) -> Result<Manifest> {
        Manifest::for_app_given(app, &[])
    }

    /// [`Manifest::for_app`], leaving out the config keys `given` over it.
    pub(crate) fn for_app_given(app: &Path, given: &[String]) -> Result<Manifest> {
        if app.is_dir() {
            let manifest = app.join("squall.toml");
            if manifest.is_file() {
                return Manifest::load_given(&manifest, given);
            }
        } else if app.extension().is_some_and(|ext| ext == "toml") {
            return Manifest::load_given(app, given);
        } else if !app.exists() {
            bail!("{} does not exist", app.display());
        }
        let name = app
            .canonicalize()
            .ok()
            .and_then(|path| Some(path.file_stem()?.to_string_lossy().into_owned()))
            .unwrap_or_else(|| "app".to_owned());
        Ok(Manifest::single(&name, app.to_path_buf()))
    }

    /// A manifest serving one app at `/` with default limits.
    pub(crate) fn single(name: &str, source: PathBuf) -> Manifest {
        let server = ServerConfig::default();
        Manifest {
            apps: vec![AppConfig {
                name: name.to_owned(),
                source,
                hosts: Vec::new(),
                routes: default_routes(),
                strip_prefix: false,
                limits: Limits::alone(server.max_instances),
                outbound: OutboundPolicy::default(),
                pubsub: TopicPolicy::default(),
                pubsub_history: DEFAULT_PUBSUB_HISTORY,
                websockets: Vec::new(),
                tcp: Vec::new(),
                schedules: Vec::new(),
                consumers: Vec::new(),
                tcp_outbound: crate::policy::TcpPolicy::default(),
                kv: false,
                jobs: false,
                settings: Settings::default(),
                static_dirs: Vec::new(),
                compress: true,
                reuse: None,
            }],
            server,
        }
    }
}

/// Each app's floor and ceiling fit the pool, and the floors fit together.
fn check_shares(apps: &[AppConfig], pool: u32, text: &str, file: &str) -> Result<()> {
    let mut reserved = 0u32;
    for app in apps {
        let limits = &app.limits;
        let at = |key: &str| locate(text, file, &format!("app.{}", app.name), Some(key));
        if limits.max_instances == 0 || limits.max_instances > pool {
            bail!(
                "{}: app.{}.max_instances: {} must be between 1 and the server's max_instances ({pool})",
                at("max_instances"),
                app.name,
                limits.max_instances
            );
        }
        if limits.reserved_instances > limits.max_instances {
            bail!(
                "{}: app.{}.reserved_instances: {} is more than its max_instances ({})",
                at("reserved_instances"),
                app.name,
                limits.reserved_instances,
                limits.max_instances
            );
        }
        reserved = reserved.saturating_add(limits.reserved_instances);
        if reserved > pool {
            bail!(
                "{}: app.{}.reserved_instances: the apps reserve {reserved} instances, more than the server's max_instances ({pool})",
                at("reserved_instances"),
                app.name
            );
        }
        for (key, value) in [
            ("max_concurrency", limits.max_concurrency),
            ("max_fetches", limits.max_fetches),
            ("max_fetches_per_request", limits.max_fetches_per_request),
        ] {
            if value == 0 {
                bail!("{}: app.{}.{key}: must be at least 1", at(key), app.name);
            }
        }
        check_job_limits(app, &at)?;
        if let Some(reuse) = &app.reuse
            && (reuse.requests == 0 || reuse.instances == 0)
        {
            bail!(
                "{}: app.{}.reuse: requests and instances must be at least 1",
                at("reuse"),
                app.name
            );
        }
        if let Some(reuse) = &app.reuse
            && !(1..=app::MAX_REUSE_CONCURRENT).contains(&reuse.concurrent)
        {
            bail!(
                "{}: app.{}.reuse: concurrent must be from 1 to {}",
                at("reuse"),
                app.name,
                app::MAX_REUSE_CONCURRENT
            );
        }
    }
    Ok(())
}

/// Job and queue limits within what the host reads whole and retries.
fn check_job_limits(app: &AppConfig, at: &dyn Fn(&str) -> String) -> Result<()> {
    let limits = &app.limits;
    if limits.jobs_max_payload > app::JOBS_PAYLOAD_CEILING {
        bail!(
            "{}: app.{}.jobs_max_payload: {} is over the host's ceiling of {} bytes",
            at("jobs_max_payload"),
            app.name,
            limits.jobs_max_payload,
            app::JOBS_PAYLOAD_CEILING
        );
    }
    if limits.queue_max_payload > app::JOBS_PAYLOAD_CEILING {
        bail!(
            "{}: app.{}.queue_max_payload: {} is over the host's ceiling of {} bytes",
            at("queue_max_payload"),
            app.name,
            limits.queue_max_payload,
            app::JOBS_PAYLOAD_CEILING
        );
    }
    for (key, value) in [
        ("queue_max_messages", limits.queue_max_messages),
        ("jobs_max_pending", limits.jobs_max_pending),
    ] {
        if !(1..=app::KEPT_CEILING).contains(&value) {
            bail!(
                "{}: app.{}.{key}: must be from 1 to {}",
                at(key),
                app.name,
                app::KEPT_CEILING
            );
        }
    }
    if !(1..=app::JOBS_ATTEMPTS_CEILING).contains(&limits.jobs_max_attempts) {
        bail!(
            "{}: app.{}.jobs_max_attempts: must be from 1 to {}",
            at("jobs_max_attempts"),
            app.name,
            app::JOBS_ATTEMPTS_CEILING
        );
    }
    Ok(())
}

/// No two apps claim the same host and path prefix.
fn check_claims(apps: &[AppConfig], text: &str, file: &str) -> Result<()> {
    let mut claims = Vec::new();
    for app in apps {
        let at = |key: &str| locate(text, file, &format!("app.{}", app.name), Some(key));
        let mine = Claim::all(&app.hosts, &app.routes)
            .map_err(|why| anyhow::anyhow!("{}: app.{}.hosts: {why}", at("hosts"), app.name))?;
        claims.push((app.name.clone(), mine, ()));
        if let Err(why) = RouteTable::new(claims.iter().cloned()) {
            let key = if app.hosts.is_empty() {
                "routes"
            } else {
                "hosts"
            };
            bail!("{}: app.{}.{key}: {why}", at(key), app.name);
        }
    }
    Ok(())
}

/// No two listeners share an address, nor take the server's own.
fn check_tcp_listeners(
    apps: &[AppConfig],
    server: &ServerConfig,
    text: &str,
    file: &str,
) -> Result<()> {
    let mut taken: Vec<(std::net::SocketAddr, String)> = [
        Some(server.listen),
        server.https_listen,
        server.admin_listen,
    ]
    .into_iter()
    .flatten()
    .filter(|address| address.port() != 0)
    .map(|address| (address, "the [server] table".to_owned()))
    .collect();
    for app in apps {
        for listener in &app.tcp {
            let at = locate(text, file, &format!("app.{}", app.name), Some("tcp"));
            if listener.listen.port() != 0
                && let Some((_, owner)) = taken
                    .iter()
                    .find(|(address, _)| *address == listener.listen)
            {
                bail!(
                    "{at}: app.{}.tcp: {} is already taken by {owner}",
                    app.name,
                    listener.listen
                );
            }
            if listener.max_connections == 0 {
                bail!(
                    "{at}: app.{}.tcp.max_connections: must be at least 1",
                    app.name
                );
            }
            if listener.idle_timeout.is_zero() || listener.max_frame == 0 {
                bail!(
                    "{at}: app.{}.tcp: idle_timeout and max_frame must be more than zero",
                    app.name
                );
            }
            taken.push((listener.listen, format!("app.{}", app.name)));
        }
    }
    Ok(())
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

fn is_valid_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

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
        assert!(
            message.contains("apps \"a\" and \"b\" both claim any host and path prefix \"/x\""),
            "{message}"
        );
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
        assert_eq!(parse_percent("25%"), Ok(25));
        assert_eq!(parse_percent(" 150 %"), Ok(150));
        assert!(parse_percent("25").is_err());
        assert!(parse_percent("0%").is_err());
    }

    #[test]
    fn apps_among_others_get_a_fenced_share_by_default() {
        let manifest = parse(
            "[server]\nmax_instances = 100\n[app.a]\nsource = \"a.wasm\"\nroutes = [\"/a\"]\n[app.b]\nsource = \"b.wasm\"\nroutes = [\"/b\"]\n",
        )
        .expect("valid manifest");
        for app in &manifest.apps {
            assert_eq!(app.limits.max_instances, 50, "{}", app.name);
            assert_eq!(app.limits.reserved_instances, 12, "{}", app.name);
            assert_eq!(app.limits.max_concurrency, 50, "{}", app.name);
        }
        let alone = parse("[app.a]\nsource = \"a.wasm\"\n").expect("valid");
        assert_eq!(alone.apps[0].limits.max_instances, 1000);
        assert_eq!(alone.apps[0].limits.reserved_instances, 0);
    }

    #[test]
    fn apps_sharing_instances_admit_as_many_requests_as_their_instances_hold() {
        let manifest = parse(
            "[server]\nmax_instances = 100\n[app.a]\nsource = \"a.wasm\"\nreuse = { concurrent = 20 }\n",
        )
        .expect("valid manifest");
        assert_eq!(manifest.apps[0].limits.max_concurrency, 2000);
        let set = parse(
            "[app.a]\nsource = \"a.wasm\"\nmax_concurrency = 7\nreuse = { concurrent = 20 }\n",
        )
        .expect("valid manifest");
        assert_eq!(set.apps[0].limits.max_concurrency, 7);
    }

    #[test]
    fn floors_that_do_not_fit_are_refused() {
        let message = error(
            "[server]\nmax_instances = 10\n[app.a]\nsource = \"a.wasm\"\nroutes = [\"/a\"]\nreserved_instances = 5\n[app.b]\nsource = \"b.wasm\"\nroutes = [\"/b\"]\nreserved_instances = 5\n[app.c]\nsource = \"c.wasm\"\nroutes = [\"/c\"]\nreserved_instances = 1\n",
        );
        assert!(message.contains("app.c.reserved_instances"), "{message}");
        assert!(message.contains("reserve 11"), "{message}");
        assert!(message.starts_with("squall.toml:14:"), "{message}");
        let message =
            error("[app.a]\nsource = \"a.wasm\"\nmax_instances = 5\nreserved_instances = 6\n");
        assert!(message.contains("more than its max_instances"), "{message}");
        let message = error("[app.a]\nsource = \"a.wasm\"\nmax_instances = 5000\n");
        assert!(message.contains("app.a.max_instances"), "{message}");
        let message = error("[app.a]\nsource = \"a.wasm\"\nmax_fetches = 0\n");
        assert!(message.contains("app.a.max_fetches"), "{message}");
    }

    #[test]
    fn hosts_are_checked_and_may_share_a_path() {
        let manifest = parse(
            "[app.a]\nsource = \"a.wasm\"\nhosts = [\"a.localhost\"]\n[app.b]\nsource = \"b.wasm\"\nhosts = [\"*.localhost\"]\nstrip_prefix = true\n",
        )
        .expect("different hosts, same path");
        assert_eq!(manifest.apps[1].hosts, vec!["*.localhost"]);
        assert!(manifest.apps[1].strip_prefix);
        let message = error("[app.a]\nsource = \"a.wasm\"\nhosts = [\"a.localhost:80\"]\n");
        assert!(message.starts_with("squall.toml:3:"), "{message}");
        assert!(message.contains("app.a.hosts"), "{message}");
        let message = error(
            "[app.a]\nsource = \"a.wasm\"\nhosts = [\"x.test\"]\n[app.b]\nsource = \"b.wasm\"\nhosts = [\"X.test\"]\n",
        );
        assert!(message.contains("both claim host \"x.test\""), "{message}");
        assert!(message.starts_with("squall.toml:6:"), "{message}");
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        /// Lines a manifest is made of, some valid, most not.
        fn manifest_line() -> impl Strategy<Value = String> {
            prop_oneof![
                Just("[server]".to_owned()),
                Just("[app.a]".to_owned()),
                Just("[[app.a.websocket]]".to_owned()),
                Just("source = \"a.wasm\"".to_owned()),
                "[a-z_]{1,20} = \"[ -~]{0,12}\"",
                "[a-z_]{1,20} = [0-9]{1,12}",
                "[a-z_]{1,20} = \\[\"[ -~]{0,10}\"\\]",
                "[ -~]{0,30}",
            ]
        }

        proptest! {
            #[test]
            fn the_parser_never_panics(lines in prop::collection::vec(manifest_line(), 0..12)) {
                let text = lines.join("\n");
                let _ = parse(&text);
            }

            #[test]
            fn any_bytes_are_refused_or_parsed_without_panicking(text in "\\PC{0,200}") {
                let _ = parse(&text);
            }

            #[test]
            fn sizes_scale_by_their_unit(n in 0u64..1_000_000) {
                prop_assert_eq!(parse_size(&format!("{n}KiB")), Ok(n << 10));
                prop_assert_eq!(parse_size(&format!("{n}MB")), Ok(n * 1_000_000));
                prop_assert_eq!(parse_duration(&format!("{}ms", n + 1)), Ok(Duration::from_millis(n + 1)));
            }
        }
    }
}

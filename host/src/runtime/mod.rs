//! The wasm side of the host: one `Engine` with the pooling allocator and
//! epoch interruption, a linker with every capability, and per app a
//! pre-linked `InstancePre` from which each request gets a fresh instance.

mod guest_log;
mod state;

pub use state::{LimitExceeded, State};

use crate::bindings::{self, AppPre};
use crate::capabilities::http_client::{HttpClient, new_client};
use crate::config::{AppConfig, Limits, WebSocketRoute};
use crate::policy::{OutboundPolicy, TopicPolicy};
use crate::pubsub::Broker;
use crate::websocket::Hub;
use anyhow::{Context, Result};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use wasmtime::component::{Component, HasSelf, Linker};
use wasmtime::{
    Config, Enabled, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, Store,
};
use wasmtime_wasi_http::handler::ProxyPre;

/// How often the epoch advances: the granularity of CPU accounting and of
/// the slices a busy guest runs for before it yields to other tasks.
pub const EPOCH_TICK: Duration = Duration::from_millis(10);

/// Bytes of each pool slot kept resident and reset in place between instances.
const KEEP_RESIDENT: usize = 1 << 20;

/// Engine-wide settings, from the manifest's `[server]` table and the apps.
#[derive(Debug, Clone)]
pub struct RuntimeConfig {
    /// Instances alive at once, over all apps.
    pub max_instances: u32,
    /// The largest `memory` limit of any app (the size of a pool slot).
    pub max_memory: u64,
}

/// The engine, linker, outbound client, broker and connection hub shared
/// by every app.
pub struct Runtime {
    engine: Engine,
    linker: Linker<State>,
    client: HttpClient,
    broker: Arc<Broker>,
    hub: Arc<Hub>,
}

/// What an app was granted beyond computing, shared by all its stores.
pub struct Grants {
    pub outbound: OutboundPolicy,
    pub fetch_max_body: u64,
    /// A fetch's response-head timeout when the guest gives none.
    pub default_timeout: Duration,
    pub client: HttpClient,
    /// The app's name, which namespaces its topics and connections.
    pub app: Arc<str>,
    pub topics: TopicPolicy,
    pub pubsub_history: usize,
    pub broker: Arc<Broker>,
    pub hub: Arc<Hub>,
}

impl Runtime {
    pub fn new(config: &RuntimeConfig) -> Result<Runtime> {
        let engine = Engine::new(&engine_config(config)?)
            .map_err(anyhow::Error::from)
            .with_context(|| {
                format!(
                    "cannot start the wasm engine with max_instances = {} \
                     (each instance slot reserves about 4 GiB of address space; lower it)",
                    config.max_instances
                )
            })?;
        start_epoch_ticker(&engine);
        let mut linker = Linker::new(&engine);
        // WASI 0.2 and 0.3 (Rust's std needs 0.2; standard wasi:http
        // components may use either), and wasi:http for those components.
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)
            .and_then(|()| wasmtime_wasi::p3::add_to_linker(&mut linker))
            .and_then(|()| wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker))
            .and_then(|()| wasmtime_wasi_http::p3::add_to_linker(&mut linker))
            .map_err(anyhow::Error::from)
            .context("cannot link the WASI interfaces")?;
        bindings::App::add_to_linker::<State, HasSelf<State>>(&mut linker, |state| state)
            .map_err(anyhow::Error::from)
            .context("cannot link the squall:app interfaces")?;
        let client = new_client().context("cannot set up the outbound HTTP client")?;
        let broker = Broker::new();
        let hub = Hub::new(broker.clone());
        Ok(Runtime {
            engine,
            linker,
            client,
            broker,
            hub,
        })
    }

    /// The open WebSocket connections of every app.
    pub fn hub(&self) -> &Arc<Hub> {
        &self.hub
    }

    /// Compile the component at `path` for the app `config` describes, and
    /// link it, ready to instantiate.
    pub fn load(&self, config: &AppConfig, path: &Path) -> Result<App> {
        let name = config.name.as_str();
        let bytes =
            std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
        if !is_component(&bytes) {
            anyhow::bail!(
                "{} is not a WebAssembly component: build the app for wasm32-wasip2 \
                 (`squall build CRATE`)",
                path.display()
            );
        }
        let component = Component::new(&self.engine, &bytes)
            .map_err(anyhow::Error::from)
            .with_context(|| format!("cannot compile {}", path.display()))?;
        let pre = self
            .linker
            .instantiate_pre(&component)
            .map_err(anyhow::Error::from)
            .with_context(|| {
                format!("app {name:?} needs an import that Squall does not provide")
            })?;
        let kind = ComponentKind::of(&component, &self.engine);
        let guest = match kind {
            ComponentKind::Squall => Guest::Squall(AppPre::new(pre).map_err(anyhow::Error::from)?),
            ComponentKind::WasiHttp2 => Guest::Standard(ProxyPre::P2(
                wasmtime_wasi_http::p2::bindings::ProxyPre::new(pre)
                    .map_err(anyhow::Error::from)?,
            )),
            ComponentKind::WasiHttp3 => Guest::Standard(ProxyPre::P3(
                wasmtime_wasi_http::p3::bindings::ServicePre::new(pre)
                    .map_err(anyhow::Error::from)?,
            )),
            ComponentKind::Unknown => anyhow::bail!(
                "app {name:?} exports no request handler: expected squall:app/handler@0.1.0 \
                 (squall-sdk), wasi:http/incoming-handler@0.2 or wasi:http/handler@0.3"
            ),
        };
        if kind != ComponentKind::Squall && !config.websockets.is_empty() {
            anyhow::bail!(
                "app {name:?} is a standard wasi:http component: WebSocket routes need a squall-sdk app"
            );
        }
        warn_about_denied_imports(name, &component, &self.engine);
        let grants = Arc::new(Grants {
            outbound: config.outbound.clone(),
            fetch_max_body: config.limits.fetch_max_body,
            default_timeout: config.limits.timeout,
            client: self.client.clone(),
            app: name.into(),
            topics: config.pubsub.clone(),
            pubsub_history: config.pubsub_history,
            broker: self.broker.clone(),
            hub: self.hub.clone(),
        });
        tracing::info!(app = name, kind = kind.describe(), "loaded");
        Ok(App {
            name: name.to_owned(),
            guest,
            limits: config.limits.clone(),
            websockets: config.websockets.clone(),
            grants,
            engine: self.engine.clone(),
        })
    }
}

/// The component binary starts with the wasm magic and a component layer.
fn is_component(bytes: &[u8]) -> bool {
    bytes.len() >= 8 && bytes[..4] == *b"\0asm" && bytes[6..8] == [0x01, 0x00]
}

fn engine_config(config: &RuntimeConfig) -> Result<Config> {
    let instances = config.max_instances.max(1);
    let mut pool = PoolingAllocationConfig::new();
    pool.total_component_instances(instances)
        // A Rust component is a handful of core instances and tables, and
        // one memory (a component with more fails to instantiate: 503).
        .total_core_instances(instances.saturating_mul(8))
        .total_memories(instances)
        .total_tables(instances.saturating_mul(8))
        // Each live store keeps one fiber stack.
        .total_stacks(instances)
        .max_memory_size(usize::try_from(config.max_memory).unwrap_or(usize::MAX))
        // Reset a used slot by rewriting only its dirty pages (found with
        // PAGEMAP_SCAN where the kernel has it) instead of madvise: the next
        // instance then takes no page faults and no TLB shootdowns.
        .pagemap_scan(Enabled::Auto)
        .linear_memory_keep_resident(KEEP_RESIDENT)
        .table_keep_resident(KEEP_RESIDENT);
    let mut wasm = Config::new();
    wasm.wasm_component_model_async(true)
        .epoch_interruption(true)
        .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    Ok(wasm)
}

/// Advance the engine's epoch every [`EPOCH_TICK`] until the engine is dropped.
fn start_epoch_ticker(engine: &Engine) {
    let weak = engine.weak();
    std::thread::Builder::new()
        .name("squall-epoch".into())
        .spawn(move || {
            while let Some(engine) = weak.upgrade() {
                engine.increment_epoch();
                drop(engine);
                std::thread::sleep(EPOCH_TICK);
            }
        })
        .map(drop)
        .unwrap_or_else(|err| tracing::error!("cannot start the epoch ticker: {err}"));
}

/// A loaded app: its compiled, pre-linked component and its limits.
pub struct App {
    name: String,
    guest: Guest,
    limits: Limits,
    websockets: Vec<WebSocketRoute>,
    grants: Arc<Grants>,
    engine: Engine,
}

impl App {
    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Its WebSocket routes.
    pub fn websockets(&self) -> &[WebSocketRoute] {
        &self.websockets
    }

    pub fn hub(&self) -> &Arc<Hub> {
        &self.grants.hub
    }

    pub fn guest(&self) -> &Guest {
        &self.guest
    }

    /// The pre-instance of a squall-sdk app; an error for a standard one.
    pub fn squall_pre(&self) -> wasmtime::Result<&AppPre<State>> {
        match &self.guest {
            Guest::Squall(pre) => Ok(pre),
            Guest::Standard(_) => Err(wasmtime::Error::msg(
                "a standard wasi:http component has no squall:app exports",
            )),
        }
    }

    /// A fresh store with this app's limits, for one request.
    pub fn new_store(&self) -> Store<State> {
        state::new_store(&self.engine, &self.limits, self.grants.clone())
    }
}

/// What kind of handler a component exports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ComponentKind {
    Squall,
    WasiHttp2,
    WasiHttp3,
    Unknown,
}

impl ComponentKind {
    fn of(component: &Component, engine: &Engine) -> Self {
        let exports: Vec<String> = component
            .component_type()
            .exports(engine)
            .map(|(name, _)| name.to_owned())
            .collect();
        let has = |prefix: &str| exports.iter().any(|name| name.starts_with(prefix));
        if has("squall:app/handler@0.1") {
            ComponentKind::Squall
        } else if has("wasi:http/handler@0.3") {
            ComponentKind::WasiHttp3
        } else if has("wasi:http/incoming-handler@0.2") {
            ComponentKind::WasiHttp2
        } else {
            ComponentKind::Unknown
        }
    }

    fn describe(self) -> &'static str {
        match self {
            ComponentKind::Squall => "squall:app component",
            ComponentKind::WasiHttp2 => "standard wasi:http 0.2 proxy component",
            ComponentKind::WasiHttp3 => "standard wasi:http 0.3 service component",
            ComponentKind::Unknown => "unknown component",
        }
    }
}

/// Say at load time what a component imports that it will be refused:
/// Squall grants no files, sockets or environment.
fn warn_about_denied_imports(name: &str, component: &Component, engine: &Engine) {
    for (import, _) in component.component_type().imports(engine) {
        let denied = ["wasi:filesystem/", "wasi:sockets/"]
            .iter()
            .find(|prefix| import.starts_with(*prefix));
        if let Some(prefix) = denied {
            tracing::warn!(
                app = name,
                import,
                "the app imports {}; Squall grants none, so its calls will be denied",
                prefix.trim_end_matches('/')
            );
        }
    }
}

/// A loaded app's handler.
pub enum Guest {
    /// A squall-sdk app (`squall:app/handler`).
    Squall(AppPre<State>),
    /// A standard wasi:http component.
    Standard(ProxyPre<State>),
}

/// Apps are shared by every connection task.
pub type SharedApp = Arc<App>;

//! An app as the host serves it: its component, what its manifest grants
//! it, where it is reached, and the fences around it (its share of the
//! instance pool, requests and WebSockets in flight). Each request or event
//! gets a fresh store from here.

use crate::bindings::exports::squall::app::app_info::Description;
use crate::capabilities::{self, Grants, GuestState, Shared, StoreCapabilities};
use crate::config::{AppConfig, Limits, Manifest, WebSocketRoute};
use crate::error::HostError;
use crate::hub::Hub;
use crate::kv::KvBackend;
use crate::kv::embedded::Embedded;
use crate::limit_log::{Limit, LimitHits};
use crate::routes::{Claim, RouteTable};
use crate::runtime::{AppComponent, Guest, Runtime, RuntimeConfig};
use anyhow::{Context, Result};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use wasmtime::Store;

/// A loaded app, shared by every connection task.
pub(crate) struct App {
    name: Arc<str>,
    component: AppComponent<StoreCapabilities>,
    grants: Arc<Grants>,
    websockets: Vec<WebSocketRoute>,
    claims: Vec<Claim>,
    strip_prefix: bool,
    /// `max_concurrency`: HTTP requests in flight.
    requests: Arc<Semaphore>,
    /// `max_connections`: open WebSockets.
    connections: Arc<Semaphore>,
    hits: Arc<LimitHits>,
}

/// Apps are shared by every connection task.
pub(crate) type SharedApp = Arc<App>;

impl App {
    /// Load the component at `wasm` for the app `config` describes.
    pub(crate) fn load(
        runtime: &Runtime<StoreCapabilities>,
        shared: &Shared,
        config: &AppConfig,
        wasm: &Path,
    ) -> Result<App> {
        let hits = Arc::new(LimitHits::new(&config.name));
        let redact = config.settings.secrets().map(str::to_owned).collect();
        let component = runtime.load(&config.name, wasm, &config.limits, hits.clone(), redact)?;
        if matches!(component.guest(), Guest::Standard(_)) && !config.websockets.is_empty() {
            anyhow::bail!(
                "app {:?} is a standard wasi:http component: WebSocket routes need a squall-sdk app",
                config.name
            );
        }
        let limits = &config.limits;
        let mut app = App {
            name: config.name.as_str().into(),
            component,
            grants: Grants::new(config, shared, hits.clone())?,
            websockets: config.websockets.clone(),
            claims: Claim::all(&config.hosts, &config.routes).map_err(anyhow::Error::msg)?,
            strip_prefix: config.strip_prefix,
            requests: Arc::new(Semaphore::new(permits(limits.max_concurrency))),
            connections: Arc::new(Semaphore::new(permits(limits.max_connections))),
            hits,
        };
        if matches!(app.component.guest(), Guest::Squall(_)) {
            let description = app.describe()?;
            if !description.route_errors.is_empty() {
                anyhow::bail!(
                    "app {:?} has malformed routes: {}",
                    config.name,
                    description.route_errors.join("; ")
                );
            }
            for pattern in &description.websocket_routes {
                let prefix = websocket_prefix(pattern);
                // A manifest route that covers it sets its mode and limits.
                let known = app.websockets.iter().any(|route| {
                    route
                        .routes
                        .iter()
                        .any(|route| crate::routes::prefix_matches(route, &prefix))
                });
                if !known {
                    app.websockets.push(WebSocketRoute::declared(prefix));
                }
            }
        }
        Ok(app)
    }

    /// Ask a fresh instance what the app declares (its `app-info`), on a
    /// thread of its own: loading may happen inside or outside a runtime.
    fn describe(&self) -> Result<Description> {
        let timeout = self.limits().timeout;
        std::thread::scope(|scope| {
            let asked = scope.spawn(|| {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()?;
                runtime.block_on(async {
                    let ask = async {
                        let (mut store, guest) = self.instantiate().await?;
                        guest.squall_app_app_info().call_describe(&mut store).await
                    };
                    match tokio::time::timeout(timeout, ask).await {
                        Ok(described) => described.map_err(anyhow::Error::from),
                        Err(_) => anyhow::bail!("describing itself took over {timeout:?}"),
                    }
                })
            });
            asked
                .join()
                .map_err(|_| anyhow::anyhow!("describing the app panicked"))?
        })
        .with_context(|| format!("app {:?} could not describe its routes", self.name))
    }

    /// Its name in the manifest.
    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    /// Its limits.
    pub(crate) fn limits(&self) -> &Limits {
        self.component.limits()
    }

    /// Its WebSocket routes.
    pub(crate) fn websockets(&self) -> &[WebSocketRoute] {
        &self.websockets
    }

    /// Whether it sees paths without the prefix it was reached by.
    pub(crate) fn strip_prefix(&self) -> bool {
        self.strip_prefix
    }

    /// The open WebSocket connections of every app.
    pub(crate) fn hub(&self) -> &Arc<Hub> {
        self.grants.hub()
    }

    /// Its component.
    pub(crate) fn component(&self) -> &AppComponent<StoreCapabilities> {
        &self.component
    }

    /// The limits it has hit, counted.
    pub(crate) fn hits(&self) -> &LimitHits {
        &self.hits
    }

    /// What it holds now: instances, topics, bytes of topic history.
    pub(crate) fn usage(&self) -> (u32, u32, u64) {
        let (topics, bytes) = self.grants.topic_usage();
        (self.component.instances_in_use(), topics, bytes)
    }

    /// What its key-value store holds (keys, bytes), if it is granted one.
    pub(crate) async fn kv_usage(&self) -> Option<Result<(u64, u64)>> {
        let usage = self.grants.kv_usage().await?;
        Some(usage.map(|usage| (usage.keys, usage.bytes)))
    }

    /// A fresh store with this app's limits and grants, for one request or
    /// event; an error if the app's share of the instance pool is taken.
    pub(crate) fn new_store(&self) -> Result<Store<GuestState>, HostError> {
        self.component
            .new_store(StoreCapabilities::new(self.grants.clone()))
            .inspect_err(|failure| self.hits.hit(Limit::Instances, &failure.to_string()))
    }

    /// A fresh store and, in it, an instance of the app's squall-sdk
    /// component.
    pub(crate) async fn instantiate(
        &self,
    ) -> wasmtime::Result<(Store<GuestState>, crate::bindings::App)> {
        let mut store = self.new_store()?;
        let guest = self
            .component
            .squall_pre()?
            .instantiate_async(&mut store)
            .await?;
        Ok((store, guest))
    }

    /// A place among the app's requests in flight (`max_concurrency`).
    pub(crate) fn admit_request(&self) -> Result<OwnedSemaphorePermit, HostError> {
        self.requests.clone().try_acquire_owned().map_err(|_| {
            let why = format!(
                "the app has {} requests in flight (max_concurrency)",
                self.limits().max_concurrency
            );
            self.hits.hit(Limit::Concurrency, &why);
            HostError::Busy(why)
        })
    }

    /// A place among the app's open WebSockets (`max_connections`).
    pub(crate) fn admit_connection(&self) -> Result<OwnedSemaphorePermit, HostError> {
        self.connections.clone().try_acquire_owned().map_err(|_| {
            let why = format!(
                "the app has {} WebSockets open (max_connections)",
                self.limits().max_connections
            );
            self.hits.hit(Limit::Connections, &why);
            HostError::Busy(why)
        })
    }
}

/// A semaphore's permits for a limit of `count`.
fn permits(count: u32) -> usize {
    usize::try_from(count)
        .unwrap_or(usize::MAX)
        .min(Semaphore::MAX_PERMITS)
}

/// The prefix a WebSocket route pattern is served under: its literal
/// segments before the first parameter (`/rooms/{room}` -> `/rooms`).
fn websocket_prefix(pattern: &str) -> String {
    let literal: Vec<&str> = pattern
        .trim_start_matches('/')
        .split('/')
        .take_while(|segment| !segment.starts_with('{'))
        .collect();
    format!("/{}", literal.join("/"))
}

/// The key-value store under the data directory, if any app is granted it.
fn open_store(manifest: &Manifest) -> Result<Option<Arc<dyn KvBackend>>> {
    if !manifest.apps.iter().any(|app| app.kv) {
        return Ok(None);
    }
    let dir = &manifest.server.data_dir;
    std::fs::create_dir_all(dir)
        .with_context(|| format!("cannot create the data directory {}", dir.display()))?;
    let store: Arc<dyn KvBackend> = Embedded::open(&dir.join("kv.redb"))?;
    Ok(Some(store))
}

/// Every app of a manifest, loaded into one runtime with the services they
/// share.
pub(crate) struct Apps {
    /// Kept alive as long as any app: it owns the engine's epoch ticker.
    _runtime: Runtime<StoreCapabilities>,
    shared: Shared,
    apps: Vec<SharedApp>,
}

impl Apps {
    /// Start a runtime sized for `manifest` and load each of its apps from
    /// the component `component_of` finds for it.
    pub(crate) fn load(
        manifest: &Manifest,
        component_of: impl Fn(&AppConfig) -> Result<PathBuf>,
    ) -> Result<Apps> {
        let runtime = Runtime::new(
            &RuntimeConfig {
                max_instances: manifest.server.max_instances,
                max_memory: manifest
                    .apps
                    .iter()
                    .map(|app| app.limits.memory)
                    .max()
                    .unwrap_or(0),
            },
            capabilities::add_to_linker,
        )?;
        let shared = Shared::new(open_store(manifest)?);
        let mut apps = Vec::new();
        for config in &manifest.apps {
            let wasm = component_of(config)
                .with_context(|| format!("cannot prepare app {:?}", config.name))?;
            let app = App::load(&runtime, &shared, config, &wasm)
                .with_context(|| format!("cannot load app {:?}", config.name))?;
            apps.push(Arc::new(app));
        }
        Ok(Apps {
            _runtime: runtime,
            shared,
            apps,
        })
    }

    /// The table that finds each request's app.
    pub(crate) fn router(&self) -> Result<RouteTable<SharedApp>> {
        RouteTable::new(
            self.apps
                .iter()
                .map(|app| (app.name().to_owned(), app.claims.clone(), app.clone())),
        )
        .map_err(anyhow::Error::msg)
    }

    /// The loaded apps.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &SharedApp> {
        self.apps.iter()
    }

    /// The open WebSocket connections of every app.
    pub(crate) fn hub(&self) -> &Arc<Hub> {
        self.shared.hub()
    }
}

#[cfg(test)]
mod tests {
    use super::websocket_prefix;

    #[test]
    fn a_websocket_pattern_is_served_under_its_literal_prefix() {
        assert_eq!(websocket_prefix("/chat"), "/chat");
        assert_eq!(websocket_prefix("/rooms/{room}"), "/rooms");
        assert_eq!(websocket_prefix("/{*rest}"), "/");
        assert_eq!(websocket_prefix("/a/b/{c}/d"), "/a/b");
    }
}

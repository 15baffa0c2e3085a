//! An app as the host serves it: its component, what its manifest grants
//! it, and its WebSocket routes. Each request or event gets a fresh store
//! from here.

use crate::capabilities::{self, Grants, GuestState, Shared, StoreCapabilities};
use crate::config::{AppConfig, Limits, Manifest, WebSocketRoute};
use crate::hub::Hub;
use crate::runtime::{AppComponent, Guest, Runtime, RuntimeConfig};
use anyhow::{Context, Result};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use wasmtime::Store;

/// A loaded app, shared by every connection task.
pub(crate) struct App {
    name: Arc<str>,
    component: AppComponent<StoreCapabilities>,
    grants: Arc<Grants>,
    websockets: Vec<WebSocketRoute>,
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
        let component = runtime.load(&config.name, wasm, &config.limits)?;
        if matches!(component.guest(), Guest::Standard(_)) && !config.websockets.is_empty() {
            anyhow::bail!(
                "app {:?} is a standard wasi:http component: WebSocket routes need a squall-sdk app",
                config.name
            );
        }
        Ok(App {
            name: config.name.as_str().into(),
            component,
            grants: Grants::new(config, shared),
            websockets: config.websockets.clone(),
        })
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

    /// The open WebSocket connections of every app.
    pub(crate) fn hub(&self) -> &Arc<Hub> {
        self.grants.hub()
    }

    /// Its component.
    pub(crate) fn component(&self) -> &AppComponent<StoreCapabilities> {
        &self.component
    }

    /// A fresh store with this app's limits and grants, for one request.
    pub(crate) fn new_store(&self) -> Store<GuestState> {
        self.component
            .new_store(StoreCapabilities::new(self.grants.clone()))
    }
}

/// Every app of a manifest, loaded into one runtime with the services they
/// share.
pub(crate) struct Apps {
    /// Kept alive as long as any app: it owns the engine's epoch ticker.
    _runtime: Runtime<StoreCapabilities>,
    shared: Shared,
    apps: Vec<(Vec<String>, SharedApp)>,
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
        let shared = Shared::new()?;
        let mut apps = Vec::new();
        for config in &manifest.apps {
            let wasm = component_of(config)
                .with_context(|| format!("cannot prepare app {:?}", config.name))?;
            let app = App::load(&runtime, &shared, config, &wasm)
                .with_context(|| format!("cannot load app {:?}", config.name))?;
            apps.push((config.routes.clone(), Arc::new(app)));
        }
        Ok(Apps {
            _runtime: runtime,
            shared,
            apps,
        })
    }

    /// Each app with the path prefixes it serves.
    pub(crate) fn routes(&self) -> impl Iterator<Item = (Vec<String>, SharedApp)> + '_ {
        self.apps
            .iter()
            .map(|(routes, app)| (routes.clone(), app.clone()))
    }

    /// The open WebSocket connections of every app.
    pub(crate) fn hub(&self) -> &Arc<Hub> {
        self.shared.hub()
    }
}

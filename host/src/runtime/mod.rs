//! The wasm side of the host, and its bottom layer: one `Engine` with the
//! pooling allocator and epoch interruption, a linker, and per app a
//! pre-linked component from which each request gets a fresh instance in a
//! store with the app's limits.
//!
//! The runtime knows no capability: the layer above chooses the per-store
//! data `H` and links its interfaces through [`Runtime::new`]'s `link`.

mod component;
mod cpu_share;
mod engine;
mod guest_log;
mod lifecycle;
mod share;
mod store;

pub(crate) use component::{AppComponent, Guest};
pub(crate) use engine::RuntimeConfig;
pub(crate) use lifecycle::{OnCancel, Running, finished, until_answer};
pub(crate) use store::{ChargeCopies, State};

use anyhow::{Context, Result};
use component::{ComponentKind, denied_import, is_component};
use share::{InstancePool, Share};
use std::path::Path;
use std::sync::Arc;
use wasmtime::Engine;
use wasmtime::component::{Component, Linker};
use wasmtime_wasi_http::handler::ProxyPre;

/// The engine and the linker shared by every app.
pub(crate) struct Runtime<H: 'static> {
    engine: Engine,
    linker: Linker<State<H>>,
    /// The pool's instances, shared among apps by their floors and ceilings.
    pool: Arc<InstancePool>,
}

impl<H: Send + 'static> Runtime<H> {
    /// Start the engine, link WASI (0.2 and 0.3: Rust's std needs 0.2,
    /// standard components may use either), then whatever `link` adds.
    pub(crate) fn new(
        config: &RuntimeConfig,
        link: impl FnOnce(&mut Linker<State<H>>) -> wasmtime::Result<()>,
    ) -> Result<Runtime<H>> {
        let engine = engine::start(config)?;
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)
            .and_then(|()| wasmtime_wasi::p3::add_to_linker(&mut linker))
            .map_err(anyhow::Error::from)
            .context("cannot link the WASI interfaces")?;
        link(&mut linker)
            .map_err(anyhow::Error::from)
            .context("cannot link the host's interfaces")?;
        Ok(Runtime {
            engine,
            linker,
            pool: InstancePool::new(config.max_instances.max(1)),
        })
    }

    /// Compile the component at `path` for the app `name`, and link it,
    /// ready to instantiate under `limits` (its share of the pool among
    /// them).
    pub(crate) fn load(
        &self,
        name: &str,
        path: &Path,
        limits: &crate::config::Limits,
        hits: Arc<crate::limit_log::LimitHits>,
        redact: Arc<[String]>,
    ) -> Result<AppComponent<H>> {
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
            ComponentKind::Squall => Guest::Squall(
                crate::bindings::AppPre::new(pre)
                    .map_err(anyhow::Error::from)
                    .with_context(|| {
                        format!(
                            "app {name:?} lacks an export of squall:app@0.1.0 (built with an older \
                             squall-sdk? rebuild it with `squall build`)"
                        )
                    })?,
            ),
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
        // Say at load time what the component imports that it will be
        // refused: Squall grants no files, sockets or environment.
        for (import, _) in component.component_type().imports(&self.engine) {
            if let Some(interface) = denied_import(import) {
                tracing::warn!(
                    app = name,
                    import,
                    "the app imports {interface}; Squall grants none, so its calls will be denied",
                );
            }
        }
        let instances = self
            .pool
            .join(Share {
                reserved: limits.reserved_instances,
                max: limits.max_instances,
            })
            .map_err(|why| anyhow::anyhow!("app {name:?}: {why}"))?;
        tracing::info!(app = name, kind = kind.describe(), "loaded");
        Ok(AppComponent::new(
            guest,
            limits.clone(),
            self.engine.clone(),
            instances,
            hits,
            redact,
        ))
    }
}

//! The wasm side of the host, and its bottom layer: one `Engine` with the
//! pooling allocator and epoch interruption, a linker, and per app a
//! pre-linked component from which each request gets a fresh instance in a
//! store with the app's limits.
//!
//! The runtime knows no capability: the layer above chooses the per-store
//! data `H` and links its interfaces through [`Runtime::new`]'s `link`.

mod compile_cache;
mod compiled;
mod component;
mod cpu_share;
mod engine;
mod guest_log;
mod lifecycle;
mod pool_share;
mod sockets;
mod store;

pub(crate) use compile_cache::sha256_hex;
pub(crate) use component::{AppComponent, Guest};
pub(crate) use engine::RuntimeConfig;
use engine::TickedEngine;
pub(crate) use guest_log::GuestLevel;
pub(crate) use lifecycle::{
    OnCancel, Running, finish_in_background, finished, guest_tasks_done, until_answer,
};
pub(crate) use pool_share::{AppInstances, Share};
pub(crate) use store::{ChargeCopies, State};

use anyhow::{Context, Result};
use compile_cache::{CompileCache, Obtained};
use compiled::CompilationSlots;
use component::{ComponentKind, denied_import, is_component};
use pool_share::InstancePool;
use std::path::Path;
use std::sync::Arc;
use wasmtime::component::{Component, Linker};
use wasmtime_wasi_http::handler::ProxyPre;

/// A component to load: the file it was read from and its bytes.
pub(crate) struct ComponentSource<'a> {
    pub(crate) path: &'a Path,
    pub(crate) bytes: &'a [u8],
    /// The SHA-256 of `bytes`, in hex.
    pub(crate) hash: &'a str,
}

/// The engine and the linker shared by every app.
pub(crate) struct Runtime<H: 'static> {
    /// The engine, with its tick count for the stores.
    engine: TickedEngine,
    linker: Linker<State<H>>,
    /// The pool's instances, shared among apps by their floors and ceilings.
    pool: Arc<InstancePool>,
    /// The size of a pool slot: no app's memory may be larger.
    max_memory: u64,
    /// Compiled components kept on disk, if the host keeps them.
    cache: Option<CompileCache>,
    /// Compiled components in memory, shared by apps with the same bytes.
    compilations: CompilationSlots,
}

impl<H: Send + 'static> Runtime<H> {
    /// Start the engine, link WASI (0.2 and 0.3: Rust's std needs 0.2,
    /// standard components may use either), then whatever `link` adds.
    pub(crate) fn new(
        config: &RuntimeConfig,
        link: impl FnOnce(&mut Linker<State<H>>) -> wasmtime::Result<()>,
    ) -> Result<Runtime<H>> {
        let engine = engine::start(config)?;
        let mut linker = Linker::new(&engine.engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)
            .and_then(|()| wasmtime_wasi::p3::add_to_linker(&mut linker))
            .map_err(anyhow::Error::from)
            .context("cannot link the WASI interfaces")?;
        link(&mut linker)
            .map_err(anyhow::Error::from)
            .context("cannot link the host's interfaces")?;
        let cache = match &config.cache_dir {
            Some(dir) => Some(CompileCache::open(dir, &engine.engine)?),
            None => None,
        };
        Ok(Runtime {
            engine,
            linker,
            pool: InstancePool::new(config.max_instances.max(1)),
            max_memory: config.max_memory,
            cache,
            compilations: CompilationSlots::default(),
        })
    }

    /// The component `bytes`, compiled: from the compile cache if it has
    /// it (and said how, for the log).
    fn compile(&self, bytes: &[u8], hash: &str) -> Result<(Component, &'static str)> {
        match &self.cache {
            Some(cache) => {
                let (component, obtained) = cache.component(&self.engine.engine, bytes, hash)?;
                Ok((
                    component,
                    match obtained {
                        Obtained::Cached => "from the compile cache",
                        Obtained::Compiled => "compiled and cached",
                    },
                ))
            }
            None => Component::new(&self.engine.engine, bytes)
                .map(|component| (component, "compiled"))
                .map_err(anyhow::Error::from),
        }
    }

    /// Compile the component at `path` into the compile cache, for
    /// `squall compile`; whether it was there already.
    pub(crate) fn precompile(&self, path: &Path) -> Result<bool> {
        let bytes =
            std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
        if !is_component(&bytes) {
            anyhow::bail!("{} is not a WebAssembly component", path.display());
        }
        let cache = self
            .cache
            .as_ref()
            .context("this runtime keeps no compile cache")?;
        let (_, obtained) = cache
            .component(&self.engine.engine, &bytes, &sha256_hex(&bytes))
            .with_context(|| format!("cannot compile {}", path.display()))?;
        Ok(obtained == Obtained::Cached)
    }

    /// A new app's account with the instance pool, under `limits`' share.
    pub(crate) fn join_pool(
        &self,
        name: &str,
        limits: &crate::config::Limits,
    ) -> Result<AppInstances> {
        self.pool
            .join(share_of(limits))
            .map_err(|why| anyhow::anyhow!("app {name:?}: {why}"))
    }

    /// Compile the component `source` for the app `name` (unless it is
    /// compiled already, as when only the manifest changed), and link it, ready to instantiate under `limits` with `instances`,
    /// its account with the pool.
    pub(crate) fn load(
        &self,
        name: &str,
        source: ComponentSource<'_>,
        limits: &crate::config::Limits,
        instances: AppInstances,
        hits: Arc<crate::limit_log::LimitHits>,
        redact: Arc<[String]>,
    ) -> Result<AppComponent<H>> {
        let ComponentSource { path, bytes, hash } = source;
        if limits.memory > self.max_memory {
            anyhow::bail!(
                "app {name:?}: memory ({} bytes) is more than the instance pool's slots ({} bytes), \
                 sized when the server started: restart it to raise the largest memory",
                limits.memory,
                self.max_memory
            );
        }
        if !is_component(bytes) {
            anyhow::bail!(
                "{} is not a WebAssembly component: build the app for wasm32-wasip2 \
                 (`squall build CRATE`)",
                path.display()
            );
        }
        let (component, obtained) = self
            .compilations
            .get_or_compile(hash, || self.compile(bytes, hash))
            .map_err(|err| {
                // wasmtime checks a module's initial memory against the pool's
                // slots when it compiles; say which setting that is.
                if format!("{err:#}").contains("memory does not fit") {
                    err.context(format!(
                        "app {name:?} starts with more memory than its memory limit \
                         ({} MiB): raise `memory` in the manifest",
                        limits.memory >> 20
                    ))
                } else {
                    err.context(format!("cannot compile {}", path.display()))
                }
            })?;
        let pre = self
            .linker
            .instantiate_pre(&component)
            .map_err(anyhow::Error::from)
            .with_context(|| {
                format!("app {name:?} needs an import that Squall does not provide")
            })?;
        let kind = ComponentKind::of(&component, &self.engine.engine);
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
        // Say at load time, in one line, what the component imports that it
        // will be refused: Squall grants no files, sockets or environment.
        let component_type = component.component_type();
        let denied: Vec<&str> = component_type
            .imports(&self.engine.engine)
            .filter(|(import, _)| denied_import(import).is_some())
            .map(|(import, _)| import)
            .collect();
        if !denied.is_empty() {
            tracing::warn!(
                app = name,
                imports = denied.join(", "),
                "the app imports what Squall does not grant (files, the environment, sockets \
                 other than the TCP connections its tcp_outbound names): those calls will be denied",
            );
        }
        crate::stats::component_loaded(obtained);
        tracing::info!(
            app = name,
            kind = kind.describe(),
            code = obtained,
            "loaded"
        );
        Ok(AppComponent::new(
            component,
            guest,
            limits.clone(),
            self.engine.clone(),
            instances,
            hits,
            redact,
        ))
    }
}

/// An app's share of the pool, from its limits.
pub(crate) fn share_of(limits: &crate::config::Limits) -> Share {
    Share {
        reserved: limits.reserved_instances,
        max: limits.max_instances,
    }
}

//! What is being served, and changing it while it is served: a manifest's
//! apps loaded into one runtime with the services they share, and a new
//! manifest applied app by app without dropping a request or a socket.
//!
//! A changed app is loaded beside the old version, which keeps serving;
//! only a version that loads, links and describes itself is swapped in.
//! Requests and live-mode WebSockets that began on the old version finish
//! there (live sockets within the drain timeout); hibernate-mode sockets
//! stay connected, and their next event runs the new version.
//!
//! What the admin API changes (an uploaded version, an app taken out)
//! lasts until the manifest changes that app's table (`overrides.rs`).

mod overrides;

use crate::app::{App, AppHandle, AppRef};
use crate::capabilities::{self, HostServices, StoreCapabilities};
use crate::config::{AppConfig, BackendConfig, Manifest, ServerConfig};
use crate::hub::Hub;
use crate::kv::KvBackend;
use crate::kv::embedded::Embedded;
use crate::kv::redis::RedisKv;
use crate::routes::{Claim, RouteTable};
use crate::runtime::{AppInstances, Runtime, RuntimeConfig, Share, share_of};
use crate::server::{AppRouter, Tls};
use anyhow::{Context, Result};
use arc_swap::ArcSwap;
pub(crate) use overrides::AdminChange;
use overrides::Overrides;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

/// How a manifest's app finds its component (building a crate first).
pub(crate) type ComponentOf<'a> = &'a (dyn Fn(&AppConfig) -> Result<PathBuf> + Sync);

/// The apps being served.
pub(crate) struct Deployment {
    /// Kept alive as long as any app: it owns the engine's epoch ticker.
    runtime: Runtime<StoreCapabilities>,
    shared: HostServices,
    router: Arc<ArcSwap<AppRouter>>,
    /// The `[server]` table the host started with.
    server: ServerConfig,
    /// The HTTPS listener's TLS, if the host serves HTTPS.
    tls: Option<Tls>,
    /// Taken while the apps change; a change waits for the one before.
    served: Mutex<Served>,
    /// The apps as they are now, for readers that must not wait for a
    /// change in progress.
    current: Arc<ArcSwap<Vec<Arc<AppHandle>>>>,
    /// Told whenever the apps change (the scheduler follows them).
    changed: Arc<tokio::sync::Notify>,
    /// Which host runs a schedule's tick.
    tick_claims: Arc<crate::tick_claims::TickClaims>,
}

/// The apps, in manifest order, and every app's account with the pool
/// (kept after removal, for an app of the same name added back); the
/// manifest's own tables, and what the admin API changed over them.
#[derive(Default)]
struct Served {
    apps: Vec<Arc<AppHandle>>,
    accounts: HashMap<String, AppInstances>,
    /// The apps' tables as the manifest file last gave them.
    manifest_apps: Vec<AppConfig>,
    overrides: Overrides,
}

/// What applying a manifest did, app by app.
#[derive(Debug, Default)]
pub(crate) struct DeployReport {
    /// Apps added.
    pub(crate) added: Vec<String>,
    /// Apps swapped to a new version.
    pub(crate) updated: Vec<String>,
    /// Apps taken out of service.
    pub(crate) removed: Vec<String>,
    /// Apps whose new version was refused (they keep their old one), and why.
    pub(crate) refused: Vec<(String, String)>,
}

impl DeployReport {
    /// Log what it did, a line per app.
    pub(crate) fn log(&self) {
        for app in &self.added {
            tracing::info!(app, "added");
        }
        for app in &self.updated {
            tracing::info!(app, "updated: new requests go to the new version");
        }
        for app in &self.removed {
            tracing::info!(app, "removed: draining");
        }
        for (app, why) in &self.refused {
            tracing::error!(app, "new version refused; the old one keeps serving: {why}");
        }
        if self.added.is_empty()
            && self.updated.is_empty()
            && self.removed.is_empty()
            && self.refused.is_empty()
        {
            tracing::info!("nothing changed");
        }
    }
}

impl Deployment {
    /// Start a runtime sized for `manifest` and load each of its apps; an
    /// error if any fails.
    pub(crate) fn load(manifest: &Manifest, component_of: ComponentOf<'_>) -> Result<Deployment> {
        let runtime = runtime_for(manifest)?;
        let deployment = Deployment {
            runtime,
            shared: HostServices::new(manifest.server.max_call_bytes),
            router: Arc::new(ArcSwap::from_pointee(
                RouteTable::new([]).map_err(anyhow::Error::msg)?,
            )),
            server: manifest.server.clone(),
            tls: match manifest.server.https_listen {
                Some(_) => Some(Tls::new(&manifest.server.certificates)?),
                None => None,
            },
            served: Mutex::default(),
            current: Arc::default(),
            changed: Arc::default(),
            tick_claims: Arc::new(crate::tick_claims::TickClaims::for_backend(
                &manifest.server.backend,
            )?),
        };
        let mut served = deployment.served();
        let mut accounts = Vec::new();
        for config in &manifest.apps {
            let account = deployment
                .account(&mut served, config)
                .with_context(|| format!("cannot load app {:?}", config.name))?;
            accounts.push((config, account));
        }
        // Compiling (or reading the compile cache) and asking each app for
        // its routes is most of a start: done for several apps at once.
        for loaded in in_parallel(&accounts, |(config, account)| {
            deployment
                .load_new(config, component_of, account.clone())
                .with_context(|| format!("cannot load app {:?}", config.name))
        }) {
            served.apps.push(loaded?);
        }
        deployment.route(&served.apps)?;
        served.manifest_apps = manifest.apps.clone();
        deployment.current.store(Arc::new(served.apps.clone()));
        drop(served);
        Ok(deployment)
    }

    /// Apply `manifest`, as read from its file: add its new apps, swap
    /// those whose table or component changed, remove those it no longer
    /// names. An app whose new version fails keeps its old one; the error
    /// says why. What the admin API changed in an app stands as long as
    /// the manifest's table for it is the one it changed.
    pub(crate) fn apply(&self, manifest: &Manifest, component_of: ComponentOf<'_>) -> DeployReport {
        let mut served = self.served();
        served.manifest_apps = manifest.apps.clone();
        let served_manifest = served.overrides.over(manifest);
        self.apply_locked(&mut served, &served_manifest, component_of)
    }

    /// Make `change` to the app `name`, as the admin API asks, over what
    /// is served now (read and changed in one step: two changes never
    /// overwrite each other); `None` if no app has that name.
    pub(crate) fn change(
        &self,
        name: &str,
        change: AdminChange,
        component_of: ComponentOf<'_>,
    ) -> Option<DeployReport> {
        let mut served = self.served();
        let mut manifest = Manifest {
            server: self.server.clone(),
            apps: served
                .apps
                .iter()
                .map(|handle| handle.current().config().clone())
                .collect(),
        };
        if !change.make(&mut manifest, name) {
            return None;
        }
        let applied = self.apply_locked(&mut served, &manifest, component_of);
        // Kept only if it was made: not if the app's new version, or the
        // routes it would make (`(manifest)`), were refused.
        if !applied
            .refused
            .iter()
            .any(|(app, _)| app == name || app == "(manifest)")
        {
            let table = served
                .manifest_apps
                .iter()
                .find(|app| app.name == name)
                .cloned();
            served.overrides.record(name, table, change);
        }
        Some(applied)
    }

    /// Apply `manifest` to the apps in `served`: load what changed beside
    /// what serves, then either switch to it all (routes, versions,
    /// removals) or, if the routes it would make clash, give back what
    /// was taken and change nothing.
    fn apply_locked(
        &self,
        served: &mut Served,
        manifest: &Manifest,
        component_of: ComponentOf<'_>,
    ) -> DeployReport {
        let mut report = DeployReport::default();
        self.reload_server_table(manifest, &mut report);
        let plan = self.plan(served, manifest, component_of, &mut report);
        match RouteTable::new(plan.routes()) {
            Ok(router) => self.commit(served, plan, router, &mut report),
            Err(why) => {
                // Two apps would claim the same route: change nothing.
                plan.roll_back(&served.apps);
                report.refused.push(("(manifest)".to_owned(), why));
                report.added.clear();
            }
        }
        report
    }

    /// What of the `[server]` table can change while serving: the
    /// certificates (read again whatever changed: their files may have).
    fn reload_server_table(&self, manifest: &Manifest, report: &mut DeployReport) {
        let certificates_aside = ServerConfig {
            certificates: self.server.certificates.clone(),
            ..manifest.server.clone()
        };
        if certificates_aside != self.server {
            tracing::warn!("the [server] table changed: restart the host to apply it");
        }
        if let Some(tls) = &self.tls {
            match tls.reload(&manifest.server.certificates) {
                Ok(()) => tracing::info!("TLS certificates reloaded"),
                Err(err) => report
                    .refused
                    .push(("(certificates)".to_owned(), format!("{err:#}"))),
            }
        }
    }

    /// Load every app `manifest` adds and every new version it makes,
    /// beside what serves; each refusal goes to `report`.
    fn plan(
        &self,
        served: &mut Served,
        manifest: &Manifest,
        component_of: ComponentOf<'_>,
        report: &mut DeployReport,
    ) -> Plan {
        let mut plan = Plan::default();
        for config in &manifest.apps {
            let existing = served
                .apps
                .iter()
                .find(|handle| handle.current().name() == config.name)
                .cloned();
            let Some(handle) = existing else {
                match self.add(served, config, component_of) {
                    Ok(handle) => {
                        report.added.push(config.name.clone());
                        plan.next.push(handle);
                    }
                    Err(err) => report
                        .refused
                        .push((config.name.clone(), format!("{err:#}"))),
                }
                continue;
            };
            match self.next_version(&handle.current(), config, component_of) {
                Ok(Some(app)) => plan.swaps.push((handle.clone(), app)),
                Ok(None) => {}
                Err(err) => report
                    .refused
                    .push((config.name.clone(), format!("{err:#}"))),
            }
            plan.next.push(handle);
        }
        plan
    }

    /// Serve what `plan` loaded: new versions swapped in, apps it leaves
    /// out drained, `router` the route table.
    fn commit(
        &self,
        served: &mut Served,
        plan: Plan,
        router: AppRouter,
        report: &mut DeployReport,
    ) {
        let grace = self.server.drain_timeout;
        for (handle, app) in plan.swaps {
            report.updated.push(app.name().to_owned());
            crate::stats::swap(app.name_label());
            handle.swap(app, grace);
        }
        for handle in served.apps.iter().filter(|h| !holds(&plan.next, h)) {
            let app = handle.current();
            // Its floor is given back to the others while it drains.
            let drained = Share {
                reserved: 0,
                max: app.limits().max_instances,
            };
            if let Err(why) = app.instances().reshare(drained) {
                tracing::warn!(
                    app = app.name(),
                    "its pool share stays while it drains: {why}"
                );
            }
            handle.remove(grace);
            report.removed.push(app.name().to_owned());
        }
        self.router.store(Arc::new(router));
        self.current.store(Arc::new(plan.next.clone()));
        served.apps = plan.next;
        self.changed.notify_waiters();
    }

    /// Load a new app, under its own account with the pool.
    fn add(
        &self,
        served: &mut Served,
        config: &AppConfig,
        component_of: ComponentOf<'_>,
    ) -> Result<Arc<AppHandle>> {
        let instances = self.account(served, config)?;
        self.load_new(config, component_of, instances)
    }

    /// A new app's account with the pool, under its share (the one it had
    /// if an app of that name was served before); its store if granted.
    fn account(&self, served: &mut Served, config: &AppConfig) -> Result<AppInstances> {
        self.open_backend(config)?;
        match served.accounts.get(&config.name) {
            Some(account) => {
                account
                    .reshare(share_of(&config.limits))
                    .map_err(|why| anyhow::anyhow!("app {:?}: {why}", config.name))?;
                Ok(account.clone())
            }
            None => {
                let account = self.runtime.join_pool(&config.name, &config.limits)?;
                served.accounts.insert(config.name.clone(), account.clone());
                Ok(account)
            }
        }
    }

    /// Load a new app under `instances`, its account; if it fails, its
    /// floor is given back.
    fn load_new(
        &self,
        config: &AppConfig,
        component_of: ComponentOf<'_>,
        instances: AppInstances,
    ) -> Result<Arc<AppHandle>> {
        let loaded = component_of(config).and_then(|wasm| {
            App::load(
                &self.runtime,
                &self.shared,
                config,
                &wasm,
                instances.clone(),
                None,
            )
        });
        match loaded {
            Ok(app) => Ok(AppHandle::new(Arc::new(app))),
            Err(err) => {
                // Its floor is not held for an app that is not served.
                let _ = instances.reshare(Share::NONE);
                Err(err)
            }
        }
    }

    /// The next version of `current` for `config`, or `None` if neither
    /// its table nor its component changed.
    fn next_version(
        &self,
        current: &App,
        config: &AppConfig,
        component_of: ComponentOf<'_>,
    ) -> Result<Option<Arc<App>>> {
        let wasm = component_of(config)?;
        if current.config() == config && hash_of(&wasm)? == current.source_hash() {
            return Ok(None);
        }
        self.open_backend(config)?;
        let app = App::load(
            &self.runtime,
            &self.shared,
            config,
            &wasm,
            current.instances().clone(),
            Some(current),
        )?;
        current
            .instances()
            .reshare(share_of(&config.limits))
            .map_err(|why| anyhow::anyhow!("app {:?}: {why}", config.name))?;
        Ok(Some(Arc::new(app)))
    }

    /// Serve `apps` from now on.
    fn route(&self, apps: &[Arc<AppHandle>]) -> Result<()> {
        let router = RouteTable::new(apps.iter().map(|handle| {
            let app = handle.current();
            (app.name().to_owned(), app.claims().to_vec(), handle.clone())
        }))
        .map_err(anyhow::Error::msg)?;
        self.router.store(Arc::new(router));
        Ok(())
    }

    fn served(&self) -> MutexGuard<'_, Served> {
        // Changes are made in one step each; a poisoned lock holds a
        // consistent set of apps.
        self.served
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }

    /// The table that finds each request's app, as it is now and as it
    /// will be after each change.
    pub(crate) fn router(&self) -> &Arc<ArcSwap<AppRouter>> {
        &self.router
    }

    /// The apps served now, in manifest order.
    pub(crate) fn apps(&self) -> Vec<Arc<App>> {
        self.current
            .load()
            .iter()
            .map(|handle| handle.current())
            .collect()
    }

    /// What the scheduler follows: the apps as they are now, and a
    /// signal when they change.
    pub(crate) fn schedules(&self) -> crate::scheduler::Schedules {
        crate::scheduler::Schedules {
            apps: self.current.clone(),
            changed: self.changed.clone(),
            claims: self.tick_claims.clone(),
        }
    }

    /// What the job runner follows: the apps as they are now, a signal
    /// when they change, and one when an app keeps a job.
    pub(crate) fn job_runner(&self) -> crate::job_runner::JobRunner {
        crate::job_runner::JobRunner {
            apps: self.current.clone(),
            changed: self.changed.clone(),
            kept: self.shared.work_kept().clone(),
        }
    }

    /// The apps served now, by name across their versions.
    pub(crate) fn handles(&self) -> Vec<Arc<AppHandle>> {
        self.current.load().as_ref().clone()
    }

    /// The HTTPS listener's TLS, if the host serves HTTPS.
    pub(crate) fn tls(&self) -> Option<&Tls> {
        self.tls.as_ref()
    }

    /// The open WebSocket connections of every app.
    pub(crate) fn hub(&self) -> &Arc<Hub> {
        self.shared.hub()
    }

    /// The bytes held for all apps' calls in flight now.
    pub(crate) fn call_bytes_held(&self) -> u64 {
        self.shared.call_bytes_held()
    }
}

/// The runtime `manifest`'s apps are served by.
fn runtime_for(manifest: &Manifest) -> Result<Runtime<StoreCapabilities>> {
    Runtime::new(
        &RuntimeConfig {
            max_instances: manifest.server.max_instances,
            max_memory: manifest
                .apps
                .iter()
                .map(|app| app.limits.memory)
                .max()
                .unwrap_or(0),
            cache_dir: Some(manifest.server.cache_dir.clone()),
        },
        capabilities::add_to_linker,
    )
}

/// Compile each app of `manifest` into its compile cache, as `squall
/// serve` would; for each app, whether it was cached already.
pub(crate) fn precompile(
    manifest: &Manifest,
    component_of: ComponentOf<'_>,
) -> Result<Vec<(String, bool)>> {
    let runtime = runtime_for(manifest)?;
    manifest
        .apps
        .iter()
        .map(|app| {
            let wasm =
                component_of(app).with_context(|| format!("cannot prepare app {:?}", app.name))?;
            let cached = runtime
                .precompile(&wasm)
                .with_context(|| format!("cannot compile app {:?}", app.name))?;
            Ok((app.name.clone(), cached))
        })
        .collect()
}

/// `work` done on each of `items`, on as many threads as there are cores;
/// the results in the order of `items`.
fn in_parallel<T: Sync, R: Send>(items: &[T], work: impl Fn(&T) -> R + Sync) -> Vec<R> {
    let next = AtomicUsize::new(0);
    let workers = std::thread::available_parallelism()
        .map_or(1, std::num::NonZero::get)
        .min(items.len());
    let mut done: Vec<(usize, R)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..workers)
            .map(|_| {
                scope.spawn(|| {
                    let mut mine = Vec::new();
                    loop {
                        let index = next.fetch_add(1, Ordering::Relaxed);
                        let Some(item) = items.get(index) else {
                            return mine;
                        };
                        mine.push((index, work(item)));
                    }
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|handle| {
                handle
                    .join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            })
            .collect()
    });
    done.sort_by_key(|(index, _)| *index);
    done.into_iter().map(|(_, result)| result).collect()
}

/// Whether `handle` is one of `apps`.
/// What applying a manifest loaded, before anything serves it.
#[derive(Default)]
struct Plan {
    /// The apps served after it, in the manifest's order.
    next: Vec<Arc<AppHandle>>,
    /// Each app's new version, loaded beside the one serving.
    swaps: Vec<(Arc<AppHandle>, AppRef)>,
}

impl Plan {
    /// The routes as they will be once every swap is made.
    fn routes(&self) -> impl Iterator<Item = (String, Vec<Claim>, Arc<AppHandle>)> + '_ {
        self.next.iter().map(|handle| {
            let app = self
                .swaps
                .iter()
                .find(|(swapped, _)| Arc::ptr_eq(swapped, handle))
                .map_or_else(|| handle.current(), |(_, app)| app.clone());
            (app.name().to_owned(), app.claims().to_vec(), handle.clone())
        })
    }

    /// Give back the pool shares what it loaded took, `serving` being the
    /// apps served now (which keep serving as they are).
    fn roll_back(&self, serving: &[Arc<AppHandle>]) {
        let give_back = |app: &AppRef, share: Share| {
            if let Err(why) = app.instances().reshare(share) {
                tracing::warn!(
                    app = app.name(),
                    "its pool share could not be given back: {why}"
                );
            }
        };
        for handle in self.next.iter().filter(|h| !holds(serving, h)) {
            give_back(&handle.current(), Share::NONE);
        }
        for (handle, _) in &self.swaps {
            let app = handle.current();
            give_back(&app, share_of(app.limits()));
        }
    }
}

fn holds(apps: &[Arc<AppHandle>], handle: &Arc<AppHandle>) -> bool {
    apps.iter().any(|app| Arc::ptr_eq(app, handle))
}

/// The SHA-256 of the file at `path`, as [`App::source_hash`] has it.
fn hash_of(path: &Path) -> Result<String> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    Ok(crate::runtime::sha256_hex(&bytes))
}

impl Deployment {
    /// What the app's grants need of the server's backend: its key-value
    /// store (where its jobs are kept too), and pub/sub across hosts when the backend is Redis.
    fn open_backend(&self, config: &AppConfig) -> Result<()> {
        if config.kv || config.jobs || !config.consumers.is_empty() {
            self.shared.open_kv(|| open_store(&self.server))?;
        }
        if let BackendConfig::Redis { url } = &self.server.backend {
            self.shared.relay_through(url)?;
        }
        Ok(())
    }
}

/// The key-value store the server's backend names: embedded under
/// `data_dir`, or Redis.
fn open_store(server: &ServerConfig) -> Result<Arc<dyn KvBackend>> {
    if let BackendConfig::Redis { url } = &server.backend {
        let store: Arc<dyn KvBackend> = RedisKv::connect(url)?;
        return Ok(store);
    }
    let data_dir = &server.data_dir;
    std::fs::create_dir_all(data_dir)
        .with_context(|| format!("cannot create the data directory {}", data_dir.display()))?;
    let store: Arc<dyn KvBackend> = Embedded::open(&data_dir.join("kv.redb"))?;
    Ok(store)
}

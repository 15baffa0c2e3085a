//! An app as the host serves it: its component, what its manifest grants
//! it, where it is reached, and the fences around it (its share of the
//! instance pool, requests and WebSockets in flight). Each request or event
//! gets a fresh store from here. An [`AppHandle`] is an app by name across
//! its versions: the one new requests and hibernate-mode events go to.

use crate::bindings::exports::squall::app::app_info::Description;
use crate::capabilities::{Grants, GuestState, HostServices, StoreCapabilities};
use crate::config::is_queue_name;
use crate::config::{AppConfig, Limits, WebSocketRoute};
use crate::error::HostError;
use crate::fence::Fence;
use crate::guest_call::{SquallCall, StandardCall};
use crate::hub::Hub;
use crate::limit_log::{Limit, LimitHits};
use crate::reuse::concurrent::ConcurrentInstances;
use crate::reuse::{Handler, Instance, WarmInstances};
use crate::routes::Claim;
use crate::runtime::{AppComponent, AppInstances, ComponentSource, Guest, Runtime, sha256_hex};
use crate::static_files::StaticFiles;
use anyhow::{Context, Result};
use arc_swap::ArcSwap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, watch};
use tokio::time::Instant;
use wasmtime::Store;
use wasmtime_wasi_http::handler::ProxyPre;

/// A loaded app, shared by every connection task.
pub(crate) struct App {
    name: Arc<str>,
    /// The manifest table it was loaded from.
    config: AppConfig,
    /// The SHA-256 of its component, in hex.
    source_hash: String,
    /// 1 for the first version loaded, one more for each after it.
    version: u64,
    component: AppComponent<StoreCapabilities>,
    grants: Arc<Grants>,
    websockets: Vec<WebSocketRoute>,
    claims: Vec<Claim>,
    /// `max_concurrency`: HTTP requests in flight, all versions together.
    requests: Arc<Fence>,
    /// `max_connections`: open WebSockets, all versions together.
    connections: Arc<Fence>,
    hits: Arc<LimitHits>,
    /// When its live-mode WebSockets close, once a newer version (or none)
    /// replaces it.
    retired: watch::Sender<Option<Instant>>,
    /// The directories the host serves for it, without an instance.
    static_files: Arc<StaticFiles>,
    /// Instances kept for its next requests, if it reuses them.
    warm: Option<Arc<WarmInstances>>,
    /// Which executor runs its requests, with the instances its requests
    /// in flight share if it shares them (`reuse.concurrent` above 1).
    executor: Executor,
}

/// The executor for an app's kind of guest, and the instances its
/// requests in flight share, if they do.
pub(crate) enum Executor {
    Squall(Option<Arc<ConcurrentInstances<SquallCall>>>),
    Standard(Option<Arc<ConcurrentInstances<StandardCall>>>),
}

/// WebSocket routes and TCP listeners need a squall-sdk app.
fn refuse_what_standard_components_lack<T>(guest: &Guest<T>, config: &AppConfig) -> Result<()> {
    if !matches!(guest, Guest::Standard(_)) {
        return Ok(());
    }
    if !config.websockets.is_empty() {
        anyhow::bail!(
            "app {:?} is a standard wasi:http component: WebSocket routes need a squall-sdk app",
            config.name
        );
    }
    if !config.tcp.is_empty() {
        anyhow::bail!(
            "app {:?} is a standard wasi:http component: TCP listeners need a squall-sdk app",
            config.name
        );
    }
    if !config.schedules.is_empty() {
        anyhow::bail!(
            "app {:?} is a standard wasi:http component: schedules need a squall-sdk app",
            config.name
        );
    }
    if config.jobs {
        anyhow::bail!(
            "app {:?} is a standard wasi:http component: jobs need a squall-sdk app",
            config.name
        );
    }
    if !config.consumers.is_empty() {
        anyhow::bail!(
            "app {:?} is a standard wasi:http component: queue consumers need a squall-sdk app",
            config.name
        );
    }
    Ok(())
}

/// Job handlers an app may declare: their names label its metrics.
const MAX_JOB_HANDLERS: usize = 64;

/// The job names an app declares: few, short, and plain.
fn check_job_names(names: &[String]) -> std::result::Result<(), String> {
    if names.len() > MAX_JOB_HANDLERS {
        return Err(format!(
            "{} job handlers, over the {MAX_JOB_HANDLERS} an app may have",
            names.len()
        ));
    }
    let plain = |name: &String| {
        (1..=64).contains(&name.len())
            && name
                .bytes()
                .all(|byte| byte.is_ascii_alphanumeric() || b"._-".contains(&byte))
    };
    match names.iter().find(|name| !plain(name)) {
        Some(name) => Err(format!(
            "the job name {:?} is not 1 to 64 letters, digits, '.', '_' or '-'",
            name.chars().take(80).collect::<String>()
        )),
        None => Ok(()),
    }
}

/// The executor for a `guest`'s kind, sharing instances if `config` says.
fn executor_for<T>(guest: &Guest<T>, config: &AppConfig) -> Result<Executor> {
    let shared = config.reuse.as_ref().filter(|reuse| reuse.concurrent > 1);
    let timeout = config.limits.timeout;
    Ok(match guest {
        Guest::Squall(_) => {
            Executor::Squall(shared.map(|reuse| ConcurrentInstances::new(reuse, timeout)))
        }
        Guest::Standard(ProxyPre::P3(_)) => {
            Executor::Standard(shared.map(|reuse| ConcurrentInstances::new(reuse, timeout)))
        }
        // A WASI 0.2 `handle` holds its instance for the whole call: it
        // cannot share one.
        Guest::Standard(_) if shared.is_some() => anyhow::bail!(
            "app {:?} is a WASI 0.2 component, whose handler holds its instance for the whole call: reuse.concurrent above 1 needs a squall-sdk app or a WASI 0.3 component",
            config.name
        ),
        Guest::Standard(_) => Executor::Standard(None),
    })
}

/// Apps are shared by every connection task.
pub(crate) type AppRef = Arc<App>;

impl App {
    /// Load the component at `wasm` for the app `config` describes, with
    /// `instances` as its account with the pool. A new version takes over
    /// the counts of its `previous` one (requests, sockets, topics, fetches
    /// in flight, limit hits), under its own limits.
    pub(crate) fn load(
        runtime: &Runtime<StoreCapabilities>,
        shared: &HostServices,
        config: &AppConfig,
        wasm: &Path,
        instances: AppInstances,
        previous: Option<&App>,
    ) -> Result<App> {
        let bytes =
            std::fs::read(wasm).with_context(|| format!("cannot read {}", wasm.display()))?;
        let source_hash = sha256_hex(&bytes);
        let hits = match previous {
            Some(previous) => previous.hits.clone(),
            None => Arc::new(LimitHits::new(&config.name)),
        };
        let redact = config.settings.secrets().map(str::to_owned).collect();
        let limits = &config.limits;
        let mut component = runtime.load(
            &config.name,
            ComponentSource {
                path: wasm,
                bytes: &bytes,
                hash: &source_hash,
            },
            limits,
            instances,
            hits.clone(),
            redact,
        )?;
        refuse_what_standard_components_lack(component.guest(), config)?;
        let executor = executor_for(component.guest(), config)?;
        let static_files = Arc::new(StaticFiles::new(&config.static_dirs)?);
        let grants = Grants::new(
            config,
            shared,
            hits.clone(),
            static_files.clone(),
            previous.map(|previous| &*previous.grants),
        )?;
        // WASI sockets connect under the same rules and connection count.
        component.allow_tcp_connect(
            &config.tcp_outbound,
            grants.tcp_connections(),
            grants.lookups(),
        );
        let (requests, connections) = match previous {
            Some(previous) => (previous.requests.clone(), previous.connections.clone()),
            None => (Fence::new(0), Fence::new(0)),
        };
        let mut app = App {
            name: config.name.as_str().into(),
            config: config.clone(),
            source_hash,
            version: previous.map_or(1, |previous| previous.version + 1),
            component,
            grants,
            websockets: config.websockets.clone(),
            claims: Claim::all(&config.hosts, &config.routes).map_err(anyhow::Error::msg)?,
            requests,
            connections,
            hits,
            retired: watch::Sender::new(None),
            static_files,
            warm: config
                .reuse
                .as_ref()
                .filter(|reuse| reuse.concurrent == 1)
                .map(WarmInstances::new),
            executor,
        };
        if matches!(app.component.guest(), Guest::Squall(_)) {
            app.take_declared_routes()?;
        }
        Ok(app)
    }

    /// Ask a squall-sdk app what it declares: malformed routes refuse it;
    /// its WebSocket routes join the manifest's (which set their mode and
    /// limits where they cover one).
    fn take_declared_routes(&mut self) -> Result<()> {
        let description = self.describe()?;
        if !description.route_errors.is_empty() {
            anyhow::bail!(
                "app {:?} has malformed routes: {}",
                self.name,
                description.route_errors.join("; ")
            );
        }
        if let Some(unhandled) = self
            .config
            .schedules
            .iter()
            .find(|schedule| !description.schedules.contains(&schedule.name))
        {
            anyhow::bail!(
                "app {:?}: the manifest's schedule {:?} has no handler: add \
                 Router::on_schedule({:?}, ...) (in Python, application.on_schedule)",
                self.name,
                unhandled.name,
                unhandled.name
            );
        }
        check_job_names(&description.jobs)
            .map_err(|why| anyhow::anyhow!("app {:?}: {why}", self.name))?;
        let consumers = &description.consumers;
        if consumers.len() > MAX_JOB_HANDLERS || !consumers.iter().all(|q| is_queue_name(q)) {
            anyhow::bail!(
                "app {:?}: it declares {} consumers, or one whose queue is not 1 to 64 letters, \
                 digits, '.', '_' or '-'",
                self.name,
                consumers.len()
            );
        }
        if let Some(unread) = self
            .config
            .consumers
            .iter()
            .find(|consumer| !description.consumers.contains(&consumer.queue))
        {
            anyhow::bail!(
                "app {:?}: the manifest's consumer of the queue {:?} has no handler: add \
                 Router::consumer({:?}, ...) (in Python, application.consumer)",
                self.name,
                unread.queue,
                unread.queue
            );
        }
        if let Some(jobs) = self.grants.jobs() {
            jobs.set_handlers(description.jobs.clone());
        }
        for pattern in &description.websocket_routes {
            let prefix = websocket_prefix(pattern);
            let known = self.websockets.iter().any(|route| {
                route
                    .routes
                    .iter()
                    .any(|route| crate::routes::prefix_matches(route, &prefix))
            });
            if !known {
                self.websockets.push(WebSocketRoute::declared(prefix));
            }
        }
        Ok(())
    }

    /// Start serving under this version's limits: the counts it took over
    /// from its previous version get its ceilings. Called when it starts
    /// taking requests, so a version that fails to load changes nothing.
    pub(crate) fn apply_limits(&self) {
        self.requests.set_ceiling(self.limits().max_concurrency);
        self.connections.set_ceiling(self.limits().max_connections);
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
        .map_err(|err| {
            let out_of_memory = err
                .chain()
                .any(|cause| matches!(cause.downcast_ref(), Some(HostError::Memory)));
            if out_of_memory {
                err.context(format!(
                    "app {:?} needs more memory to start than its memory limit ({} MiB): \
                     raise `memory` in the manifest (a Python app starts with about 18 MiB)",
                    self.name,
                    self.limits().memory >> 20
                ))
            } else {
                err.context(format!("app {:?} could not describe its routes", self.name))
            }
        })
    }

    /// Its name in the manifest.
    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    /// Its name, shared (as a metrics label).
    pub(crate) fn name_label(&self) -> &Arc<str> {
        &self.name
    }

    /// What it holds now, for `/metrics`.
    pub(crate) fn snapshot(&self) -> crate::stats::AppSnapshot<'_> {
        crate::stats::AppSnapshot {
            app: &self.name,
            instances: self.component.instances_in_use(),
            idle_instances: u32::try_from(self.idle_instances()).unwrap_or(u32::MAX),
            requests: self.requests.held(),
            websockets: self.connections.held(),
            limit_hits: self.hits.all(),
        }
    }

    /// The directories the host serves for it.
    pub(crate) fn static_files(&self) -> &StaticFiles {
        &self.static_files
    }

    /// The manifest table it was loaded from.
    pub(crate) fn config(&self) -> &AppConfig {
        &self.config
    }

    /// The SHA-256 of its component, in hex.
    pub(crate) fn source_hash(&self) -> &str {
        &self.source_hash
    }

    /// Which version of the app it is: 1 for the first loaded.
    pub(crate) fn version(&self) -> u64 {
        self.version
    }

    /// Where it is reached.
    pub(crate) fn claims(&self) -> &[Claim] {
        &self.claims
    }

    /// Its account with the instance pool, which a next version takes over.
    pub(crate) fn instances(&self) -> &AppInstances {
        self.component.instances()
    }

    /// Mark it replaced: its live-mode WebSockets get `grace` to finish,
    /// then close so that their clients reconnect to the new version.
    pub(crate) fn retire(&self, grace: Duration) {
        self.retired.send_replace(Some(Instant::now() + grace));
    }

    /// Resolves once it has been retired and the grace is over.
    pub(crate) async fn retired(&self) {
        past_deadline(&self.retired).await;
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
        self.config.strip_prefix
    }

    /// The open WebSocket connections of every app.
    pub(crate) fn hub(&self) -> &Arc<Hub> {
        self.grants.hub()
    }

    /// The queues its consumers read.
    pub(crate) fn queues(&self) -> &[crate::capabilities::QueueGrant] {
        self.grants.queues()
    }

    /// Its jobs, if its manifest grants them.
    pub(crate) fn jobs(&self) -> Option<&crate::capabilities::JobGrant> {
        self.grants.jobs()
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

    /// An instance for one request: an idle one if the app reuses them
    /// and one waits, else a fresh one.
    pub(crate) async fn instance_for_request(&self) -> wasmtime::Result<Instance> {
        if let Some(instance) = self.warm.as_ref().and_then(|warm| warm.take()) {
            return Ok(instance);
        }
        let handler = match self.component.guest() {
            Guest::Squall(_) => {
                let (store, guest) = self.instantiate().await?;
                return Ok(Instance::fresh(store, Handler::Squall(Box::new(guest))));
            }
            Guest::Standard(pre) => pre,
        };
        let mut store = self.new_store()?;
        let proxy = handler.instantiate_async(&mut store).await?;
        Ok(Instance::fresh(store, Handler::Standard(proxy)))
    }

    /// `instance` served its request to the end: keep it for the next one
    /// if the app reuses instances (else it is dropped here).
    pub(crate) fn request_done(&self, instance: Instance) {
        if let Some(warm) = &self.warm {
            warm.give_back(instance);
        }
    }

    /// Instances waiting for a request, if the app reuses them.
    pub(crate) fn idle_instances(&self) -> usize {
        self.warm.as_ref().map_or(0, |warm| warm.idle_count())
    }

    /// Which executor runs its requests, and the instances they share.
    pub(crate) fn executor(&self) -> &Executor {
        &self.executor
    }

    /// Whether a new instance could start now (within `max_instances` and
    /// the pool).
    pub(crate) fn has_instance_room(&self) -> bool {
        self.component.instances().has_room()
    }

    /// A place among the app's requests in flight (`max_concurrency`).
    pub(crate) fn admit_request(&self) -> Result<OwnedSemaphorePermit, HostError> {
        self.requests.try_enter().ok_or_else(|| {
            let why = format!(
                "the app has {} requests in flight (max_concurrency)",
                self.limits().max_concurrency
            );
            self.hits.hit(Limit::Concurrency, &why);
            HostError::Busy(why)
        })
    }

    /// A place among the app's open WebSockets and TCP connections
    /// (`max_connections`).
    pub(crate) fn admit_connection(&self) -> Result<OwnedSemaphorePermit, HostError> {
        self.connections.try_enter().ok_or_else(|| {
            let why = format!(
                "the app has {} connections open (max_connections)",
                self.limits().max_connections
            );
            self.hits.hit(Limit::Connections, &why);
            HostError::Busy(why)
        })
    }
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

/// An app by name, across its versions: new requests and hibernate-mode
/// events go to its current version; a request or live-mode connection
/// that began on an older one finishes there.
pub(crate) struct AppHandle {
    current: ArcSwap<App>,
    /// When its sockets close, once it is removed.
    removed: watch::Sender<Option<Instant>>,
}

impl AppHandle {
    /// The handle of a newly loaded app.
    pub(crate) fn new(app: AppRef) -> Arc<AppHandle> {
        app.apply_limits();
        Arc::new(AppHandle {
            current: ArcSwap::new(app),
            removed: watch::Sender::new(None),
        })
    }

    /// Its current version.
    pub(crate) fn current(&self) -> AppRef {
        self.current.load_full()
    }

    /// Make `app` its current version; the one it replaces is retired,
    /// its live-mode sockets given `grace`.
    pub(crate) fn swap(&self, app: AppRef, grace: Duration) {
        app.apply_limits();
        let old = self.current.swap(app);
        old.retire(grace);
    }

    /// Take it out of service: its sockets get `grace`, then close.
    pub(crate) fn remove(&self, grace: Duration) {
        self.current().retire(grace);
        self.removed.send_replace(Some(Instant::now() + grace));
    }

    /// Resolves once it has been removed and the grace is over.
    pub(crate) async fn removed(&self) {
        past_deadline(&self.removed).await;
    }
}

/// Resolves once `deadline` is set and has passed.
async fn past_deadline(deadline: &watch::Sender<Option<Instant>>) {
    let mut set = deadline.subscribe();
    let deadline = match set.wait_for(Option::is_some).await {
        Ok(deadline) => *deadline,
        // The sender is alive as long as `deadline` is borrowed.
        Err(_) => None,
    };
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::{check_job_names, websocket_prefix};

    #[test]
    fn job_names_are_few_short_and_plain() {
        let names = |list: &[&str]| {
            list.iter()
                .map(|name| (*name).to_owned())
                .collect::<Vec<_>>()
        };
        assert!(check_job_names(&names(&["remind", "digest.hourly", "a-b_c"])).is_ok());
        for bad in ["", "two words", "new\nline", &"x".repeat(65)] {
            let refused = check_job_names(&names(&[bad])).expect_err("refused");
            assert!(refused.contains("is not 1 to 64"), "{refused}");
        }
        let many: Vec<String> = (0..65).map(|n| format!("job{n}")).collect();
        assert!(check_job_names(&many).is_err());
    }

    #[test]
    fn a_websocket_pattern_is_served_under_its_literal_prefix() {
        assert_eq!(websocket_prefix("/chat"), "/chat");
        assert_eq!(websocket_prefix("/rooms/{room}"), "/rooms");
        assert_eq!(websocket_prefix("/{*rest}"), "/");
        assert_eq!(websocket_prefix("/a/b/{c}/d"), "/a/b");
    }
}

//! Host interfaces offered to guests, one file per interface. Each plugs
//! into the runtime through the store's data ([`StoreCapabilities`], the
//! runtime's `H`), as wasmtime-wasi-http's `add_to_linker<T: View>` does:
//! the runtime never names a capability.
//!
//! State is split the way Spin's factors split it: [`HostServices`] by every app
//! (the pooled client, the broker, the hub), [`Grants`] per app (what its
//! manifest allows), [`StoreCapabilities`] per store.

mod config;
mod http_client;
mod jobs;
mod kv;
mod log;
mod outgoing_wasi_http;
mod pubsub;
mod queues;
mod static_files;
mod tcp_connect;
mod time;
mod wasi_keyvalue;
mod websocket;

use crate::bindings;
use crate::broker::{AppTopics, Broker, TopicRefused};
use crate::budget::{CallBytes, HostBytes};
use crate::config::{AppConfig, Settings};
use crate::fence::Fence;
use crate::hub::Hub;
use crate::job_store::JobStore;
use crate::kv::{KvBackend, Quota};
use crate::limit_log::{Limit, LimitHits};
use crate::outbound::{HttpClient, new_client};
use crate::policy::{OutboundPolicy, TcpPolicy, TopicPolicy};
use crate::relay::Relay;
use crate::runtime::State;
use crate::static_files::StaticFiles;
use anyhow::Context;
pub(crate) use jobs::JobGrant;
use outgoing_wasi_http::OutgoingHooks;
pub(crate) use queues::{QueueGrant, QueueGrants};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};
use wasmtime::component::{HasSelf, Linker};
use wasmtime_wasi_config::{WasiConfig, WasiConfigVariables};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

/// The data of a store whose guest may use the capabilities.
pub(crate) type GuestState = State<StoreCapabilities>;

/// What every app shares: the pub/sub broker, the open WebSocket
/// connections, and the key-value store if any app is granted it.
#[derive(Clone)]
pub(crate) struct HostServices {
    broker: Arc<Broker>,
    hub: Arc<Hub>,
    /// What the host holds for all apps' calls in flight.
    call_bytes: HostBytes,
    /// Opened when the first app granted it is loaded.
    kv: Arc<OnceLock<Arc<dyn KvBackend>>>,
    /// Pub/sub across hosts, when the backend is Redis (set at start).
    relay: Arc<OnceLock<Arc<Relay>>>,
    /// Woken when an app keeps a job or sends a message, so the job
    /// runner looks again.
    work_kept: Arc<Notify>,
}

impl HostServices {
    /// Start the shared services, holding at most `max_call_bytes` for
    /// calls in flight; no key-value store yet.
    pub(crate) fn new(max_call_bytes: u64) -> HostServices {
        let broker = Broker::new();
        let hub = Hub::new(broker.clone());
        HostServices {
            broker,
            hub,
            call_bytes: HostBytes::new(max_call_bytes),
            kv: Arc::default(),
            relay: Arc::default(),
            work_kept: Arc::default(),
        }
    }

    /// Carry pub/sub across hosts through the Redis at `url` (once).
    pub(crate) fn relay_through(&self, url: &str) -> anyhow::Result<()> {
        if self.relay.get().is_none() {
            let relay = Relay::new(url, self.broker.clone())?;
            let _ = self.relay.set(relay);
        }
        Ok(())
    }

    /// The relay to other hosts, if pub/sub crosses hosts.
    pub(crate) fn relay(&self) -> Option<&Arc<Relay>> {
        self.relay.get()
    }

    /// Open the key-value store with `open`, unless it is open already.
    pub(crate) fn open_kv(
        &self,
        open: impl FnOnce() -> anyhow::Result<Arc<dyn KvBackend>>,
    ) -> anyhow::Result<()> {
        if self.kv.get().is_none() {
            let store = open()?;
            // Loading is serialised by the caller; a lost race keeps the first.
            let _ = self.kv.set(store);
        }
        Ok(())
    }

    /// The open WebSocket connections of every app.
    pub(crate) fn hub(&self) -> &Arc<Hub> {
        &self.hub
    }

    /// Woken when an app keeps a job or sends a message.
    pub(crate) fn work_kept(&self) -> &Arc<Notify> {
        &self.work_kept
    }

    /// The bytes held for all apps' calls in flight now.
    pub(crate) fn call_bytes_held(&self) -> u64 {
        self.call_bytes.held()
    }
}

/// What an app was granted beyond computing, shared by all its stores.
pub(crate) struct Grants {
    /// The app's name, which namespaces its topics and connections.
    app: Arc<str>,
    outbound: OutboundPolicy,
    /// Its pooled outbound client, resolving under its policy.
    client: HttpClient,
    fetch_max_body: u64,
    /// A fetch's response-head timeout when the guest gives none.
    default_timeout: Duration,
    topics: TopicPolicy,
    /// The fence around its topics, and their use of it.
    topic_fence: Arc<AppTopics>,
    /// `max_fetches`: its outbound requests in flight.
    fetches: Arc<Fence>,
    /// `max_fetches_per_request`.
    fetches_per_request: u32,
    /// Where it may open TCP connections.
    tcp_outbound: TcpPolicy,
    /// `tcp_outbound_connections`: its outbound TCP connections open.
    tcp_connections: Arc<Fence>,
    tcp_connect_timeout: Duration,
    hits: Arc<LimitHits>,
    shared: HostServices,
    /// Its key-value store, if granted.
    kv: Option<KvGrant>,
    /// Its key-value calls in flight, all requests together.
    kv_calls: Arc<Semaphore>,
    /// Its jobs, if granted.
    jobs: Option<JobGrant>,
    /// Its job and queue calls in flight, all requests together.
    job_calls: Arc<Semaphore>,
    /// The queues its consumers read, if it has any.
    queues: Option<QueueGrants>,
    /// Its name lookups in progress (fetch, TCP, `wasi:sockets`).
    lookups: Arc<Semaphore>,
    /// What the host holds for its calls in flight (`max_call_bytes`).
    call_bytes: CallBytes,
    /// Its `[app.NAME.config]` values.
    settings: Settings,
    /// The same, for standard components (`wasi:config/store`).
    wasi_config: WasiConfigVariables,
    /// Its static files, for the versions of their URLs.
    static_files: Arc<StaticFiles>,
}

/// An app's key-value store and its limits.
struct KvGrant {
    backend: Arc<dyn KvBackend>,
    quota: Quota,
    max_key: u64,
    max_value: u64,
}

impl Grants {
    /// The grants of the app `config` describes; its limit hits are
    /// counted in `hits`. A new version of an app takes over the counts of
    /// its `previous` one (topics, fetches and key-value calls in flight),
    /// under its own limits.
    pub(crate) fn new(
        config: &AppConfig,
        shared: &HostServices,
        hits: Arc<LimitHits>,
        static_files: Arc<StaticFiles>,
        previous: Option<&Grants>,
    ) -> anyhow::Result<Arc<Grants>> {
        let limits = &config.limits;
        let (topic_fence, fetches, kv_calls, tcp_connections, lookups, job_calls) = match previous {
            Some(previous) => (
                previous.topic_fence.clone(),
                previous.fetches.clone(),
                previous.kv_calls.clone(),
                previous.tcp_connections.clone(),
                previous.lookups.clone(),
                previous.job_calls.clone(),
            ),
            None => (
                AppTopics::new(0, 0, 1),
                Fence::new(0),
                Arc::new(Semaphore::new(kv::MAX_CALLS_PER_APP)),
                Fence::new(0),
                crate::dns::app_lookups(),
                Arc::new(Semaphore::new(jobs::MAX_JOB_CALLS_PER_APP)),
            ),
        };
        tcp_connections.set_ceiling(limits.tcp_outbound_connections);
        topic_fence.set_limits(
            limits.pubsub_topics,
            limits.pubsub_history_bytes,
            config.pubsub_history,
        );
        fetches.set_ceiling(limits.max_fetches);
        // Carried over unless the new version's budget differs (then the
        // old one drains as its calls end).
        let call_bytes = match previous {
            Some(previous) if previous.call_bytes.bytes() == limits.max_call_bytes => {
                previous.call_bytes.clone()
            }
            _ => CallBytes::new(limits.max_call_bytes, &shared.call_bytes),
        };
        let client = new_client(&config.outbound, lookups.clone())
            .context("cannot set up the outbound HTTP client")?;
        Ok(Arc::new(Grants {
            app: config.name.as_str().into(),
            outbound: config.outbound.clone(),
            client,
            fetch_max_body: limits.fetch_max_body,
            default_timeout: limits.timeout,
            topics: config.pubsub.clone(),
            topic_fence,
            fetches,
            fetches_per_request: limits.max_fetches_per_request,
            tcp_outbound: config.tcp_outbound.clone(),
            tcp_connections,
            tcp_connect_timeout: limits.tcp_connect_timeout,
            hits,
            kv: match (config.kv, shared.kv.get()) {
                (true, Some(backend)) => Some(KvGrant {
                    backend: backend.clone(),
                    quota: Quota {
                        max_keys: limits.kv_max_keys,
                        max_bytes: limits.kv_max_bytes,
                    },
                    max_key: limits.kv_max_key,
                    max_value: limits.kv_max_value,
                }),
                (true, None) => anyhow::bail!("the app is granted kv but the host has no store"),
                (false, _) => None,
            },
            kv_calls,
            jobs: match (config.jobs, shared.kv.get()) {
                (true, Some(backend)) => Some(JobGrant::new(
                    JobStore::new(
                        backend.clone(),
                        &config.name,
                        limits.jobs_max_pending,
                        limits.jobs_max_payload,
                    ),
                    limits.jobs_max_pending,
                    limits.jobs_max_payload,
                    shared.work_kept.clone(),
                )),
                (true, None) => anyhow::bail!("the app is granted jobs but the host has no store"),
                (false, _) => None,
            },
            job_calls,
            queues: match (config.consumers.is_empty(), shared.kv.get()) {
                (true, _) => None,
                (false, Some(backend)) => Some(QueueGrants::new(
                    backend,
                    &config.name,
                    &config.consumers,
                    (limits.queue_max_messages, limits.queue_max_payload),
                    shared.work_kept.clone(),
                )),
                (false, None) => anyhow::bail!("the app has consumers but the host has no store"),
            },
            lookups,
            call_bytes,
            settings: config.settings.clone(),
            wasi_config: config.settings.all().collect(),
            static_files,
            shared: shared.clone(),
        }))
    }

    /// The app's name.
    pub(crate) fn app(&self) -> &Arc<str> {
        &self.app
    }

    /// The open WebSocket connections of every app.
    pub(crate) fn hub(&self) -> &Arc<Hub> {
        &self.shared.hub
    }

    /// The keys and bytes the app's key-value store holds, if granted.
    pub(crate) async fn kv_usage(&self) -> Option<anyhow::Result<crate::kv::NamespaceUsage>> {
        let store = self.kv.as_ref()?;
        Some(
            store
                .backend
                .usage(&self.app)
                .await
                .map_err(anyhow::Error::from),
        )
    }

    /// Its jobs, if granted.
    pub(crate) fn jobs(&self) -> Option<&JobGrant> {
        self.jobs.as_ref()
    }

    /// The queues its consumers read.
    pub(crate) fn queues(&self) -> &[QueueGrant] {
        self.queues
            .as_ref()
            .map_or(&[], |grants| grants.queues.as_slice())
    }

    /// The app's topics now, and the bytes their histories keep.
    pub(crate) fn topic_usage(&self) -> (u32, u64) {
        (self.topic_fence.topics(), self.topic_fence.bytes())
    }
}

impl Grants {
    /// A refusal of the app's call budget, counted, in words.
    fn over_budget(&self, refused: &crate::budget::BytesRefused) -> String {
        let why = refused.to_string();
        self.hits.hit(Limit::CallBytes, &why);
        why
    }

    /// A broker refusal, counted, as the guest sees it.
    fn refused(&self, refused: TopicRefused) -> bindings::pubsub::PubsubError {
        let limit = match refused {
            TopicRefused::TooManyTopics(_) => Limit::Topics,
            TopicRefused::HistoryFull(_) => Limit::TopicBytes,
        };
        self.hits.hit(limit, &refused.to_string());
        bindings::pubsub::PubsubError::Limit(refused.to_string())
    }

    /// Its outbound TCP connections open (`tcp_outbound_connections`).
    pub(crate) fn tcp_connections(&self) -> &Arc<Fence> {
        &self.tcp_connections
    }

    /// Its places for name lookups.
    pub(crate) fn lookups(&self) -> &Arc<Semaphore> {
        &self.lookups
    }

    /// A place for one more fetch of `request`'s, within both fences; the
    /// refusal names the limit.
    fn admit_fetch(&self, request: &Arc<AtomicU32>) -> Result<FetchPermit, String> {
        let counted = request.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |count| {
            (count < self.fetches_per_request).then_some(count + 1)
        });
        if counted.is_err() {
            let why = format!(
                "the request has {} fetches in flight (max_fetches_per_request)",
                self.fetches_per_request
            );
            self.hits.hit(Limit::Fetches, &why);
            return Err(why);
        }
        let request = FetchCount(request.clone());
        match self.fetches.try_enter() {
            Some(app) => Ok(FetchPermit {
                _request: request,
                _app: app,
            }),
            None => {
                let why = format!(
                    "the app has {} fetches in flight (max_fetches)",
                    self.fetches.ceiling()
                );
                self.hits.hit(Limit::Fetches, &why);
                Err(why)
            }
        }
    }
}

/// One fetch's place in flight, for its request and its app; given back
/// when the fetch is done.
struct FetchPermit {
    _request: FetchCount,
    _app: OwnedSemaphorePermit,
}

/// One count of a request's fetches in flight.
struct FetchCount(Arc<AtomicU32>);

impl Drop for FetchCount {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The capabilities' data in one store.
pub(crate) struct StoreCapabilities {
    /// Outgoing wasi:http hooks; they hold the app's grants.
    hooks: OutgoingHooks,
    /// wasi:http state, for standard components.
    http: WasiHttpCtx,
    /// This store's key-value calls in flight.
    kv_calls: Arc<AtomicU32>,
}

impl StoreCapabilities {
    /// A store's data for an app with `grants`.
    pub(crate) fn new(grants: Arc<Grants>) -> Self {
        StoreCapabilities {
            hooks: OutgoingHooks::new(grants),
            http: WasiHttpCtx::new(),
            kv_calls: Arc::new(AtomicU32::new(0)),
        }
    }

    fn grants(&self) -> &Arc<Grants> {
        self.hooks.grants()
    }

    /// This store's fetches in flight.
    fn fetches(&self) -> &Arc<AtomicU32> {
        self.hooks.fetches()
    }
}

impl WasiHttpView for GuestState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        let (table, host) = self.table_and_host();
        WasiHttpCtxView {
            ctx: &mut host.http,
            table,
            hooks: &mut host.hooks,
        }
    }
}

/// Link every capability: wasi:http for standard components, and the
/// `squall:app` imports.
pub(crate) fn add_to_linker(linker: &mut Linker<GuestState>) -> wasmtime::Result<()> {
    wasmtime_wasi_http::p2::add_only_http_to_linker_async(linker)?;
    wasmtime_wasi_http::p3::add_to_linker(linker)?;
    wasi_keyvalue::add_to_linker(linker)?;
    wasmtime_wasi_config::add_to_linker(linker, |state: &mut GuestState| {
        WasiConfig::new(&state.host().grants().wasi_config)
    })?;
    bindings::App::add_to_linker::<GuestState, HasSelf<GuestState>>(linker, |state| state)
}

impl bindings::types::Host for GuestState {}

/// This store's grants, from inside an async host call.
fn grants_of(
    accessor: &wasmtime::component::Accessor<GuestState, HasSelf<GuestState>>,
) -> Arc<Grants> {
    accessor.with(|mut access| access.get().host().grants().clone())
}

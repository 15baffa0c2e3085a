//! Host interfaces offered to guests, one file per interface. Each plugs
//! into the runtime through the store's data ([`StoreCapabilities`], the
//! runtime's `H`), as wasmtime-wasi-http's `add_to_linker<T: View>` does:
//! the runtime never names a capability.
//!
//! State is split the way Spin's factors split it: [`Shared`] by every app
//! (the pooled client, the broker, the hub), [`Grants`] per app (what its
//! manifest allows), [`StoreCapabilities`] per store.

mod http_client;
mod outgoing_wasi_http;
mod pubsub;
mod time;
mod websocket;

use crate::bindings;
use crate::broker::Broker;
use crate::config::AppConfig;
use crate::hub::Hub;
use crate::outbound::{HttpClient, new_client};
use crate::policy::{OutboundPolicy, TopicPolicy};
use crate::runtime::State;
use anyhow::Context;
use outgoing_wasi_http::OutgoingHooks;
use std::sync::Arc;
use std::time::Duration;
use wasmtime::component::{HasSelf, Linker};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

/// The data of a store whose guest may use the capabilities.
pub(crate) type GuestState = State<StoreCapabilities>;

/// What every app shares: the pooled outbound client, the pub/sub broker
/// and the open WebSocket connections.
#[derive(Clone)]
pub(crate) struct Shared {
    client: HttpClient,
    broker: Arc<Broker>,
    hub: Arc<Hub>,
}

impl Shared {
    /// Start the shared services.
    pub(crate) fn new() -> anyhow::Result<Shared> {
        let client = new_client().context("cannot set up the outbound HTTP client")?;
        let broker = Broker::new();
        let hub = Hub::new(broker.clone());
        Ok(Shared {
            client,
            broker,
            hub,
        })
    }

    /// The open WebSocket connections of every app.
    pub(crate) fn hub(&self) -> &Arc<Hub> {
        &self.hub
    }
}

/// What an app was granted beyond computing, shared by all its stores.
pub(crate) struct Grants {
    /// The app's name, which namespaces its topics and connections.
    app: Arc<str>,
    outbound: OutboundPolicy,
    fetch_max_body: u64,
    /// A fetch's response-head timeout when the guest gives none.
    default_timeout: Duration,
    topics: TopicPolicy,
    pubsub_history: usize,
    shared: Shared,
}

impl Grants {
    /// The grants of the app `config` describes.
    pub(crate) fn new(config: &AppConfig, shared: &Shared) -> Arc<Grants> {
        Arc::new(Grants {
            app: config.name.as_str().into(),
            outbound: config.outbound.clone(),
            fetch_max_body: config.limits.fetch_max_body,
            default_timeout: config.limits.timeout,
            topics: config.pubsub.clone(),
            pubsub_history: config.pubsub_history,
            shared: shared.clone(),
        })
    }

    /// The app's name.
    pub(crate) fn app(&self) -> &Arc<str> {
        &self.app
    }

    /// The open WebSocket connections of every app.
    pub(crate) fn hub(&self) -> &Arc<Hub> {
        &self.shared.hub
    }
}

/// The capabilities' data in one store.
pub(crate) struct StoreCapabilities {
    /// Outgoing wasi:http hooks; they hold the app's grants.
    hooks: OutgoingHooks,
    /// wasi:http state, for standard components.
    http: WasiHttpCtx,
}

impl StoreCapabilities {
    /// A store's data for an app with `grants`.
    pub(crate) fn new(grants: Arc<Grants>) -> Self {
        StoreCapabilities {
            hooks: OutgoingHooks::new(grants),
            http: WasiHttpCtx::new(),
        }
    }

    fn grants(&self) -> &Arc<Grants> {
        self.hooks.grants()
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
    bindings::App::add_to_linker::<GuestState, HasSelf<GuestState>>(linker, |state| state)
}

impl bindings::types::Host for GuestState {}

/// This store's grants, from inside an async host call.
fn grants_of(
    accessor: &wasmtime::component::Accessor<GuestState, HasSelf<GuestState>>,
) -> Arc<Grants> {
    accessor.with(|mut access| access.get().host().grants().clone())
}

//! `wasi:sockets` for standard components, under the app's `tcp_outbound`:
//! TCP connections only, to an address a rule names (an IP address, or
//! `localhost` for loopback) or that a rule's name resolves to when it is
//! not internal; the implicit bind a connect makes; nothing else (no
//! listening, no UDP, no name lookups), within the app's `tcp_outbound_connections`
//! (counted until the store ends, or, for a store that serves requests
//! one after another, until the next request finds the socket closed).

use crate::fence::Fence;
use crate::policy::{TcpPolicy, is_internal, is_own};
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use tokio::sync::OwnedSemaphorePermit;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::sockets::SocketAddrUse;

/// Where WASI sockets may connect, and the app's count of connections
/// (`tcp_outbound_connections`).
#[derive(Clone)]
pub(crate) struct TcpConnectGrant {
    pub(crate) policy: Arc<TcpPolicy>,
    pub(crate) connections: Arc<Fence>,
    /// The app's places for name lookups.
    pub(crate) lookups: Arc<tokio::sync::Semaphore>,
}

type Check = Pin<Box<dyn Future<Output = bool> + Send + Sync>>;

/// The places under `tcp_outbound_connections` a store's sockets hold.
#[derive(Clone)]
pub(super) struct HeldConnections {
    places: Arc<Mutex<Vec<OwnedSemaphorePermit>>>,
    /// Whether a closed socket's place may be given back before the store
    /// ends: WASI 0.2 streams are children of their socket resource (the
    /// socket cannot be dropped before them), WASI 0.3 streams are not.
    give_back: bool,
}

impl HeldConnections {
    pub(super) fn new(give_back: bool) -> HeldConnections {
        HeldConnections {
            places: Arc::default(),
            give_back,
        }
    }

    fn push(&self, place: OwnedSemaphorePermit) {
        self.places().push(place);
    }

    fn places(&self) -> std::sync::MutexGuard<'_, Vec<OwnedSemaphorePermit>> {
        self.places
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }

    /// Give back the places of sockets the guest has closed: those beyond
    /// the TCP sockets `table` still holds (a reused store's next request
    /// starts with only what is still open counted).
    pub(super) fn keep_open_ones(&self, table: &mut ResourceTable) {
        if !self.give_back {
            return;
        }
        let open = table
            .iter_mut()
            .filter(|entry| entry.is::<wasmtime_wasi::p2::TcpSocket>())
            .count();
        self.places().truncate(open);
    }
}

/// The check wasmtime-wasi asks before each use of a socket address. Each
/// connect allowed takes a place under `tcp_outbound_connections`, kept in
/// `held` until the store is dropped or
/// [`HeldConnections::keep_open_ones`] finds its socket closed.
pub(super) fn check(
    grant: TcpConnectGrant,
    held: HeldConnections,
) -> impl Fn(SocketAddr, SocketAddrUse) -> Check + Send + Sync + 'static {
    move |address, used_for| {
        let (grant, held) = (grant.clone(), held.clone());
        Box::pin(async move {
            let allowed = match used_for {
                // What `connect` binds first: any local port.
                SocketAddrUse::TcpBind => address.ip().is_unspecified() && address.port() == 0,
                SocketAddrUse::TcpConnect => {
                    may_connect(&grant, address).await
                        && match grant.connections.try_enter() {
                            Some(place) => {
                                held.push(place);
                                true
                            }
                            None => {
                                tracing::info!(%address, "wasi:sockets connect refused: tcp_outbound_connections reached");
                                false
                            }
                        }
                }
                _ => false,
            };
            if !allowed {
                tracing::info!(%address, ?used_for, "wasi:sockets use denied: not in tcp_outbound");
            }
            allowed
        })
    }
}

async fn may_connect(grant: &TcpConnectGrant, address: SocketAddr) -> bool {
    let ip = address.ip();
    for host in grant.policy.hosts_for(address.port()) {
        if host.parse::<IpAddr>().is_ok_and(|named| named == ip)
            || (host == "localhost" && ip.is_loopback())
        {
            return true;
        }
        if is_internal(ip) || is_own(ip) {
            continue;
        }
        let Ok(resolved) = crate::dns::lookup(&grant.lookups, host, address.port()).await else {
            continue;
        };
        if resolved.into_iter().any(|resolved| resolved.ip() == ip) {
            return true;
        }
    }
    false
}

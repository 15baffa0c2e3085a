//! `wasi:sockets` for standard components, under the app's `tcp_outbound`:
//! TCP connections only, to an address a rule names (an IP address, or
//! `localhost` for loopback) or that a rule's name resolves to when it is
//! not internal; the implicit bind a connect makes; nothing else (no
//! listening, no UDP), within the app's `tcp_outbound_connections`
//! (counted until the store ends).

use super::store::TcpConnectGrant;
use crate::policy::{is_internal, is_own};
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use tokio::sync::OwnedSemaphorePermit;
use wasmtime_wasi::sockets::SocketAddrUse;

type Check = Pin<Box<dyn Future<Output = bool> + Send + Sync>>;

/// The check wasmtime-wasi asks before each use of a socket address. Each
/// connect allowed takes a place under `tcp_outbound_connections`, held
/// until the store (and this check with it) is dropped.
pub(super) fn check(
    grant: TcpConnectGrant,
) -> impl Fn(SocketAddr, SocketAddrUse) -> Check + Send + Sync + 'static {
    let held: Arc<Mutex<Vec<OwnedSemaphorePermit>>> = Arc::default();
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
                                held.lock()
                                    .unwrap_or_else(|poison| poison.into_inner())
                                    .push(place);
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

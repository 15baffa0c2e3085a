//! `wasi:sockets` for standard components, under the app's `tcp_outbound`:
//! TCP connections only, to an address a rule names (an IP address, or
//! `localhost` for loopback) or that a rule's name resolves to when it is
//! not internal; the implicit bind a connect makes; nothing else (no
//! listening, no UDP).

use crate::policy::{TcpPolicy, is_internal, is_own};
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use wasmtime_wasi::sockets::SocketAddrUse;

type Check = Pin<Box<dyn Future<Output = bool> + Send + Sync>>;

/// The check wasmtime-wasi asks before each use of a socket address.
pub(super) fn check(
    policy: Arc<TcpPolicy>,
) -> impl Fn(SocketAddr, SocketAddrUse) -> Check + Send + Sync + 'static {
    move |address, used_for| {
        let policy = policy.clone();
        Box::pin(async move {
            let allowed = match used_for {
                // What `connect` binds first: any local port.
                SocketAddrUse::TcpBind => address.ip().is_unspecified() && address.port() == 0,
                SocketAddrUse::TcpConnect => may_connect(&policy, address).await,
                _ => false,
            };
            if !allowed {
                tracing::info!(%address, ?used_for, "wasi:sockets use denied: not in tcp_outbound");
            }
            allowed
        })
    }
}

async fn may_connect(policy: &TcpPolicy, address: SocketAddr) -> bool {
    let ip = address.ip();
    for host in policy.hosts_for(address.port()) {
        if host.parse::<IpAddr>().is_ok_and(|named| named == ip)
            || (host == "localhost" && ip.is_loopback())
        {
            return true;
        }
        if is_internal(ip) || is_own(ip) {
            continue;
        }
        let Ok(resolved) = tokio::net::lookup_host((host, address.port())).await else {
            continue;
        };
        if resolved.into_iter().any(|resolved| resolved.ip() == ip) {
            return true;
        }
    }
    false
}

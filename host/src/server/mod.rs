//! The top layer: the accept loop, TCP connections served by hyper
//! (HTTP/1.1 and cleartext HTTP/2 on one port), each request routed to its
//! app, WebSocket upgrades handed to host-owned sockets, and a graceful
//! shutdown that stops accepting and drains in-flight requests.

mod routing;
mod socket;
mod upgrade;

pub(crate) use routing::{AppRouter, route, websocket_route};

use crate::body::inbound;
use crate::hub::Hub;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpSocket};

/// Connections the kernel may queue before we accept them. std's default of
/// 128 overflows when thousands of clients connect at once (each overflow
/// costs the client a SYN retransmit: a second or more).
const LISTEN_BACKLOG: u32 = 4096;

/// Listen on `address` with a backlog fit for bursts of connections.
pub fn bind(address: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = match address {
        SocketAddr::V4(_) => TcpSocket::new_v4()?,
        SocketAddr::V6(_) => TcpSocket::new_v6()?,
    };
    socket.set_reuseaddr(true)?;
    socket.bind(address)?;
    socket.listen(LISTEN_BACKLOG)
}

/// Serve `router` on `listener` until `shutdown` resolves, then wait up to
/// `drain_timeout` for in-flight requests to finish.
pub(crate) async fn serve(
    listener: TcpListener,
    router: Arc<AppRouter>,
    hub: Arc<Hub>,
    drain_timeout: Duration,
    shutdown: impl Future<Output = ()>,
) {
    let builder = auto::Builder::new(TokioExecutor::new());
    let graceful = GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut shutdown => break,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(err) => {
                // Out of file descriptors or similar: back off, keep serving.
                tracing::warn!("accept failed: {err}");
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            }
        };
        if let Err(err) = stream.set_nodelay(true) {
            tracing::debug!("cannot set TCP_NODELAY for {peer}: {err}");
        }
        let router = router.clone();
        let service = service_fn(move |request: http::Request<hyper::body::Incoming>| {
            let router = router.clone();
            async move {
                let request = request.map(inbound);
                Ok::<_, Infallible>(routing::route(&router, request).await)
            }
        });
        let connection = builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
        let connection = graceful.watch(connection.into_owned());
        tokio::spawn(async move {
            if let Err(err) = connection.await {
                tracing::debug!("connection from {peer} ended: {err}");
            }
        });
    }
    drop(listener);
    tracing::info!("shutting down: draining in-flight requests");
    // WebSockets are told to go away (1001); HTTP connections finish their
    // requests.
    let drained = async {
        tokio::join!(graceful.shutdown(), hub.shut_down(drain_timeout));
    };
    tokio::select! {
        () = drained => tracing::info!("all connections closed"),
        () = tokio::time::sleep(drain_timeout) => {
            tracing::warn!("drain timeout of {drain_timeout:?} reached; closing the rest");
        }
    }
}

//! The top layer: the accept loop, TCP connections served by hyper
//! (HTTP/1.1 and cleartext HTTP/2 on one port), each request routed to its
//! app, WebSocket upgrades handed to host-owned sockets, and a graceful
//! shutdown that stops accepting and drains in-flight requests.

mod connection;
mod routing;
mod socket;
mod upgrade;

pub(crate) use routing::{AppRouter, route, websocket_route};

use crate::body::inbound;
use crate::config::ServerConfig;
use crate::hub::Hub;
use arc_swap::ArcSwap;
use connection::TrackedStream;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::{Semaphore, watch};

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

/// The smallest head limit hyper takes.
const MIN_HEADER_BYTES: usize = 8 << 10;

/// hyper, set up with the server's limits: header size, count and read
/// time; HTTP/2 streams and header list size (hyper's defences against
/// rapid resets and CONTINUATION floods stay on).
fn connection_builder(config: &ServerConfig) -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    // The read buffer's cap is what bounds a request head (hyper answers
    // 431 past it); hyper needs at least 8 KiB.
    let header_bytes = usize::try_from(config.max_header_bytes)
        .unwrap_or(usize::MAX)
        .max(MIN_HEADER_BYTES);
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(config.header_read_timeout)
        .max_buf_size(header_bytes)
        .max_headers(config.max_headers);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(config.max_streams)
        .max_header_list_size(u32::try_from(config.max_header_bytes).unwrap_or(u32::MAX));
    builder
}

/// Serve the apps `router` holds (as they are at each request) on
/// `listener` until `shutdown` resolves, then wait up to
/// the drain timeout for in-flight requests and sockets to finish.
pub(crate) async fn serve(
    listener: TcpListener,
    router: Arc<ArcSwap<AppRouter>>,
    hub: Arc<Hub>,
    config: &ServerConfig,
    shutdown: impl Future<Output = ()>,
) {
    let builder = connection_builder(config);
    let total_places = usize::try_from(config.max_connections)
        .unwrap_or(usize::MAX)
        .min(Semaphore::MAX_PERMITS);
    let places = Arc::new(Semaphore::new(total_places));
    let (stopping, stop_signal) = watch::channel(false);
    let mut shutdown = std::pin::pin!(shutdown);
    let mut full = RateLimitedWarning::default();
    let mut failing = RateLimitedWarning::default();
    let mut backoff = Duration::ZERO;
    loop {
        // At max_connections, stop accepting: new clients wait in the
        // kernel's backlog until a connection closes.
        let place = match places.clone().try_acquire_owned() {
            Ok(place) => place,
            Err(_) => {
                full.warn(&format!(
                    "connection limit reached (max_connections = {}): new connections wait",
                    config.max_connections
                ));
                tokio::select! {
                    place = places.clone().acquire_owned() => match place {
                        Ok(place) => place,
                        Err(_) => break,
                    },
                    () = &mut shutdown => break,
                }
            }
        };
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut shutdown => break,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => {
                backoff = Duration::ZERO;
                accepted
            }
            Err(err) => {
                // Out of file descriptors or similar: back off (up to a
                // second), keep serving.
                failing.warn(&format!("accept failed: {err}"));
                crate::stats::accept_error();
                backoff = (backoff * 2).clamp(Duration::from_millis(10), Duration::from_secs(1));
                tokio::time::sleep(backoff).await;
                continue;
            }
        };
        if let Err(err) = stream.set_nodelay(true) {
            tracing::debug!("cannot set TCP_NODELAY for {peer}: {err}");
        }
        let (stream, activity) = TrackedStream::new(stream, place);
        let router = router.clone();
        let service = service_fn(move |request: http::Request<hyper::body::Incoming>| {
            let router = router.clone();
            async move {
                let request = request.map(inbound);
                // The apps as they are when the request arrives.
                let apps = router.load_full();
                Ok::<_, Infallible>(routing::route(&apps, request).await)
            }
        });
        let connection = builder
            .serve_connection_with_upgrades(TokioIo::new(stream), service)
            .into_owned();
        let mut stop_signal = stop_signal.clone();
        let idle_timeout = config.idle_timeout;
        tokio::spawn(async move {
            let mut connection = std::pin::pin!(connection);
            let mut closing = false;
            loop {
                let idle_check = tokio::time::sleep(
                    idle_timeout.saturating_sub(activity.idle_for()) + Duration::from_millis(10),
                );
                tokio::select! {
                    ended = connection.as_mut() => {
                        if let Err(err) = ended {
                            tracing::debug!("connection from {peer} ended: {err}");
                        }
                        break;
                    }
                    _ = stop_signal.wait_for(|stop| *stop), if !closing => {
                        connection.as_mut().graceful_shutdown();
                        closing = true;
                    }
                    () = idle_check, if !closing => {
                        // Nothing moved for `idle_timeout`: finish what is in
                        // flight, then close.
                        if activity.idle_for() >= idle_timeout {
                            tracing::debug!("closing idle connection from {peer}");
                            connection.as_mut().graceful_shutdown();
                            closing = true;
                        }
                    }
                }
            }
        });
    }
    drop(listener);
    tracing::info!("shutting down: draining in-flight requests");
    // Connections finish their requests; WebSockets are told to go away
    // (1001). Every connection gives its place back when it is gone.
    stopping.send_replace(true);
    let everyone = u32::try_from(total_places).unwrap_or(u32::MAX);
    let drained = async {
        let (all_back, ()) = tokio::join!(
            places.acquire_many(everyone),
            hub.shut_down(config.drain_timeout)
        );
        drop(all_back);
    };
    tokio::select! {
        () = drained => tracing::info!("all connections closed"),
        () = tokio::time::sleep(config.drain_timeout) => {
            tracing::warn!(
                "drain timeout of {:?} reached; closing the rest",
                config.drain_timeout
            );
        }
    }
}

/// A warning logged at most once a second, saying how many it stands for.
#[derive(Default)]
struct RateLimitedWarning {
    last: Option<Instant>,
    unlogged: u64,
}

impl RateLimitedWarning {
    fn warn(&mut self, message: &str) {
        self.unlogged += 1;
        if self
            .last
            .is_some_and(|last| last.elapsed() < Duration::from_secs(1))
        {
            return;
        }
        tracing::warn!(times = self.unlogged, "{message}");
        self.last = Some(Instant::now());
        self.unlogged = 0;
    }
}

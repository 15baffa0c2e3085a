//! The top layer: the accept loop, TCP connections served by hyper
//! (HTTP/1.1 and cleartext HTTP/2 on one port), each request routed to its
//! app, WebSocket upgrades handed to host-owned sockets, and a graceful
//! shutdown that stops accepting and drains in-flight requests.

mod connection;
mod routing;
mod socket;
mod tcp_hibernate;
mod tcp_listeners;
mod tls;
mod upgrade;

pub(crate) use routing::{AppRouter, route, websocket_route};
pub(crate) use tcp_listeners::{TcpListen, bind_tcp};
pub(crate) use tls::Tls;
pub(crate) use upgrade::open as open_websocket;

use crate::body::inbound;
use crate::config::ServerConfig;
use crate::hub::Hub;
use crate::limit_log::Throttle;
use arc_swap::ArcSwap;
use connection::{Activity, Counted, Requests, TrackedStream};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpSocket, TcpStream};
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

/// Where the server listens.
pub(crate) struct Listeners {
    /// Plain HTTP (HTTP/1.1 and cleartext HTTP/2).
    pub(crate) http: TcpListener,
    /// HTTPS, and its TLS.
    pub(crate) https: Option<(TcpListener, Tls)>,
    /// The apps' own TCP listeners.
    pub(crate) tcp: Vec<TcpListen>,
}

/// What serving an HTTP connection takes, whichever listener accepted it
/// (the admin listener's too): hyper with the server's limits, the idle
/// timeout, and the signal to finish and close.
#[derive(Clone)]
pub(crate) struct HttpConnections {
    builder: auto::Builder<TokioExecutor>,
    /// Tells connections to finish what is in flight and close.
    stop_signal: watch::Receiver<bool>,
    idle_timeout: Duration,
}

/// What each connection of the apps' listeners needs.
#[derive(Clone)]
struct Serving {
    http: HttpConnections,
    router: Arc<ArcSwap<AppRouter>>,
    /// For a plain listener that sends everyone to HTTPS: the HTTPS port.
    redirect_to: Option<u16>,
}

/// Serve the apps `router` holds (as they are at each request) on
/// `listeners` until `shutdown` resolves, then wait up to the drain timeout
/// for in-flight requests and sockets to finish.
pub(crate) async fn serve(
    listeners: Listeners,
    router: Arc<ArcSwap<AppRouter>>,
    hub: Arc<Hub>,
    config: &ServerConfig,
    shutdown: impl Future<Output = ()>,
) {
    let total_places = usize::try_from(config.max_connections)
        .unwrap_or(usize::MAX)
        .min(Semaphore::MAX_PERMITS);
    let places = Arc::new(Semaphore::new(total_places));
    let (stopping, stop_signal) = watch::channel(false);
    let Listeners { http, https, tcp } = listeners;
    let https_port = https
        .as_ref()
        .and_then(|(listener, _)| listener.local_addr().ok())
        .map(|address| address.port());
    let serving = Serving {
        http: HttpConnections::new(config, stop_signal),
        router,
        redirect_to: None,
    };
    let plain = Serving {
        redirect_to: https_port.filter(|_| config.https_redirect),
        ..serving.clone()
    };
    let apps_tcp = futures::future::join_all(tcp.into_iter().map(|listen| {
        tcp_listeners::accept(
            listen,
            places.clone(),
            hub.clone(),
            serving.http.stop_signal.clone(),
        )
    }));
    let accepting = async {
        let secure = async {
            if let Some((listener, tls)) = https {
                accept(listener, Some(tls), &serving, &places, config).await;
            }
        };
        tokio::join!(
            accept(http, None, &plain, &places, config),
            secure,
            apps_tcp
        );
    };
    tokio::select! {
        () = accepting => {}
        () = shutdown => {}
    }
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

/// Accept connections on `listener` (through `tls` if given), each under a
/// place of `places`, until the future is dropped.
async fn accept(
    listener: TcpListener,
    tls: Option<Tls>,
    serving: &Serving,
    places: &Arc<Semaphore>,
    config: &ServerConfig,
) {
    let at_limit = format!(
        "connection limit reached (max_connections = {}): new connections wait",
        config.max_connections
    );
    let handshake_timeout = config.header_read_timeout;
    accept_connections(&listener, places, &at_limit, |stream, activity, peer| {
        let serving = serving.clone();
        let tls = tls.clone();
        tokio::spawn(async move {
            let Some(tls) = tls else {
                return serving
                    .connection(TokioIo::new(stream), activity, peer)
                    .await;
            };
            match tokio::time::timeout(handshake_timeout, tls.acceptor().accept(stream)).await {
                Ok(Ok(stream)) => {
                    serving
                        .connection(TokioIo::new(stream), activity, peer)
                        .await
                }
                Ok(Err(err)) => tracing::debug!("TLS handshake with {peer} failed: {err}"),
                Err(_) => tracing::debug!("TLS handshake with {peer} timed out"),
            }
        });
    })
    .await;
}

/// Accept connections on `listener`, each under a place of `places`
/// (waiting in the kernel's backlog while none is free; `at_limit` is
/// logged), and hand each to `serve`, until the future is dropped.
async fn accept_connections(
    listener: &TcpListener,
    places: &Arc<Semaphore>,
    at_limit: &str,
    mut serve: impl FnMut(TrackedStream, Arc<Activity>, SocketAddr),
) {
    let mut full = Throttle::default();
    let mut failures = AcceptFailures::new(String::new());
    loop {
        let place = match places.clone().try_acquire_owned() {
            Ok(place) => place,
            Err(_) => {
                full.warn(at_limit);
                match places.clone().acquire_owned().await {
                    Ok(place) => place,
                    Err(_) => return,
                }
            }
        };
        let (stream, peer) = failures.accept(listener).await;
        let (stream, activity) = TrackedStream::new(stream, place);
        serve(stream, activity, peer);
    }
}

/// A listener's failed accepts: each counted and logged at most once a
/// second, and waited out with a pause that doubles from 10 ms up to a
/// second, so that running out of descriptors does not spin the loop.
pub(super) struct AcceptFailures {
    /// What the log line says the listener is (empty: the server's own).
    listener: String,
    warning: Throttle,
    backoff: Duration,
}

impl AcceptFailures {
    pub(super) fn new(listener: String) -> AcceptFailures {
        AcceptFailures {
            listener,
            warning: Throttle::default(),
            backoff: Duration::ZERO,
        }
    }

    /// The next connection on `listener` (`TCP_NODELAY` set), past any
    /// failures.
    pub(super) async fn accept(&mut self, listener: &TcpListener) -> (TcpStream, SocketAddr) {
        loop {
            match listener.accept().await {
                Ok((stream, peer)) => {
                    self.backoff = Duration::ZERO;
                    if let Err(err) = stream.set_nodelay(true) {
                        tracing::debug!("cannot set TCP_NODELAY for {peer}: {err}");
                    }
                    return (stream, peer);
                }
                Err(err) => {
                    self.warning
                        .warn(&format!("{}accept failed: {err}", self.listener));
                    crate::stats::accept_error();
                    self.backoff =
                        (self.backoff * 2).clamp(Duration::from_millis(10), Duration::from_secs(1));
                    tokio::time::sleep(self.backoff).await;
                }
            }
        }
    }
}

/// Connections the admin listener serves at once.
pub(crate) const ADMIN_MAX_CONNECTIONS: usize = 64;

/// Serve the admin listener: at most [`ADMIN_MAX_CONNECTIONS`] at once,
/// under the same header size and time limits and idle timeout as the
/// apps' listeners, each request answered by `answer`.
pub(crate) async fn serve_admin<F, Fut, B>(listener: TcpListener, config: &ServerConfig, answer: F)
where
    F: Fn(http::Request<hyper::body::Incoming>) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = http::Response<B>> + Send + 'static,
    B: http_body::Body<Data = bytes::Bytes> + Unpin + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    // Never told to stop: it lives as long as the process.
    let (_never, stop_signal) = watch::channel(false);
    let http = HttpConnections::new(config, stop_signal);
    let places = Arc::new(Semaphore::new(ADMIN_MAX_CONNECTIONS));
    let at_limit =
        format!("admin connection limit reached ({ADMIN_MAX_CONNECTIONS}): new connections wait");
    accept_connections(&listener, &places, &at_limit, |stream, activity, peer| {
        let (http, answer) = (http.clone(), answer.clone());
        tokio::spawn(http.serve(TokioIo::new(stream), activity, peer, answer));
    })
    .await;
}

impl Serving {
    /// Serve one connection of the apps' listeners until it ends.
    async fn connection<I>(self, io: TokioIo<I>, activity: Arc<Activity>, peer: SocketAddr)
    where
        I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let router = self.router.clone();
        let redirect_to = self.redirect_to;
        let answer = move |mut request: http::Request<hyper::body::Incoming>| {
            let router = router.clone();
            async move {
                if let Some(port) = redirect_to {
                    return routing::redirect_to_https(&request, port);
                }
                routing::set_client_address(&mut request, peer);
                let request = request.map(inbound);
                // The apps as they are when the request arrives.
                let apps = router.load_full();
                routing::route(&apps, request).await
            }
        };
        self.http.serve(io, activity, peer, answer).await;
    }
}

impl HttpConnections {
    /// hyper with `config`'s limits, connections told to close by
    /// `stop_signal`.
    fn new(config: &ServerConfig, stop_signal: watch::Receiver<bool>) -> HttpConnections {
        HttpConnections {
            builder: connection_builder(config),
            stop_signal,
            idle_timeout: config.idle_timeout,
        }
    }

    /// Serve one connection, each request answered by `answer`, until it
    /// ends; close it once idle (no byte moved, or no request in flight,
    /// for `idle_timeout`) or when told to stop.
    async fn serve<I, F, Fut, B>(
        self,
        io: TokioIo<I>,
        activity: Arc<Activity>,
        peer: SocketAddr,
        answer: F,
    ) where
        I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
        F: Fn(http::Request<hyper::body::Incoming>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = http::Response<B>> + Send + 'static,
        B: http_body::Body<Data = bytes::Bytes> + Unpin + Send + 'static,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let requests = Requests::new();
        let counting = requests.clone();
        let answer = Arc::new(answer);
        let service = service_fn(move |request: http::Request<hyper::body::Incoming>| {
            let waiting = counting.begin();
            let answering = answer(request);
            async move {
                let response = answering.await;
                let sending = waiting.answered();
                Ok::<_, Infallible>(response.map(|body| Counted::new(body, sending)))
            }
        });
        let connection = self
            .builder
            .serve_connection_with_upgrades(io, service)
            .into_owned();
        let mut stop_signal = self.stop_signal;
        let idle_timeout = self.idle_timeout;
        let idle_for = || activity.idle_for().max(requests.idle_for());
        let mut connection = std::pin::pin!(connection);
        let mut closing = false;
        // Set once an idle connection was asked to close: if by then it has
        // not, and no request waits for its app, it is dropped (an answer
        // its client stopped reading would keep it open for ever).
        let mut close_by: Option<tokio::time::Instant> = None;
        loop {
            let idle_check = tokio::time::sleep(
                idle_timeout.saturating_sub(idle_for()) + Duration::from_millis(10),
            );
            let give_up = tokio::time::sleep_until(
                close_by.unwrap_or_else(|| tokio::time::Instant::now() + idle_timeout),
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
                    // Nothing moved, or nothing progressed, for
                    // `idle_timeout`: finish what is in flight, then close.
                    if idle_for() >= idle_timeout {
                        tracing::debug!("closing idle connection from {peer}");
                        connection.as_mut().graceful_shutdown();
                        closing = true;
                        close_by = Some(tokio::time::Instant::now() + idle_timeout);
                    }
                }
                () = give_up, if close_by.is_some() => {
                    if !requests.any_waiting() && requests.idle_for() >= idle_timeout {
                        tracing::info!("dropping idle connection from {peer}: it did not close");
                        break;
                    }
                    close_by = Some(tokio::time::Instant::now() + idle_timeout);
                }
            }
        }
    }
}

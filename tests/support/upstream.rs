//! A real HTTP server on loopback for guests to fetch from, counting the
//! connections and requests it sees.

use bytes::Bytes;
use http_body_util::{BodyExt, Full, StreamBody, combinators::BoxBody};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

type Body = BoxBody<Bytes, Infallible>;

/// A running upstream; it stops with the test's runtime.
pub struct Upstream {
    pub base: String,
    connections: Arc<AtomicUsize>,
    requests: Arc<AtomicUsize>,
    /// What `/sink` received: a body's length, or how it broke.
    sunk: Arc<Mutex<Vec<Result<usize, String>>>>,
}

/// Requests to `/together` so far, watched by each (none answers before
/// the count it waits for is reached, so that many were in flight at once).
struct Together {
    arrived: tokio::sync::watch::Sender<usize>,
}

/// How long a `/together/{n}` request waits for the others.
const TOGETHER_PATIENCE: Duration = Duration::from_secs(20);

impl Upstream {
    /// Serve on 127.0.0.1 at a free port:
    /// - `/hello`: `hello`
    /// - `/delay/{ms}`: waits, then `ok`
    /// - `/bytes/{n}`: `n` bytes with a content-length
    /// - `/chunked/{n}`: `n` bytes in 64 KiB chunks, no content-length
    /// - `/redirect/{status}?{url}`: that status with `Location: url`
    /// - `/echo`: the request body back
    /// - `/sink`: reads the body and records its length or its error
    /// - `/together/{n}`: `ok` once `n` requests to `/together` have come
    ///   (each waits for the others, so they were in flight at once), else
    ///   after a while a 504 `alone`: proof that requests come
    ///   concurrently, without a clock
    pub async fn start() -> Upstream {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("address"));
        let connections = Arc::new(AtomicUsize::new(0));
        let requests = Arc::new(AtomicUsize::new(0));
        let (counted_connections, counted_requests) = (connections.clone(), requests.clone());
        let sunk = Arc::new(Mutex::new(Vec::new()));
        let recorded = sunk.clone();
        let together = Arc::new(Together {
            arrived: tokio::sync::watch::Sender::new(0),
        });
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                counted_connections.fetch_add(1, Ordering::SeqCst);
                let requests = counted_requests.clone();
                let recorded = recorded.clone();
                let together = together.clone();
                let service = service_fn(move |request| {
                    requests.fetch_add(1, Ordering::SeqCst);
                    respond(request, recorded.clone(), together.clone())
                });
                tokio::spawn(async move {
                    let _ = auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Upstream {
            base,
            connections,
            requests,
            sunk,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }

    pub fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }

    /// What `/sink` has received so far.
    pub fn sunk(&self) -> Vec<Result<usize, String>> {
        self.sunk.lock().map(|s| s.clone()).unwrap_or_default()
    }
}

async fn respond(
    request: Request<Incoming>,
    sunk: Arc<Mutex<Vec<Result<usize, String>>>>,
    together: Arc<Together>,
) -> Result<Response<Body>, Infallible> {
    let path = request.uri().path().to_owned();
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let number = |i: usize| {
        segments
            .get(i)
            .and_then(|s| s.parse::<u64>().ok())
            .unwrap_or(0)
    };
    Ok(match segments[0] {
        "hello" => full("hello"),
        "delay" => {
            tokio::time::sleep(Duration::from_millis(number(1))).await;
            full("ok")
        }
        "together" => {
            let wanted = usize::try_from(number(1)).unwrap_or(usize::MAX);
            let mut watching = together.arrived.subscribe();
            together.arrived.send_modify(|arrived| *arrived += 1);
            let all_here = watching.wait_for(|arrived| *arrived >= wanted);
            let met = matches!(
                tokio::time::timeout(TOGETHER_PATIENCE, all_here).await,
                Ok(Ok(_))
            );
            if met {
                full("ok")
            } else {
                let mut response = full("alone");
                *response.status_mut() = http::StatusCode::GATEWAY_TIMEOUT;
                response
            }
        }
        "bytes" => full(vec![b'x'; number(1) as usize]),
        "chunked" => {
            let total = number(1) as usize;
            let chunks = (0..total.div_ceil(65536)).map(move |i| {
                let size = (total - i * 65536).min(65536);
                Ok::<_, Infallible>(Frame::data(Bytes::from(vec![b'y'; size])))
            });
            Response::new(StreamBody::new(futures::stream::iter(chunks)).boxed())
        }
        "redirect" => {
            let target = request.uri().query().unwrap_or("/hello").to_owned();
            let mut response = full("");
            *response.status_mut() =
                http::StatusCode::from_u16(number(1) as u16).unwrap_or(http::StatusCode::FOUND);
            response.headers_mut().insert(
                http::header::LOCATION,
                http::HeaderValue::from_str(&target).expect("a valid location"),
            );
            response
        }
        "sink" => {
            let outcome = match request.into_body().collect().await {
                Ok(body) => Ok(body.to_bytes().len()),
                Err(err) => Err(err.to_string()),
            };
            if let Ok(mut sunk) = sunk.lock() {
                sunk.push(outcome);
            }
            full("sunk")
        }
        "echo" => {
            let body = request.into_body().collect().await.map(|b| b.to_bytes());
            full(body.unwrap_or_default())
        }
        _ => {
            let mut response = full("no such upstream route");
            *response.status_mut() = http::StatusCode::NOT_FOUND;
            response
        }
    })
}

fn full(body: impl Into<Bytes>) -> Response<Body> {
    Response::new(Full::new(body.into()).boxed())
}

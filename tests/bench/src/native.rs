//! The baselines: plain tokio + hyper servers, served the way squall serves
//! (hyper-util's auto builder, TCP_NODELAY, a task per connection, the same
//! listen backlog).

use anyhow::Result;
use bytes::Bytes;
use clap::Args;
use futures::future::join_all;
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use std::convert::Infallible;
use std::io::Write;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

pub(crate) type Response = http::Response<Full<Bytes>>;

#[derive(Args)]
pub(crate) struct NativeArgs {
    #[arg(long, default_value = "127.0.0.1:0")]
    pub(crate) listen: SocketAddr,
}

/// Hello world, and `/sleep/{ms}` like the hello example (the parked
/// baseline).
pub(crate) fn run(args: &NativeArgs) -> Result<()> {
    serve(args.listen, |request: http::Request<Incoming>| async move {
        if let Some(ms) = request.uri().path().strip_prefix("/sleep/") {
            let ms: u64 = ms.parse().unwrap_or(0);
            tokio::time::sleep(Duration::from_millis(ms)).await;
            return Ok(http::Response::new(Full::new(Bytes::from(format!(
                "slept {ms}ms"
            )))));
        }
        Ok(text(
            "text/plain; charset=utf-8",
            Bytes::from_static(b"Hello, world!"),
        ))
    })
}

/// The fanout baseline: the same work as `examples/fanout`, natively.
pub(crate) fn run_fanout(args: &NativeArgs) -> Result<()> {
    let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
    serve(args.listen, move |request: http::Request<Incoming>| {
        let client = client.clone();
        async move {
            let urls = request
                .uri()
                .query()
                .unwrap_or_default()
                .split('&')
                .filter_map(|pair| pair.strip_prefix("url="))
                .map(str::to_owned);
            let fetches = urls.map(|url| {
                let client = client.clone();
                async move {
                    let started = Instant::now();
                    let outcome = async {
                        let response = client.get(url.parse()?).await?;
                        let status = response.status().as_u16();
                        let bytes = response.into_body().collect().await?.to_bytes().len();
                        Ok::<_, Box<dyn std::error::Error + Send + Sync>>((status, bytes))
                    }
                    .await;
                    let ms = started.elapsed().as_millis() as u64;
                    match outcome {
                        Ok((status, bytes)) => serde_json::json!({
                            "url": url, "status": status, "bytes": bytes, "ms": ms
                        }),
                        Err(err) => serde_json::json!({
                            "url": url, "error": "connect", "detail": err.to_string(), "ms": ms
                        }),
                    }
                }
            });
            let results = join_all(fetches).await;
            let body = serde_json::to_vec(&results).unwrap_or_default();
            Ok(text("application/json", Bytes::from(body)))
        }
    })
}

#[derive(Args)]
pub(crate) struct NativeKvArgs {
    #[arg(long, default_value = "127.0.0.1:0")]
    pub(crate) listen: SocketAddr,
    /// Where the store file goes.
    #[arg(long)]
    data_dir: std::path::PathBuf,
}

/// The kv baseline: the state guest's `GET`/`PUT /kv/{key}` and `/fill`,
/// natively, on the same embedded store.
pub(crate) fn run_kv(args: &NativeKvArgs) -> Result<()> {
    let store = std::sync::Arc::new(squall::testing::KvStore::open(
        &args.data_dir.join("kv.redb"),
    )?);
    serve(args.listen, move |request: http::Request<Incoming>| {
        let store = store.clone();
        async move {
            let path = request.uri().path().to_owned();
            let status = |code: u16| {
                let mut response = http::Response::new(Full::new(Bytes::new()));
                *response.status_mut() = http::StatusCode::from_u16(code)
                    .unwrap_or(http::StatusCode::INTERNAL_SERVER_ERROR);
                response
            };
            if path == "/fill" {
                let query = request.uri().query().unwrap_or_default().to_owned();
                let field = |name: &str| {
                    query
                        .split('&')
                        .find_map(|pair| pair.strip_prefix(name)?.strip_prefix('='))
                        .map(str::to_owned)
                };
                let prefix = field("prefix").unwrap_or_default();
                let count: usize = field("count").and_then(|n| n.parse().ok()).unwrap_or(1);
                let size: usize = field("size").and_then(|n| n.parse().ok()).unwrap_or(1);
                let writes = (0..count).map(|n| {
                    let store = store.clone();
                    let key = format!("{prefix}{n:05}");
                    async move { store.set("bench", &key, vec![b'v'; size]).await }
                });
                let failed = join_all(writes).await.iter().any(Result::is_err);
                return Ok(status(if failed { 500 } else { 200 }));
            }
            let Some(key) = path.strip_prefix("/kv/").map(str::to_owned) else {
                return Ok(status(404));
            };
            if request.method() == http::Method::PUT {
                let Ok(body) = request.into_body().collect().await else {
                    return Ok(status(400));
                };
                return Ok(
                    match store.set("bench", &key, body.to_bytes().to_vec()).await {
                        Ok(()) => status(204),
                        Err(_) => status(500),
                    },
                );
            }
            Ok(match store.get("bench", &key).await {
                Ok(Some(value)) => text("application/octet-stream", Bytes::from(value)),
                Ok(None) => status(404),
                Err(_) => status(500),
            })
        }
    })
}

fn text(content_type: &'static str, body: Bytes) -> Response {
    let mut response = http::Response::new(Full::new(body));
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static(content_type),
    );
    response
}

/// Serve `handle` on `listen` until killed, announcing the URL on stdout.
/// Upgrades are served as squall serves them (the realtime baseline's
/// WebSockets).
pub(crate) fn serve<F, Fut>(listen: SocketAddr, handle: F) -> Result<()>
where
    F: Fn(http::Request<Incoming>) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = Result<Response, Infallible>> + Send + 'static,
{
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let listener = squall::bind(listen)?;
        println!("listening on http://{}/", listener.local_addr()?);
        std::io::stdout().flush()?;
        let builder = auto::Builder::new(TokioExecutor::new());
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let _ = stream.set_nodelay(true);
            let connection = builder
                .serve_connection_with_upgrades(TokioIo::new(stream), service_fn(handle.clone()))
                .into_owned();
            tokio::spawn(async move {
                let _ = connection.await;
            });
        }
    })
}

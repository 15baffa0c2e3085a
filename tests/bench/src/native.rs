//! The baseline: a plain tokio + hyper hello world, served the way squall
//! serves (hyper-util's auto builder, TCP_NODELAY, a task per connection).

use anyhow::Result;
use bytes::Bytes;
use clap::Args;
use http_body_util::Full;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use std::convert::Infallible;
use std::io::Write;
use std::net::SocketAddr;

#[derive(Args)]
pub struct NativeArgs {
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
}

pub fn run(args: &NativeArgs) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let listener = squall::server::bind(args.listen)?;
        println!("listening on http://{}/", listener.local_addr()?);
        std::io::stdout().flush()?;
        let builder = auto::Builder::new(TokioExecutor::new());
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let _ = stream.set_nodelay(true);
            let service = service_fn(|request: http::Request<hyper::body::Incoming>| async move {
                // `/sleep/{ms}`, like the hello example: the parked-request baseline.
                if let Some(ms) = request.uri().path().strip_prefix("/sleep/") {
                    let ms: u64 = ms.parse().unwrap_or(0);
                    tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
                    let body = Full::new(Bytes::from(format!("slept {ms}ms")));
                    return Ok::<_, Infallible>(http::Response::new(body));
                }
                let mut response =
                    http::Response::new(Full::new(Bytes::from_static(b"Hello, world!")));
                response.headers_mut().insert(
                    http::header::CONTENT_TYPE,
                    http::HeaderValue::from_static("text/plain; charset=utf-8"),
                );
                Ok::<_, Infallible>(response)
            });
            let connection = builder
                .serve_connection(TokioIo::new(stream), service)
                .into_owned();
            tokio::spawn(async move {
                let _ = connection.await;
            });
        }
    })
}

/// The fanout baseline: the same work as `examples/fanout`, natively.
#[derive(Args)]
pub struct NativeFanoutArgs {
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
}

pub fn run_fanout(args: &NativeFanoutArgs) -> Result<()> {
    use futures::future::join_all;
    use http_body_util::{BodyExt, Empty};
    use hyper_util::client::legacy::Client;

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let listener = squall::server::bind(args.listen)?;
        println!("listening on http://{}/", listener.local_addr()?);
        std::io::stdout().flush()?;
        let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
        let builder = auto::Builder::new(TokioExecutor::new());
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let _ = stream.set_nodelay(true);
            let client = client.clone();
            let service = service_fn(move |request: http::Request<hyper::body::Incoming>| {
                let client = client.clone();
                async move {
                    let urls: Vec<String> = request
                        .uri()
                        .query()
                        .unwrap_or_default()
                        .split('&')
                        .filter_map(|pair| pair.strip_prefix("url="))
                        .map(str::to_owned)
                        .collect();
                    let fetches = urls.into_iter().map(|url| {
                        let client = client.clone();
                        async move {
                            let started = std::time::Instant::now();
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
                    let mut response = http::Response::new(Full::new(Bytes::from(body)));
                    response.headers_mut().insert(
                        http::header::CONTENT_TYPE,
                        http::HeaderValue::from_static("application/json"),
                    );
                    Ok::<_, Infallible>(response)
                }
            });
            let connection = builder
                .serve_connection(TokioIo::new(stream), service)
                .into_owned();
            tokio::spawn(async move {
                let _ = connection.await;
            });
        }
    })
}

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

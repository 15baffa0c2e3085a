//! A standard WASI 0.3 `wasi:http/service` component, written against the
//! `wasip3` crate alone: Squall must serve it unchanged.

use bytes::Bytes;
use http_body_util::{BodyExt, Full, StreamBody};
use wasip3::http::types::{self, ErrorCode};
use wasip3::http_compat::{
    IncomingRequestBody, http_from_wasi_request, http_from_wasi_response, http_into_wasi_request,
    http_into_wasi_response,
};

wasip3::http::service::export!(Hello);

struct Hello;

thread_local! {
    static SERVED: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

type Boxed = http_body_util::combinators::UnsyncBoxBody<Bytes, ErrorCode>;

impl wasip3::exports::http::handler::Guest for Hello {
    async fn handle(request: types::Request) -> Result<types::Response, ErrorCode> {
        let request = http_from_wasi_request(request)?;
        http_into_wasi_response(serve(request).await?)
    }
}

async fn serve(
    request: http::Request<IncomingRequestBody>,
) -> Result<http::Response<Boxed>, ErrorCode> {
    let path = request
        .uri()
        .path_and_query()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_default();
    if path == "/" {
        return Ok(text(200, "Hello from WASI 0.3!"));
    }
    if path == "/served" {
        // Requests this instance has served: 1 unless the host reuses it.
        let served = SERVED.with(|served| {
            served.set(served.get() + 1);
            served.get()
        });
        return Ok(text(200, &served.to_string()));
    }
    if let Some(ms) = path.strip_prefix("/sleep/") {
        // Waits on a host timer: on a shared instance, others run meanwhile.
        let ms: u64 = ms.parse().map_err(|_| ErrorCode::HttpRequestUriInvalid)?;
        wasip3::clocks::monotonic_clock::wait_for(ms * 1_000_000).await;
        return Ok(text(200, "slept"));
    }
    if let Some(ms) = path.strip_prefix("/hold/") {
        // Holds back new calls (backpressure) while it waits.
        let ms: u64 = ms.parse().map_err(|_| ErrorCode::HttpRequestUriInvalid)?;
        wasip3::wit_bindgen::backpressure_inc();
        wasip3::clocks::monotonic_clock::wait_for(ms * 1_000_000).await;
        wasip3::wit_bindgen::backpressure_dec();
        return Ok(text(200, "held"));
    }
    if path == "/panic" {
        panic!("the p3 guest panics on purpose");
    }
    if path == "/spin" {
        let mut n: u64 = 0;
        loop {
            n = std::hint::black_box(n.wrapping_add(1));
        }
    }
    if path == "/endless" {
        // A body that never ends, a chunk every 20 ms.
        let chunks = futures_stream(u32::MAX);
        return Ok(http::Response::new(StreamBody::new(chunks).boxed_unsync()));
    }
    if path == "/stream" {
        // Five chunks, 20 ms apart: the body is produced while it is read.
        let chunks = futures_stream(5);
        return Ok(http::Response::new(StreamBody::new(chunks).boxed_unsync()));
    }
    if path == "/echo" {
        let body = request.into_body().collect().await?.to_bytes();
        return Ok(http::Response::new(
            Full::new(body)
                .map_err(|never| match never {})
                .boxed_unsync(),
        ));
    }
    if let Some(url) = path.strip_prefix("/after?url=") {
        // Answer at once; log and fetch after the response, as
        // `wasmtime serve` lets a guest do (Cloudflare's `waitUntil`).
        let url = url.to_owned();
        wasip3::spawn_local(async move {
            wasip3::clocks::monotonic_clock::wait_for(50_000_000).await;
            println!("p3 work after the response");
            match get(&url).await {
                Ok((status, _)) => println!("p3 fetched after the response: {status}"),
                Err(code) => println!("p3 fetch after the response failed: {code:?}"),
            }
        });
        return Ok(text(200, "answered"));
    }
    if path == "/after-spin" {
        // Work after the response that never ends: the app's limits stop it.
        wasip3::spawn_local(async {
            wasip3::clocks::monotonic_clock::wait_for(10_000_000).await;
            println!("p3 spinning after the response");
            let mut n: u64 = 0;
            loop {
                n = std::hint::black_box(n.wrapping_add(1));
            }
        });
        return Ok(text(200, "answered"));
    }
    if let Some(url) = path.strip_prefix("/fetch?url=") {
        return Ok(match get(url).await {
            Ok((status, body)) => {
                text(200, &format!("{status} {}", String::from_utf8_lossy(&body)))
            }
            Err(code) => text(502, &format!("{code:?}")),
        });
    }
    Ok(text(404, "not found"))
}

/// GET `url` through `wasi:http/client`: its status and body.
async fn get(url: &str) -> Result<(u16, Bytes), ErrorCode> {
    let outgoing = http::Request::get(url)
        .body(Full::new(Bytes::new()))
        .map_err(|_| ErrorCode::HttpRequestUriInvalid)?;
    let response = wasip3::http::client::send(http_into_wasi_request(outgoing)?).await?;
    let response = http_from_wasi_response(response)?;
    let status = response.status().as_u16();
    let body = response.into_body().collect().await?.to_bytes();
    Ok((status, body))
}

fn text(status: u16, body: &str) -> http::Response<Boxed> {
    let mut response = http::Response::new(
        Full::new(Bytes::from(body.to_owned()))
            .map_err(|never| match never {})
            .boxed_unsync(),
    );
    *response.status_mut() = http::StatusCode::from_u16(status).unwrap_or(http::StatusCode::OK);
    response
}

/// `count` chunks with a host timer between them.
fn futures_stream(
    count: u32,
) -> impl futures::Stream<Item = Result<http_body::Frame<Bytes>, ErrorCode>> {
    futures::stream::unfold(0, move |i| async move {
        if i >= count {
            return None;
        }
        wasip3::clocks::monotonic_clock::wait_for(20_000_000).await;
        let chunk = Bytes::from(format!("chunk {i}\n"));
        Some((Ok(http_body::Frame::data(chunk)), i + 1))
    })
}

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
    if let Some(url) = path.strip_prefix("/fetch?url=") {
        let outgoing = http::Request::get(url)
            .body(Full::new(Bytes::new()))
            .map_err(|_| ErrorCode::HttpRequestUriInvalid)?;
        let response = match wasip3::http::client::send(http_into_wasi_request(outgoing)?).await {
            Ok(response) => http_from_wasi_response(response)?,
            Err(code) => return Ok(text(502, &format!("{code:?}"))),
        };
        let status = response.status();
        let body = response.into_body().collect().await?.to_bytes();
        return Ok(text(
            200,
            &format!("{} {}", status.as_u16(), String::from_utf8_lossy(&body)),
        ));
    }
    Ok(text(404, "not found"))
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

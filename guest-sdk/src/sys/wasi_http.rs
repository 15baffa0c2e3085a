//! The standard backend: the WASI 0.3 `wasi:http/service` world through the
//! `wasip3` crate, to run on `wasmtime serve` and other standard hosts.
//!
//! The store, pub/sub, WebSockets and TCP are Squall capabilities: here
//! their calls fail or do nothing (`absent.rs`).

pub(crate) use super::absent::*;
use crate::body::{BodyTask, OutgoingBody};
use crate::client::Outgoing;
use crate::http::{FetchError, FetchResponse};
use crate::{Body, BodyWriter, Disconnected, Request, Response};
use ::http::header;
use futures::channel::mpsc;
use futures::{SinkExt, StreamExt};
use http_body_util::BodyExt;
use http_body_util::combinators::UnsyncBoxBody;
use wasip3::http::types::ErrorCode;
use wasip3::http_compat::{IncomingRequestBody, IncomingResponseBody};

/// A value whose `Debug` says only that it is there.
pub(crate) struct Opaque<T>(T);

impl<T> std::fmt::Debug for Opaque<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("..")
    }
}

/// A request body as the host sent it.
#[derive(Debug, Default)]
pub(crate) enum IncomingBody {
    #[default]
    Empty,
    Standard(Opaque<IncomingRequestBody>),
}

impl IncomingBody {
    /// The next chunk, or `None` at the end.
    pub(crate) async fn chunk(&mut self) -> Option<Vec<u8>> {
        match std::mem::take(self) {
            IncomingBody::Empty => None,
            IncomingBody::Standard(Opaque(mut body)) => {
                while let Some(Ok(frame)) = body.frame().await {
                    if let Ok(data) = frame.into_data() {
                        *self = IncomingBody::Standard(Opaque(body));
                        return Some(data.to_vec());
                    }
                }
                None
            }
        }
    }
}

/// The sending end of a body's chunks, one at a time: backpressure.
#[derive(Debug)]
pub(crate) struct BodySink(mpsc::Sender<bytes::Bytes>);

impl BodySink {
    /// Send `chunk`, waiting until the body has taken it.
    pub(crate) async fn write(&mut self, chunk: Vec<u8>) -> Result<(), Disconnected> {
        self.0
            .send(bytes::Bytes::from(chunk))
            .await
            .map_err(|_| Disconnected)
    }
}

/// A body for `http_compat`, as the `wasip3` crate converts it.
type StandardBody = UnsyncBoxBody<bytes::Bytes, ErrorCode>;

/// `body` as an `http_body`; a streamed one is written by a task of its own.
fn standard_body(body: OutgoingBody) -> StandardBody {
    match body {
        OutgoingBody::Bytes(bytes) => http_body_util::Full::new(bytes::Bytes::from(bytes))
            .map_err(|never| match never {})
            .boxed_unsync(),
        OutgoingBody::Stream(write) => {
            let chunks = spawn_writer(write);
            let frames = chunks.map(|chunk| Ok(http_body::Frame::data(chunk)));
            http_body_util::StreamBody::new(frames).boxed_unsync()
        }
    }
}

fn spawn_writer(write: BodyTask) -> mpsc::Receiver<bytes::Bytes> {
    let (chunks, receiver) = mpsc::channel(0);
    drop(wit_bindgen::spawn_local(write(BodyWriter::new(BodySink(
        chunks,
    )))));
    receiver
}

/// A fetched response's body.
#[derive(Debug)]
pub(crate) struct FetchBody(Option<Opaque<IncomingResponseBody>>);

impl FetchBody {
    /// The next chunk; `None` once it has all arrived, an error if it was cut short.
    pub(crate) async fn chunk(&mut self) -> Option<Result<Vec<u8>, FetchError>> {
        let Opaque(mut body) = self.0.take()?;
        loop {
            match body.frame().await? {
                Ok(frame) => {
                    if let Ok(data) = frame.into_data() {
                        self.0 = Some(Opaque(body));
                        return Some(Ok(data.to_vec()));
                    }
                }
                Err(code) => return Some(Err(fetch_error(code))),
            }
        }
    }
}

/// Send `request` with `wasi:http/client.send`. Redirects are not followed
/// here, and the timeout is the SDK's own.
pub(crate) async fn fetch(request: Outgoing) -> Result<FetchResponse, FetchError> {
    use wasip3::http_compat::{http_from_wasi_response, http_into_wasi_request};
    let Outgoing {
        method,
        url,
        headers,
        body,
        timeout,
        // `wasi:http` has no redirect option: 3xx responses come back as they are.
        max_redirects: _not_followed,
    } = request;
    let body = standard_body(body);
    let uri: ::http::Uri = url
        .parse()
        .map_err(|err| FetchError::InvalidRequest(format!("bad URL {url:?}: {err}")))?;
    let mut request = ::http::Request::new(body);
    *request.method_mut() = method;
    *request.uri_mut() = uri;
    *request.headers_mut() = headers;
    let request = http_into_wasi_request(request).map_err(fetch_error)?;
    let sending = wasip3::http::client::send(request);
    let response = match timeout {
        Some(limit) => crate::timeout(limit, sending)
            .await
            .map_err(|_| FetchError::Timeout)?,
        None => sending.await,
    }
    .map_err(fetch_error)?;
    let response = http_from_wasi_response(response).map_err(fetch_error)?;
    let (parts, body) = response.into_parts();
    Ok(FetchResponse::new(
        parts.status,
        parts.headers,
        FetchBody(Some(Opaque(body))),
    ))
}

/// The SDK's kind for a `wasi:http` error code.
fn fetch_error(code: ErrorCode) -> FetchError {
    use ErrorCode as Code;
    match code {
        Code::HttpRequestDenied => FetchError::Denied("the host denied the request".into()),
        Code::ConnectionTimeout
        | Code::ConnectionReadTimeout
        | Code::ConnectionWriteTimeout
        | Code::HttpResponseTimeout
        | Code::DnsTimeout => FetchError::Timeout,
        Code::TlsProtocolError | Code::TlsCertificateError | Code::TlsAlertReceived(_) => {
            FetchError::Tls(format!("{code:?}"))
        }
        Code::HttpResponseBodySize(_) => FetchError::TooLarge,
        Code::HttpRequestUriInvalid | Code::HttpRequestMethodInvalid => {
            FetchError::InvalidRequest(format!("{code:?}"))
        }
        Code::DnsError(_)
        | Code::DestinationNotFound
        | Code::DestinationUnavailable
        | Code::DestinationIpProhibited
        | Code::DestinationIpUnroutable
        | Code::ConnectionRefused
        | Code::ConnectionTerminated => FetchError::Connect(format!("{code:?}")),
        Code::ConnectionLimitReached => FetchError::Limit(format!("{code:?}")),
        other => FetchError::Protocol(format!("{other:?}")),
    }
}

/// Nanoseconds on the host's monotonic clock.
pub(crate) fn monotonic_now() -> u64 {
    wasip3::clocks::monotonic_clock::now()
}

/// Wait `nanos` nanoseconds without blocking the host.
pub(crate) async fn sleep_ns(nanos: u64) {
    wasip3::clocks::monotonic_clock::wait_for(nanos).await;
}

/// A standard host has no log import: the line goes to stderr.
pub(crate) fn log(level: crate::log::Level, message: &str) {
    eprintln!("{level:?}: {message}");
}

/// No config values on a standard host.
pub(crate) fn config_get(_key: &str) -> Option<String> {
    None
}

fn request_from_standard(request: ::http::Request<IncomingRequestBody>) -> Request {
    let (parts, body) = request.into_parts();
    let authority = parts
        .uri
        .authority()
        .map(|a| a.as_str().to_owned())
        .or_else(|| {
            parts
                .headers
                .get(header::HOST)?
                .to_str()
                .ok()
                .map(str::to_owned)
        });
    Request::from_parts(
        parts.method,
        parts.uri.path().to_owned(),
        parts.uri.query().unwrap_or_default().to_owned(),
        authority,
        parts.headers,
        Body::from_sys(IncomingBody::Standard(Opaque(body))),
    )
}

fn response_into_standard(response: Response) -> ::http::Response<StandardBody> {
    let (status, headers, body) = response.into_parts();
    let mut response = ::http::Response::new(standard_body(body));
    *response.status_mut() = status;
    *response.headers_mut() = headers;
    response
}

/// Export `app`, a `fn() -> Router`, as a standard `wasi:http/handler`.
#[macro_export]
macro_rules! export {
    ($app:path) => {
        #[allow(unsafe_code)]
        const _: () = {
            struct SquallApp;

            impl $crate::__private::wasip3::exports::http::handler::Guest for SquallApp {
                async fn handle(
                    request: $crate::__private::wasip3::http::types::Request,
                ) -> ::core::result::Result<
                    $crate::__private::wasip3::http::types::Response,
                    $crate::__private::wasip3::http::types::ErrorCode,
                > {
                    $crate::__private::dispatch_standard(&$crate::__private::router($app), request)
                        .await
                }
            }

            $crate::__private::wasip3::http::service::export!(SquallApp);
        };
    };
}

/// What `export!` expands to: the `wasip3` crate, and the glue between its
/// types and the SDK's.
pub(crate) mod __private {
    pub use wasip3;

    use super::{request_from_standard, response_into_standard};
    use wasip3::http::types::{ErrorCode, Request, Response};
    use wasip3::http_compat::{http_from_wasi_request, http_into_wasi_response};

    /// Run one standard request through `router`.
    pub async fn dispatch_standard(
        router: &crate::Router,
        request: Request,
    ) -> Result<Response, ErrorCode> {
        let request = request_from_standard(http_from_wasi_request(request)?);
        let response = crate::dispatch::handle(router, request).await;
        http_into_wasi_response(response_into_standard(response))
    }
}

//! One request, one fresh instance: convert the request for the guest, run
//! `handle` under the app's limits, and turn what comes back (or what went
//! wrong) into an HTTP response.

use crate::bindings::types as wit;
use crate::body::{
    BodyError, ChunkConsumer, IncomingBodyProducer, OutgoingBody, discard_in_background,
};
use crate::runtime::{Guest, LimitExceeded, SharedApp};
use bytes::Bytes;
use futures::channel::{mpsc, oneshot};
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use hyper::body::{Body as _, Incoming};
use std::future::poll_fn;
use std::pin::{Pin, pin};
use std::task::Poll;
use std::time::Instant;
use tokio::time::error::Elapsed;
use tracing::Instrument;
use wasmtime::PoolConcurrencyLimitError;
use wasmtime::component::StreamReader;

/// What the guest answered, before its body is done.
struct Head {
    status: u16,
    headers: wit::Fields,
    body: HeadBody,
}

enum HeadBody {
    Full(Vec<u8>),
    Stream(mpsc::Receiver<Bytes>),
}

/// Run `request` through a fresh instance of `app`.
pub async fn dispatch(app: SharedApp, request: Request<Incoming>) -> Response<OutgoingBody> {
    let started = Instant::now();
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let cancelled = OnCancel::new("the client went away before the response");
    let response = match app.guest() {
        Guest::Squall(_) => run(app, request).await,
        Guest::Standard(_) => crate::standard::run(app, request).await,
    };
    cancelled.disarm();
    tracing::info!(
        method = %method,
        path,
        status = response.status().as_u16(),
        ms = format_args!("{:.2}", started.elapsed().as_secs_f64() * 1000.0),
        "request"
    );
    response
}

async fn run(app: SharedApp, request: Request<Incoming>) -> Response<OutgoingBody> {
    let limits = app.limits().clone();
    let (parts, body) = request.into_parts();
    if body.size_hint().lower() > limits.max_body {
        discard_in_background(body);
        return error_response(StatusCode::PAYLOAD_TOO_LARGE);
    }
    let body =
        (!body.is_end_stream()).then(|| IncomingBodyProducer::request(body, limits.max_body));
    let head = request_head_to_wit(&parts);
    let guest_request = GuestRequest {
        method: head.method,
        path: head.path,
        query: head.query,
        authority: head.authority,
        headers: head.headers,
        body,
    };

    let (answer, guest) =
        until_answer(limits.timeout, |head| run_guest(app, guest_request, head)).await;
    let head = match answer {
        Ok(head) => head,
        Err(stopped) => return failure_response(stopped),
    };

    let (status, headers) = match guest_response_head(head.status, head.headers) {
        Ok(head) => head,
        Err(reason) => {
            tracing::error!("the guest answered an invalid response: {reason}");
            return error_response(StatusCode::INTERNAL_SERVER_ERROR);
        }
    };
    let body = match head.body {
        HeadBody::Full(bytes) => OutgoingBody::full(bytes),
        HeadBody::Stream(chunks) => OutgoingBody::Streamed {
            chunks,
            // A guest that already finished wrote all it had to the channel.
            guest: guest.map(keep_streaming),
        },
    };
    let mut response = Response::new(body);
    *response.status_mut() = status;
    *response.headers_mut() = headers;
    response
}

/// Run a guest whose body is still streaming in a task of its own, which
/// owns its store and is aborted if the client goes away. The body ends
/// cleanly only if the guest does.
fn keep_streaming<F>(guest: Running<F>) -> tokio::task::JoinHandle<Result<(), BodyError>>
where
    F: Future<Output = wasmtime::Result<()>> + Send + 'static,
{
    tokio::spawn(
        async move {
            let cancelled = OnCancel::new("the client went away during the response body");
            let finished = guest.await;
            cancelled.disarm();
            match finished {
                Ok(Ok(())) => Ok(()),
                Ok(Err(err)) => {
                    tracing::warn!("the guest failed while streaming its body: {err:#}");
                    Err(BodyError::from(format!("{err:#}")))
                }
                Err(Elapsed { .. }) => {
                    tracing::warn!("the request's timeout ended its streamed body");
                    Err(BodyError::from("timeout"))
                }
            }
        }
        .in_current_span(),
    )
}

/// Logs a cancellation if dropped before [`OnCancel::disarm`]: dropping the
/// future that owns a store is how a request's guest and its pending host
/// calls (timers, fetches) are cancelled.
struct OnCancel {
    what: &'static str,
    armed: bool,
}

impl OnCancel {
    fn new(what: &'static str) -> Self {
        OnCancel { what, armed: true }
    }

    fn disarm(mut self) {
        self.armed = false;
    }
}

impl Drop for OnCancel {
    fn drop(&mut self) {
        if self.armed {
            tracing::info!(
                "cancelled: {}; the guest and its pending calls are dropped",
                self.what
            );
        }
    }
}

/// The request's fields, waiting for a store to become a `wit::Request`.
struct GuestRequest {
    method: wit::Method,
    path: String,
    query: String,
    authority: Option<String>,
    headers: wit::Fields,
    body: Option<IncomingBodyProducer>,
}

/// Instantiate the app in a fresh store, call `handle`, send the response
/// head out, and keep the store alive until a streamed body has ended.
async fn run_guest(
    app: SharedApp,
    request: GuestRequest,
    head: oneshot::Sender<Head>,
) -> wasmtime::Result<()> {
    let mut store = app.new_store();
    let guest = app.squall_pre()?.instantiate_async(&mut store).await?;
    store
        .run_concurrent(async move |accessor| -> wasmtime::Result<()> {
            let body = match request.body {
                Some(producer) => {
                    wit::Body::Stream(accessor.with(|store| StreamReader::new(store, producer))?)
                }
                None => wit::Body::Empty,
            };
            let request = wit::Request {
                method: request.method,
                path: request.path,
                query: request.query,
                authority: request.authority,
                headers: request.headers,
                body,
            };
            let response = guest
                .squall_app_handler()
                .call_handle(accessor, request)
                .await?;
            let body = match response.body {
                wit::Body::Empty => HeadBody::Full(Vec::new()),
                wit::Body::Bytes(bytes) => HeadBody::Full(bytes),
                wit::Body::Stream(reader) => {
                    let (consumer, chunks, ended) = ChunkConsumer::new();
                    accessor.with(|store| reader.pipe(store, consumer))?;
                    send_head(
                        head,
                        response.status,
                        response.headers,
                        HeadBody::Stream(chunks),
                    );
                    // Keep the guest running until it closes its stream.
                    let _ = ended.await;
                    return Ok(());
                }
            };
            send_head(head, response.status, response.headers, body);
            Ok(())
        })
        .await?
}

fn send_head(sender: oneshot::Sender<Head>, status: u16, headers: wit::Fields, body: HeadBody) {
    // A closed receiver means nobody waits for the answer any more.
    let _ = sender.send(Head {
        status,
        headers,
        body,
    });
}

/// How a guest stopped without answering: its deadline, or its own end.
pub(crate) type Stopped = Result<wasmtime::Result<()>, Elapsed>;

/// A guest under its deadline, still running.
pub(crate) type Running<F> = Pin<Box<tokio::time::Timeout<F>>>;

/// Start a guest with the sender of its answer and drive it, within
/// `timeout`, until it answers or stops. Returns the answer (or how it
/// stopped) and the guest if it is still running, for its body.
pub(crate) async fn until_answer<T, F>(
    timeout: std::time::Duration,
    start: impl FnOnce(oneshot::Sender<T>) -> F,
) -> (Result<T, Stopped>, Option<Running<F>>)
where
    F: Future<Output = wasmtime::Result<()>>,
{
    let (sender, mut receiver) = oneshot::channel();
    let mut guest = Box::pin(tokio::time::timeout(timeout, start(sender)));
    let outcome = poll_fn(|cx| {
        if let Poll::Ready(stopped) = guest.as_mut().poll(cx) {
            return Poll::Ready(Err(stopped));
        }
        match pin!(&mut receiver).poll(cx) {
            Poll::Ready(Ok(answer)) => Poll::Ready(Ok(answer)),
            // The guest dropped the sender only by finishing; poll it again.
            Poll::Ready(Err(_)) | Poll::Pending => Poll::Pending,
        }
    })
    .await;
    match outcome {
        Ok(answer) => (Ok(answer), Some(guest)),
        // It answered in the step it finished in: good if it finished well.
        Err(stopped) => match receiver.try_recv() {
            Ok(Some(answer)) if stopped.as_ref().is_ok_and(Result::is_ok) => (Ok(answer), None),
            _ => (Err(stopped), None),
        },
    }
}

/// The status for a guest that stopped without answering.
fn failure_response(finished: Stopped) -> Response<OutgoingBody> {
    let status = match finished {
        Err(Elapsed { .. }) => {
            tracing::warn!("the request hit its timeout");
            StatusCode::GATEWAY_TIMEOUT
        }
        Ok(Ok(())) => {
            tracing::error!("the guest finished without answering");
            StatusCode::INTERNAL_SERVER_ERROR
        }
        Ok(Err(err)) => failure_status(&err),
    };
    error_response(status)
}

/// The status for a guest error (a trap, a limit, no free slot), logged.
pub(crate) fn failure_status(err: &wasmtime::Error) -> StatusCode {
    if let Some(limit) = err.downcast_ref::<LimitExceeded>() {
        tracing::warn!("{limit}");
        match limit {
            LimitExceeded::CpuTime => StatusCode::GATEWAY_TIMEOUT,
            LimitExceeded::RequestBody => StatusCode::PAYLOAD_TOO_LARGE,
        }
    } else if err.downcast_ref::<PoolConcurrencyLimitError>().is_some() {
        tracing::warn!("no instance slot is free: {err:#}");
        StatusCode::SERVICE_UNAVAILABLE
    } else if err
        .downcast_ref::<crate::body::BrokenRequestBody>()
        .is_some()
    {
        tracing::info!("{err:#}");
        StatusCode::BAD_REQUEST
    } else {
        tracing::error!("the guest failed: {err:?}");
        StatusCode::INTERNAL_SERVER_ERROR
    }
}

/// A short plain-text answer that reveals nothing about the guest.
pub fn error_response(status: StatusCode) -> Response<OutgoingBody> {
    let reason = status.canonical_reason().unwrap_or("Error");
    let mut response = Response::new(OutgoingBody::full(format!("{reason}\n")));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

/// Headers the connection owns; a guest may not set them.
pub(crate) fn is_connection_header(name: &HeaderName) -> bool {
    matches!(
        name.as_str(),
        "connection"
            | "content-length"
            | "keep-alive"
            | "proxy-connection"
            | "transfer-encoding"
            | "upgrade"
            | "te"
            | "trailer"
    )
}

/// A request's head as the guest sees it, with an empty body.
pub(crate) fn request_head_to_wit(parts: &http::request::Parts) -> wit::Request {
    wit::Request {
        method: method_to_wit(&parts.method),
        path: parts.uri.path().to_owned(),
        query: parts.uri.query().unwrap_or_default().to_owned(),
        authority: authority(parts),
        headers: fields_to_wit(&parts.headers),
        body: wit::Body::Empty,
    }
}

/// A guest's status and headers, checked, without connection-level headers.
pub(crate) fn guest_response_head(
    status: u16,
    fields: wit::Fields,
) -> Result<(StatusCode, HeaderMap), String> {
    let status = StatusCode::from_u16(status)
        .map_err(|_| format!("status {status} is not an HTTP status"))?;
    if status.is_informational() {
        return Err(format!("status {status} is informational"));
    }
    let mut headers = HeaderMap::with_capacity(fields.len());
    for (name, value) in fields {
        let name = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| format!("{name:?} is not a header name"))?;
        let value = HeaderValue::from_bytes(&value)
            .map_err(|_| format!("the value of header {name} is not valid"))?;
        if !is_connection_header(&name) {
            headers.append(name, value);
        }
    }
    Ok((status, headers))
}

fn authority(parts: &http::request::Parts) -> Option<String> {
    parts
        .uri
        .authority()
        .map(|authority| authority.as_str().to_owned())
        .or_else(|| {
            let host = parts.headers.get(header::HOST)?;
            host.to_str().ok().map(str::to_owned)
        })
}

pub(crate) fn fields_to_wit(headers: &HeaderMap) -> wit::Fields {
    headers
        .iter()
        .map(|(name, value)| (name.as_str().to_owned(), value.as_bytes().to_vec()))
        .collect()
}

fn method_to_wit(method: &Method) -> wit::Method {
    match *method {
        Method::GET => wit::Method::Get,
        Method::HEAD => wit::Method::Head,
        Method::POST => wit::Method::Post,
        Method::PUT => wit::Method::Put,
        Method::DELETE => wit::Method::Delete,
        Method::CONNECT => wit::Method::Connect,
        Method::OPTIONS => wit::Method::Options,
        Method::TRACE => wit::Method::Trace,
        Method::PATCH => wit::Method::Patch,
        ref other => wit::Method::Other(other.as_str().to_owned()),
    }
}

/// Instantiate `app`, call `handle` with a bodiless `GET path`, and return
/// the status: the per-request cost of a fresh instance without HTTP, for
/// benchmarks.
pub async fn call_once(app: SharedApp, path: &str) -> wasmtime::Result<u16> {
    let (head_sender, head_receiver) = oneshot::channel();
    let request = GuestRequest {
        method: wit::Method::Get,
        path: path.to_owned(),
        query: String::new(),
        authority: None,
        headers: Vec::new(),
        body: None,
    };
    run_guest(app, request, head_sender).await?;
    let head = head_receiver
        .await
        .map_err(|_| wasmtime::Error::msg("the guest gave no answer"))?;
    Ok(head.status)
}

//! The executor for squall-sdk apps: one request, one fresh instance.
//! Convert the request for the guest, run `handle` under the app's limits,
//! and turn what comes back (or what went wrong) into an HTTP response.

use super::error_response;
use crate::app::SharedApp;
use crate::bindings::types as wit;
use crate::body::{
    ChunkConsumer, InboundBody, IncomingBodyProducer, OutgoingBody, discard_in_background,
};
use crate::capabilities::GuestState;
use crate::convert::{guest_response_head, request_head_to_wit};
use crate::error::HostError;
use crate::reuse::Handler;
use crate::reuse::shared::{GuestRequest, Head, HeadBody, SharedAnswer, SharedRequest};
use crate::runtime::{
    OnCancel, Running, finish_in_background, finished, guest_tasks_done, until_answer,
};
use futures::channel::oneshot;
use http::{Request, Response, StatusCode};
use http_body::Body as _;
use tokio::sync::OwnedSemaphorePermit;
use tokio::task::AbortHandle;
use tracing::Instrument;
use wasmtime::component::{Accessor, StreamReader};

/// Run `request` through a fresh instance of the squall-sdk app `app`.
/// `admitted` is its place among the app's requests in flight, held until
/// the guest is done (its body too).
pub(super) async fn run(
    app: SharedApp,
    request: Request<InboundBody>,
    admitted: OwnedSemaphorePermit,
) -> Response<OutgoingBody> {
    let limits = app.limits().clone();
    let name = app.shared_name().clone();
    let (parts, body) = request.into_parts();
    if body.size_hint().lower() > limits.max_body {
        discard_in_background(body);
        return error_response(StatusCode::PAYLOAD_TOO_LARGE);
    }
    let body =
        (!body.is_end_stream()).then(|| IncomingBodyProducer::request(body, limits.max_body));
    let guest_request = GuestRequest {
        head: request_head_to_wit(&parts),
        body,
    };

    if let Some(shared) = app.shared_instances() {
        let request = SharedRequest::Squall(guest_request);
        let answer = match super::shared::run(app, shared, request, admitted).await {
            Ok(SharedAnswer::Squall(head)) => Ok(head),
            Ok(SharedAnswer::Standard(_) | SharedAnswer::HeldBack(..)) => Err(HostError::NoAnswer),
            Err(failure) => Err(failure),
        };
        return respond(&name, answer, |_| None);
    }
    let (answer, guest) = until_answer(limits.timeout, |head| async move {
        let outcome = run_guest(app, guest_request, head).await;
        drop(admitted);
        outcome
    })
    .await;
    respond(&name, answer, |streamed| match guest {
        Some(guest) if streamed => Some(keep_streaming(guest)),
        Some(guest) => {
            finish_in_background(guest);
            None
        }
        None => None,
    })
}

/// The response for the guest's `answer`. `guest_after` is told whether
/// the body streams, and gives what keeps the guest running for it.
fn respond(
    name: &std::sync::Arc<str>,
    answer: Result<Head, HostError>,
    guest_after: impl FnOnce(bool) -> Option<AbortHandle>,
) -> Response<OutgoingBody> {
    let head = match answer {
        Ok(head) => head,
        Err(failure) => return error_response(super::failed(name, &failure)),
    };
    let (status, headers) = match guest_response_head(head.status, head.headers) {
        Ok(head) => head,
        Err(reason) => {
            let failure = HostError::InvalidResponse(reason);
            return error_response(super::failed(name, &failure));
        }
    };
    let body = match head.body {
        HeadBody::Full(bytes) => {
            guest_after(false);
            OutgoingBody::full(bytes)
        }
        HeadBody::Stream(chunks, closed) => OutgoingBody::Streamed {
            chunks,
            guest: guest_after(true),
            finished: Some(closed),
        },
    };
    let mut response = Response::new(body);
    *response.status_mut() = status;
    *response.headers_mut() = headers;
    response
}

/// Run a guest whose body is still streaming in a task of its own, which
/// owns its store and is aborted if the client goes away before the body's
/// end; after it, the guest finishes its work after the response.
fn keep_streaming<F>(guest: Running<F>) -> AbortHandle
where
    F: Future<Output = wasmtime::Result<()>> + Send + 'static,
{
    tokio::spawn(
        async move {
            let cancelled = OnCancel::new("the client went away during the response body");
            let outcome = finished(guest.await);
            cancelled.disarm();
            match outcome {
                Ok(()) => {}
                Err(HostError::Timeout) => tracing::warn!(
                    "the request's timeout ended the guest (its streamed body, or its work after the response)"
                ),
                Err(HostError::Trap(err)) => {
                    tracing::warn!("the guest failed after answering: {err:#}");
                }
                Err(other) => tracing::warn!("after answering: {other}"),
            }
        }
        .in_current_span(),
    )
    .abort_handle()
}

/// Instantiate the app in a fresh store (or take an idle one), call
/// `handle`, send the response head out, and keep the store alive until a
/// streamed body has ended and the guest's tasks (work it spawned to run
/// after the response) are done.
async fn run_guest(
    app: SharedApp,
    request: GuestRequest,
    head: oneshot::Sender<Head>,
) -> wasmtime::Result<()> {
    let mut instance = app.instance_for_request().await?;
    let Handler::Squall(guest) = &instance.guest else {
        return Err(wasmtime::Error::msg("not a squall-sdk app"));
    };
    instance
        .store
        .run_concurrent(async move |accessor| -> wasmtime::Result<()> {
            let (answer, streaming) =
                handle_in(accessor, guest, wit_request(accessor, request)?).await?;
            // A closed receiver means nobody waits for the answer any more.
            let _ = head.send(answer);
            body_streamed(streaming).await;
            guest_tasks_done(accessor).await;
            Ok(())
        })
        .await??;
    // Served to the end, nothing failed: the instance may serve again.
    app.request_done(instance);
    Ok(())
}

/// The request for the guest, its body (if any) a stream the guest reads.
pub(super) fn wit_request(
    accessor: &Accessor<GuestState>,
    request: GuestRequest,
) -> wasmtime::Result<wit::Request> {
    let mut guest_request = request.head;
    if let Some(producer) = request.body {
        guest_request.body =
            wit::Body::Stream(accessor.with(|store| StreamReader::new(store, producer))?);
    }
    Ok(guest_request)
}

/// A streamed body's end (the guest closed its stream) and the word to
/// pass on that it did.
pub(super) type Streaming = (oneshot::Receiver<()>, oneshot::Sender<bool>);

/// Wait until a streamed body has ended, and pass on that the guest closed
/// its stream (had it failed, this future would be dropped before saying
/// so). Nothing to wait for with a whole body.
pub(super) async fn body_streamed(streaming: Option<Streaming>) {
    if let Some((ended, closed)) = streaming {
        let _ = ended.await;
        let _ = closed.send(true);
    }
}

/// Call `handle` with `request` inside the store's `run_concurrent`: the
/// answer's head, and for a streamed body what says when it ends.
pub(super) async fn handle_in(
    accessor: &Accessor<GuestState>,
    guest: &crate::bindings::App,
    request: wit::Request,
) -> wasmtime::Result<(Head, Option<Streaming>)> {
    let response = guest
        .squall_app_handler()
        .call_handle(accessor, request)
        .await?;
    let (body, streaming) = match response.body {
        wit::Body::Empty => (HeadBody::Full(Vec::new()), None),
        wit::Body::Bytes(bytes) => (HeadBody::Full(bytes), None),
        wit::Body::Stream(reader) => {
            let (consumer, chunks, ended) = ChunkConsumer::new();
            accessor.with(|store| reader.pipe(store, consumer))?;
            let (closed, closed_signal) = oneshot::channel();
            (
                HeadBody::Stream(chunks, closed_signal),
                Some((ended, closed)),
            )
        }
    };
    let head = Head {
        status: response.status,
        headers: response.headers,
        body,
    };
    Ok((head, streaming))
}

/// Instantiate `app`, call `handle` with a bodiless `GET path`, and return
/// the status: the per-request cost of a fresh instance without HTTP, for
/// benchmarks.
pub(crate) async fn call_once(app: SharedApp, path: &str) -> wasmtime::Result<u16> {
    let (head_sender, head_receiver) = oneshot::channel();
    let request = GuestRequest {
        head: wit::Request {
            method: wit::Method::Get,
            path: path.to_owned(),
            query: String::new(),
            authority: None,
            headers: Vec::new(),
            body: wit::Body::Empty,
        },
        body: None,
    };
    run_guest(app, request, head_sender).await?;
    let head = head_receiver
        .await
        .map_err(|_| wasmtime::Error::msg("the guest gave no answer"))?;
    Ok(head.status)
}

//! The executor for squall-sdk apps: one request, one fresh instance.
//! Convert the request for the guest, run `handle` under the app's limits,
//! and turn what comes back (or what went wrong) into an HTTP response.

use super::concurrent::ServeConcurrently;
use super::error_response;
use crate::app::AppRef;
use crate::bindings::types as wit;
use crate::body::{ChunkConsumer, InboundBody, IncomingBodyProducer, OutgoingBody};
use crate::capabilities::GuestState;
use crate::convert::request_head_to_wit;
use crate::error::HostError;
use crate::guest_call::{GuestRequest, Head, HeadBody, SquallCall};
use crate::reuse::Handler;
use crate::reuse::concurrent::ConcurrentInstances;
use crate::runtime::{
    OnCancel, Running, finish_in_background, finished, guest_tasks_done, until_answer,
};
use futures::channel::oneshot;
use http::Response;
use http::request::Parts;
use http_body::Body as _;
use std::sync::Arc;
use tokio::sync::OwnedSemaphorePermit;
use tokio::task::AbortHandle;
use tracing::Instrument;
use wasmtime::component::{Accessor, StreamReader};

/// Run a request through the squall-sdk app `app`: on an instance its
/// requests in flight share, if `shared`, else a fresh (or idle) one.
/// `admitted` is its place among the app's requests in flight, held until
/// the guest is done (its body too).
pub(super) async fn run(
    app: AppRef,
    parts: Parts,
    body: InboundBody,
    admitted: OwnedSemaphorePermit,
    shared: Option<Arc<ConcurrentInstances<SquallCall>>>,
) -> Response<OutgoingBody> {
    let limits = app.limits().clone();
    let name = app.name_label().clone();
    let body =
        (!body.is_end_stream()).then(|| IncomingBodyProducer::request(body, limits.max_body));
    let guest_request = GuestRequest {
        head: request_head_to_wit(&parts),
        body,
    };

    if let Some(shared) = shared {
        let answer = super::concurrent::run(app, shared, guest_request, admitted).await;
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
    let body = head.body;
    super::guest_response(name, head.status, head.headers, || match body {
        HeadBody::Full(bytes) => {
            guest_after(false);
            OutgoingBody::full(bytes)
        }
        HeadBody::Stream(chunks, closed) => OutgoingBody::Streamed {
            chunks,
            guest: guest_after(true),
            finished: Some(closed),
        },
    })
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
    app: AppRef,
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

impl ServeConcurrently for SquallCall {
    /// Its answer, then its streamed body's end.
    async fn serve<'a>(
        accessor: &'a Accessor<GuestState>,
        guest: &'a Handler,
        request: GuestRequest,
        give: impl FnOnce(Result<Head, HostError>) + Send + 'a,
    ) -> wasmtime::Result<()> {
        let Handler::Squall(guest) = guest else {
            return Err(wasmtime::Error::msg("not a squall-sdk app"));
        };
        let (head, ended) = handle_in(accessor, guest, wit_request(accessor, request)?).await?;
        give(Ok(head));
        body_streamed(ended).await;
        Ok(())
    }
}

/// The request for the guest, its body (if any) a stream the guest reads.
fn wit_request(
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
type Streaming = (oneshot::Receiver<()>, oneshot::Sender<bool>);

/// Wait until a streamed body has ended, and pass on that the guest closed
/// its stream (had it failed, this future would be dropped before saying
/// so). Nothing to wait for with a whole body.
async fn body_streamed(streaming: Option<Streaming>) {
    if let Some((ended, closed)) = streaming {
        let _ = ended.await;
        let _ = closed.send(true);
    }
}

/// Call `handle` with `request` inside the store's `run_concurrent`: the
/// answer's head, and for a streamed body what says when it ends.
async fn handle_in(
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

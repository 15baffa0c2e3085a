//! The executor for squall-sdk apps: one request, one fresh instance.
//! Convert the request for the guest, run `handle` under the app's limits,
//! and turn what comes back (or what went wrong) into an HTTP response.

use super::error_response;
use crate::app::SharedApp;
use crate::bindings::types as wit;
use crate::body::{
    ChunkConsumer, InboundBody, IncomingBodyProducer, OutgoingBody, discard_in_background,
};
use crate::convert::{guest_response_head, request_head_to_wit};
use crate::error::HostError;
use crate::reuse::Handler;
use crate::runtime::{
    OnCancel, Running, finish_in_background, finished, guest_tasks_done, until_answer,
};
use bytes::Bytes;
use futures::channel::{mpsc, oneshot};
use http::{Request, Response, StatusCode};
use http_body::Body as _;
use tokio::sync::OwnedSemaphorePermit;
use tokio::task::AbortHandle;
use tracing::Instrument;
use wasmtime::component::StreamReader;

/// What the guest answered, before its body is done.
struct Head {
    status: u16,
    headers: wit::Fields,
    body: HeadBody,
}

enum HeadBody {
    Full(Vec<u8>),
    /// The chunks, and the word that the guest closed its stream.
    Stream(mpsc::Receiver<Bytes>, oneshot::Receiver<bool>),
}

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

    let (answer, guest) = until_answer(limits.timeout, |head| async move {
        let outcome = run_guest(app, guest_request, head).await;
        drop(admitted);
        outcome
    })
    .await;
    let head = match answer {
        Ok(head) => head,
        Err(failure) => return error_response(super::failed(&name, &failure)),
    };

    let (status, headers) = match guest_response_head(head.status, head.headers) {
        Ok(head) => head,
        Err(reason) => {
            let failure = HostError::InvalidResponse(reason);
            return error_response(super::failed(&name, &failure));
        }
    };
    let body = match head.body {
        HeadBody::Full(bytes) => {
            if let Some(guest) = guest {
                finish_in_background(guest);
            }
            OutgoingBody::full(bytes)
        }
        HeadBody::Stream(chunks, closed) => OutgoingBody::Streamed {
            chunks,
            guest: guest.map(keep_streaming),
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

/// The request as the guest will see it (its body still a producer),
/// waiting for a store to become a `wit::Request`.
struct GuestRequest {
    head: wit::Request,
    body: Option<IncomingBodyProducer>,
}

/// Instantiate the app in a fresh store, call `handle`, send the response
/// head out, and keep the store alive until a streamed body has ended and
/// the guest's tasks (work it spawned to run after the response) are done.
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
            let mut guest_request = request.head;
            if let Some(producer) = request.body {
                guest_request.body =
                    wit::Body::Stream(accessor.with(|store| StreamReader::new(store, producer))?);
            }
            let response = guest
                .squall_app_handler()
                .call_handle(accessor, guest_request)
                .await?;
            let body = match response.body {
                wit::Body::Empty => HeadBody::Full(Vec::new()),
                wit::Body::Bytes(bytes) => HeadBody::Full(bytes),
                wit::Body::Stream(reader) => {
                    let (consumer, chunks, ended) = ChunkConsumer::new();
                    accessor.with(|store| reader.pipe(store, consumer))?;
                    let (closed, closed_signal) = oneshot::channel();
                    send_head(
                        head,
                        response.status,
                        response.headers,
                        HeadBody::Stream(chunks, closed_signal),
                    );
                    // The guest closed its stream (had it failed, this
                    // future would be dropped before saying so).
                    let _ = ended.await;
                    let _ = closed.send(true);
                    guest_tasks_done(accessor).await;
                    return Ok(());
                }
            };
            send_head(head, response.status, response.headers, body);
            guest_tasks_done(accessor).await;
            Ok(())
        })
        .await??;
    // Served to the end, nothing failed: the instance may serve again.
    app.request_done(instance);
    Ok(())
}

fn send_head(sender: oneshot::Sender<Head>, status: u16, headers: wit::Fields, body: HeadBody) {
    // A closed receiver means nobody waits for the answer any more.
    let _ = sender.send(Head {
        status,
        headers,
        body,
    });
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

//! Bodies the host sends (a response to a client, a guest's request to an
//! upstream), and the consumer that takes what a guest writes to a stream.

use crate::error::BoxError;
use crate::runtime::ChargeCopies;
use bytes::Bytes;
use futures::channel::{mpsc, oneshot};
use futures::{Sink, StreamExt};
use http_body::{Body, Frame, SizeHint};
use http_body_util::combinators::BoxBody;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, ready};
use tokio::task::AbortHandle;
use tracing::Instrument;
use wasmtime::component::{Source, StreamConsumer, StreamResult};
use wasmtime::{AsContextMut, StoreContextMut};
use wasmtime_wasi_http::WasiBody;

/// Largest chunk taken from a guest stream in one go.
const MAX_CHUNK: usize = 64 * 1024;
/// Chunks buffered between a guest stream and hyper.
const CHUNKS_IN_FLIGHT: usize = 4;

/// Takes what a guest writes to a stream and hands it to hyper through a
/// bounded channel. When the channel is full the guest's write stays
/// pending: that is the backpressure.
pub(crate) struct ChunkConsumer {
    chunks: mpsc::Sender<Bytes>,
    /// Dropped with the consumer, which tells its owner the stream ended.
    _ended: oneshot::Sender<()>,
}

impl ChunkConsumer {
    /// The consumer, the receiving end for hyper, and a signal of the stream's end.
    pub(crate) fn new() -> (Self, mpsc::Receiver<Bytes>, oneshot::Receiver<()>) {
        let (chunks, receiver) = mpsc::channel(CHUNKS_IN_FLIGHT);
        let (ended, ended_signal) = oneshot::channel();
        let consumer = ChunkConsumer {
            chunks,
            _ended: ended,
        };
        (consumer, receiver, ended_signal)
    }
}

impl<D: ChargeCopies + 'static> StreamConsumer<D> for ChunkConsumer {
    type Item = u8;

    fn poll_consume(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        mut store: StoreContextMut<D>,
        source: Source<'_, u8>,
        finish: bool,
    ) -> Poll<wasmtime::Result<StreamResult>> {
        let this = self.get_mut();
        match Pin::new(&mut this.chunks).poll_ready(cx) {
            Poll::Ready(Ok(())) => {}
            // hyper dropped the body: the peer is gone.
            Poll::Ready(Err(_)) => return Poll::Ready(Ok(StreamResult::Dropped)),
            Poll::Pending if finish => return Poll::Ready(Ok(StreamResult::Cancelled)),
            Poll::Pending => return Poll::Pending,
        }
        let mut source = source.as_direct(store.as_context_mut());
        let available = source.remaining();
        let count = available.len().min(MAX_CHUNK);
        if count == 0 {
            return Poll::Ready(Ok(StreamResult::Completed));
        }
        let chunk = Bytes::copy_from_slice(&available[..count]);
        source.mark_read(count);
        if let Err(spent) = store.data_mut().charge_copied(count) {
            return Poll::Ready(Err(spent.into()));
        }
        match Pin::new(&mut this.chunks).start_send(chunk) {
            Ok(()) => Poll::Ready(Ok(StreamResult::Completed)),
            Err(_) => Poll::Ready(Ok(StreamResult::Dropped)),
        }
    }
}

/// A body the host sends: a response to a client, or a guest's request to
/// an upstream.
pub(crate) enum OutgoingBody {
    /// Complete in memory.
    Full(Option<Bytes>),
    /// Produced by wasmtime-wasi-http for a standard `wasi:http` component.
    /// When `guest` is given, it owns the component's store: it is driven as
    /// the body is read (a WASI 0.3 body is written by the guest as it goes)
    /// and dropped with a body that does not end, or at its deadline; once
    /// the body ends, the guest finishes its work in the background, told
    /// so by `read` being dropped. The body ends cleanly only if the guest
    /// did not fail first.
    Wasi {
        body: WasiBody,
        guest: Option<DrivenGuest>,
        failed: Option<BoxError>,
        read: Option<oneshot::Sender<()>>,
        /// On a shared instance, fires when the request is past its
        /// timeout (or its instance stopped): the body is cut there.
        cut: Option<oneshot::Receiver<()>>,
    },
    /// Produced by the host itself (a static file).
    Boxed(BoxBody<Bytes, BoxError>),
    /// Written by a guest as it goes. When `finished` is given, the body
    /// ends cleanly only if it says the guest wrote it all. `guest` is the
    /// task that owns the guest's store: dropped with a body that did not
    /// end cleanly (the peer is gone), left to finish its work once it has.
    Streamed {
        chunks: mpsc::Receiver<Bytes>,
        guest: Option<AbortHandle>,
        finished: Option<oneshot::Receiver<bool>>,
    },
}

impl OutgoingBody {
    /// Whether the body is complete in memory (its producer is done).
    pub(crate) fn is_complete(&self) -> bool {
        matches!(self, OutgoingBody::Full(_))
    }

    /// A body complete in memory.
    pub(crate) fn full(bytes: impl Into<Bytes>) -> Self {
        let bytes = bytes.into();
        OutgoingBody::Full((!bytes.is_empty()).then_some(bytes))
    }

    /// A body the host produces itself.
    pub(crate) fn boxed<B>(body: B) -> Self
    where
        B: Body<Data = Bytes> + Send + Sync + 'static,
        B::Error: Into<BoxError>,
    {
        use http_body_util::BodyExt;
        OutgoingBody::Boxed(body.map_err(Into::into).boxed())
    }

    /// No body.
    pub(crate) fn empty() -> Self {
        OutgoingBody::Full(None)
    }

    /// A standard component's outgoing request body.
    pub(crate) fn standard(body: WasiBody) -> Self {
        OutgoingBody::Wasi {
            body,
            guest: None,
            failed: None,
            read: None,
            cut: None,
        }
    }

    /// A standard component's response body, its store driven by `guest`;
    /// `read` is dropped when the body has ended or is dropped.
    pub(crate) fn driven(
        body: WasiBody,
        guest: Option<DrivenGuest>,
        read: oneshot::Sender<()>,
    ) -> Self {
        OutgoingBody::Wasi {
            body,
            guest,
            failed: None,
            read: Some(read),
            cut: None,
        }
    }

    /// A standard component's body written on a shared instance, which
    /// its own task drives: `read` is dropped when the body is done, and
    /// the body is cut when `cut` fires.
    pub(crate) fn cut_at(
        body: WasiBody,
        read: oneshot::Sender<()>,
        cut: oneshot::Receiver<()>,
    ) -> Self {
        OutgoingBody::Wasi {
            body,
            guest: None,
            failed: None,
            read: Some(read),
            cut: Some(cut),
        }
    }
}

impl Body for OutgoingBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match self.get_mut() {
            OutgoingBody::Full(bytes) => Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b)))),
            OutgoingBody::Boxed(body) => Pin::new(body).poll_frame(cx),
            OutgoingBody::Wasi {
                body,
                guest,
                failed,
                read,
                cut,
            } => poll_wasi(cx, body, guest, failed, read, cut),
            OutgoingBody::Streamed {
                chunks,
                guest,
                finished,
            } => poll_streamed(cx, chunks, guest, finished),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            OutgoingBody::Full(bytes) => bytes.is_none(),
            // A body that may be cut is never known to be over early: a
            // stopped store would end it as if cleanly.
            OutgoingBody::Wasi { body, cut, .. } => cut.is_none() && body.is_end_stream(),
            OutgoingBody::Boxed(body) => body.is_end_stream(),
            OutgoingBody::Streamed { .. } => false,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            OutgoingBody::Full(bytes) => {
                SizeHint::with_exact(bytes.as_ref().map_or(0, |b| b.len() as u64))
            }
            OutgoingBody::Wasi { body, .. } => body.size_hint(),
            OutgoingBody::Boxed(body) => body.size_hint(),
            OutgoingBody::Streamed { .. } => SizeHint::default(),
        }
    }
}

/// What drives a standard component's store while its body is read.
pub(crate) type GuestFuture = Pin<Box<dyn Future<Output = Result<(), BoxError>> + Send>>;

/// A standard component's running guest, polled as its body is read and
/// dropped at its deadline even if the body is never read again (a client
/// that stops reading does not keep an instance past the deadline).
pub(crate) struct DrivenGuest {
    slot: Arc<Mutex<Option<GuestFuture>>>,
    reaper: tokio::task::AbortHandle,
}

impl DrivenGuest {
    /// Drive `guest` until `deadline`.
    pub(crate) fn new(guest: GuestFuture, deadline: tokio::time::Instant) -> Self {
        let slot = Arc::new(Mutex::new(Some(guest)));
        let reaped = slot.clone();
        let reaper = tokio::spawn(async move {
            tokio::time::sleep_until(deadline).await;
            let guest = reaped.lock().unwrap_or_else(|p| p.into_inner()).take();
            if guest.is_some() {
                tracing::warn!(
                    "the request's timeout ended the component (its body, or its work after the response)"
                );
            }
        })
        .abort_handle();
        DrivenGuest { slot, reaper }
    }

    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        let mut slot = self.slot.lock().unwrap_or_else(|p| p.into_inner());
        match slot.as_mut() {
            Some(guest) => {
                let outcome = ready!(guest.as_mut().poll(cx));
                *slot = None;
                Poll::Ready(outcome)
            }
            None => Poll::Ready(Err("timeout".into())),
        }
    }
}

impl DrivenGuest {
    /// The body is done: drive the guest's work after the response in a
    /// task of its own, until it ends or its deadline.
    fn finish_in_background(mut self) {
        tokio::spawn(
            async move {
                // How it ended is logged where the guest future is made,
                // or by the reaper at the deadline.
                let _ = std::future::poll_fn(|cx| self.poll(cx)).await;
            }
            .in_current_span(),
        );
    }
}

impl Drop for DrivenGuest {
    fn drop(&mut self) {
        self.reaper.abort();
    }
}

impl Drop for OutgoingBody {
    fn drop(&mut self) {
        match self {
            // Dropped before its clean end (the peer is gone, or the guest
            // failed): stop the guest and free its instance.
            OutgoingBody::Streamed {
                guest: Some(task), ..
            } => task.abort(),
            // Sent whole without being polled to its end (hyper may stop
            // at `is_end_stream`): the guest's work after it goes on.
            OutgoingBody::Wasi { body, guest, .. } if body.is_end_stream() => {
                if let Some(running) = guest.take() {
                    running.finish_in_background();
                }
            }
            _ => {}
        }
    }
}

/// The next frame of a standard component's body: cut if its request is
/// past its timeout, its guest driven meanwhile, a clean end only if the
/// guest did not fail.
fn poll_wasi(
    cx: &mut Context<'_>,
    body: &mut WasiBody,
    guest: &mut Option<DrivenGuest>,
    failed: &mut Option<BoxError>,
    read: &mut Option<oneshot::Sender<()>>,
    cut: &mut Option<oneshot::Receiver<()>>,
) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
    if let Some(word) = cut
        && Pin::new(word).poll(cx).is_ready()
    {
        *cut = None;
        return Poll::Ready(Some(Err(
            "cut: the request's timeout passed or its shared instance stopped".into(),
        )));
    }
    if let Some(running) = guest
        && let Poll::Ready(outcome) = running.poll(cx)
    {
        *guest = None;
        if let Err(err) = outcome {
            *failed = Some(err);
        }
    }
    match ready!(Pin::new(body).poll_frame(cx)) {
        Some(frame) => Poll::Ready(Some(frame.map_err(BoxError::from))),
        // Its end is clean only if the guest did not fail; what the guest
        // still does is work after the response.
        None => {
            if let Some(running) = guest.take() {
                running.finish_in_background();
            }
            *read = None;
            Poll::Ready(failed.take().map(Err))
        }
    }
}

/// The next chunk a squall-sdk guest wrote: a clean end only if the guest
/// says it wrote it all.
fn poll_streamed(
    cx: &mut Context<'_>,
    chunks: &mut mpsc::Receiver<Bytes>,
    guest: &mut Option<AbortHandle>,
    finished: &mut Option<oneshot::Receiver<bool>>,
) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
    // A guest stopped mid-stream (a failure, or the request's timeout on a
    // shared instance, which goes on) cuts the body at once rather than
    // leave it waiting for chunks.
    if let Some(word) = finished
        && let Poll::Ready(said) = Pin::new(word).poll(cx)
    {
        *finished = None;
        if !said.unwrap_or(false) {
            return Poll::Ready(Some(
                Err("the guest did not finish writing the body".into()),
            ));
        }
    }
    if let Some(chunk) = ready!(chunks.poll_next_unpin(cx)) {
        return Poll::Ready(Some(Ok(Frame::data(chunk))));
    }
    // The guest's stream ended.
    if let Some(word) = finished {
        let done = ready!(Pin::new(word).poll(cx)).unwrap_or(false);
        *finished = None;
        if !done {
            return Poll::Ready(Some(
                Err("the guest did not finish writing the body".into()),
            ));
        }
    }
    // Done: what the guest still does is work after the response.
    *guest = None;
    Poll::Ready(None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    #[tokio::test]
    async fn a_full_body_is_sent_once_with_its_size() {
        let body = OutgoingBody::full("hello");
        assert_eq!(body.size_hint().exact(), Some(5));
        assert!(!body.is_end_stream());
        let bytes = body.collect().await.expect("complete").to_bytes();
        assert_eq!(bytes, "hello");
        assert!(OutgoingBody::full("").is_end_stream());
        assert!(OutgoingBody::empty().is_end_stream());
    }

    /// A guest's task that runs until `stop` says so, and tells `ended`
    /// whether it was aborted (true) or finished.
    fn guest_task(stop: oneshot::Receiver<()>) -> (AbortHandle, oneshot::Receiver<bool>) {
        struct Aborted(Option<oneshot::Sender<bool>>);
        impl Drop for Aborted {
            fn drop(&mut self) {
                if let Some(ended) = self.0.take() {
                    let _ = ended.send(true);
                }
            }
        }
        let (ended, ended_signal) = oneshot::channel();
        let mut aborted = Aborted(Some(ended));
        let task = tokio::spawn(async move {
            let _ = stop.await;
            if let Some(ended) = aborted.0.take() {
                let _ = ended.send(false);
            }
        });
        (task.abort_handle(), ended_signal)
    }

    #[tokio::test]
    async fn a_streamed_body_ends_cleanly_only_if_the_guest_says_it_wrote_it_all() {
        let (mut sender, chunks) = mpsc::channel(4);
        sender.try_send(Bytes::from("a")).expect("room");
        drop(sender);
        let (word, finished) = oneshot::channel();
        let _ = word.send(true);
        let (stop, stop_signal) = oneshot::channel();
        let (guest, ended) = guest_task(stop_signal);
        let body = OutgoingBody::Streamed {
            chunks,
            guest: Some(guest),
            finished: Some(finished),
        };
        assert_eq!(body.collect().await.expect("clean end").to_bytes(), "a");
        // The body is gone; the guest's work after it goes on.
        let _ = stop.send(());
        assert_eq!(ended.await, Ok(false), "finished, not aborted");

        // No word (the guest failed before it finished): cut off, and a
        // body dropped before its end stops the guest.
        let (sender, chunks) = mpsc::channel::<Bytes>(4);
        drop(sender);
        let (word, finished) = oneshot::channel();
        drop(word);
        let (_stop, stop_signal) = oneshot::channel();
        let (guest, ended) = guest_task(stop_signal);
        let body = OutgoingBody::Streamed {
            chunks,
            guest: Some(guest),
            finished: Some(finished),
        };
        assert!(body.collect().await.is_err(), "no word: cut off");
        assert_eq!(ended.await, Ok(true), "aborted");
    }
}

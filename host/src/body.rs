//! Bodies crossing the boundary: the request body flows from hyper into a
//! guest `stream<u8>`, the response body from a guest stream into hyper.
//!
//! Both directions are pull-based with small bounded buffers, so neither a
//! fast client nor a fast guest can make the host buffer without bound.

use crate::runtime::LimitExceeded;
use bytes::{Buf, Bytes};
use futures::channel::{mpsc, oneshot};
use futures::{Sink, StreamExt};
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use tokio::task::JoinHandle;
use wasmtime::StoreContextMut;
use wasmtime::component::{Destination, Source, StreamConsumer, StreamProducer, StreamResult};

/// Largest chunk taken from a guest stream in one go.
const MAX_CHUNK: usize = 64 * 1024;
/// Response chunks buffered between the guest and hyper.
pub const CHUNKS_IN_FLIGHT: usize = 4;

/// The client's body stopped with an error (reset, malformed framing).
#[derive(Debug, thiserror::Error)]
#[error("the request body broke off: {0}")]
pub struct BrokenRequestBody(#[source] hyper::Error);

/// Feeds a hyper request body into a guest's `stream<u8>`, counting bytes
/// against the app's `max_body`. Polled only when the guest reads.
pub struct RequestBodyProducer {
    body: Incoming,
    pending: Bytes,
    received: u64,
    limit: u64,
}

impl RequestBodyProducer {
    pub fn new(body: Incoming, limit: u64) -> Self {
        RequestBodyProducer {
            body,
            pending: Bytes::new(),
            received: 0,
            limit,
        }
    }

    /// The next non-empty data frame, or `None` at the end of the body.
    fn poll_data(&mut self, cx: &mut Context<'_>) -> Poll<wasmtime::Result<Option<Bytes>>> {
        loop {
            let frame = match ready!(Pin::new(&mut self.body).poll_frame(cx)) {
                None => return Poll::Ready(Ok(None)),
                Some(Err(err)) => return Poll::Ready(Err(BrokenRequestBody(err).into())),
                Some(Ok(frame)) => frame,
            };
            // Trailers are not passed on (yet).
            let Ok(data) = frame.into_data() else {
                continue;
            };
            if data.is_empty() {
                continue;
            }
            self.received += data.len() as u64;
            if self.received > self.limit {
                // Trap the guest rather than end its stream early: a guest
                // must never take a cut-off body for a complete one.
                return Poll::Ready(Err(LimitExceeded::RequestBody.into()));
            }
            return Poll::Ready(Ok(Some(data)));
        }
    }
}

impl<D> StreamProducer<D> for RequestBodyProducer {
    type Item = u8;
    type Buffer = Option<u8>;

    fn poll_produce<'a>(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        mut store: StoreContextMut<'a, D>,
        destination: Destination<'a, u8, Option<u8>>,
        finish: bool,
    ) -> Poll<wasmtime::Result<StreamResult>> {
        let this = self.get_mut();
        if this.pending.is_empty() {
            match this.poll_data(cx) {
                Poll::Pending if finish => return Poll::Ready(Ok(StreamResult::Cancelled)),
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Err(err)) => return Poll::Ready(Err(err)),
                Poll::Ready(Ok(None)) => return Poll::Ready(Ok(StreamResult::Dropped)),
                Poll::Ready(Ok(Some(data))) => this.pending = data,
            }
        }
        // A zero-length read only asks whether data is ready: it is.
        if destination.remaining(&mut store) == Some(0) {
            return Poll::Ready(Ok(StreamResult::Completed));
        }
        let mut direct = destination.as_direct(store, this.pending.len());
        let room = direct.remaining();
        let count = room.len().min(this.pending.len());
        room[..count].copy_from_slice(&this.pending[..count]);
        direct.mark_written(count);
        this.pending.advance(count);
        Poll::Ready(Ok(StreamResult::Completed))
    }
}

/// Takes what a guest writes to its response stream and hands it to hyper
/// through a bounded channel. When the channel is full the guest's write
/// stays pending: that is the backpressure.
pub struct ResponseChunkConsumer {
    chunks: mpsc::Sender<Bytes>,
    /// Dropped with the consumer, which tells the dispatcher the stream ended.
    _ended: oneshot::Sender<()>,
}

impl ResponseChunkConsumer {
    /// The consumer, the receiving end for hyper, and a signal of the stream's end.
    pub fn new() -> (Self, mpsc::Receiver<Bytes>, oneshot::Receiver<()>) {
        let (chunks, receiver) = mpsc::channel(CHUNKS_IN_FLIGHT);
        let (ended, ended_signal) = oneshot::channel();
        (
            ResponseChunkConsumer {
                chunks,
                _ended: ended,
            },
            receiver,
            ended_signal,
        )
    }
}

impl<D> StreamConsumer<D> for ResponseChunkConsumer {
    type Item = u8;

    fn poll_consume(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        store: StoreContextMut<D>,
        source: Source<'_, u8>,
        finish: bool,
    ) -> Poll<wasmtime::Result<StreamResult>> {
        let this = self.get_mut();
        match Pin::new(&mut this.chunks).poll_ready(cx) {
            Poll::Ready(Ok(())) => {}
            // hyper dropped the body: the client is gone.
            Poll::Ready(Err(_)) => return Poll::Ready(Ok(StreamResult::Dropped)),
            Poll::Pending if finish => return Poll::Ready(Ok(StreamResult::Cancelled)),
            Poll::Pending => return Poll::Pending,
        }
        let mut source = source.as_direct(store);
        let available = source.remaining();
        let count = available.len().min(MAX_CHUNK);
        if count == 0 {
            return Poll::Ready(Ok(StreamResult::Completed));
        }
        let chunk = Bytes::copy_from_slice(&available[..count]);
        source.mark_read(count);
        match Pin::new(&mut this.chunks).start_send(chunk) {
            Ok(()) => Poll::Ready(Ok(StreamResult::Completed)),
            Err(_) => Poll::Ready(Ok(StreamResult::Dropped)),
        }
    }
}

/// Why a streamed response stopped before its end.
pub type BodyError = Box<dyn std::error::Error + Send + Sync>;

/// The body of a response as hyper sees it.
pub enum ResponseBody {
    /// Complete in memory.
    Full(Option<Bytes>),
    /// Streamed from a guest that keeps running in `task`.
    Streamed {
        chunks: mpsc::Receiver<Bytes>,
        task: JoinHandle<Result<(), BodyError>>,
    },
}

impl ResponseBody {
    pub fn full(bytes: impl Into<Bytes>) -> Self {
        let bytes = bytes.into();
        ResponseBody::Full((!bytes.is_empty()).then_some(bytes))
    }

    pub fn empty() -> Self {
        ResponseBody::Full(None)
    }
}

impl Body for ResponseBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        match self.get_mut() {
            ResponseBody::Full(bytes) => Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b)))),
            ResponseBody::Streamed { chunks, task } => {
                if let Some(chunk) = ready!(chunks.poll_next_unpin(cx)) {
                    return Poll::Ready(Some(Ok(Frame::data(chunk))));
                }
                // The guest's stream ended; a clean end only if the guest did.
                match ready!(Pin::new(task).poll(cx)) {
                    Ok(Ok(())) => Poll::Ready(None),
                    Ok(Err(err)) => Poll::Ready(Some(Err(err))),
                    Err(join) => Poll::Ready(Some(Err(join.into()))),
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        matches!(self, ResponseBody::Full(None))
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            ResponseBody::Full(bytes) => {
                SizeHint::with_exact(bytes.as_ref().map_or(0, |b| b.len() as u64))
            }
            ResponseBody::Streamed { .. } => SizeHint::default(),
        }
    }
}

impl Drop for ResponseBody {
    fn drop(&mut self) {
        // The client is gone or the response is done: stop the guest and
        // free its instance.
        if let ResponseBody::Streamed { task, .. } = self {
            task.abort();
        }
    }
}

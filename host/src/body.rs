//! Bodies crossing the boundary. Incoming bodies (a client's request, an
//! upstream's response) flow from hyper into a guest `stream<u8>`; bodies the
//! guest writes flow from its stream into hyper.
//!
//! Both directions are pull-based with small bounded buffers, so neither a
//! fast peer nor a fast guest can make the host buffer without bound.

use crate::bindings::types::FetchError;
use crate::runtime::LimitExceeded;
use bytes::{Buf, Bytes};
use futures::channel::{mpsc, oneshot};
use futures::{Sink, StreamExt};
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use tokio::task::JoinHandle;
use wasmtime::StoreContextMut;
use wasmtime::component::{Destination, Source, StreamConsumer, StreamProducer, StreamResult};
use wasmtime_wasi_http::WasiBody;

/// Largest chunk taken from a guest stream in one go.
const MAX_CHUNK: usize = 64 * 1024;
/// Chunks buffered between a guest stream and hyper.
const CHUNKS_IN_FLIGHT: usize = 4;

/// The client's body stopped with an error (reset, malformed framing).
#[derive(Debug, thiserror::Error)]
#[error("the request body broke off: {0}")]
pub struct BrokenRequestBody(#[source] hyper::Error);

/// How an incoming body ended, when it did not end normally.
enum Stop {
    TooLarge,
    Broken(hyper::Error),
}

/// What to do when an incoming body stops early.
enum OnStop {
    /// A client's request body: trap the guest, so it never takes a cut-off
    /// body for a complete one, and let the dispatcher answer 413 or 400.
    Trap,
    /// An upstream's response body: end the stream and report why through
    /// the fetch's `body-result` future.
    Report(Option<oneshot::Sender<Result<(), FetchError>>>),
}

/// Feeds a hyper body into a guest's `stream<u8>`, counting bytes against a
/// limit. Polled only when the guest reads.
pub struct IncomingBodyProducer {
    /// Taken out when a refused body is handed off to be discarded.
    body: Option<Incoming>,
    pending: Bytes,
    received: u64,
    limit: u64,
    on_stop: OnStop,
}

impl IncomingBodyProducer {
    /// A client's request body, trapping the guest past `limit` bytes.
    pub fn request(body: Incoming, limit: u64) -> Self {
        IncomingBodyProducer::new(body, limit, OnStop::Trap)
    }

    /// An upstream's response body and the receiver of its outcome.
    pub fn fetched(
        body: Incoming,
        limit: u64,
    ) -> (Self, oneshot::Receiver<Result<(), FetchError>>) {
        let (report, outcome) = oneshot::channel();
        let producer = IncomingBodyProducer::new(body, limit, OnStop::Report(Some(report)));
        (producer, outcome)
    }

    fn new(body: Incoming, limit: u64, on_stop: OnStop) -> Self {
        IncomingBodyProducer {
            body: Some(body),
            pending: Bytes::new(),
            received: 0,
            limit,
            on_stop,
        }
    }

    /// The next non-empty data frame, or `None` at the end of the body.
    fn poll_data(&mut self, cx: &mut Context<'_>) -> Poll<Result<Option<Bytes>, Stop>> {
        loop {
            let Some(body) = self.body.as_mut() else {
                return Poll::Ready(Ok(None));
            };
            let frame = match ready!(Pin::new(body).poll_frame(cx)) {
                None => return Poll::Ready(Ok(None)),
                Some(Err(err)) => return Poll::Ready(Err(Stop::Broken(err))),
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
                return Poll::Ready(Err(Stop::TooLarge));
            }
            return Poll::Ready(Ok(Some(data)));
        }
    }

    /// End the stream: trap, or report the outcome and close it.
    fn finish(&mut self, outcome: Result<(), Stop>) -> Poll<wasmtime::Result<StreamResult>> {
        match (&mut self.on_stop, outcome) {
            (OnStop::Trap, Ok(())) => Poll::Ready(Ok(StreamResult::Dropped)),
            (OnStop::Trap, Err(Stop::TooLarge)) => {
                if let Some(body) = self.body.take() {
                    discard_in_background(body);
                }
                Poll::Ready(Err(LimitExceeded::RequestBody.into()))
            }
            (OnStop::Trap, Err(Stop::Broken(err))) => {
                Poll::Ready(Err(BrokenRequestBody(err).into()))
            }
            (OnStop::Report(report), outcome) => {
                if let Some(report) = report.take() {
                    let _ = report.send(outcome.map_err(|stop| match stop {
                        Stop::TooLarge => FetchError::TooLarge,
                        Stop::Broken(err) => FetchError::Protocol(err.to_string()),
                    }));
                }
                Poll::Ready(Ok(StreamResult::Dropped))
            }
        }
    }
}

impl<D> StreamProducer<D> for IncomingBodyProducer {
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
                Poll::Ready(Ok(None)) => return this.finish(Ok(())),
                Poll::Ready(Err(stop)) => return this.finish(Err(stop)),
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

impl Drop for IncomingBodyProducer {
    fn drop(&mut self) {
        // Dropped before the end: the guest stopped reading, or its store is gone.
        if let OnStop::Report(report) = &mut self.on_stop
            && let Some(report) = report.take()
        {
            let _ = report.send(Err(FetchError::Protocol(
                "the body was not read to its end".into(),
            )));
        }
    }
}

/// Most of a refused body read and thrown away, after the answer.
const DISCARD_LIMIT: u64 = 64 << 20;
/// How long a refused body may take to arrive.
const DISCARD_TIME: std::time::Duration = std::time::Duration::from_secs(10);

/// Read a refused request body to its end (within bounds) while the answer
/// goes out. A client still sending when the server closes gets a reset
/// and often never sees the answer; draining lets it read the 413.
pub fn discard_in_background(mut body: Incoming) {
    if body.size_hint().lower() > DISCARD_LIMIT {
        return;
    }
    tokio::spawn(async move {
        let drain = async {
            let mut seen = 0u64;
            while let Some(Ok(frame)) = body.frame().await {
                seen += frame.data_ref().map_or(0, |data| data.len() as u64);
                if seen > DISCARD_LIMIT {
                    break;
                }
            }
        };
        let _ = tokio::time::timeout(DISCARD_TIME, drain).await;
    });
}

/// Takes what a guest writes to a stream and hands it to hyper through a
/// bounded channel. When the channel is full the guest's write stays
/// pending: that is the backpressure.
pub struct ChunkConsumer {
    chunks: mpsc::Sender<Bytes>,
    /// Dropped with the consumer, which tells its owner the stream ended.
    _ended: oneshot::Sender<()>,
}

impl ChunkConsumer {
    /// The consumer, the receiving end for hyper, and a signal of the stream's end.
    pub fn new() -> (Self, mpsc::Receiver<Bytes>, oneshot::Receiver<()>) {
        let (chunks, receiver) = mpsc::channel(CHUNKS_IN_FLIGHT);
        let (ended, ended_signal) = oneshot::channel();
        let consumer = ChunkConsumer {
            chunks,
            _ended: ended,
        };
        (consumer, receiver, ended_signal)
    }
}

impl<D> StreamConsumer<D> for ChunkConsumer {
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
            // hyper dropped the body: the peer is gone.
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

/// Why a streamed body stopped before its end.
pub type BodyError = Box<dyn std::error::Error + Send + Sync>;

/// A body the host sends: a response to a client, or a guest's request to
/// an upstream.
pub enum OutgoingBody {
    /// Complete in memory.
    Full(Option<Bytes>),
    /// Produced by wasmtime-wasi-http for a standard `wasi:http` component.
    /// When `guest` is given, that future owns the component's store: it is
    /// driven as the body is read (a WASI 0.3 body is written by the guest
    /// as it goes) and dropped with the body.
    Wasi {
        body: WasiBody,
        guest: Option<Pin<Box<dyn Future<Output = ()> + Send>>>,
    },
    /// Written by a guest as it goes. When `guest` is given, the body ends
    /// cleanly only if that task (which owns the guest's store) does.
    Streamed {
        chunks: mpsc::Receiver<Bytes>,
        guest: Option<JoinHandle<Result<(), BodyError>>>,
    },
}

impl OutgoingBody {
    pub fn full(bytes: impl Into<Bytes>) -> Self {
        let bytes = bytes.into();
        OutgoingBody::Full((!bytes.is_empty()).then_some(bytes))
    }

    pub fn empty() -> Self {
        OutgoingBody::Full(None)
    }

    /// A standard component's outgoing request body.
    pub fn standard(body: WasiBody) -> Self {
        OutgoingBody::Wasi { body, guest: None }
    }
}

impl Body for OutgoingBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        match self.get_mut() {
            OutgoingBody::Full(bytes) => Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b)))),
            OutgoingBody::Wasi { body, guest } => {
                if let Some(running) = guest
                    && running.as_mut().poll(cx).is_ready()
                {
                    *guest = None;
                }
                Pin::new(body)
                    .poll_frame(cx)
                    .map(|frame| frame.map(|frame| frame.map_err(BodyError::from)))
            }
            OutgoingBody::Streamed { chunks, guest } => {
                if let Some(chunk) = ready!(chunks.poll_next_unpin(cx)) {
                    return Poll::Ready(Some(Ok(Frame::data(chunk))));
                }
                let Some(task) = guest else {
                    return Poll::Ready(None);
                };
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
        match self {
            OutgoingBody::Full(bytes) => bytes.is_none(),
            OutgoingBody::Wasi { body, .. } => body.is_end_stream(),
            OutgoingBody::Streamed { .. } => false,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            OutgoingBody::Full(bytes) => {
                SizeHint::with_exact(bytes.as_ref().map_or(0, |b| b.len() as u64))
            }
            OutgoingBody::Wasi { body, .. } => body.size_hint(),
            OutgoingBody::Streamed { .. } => SizeHint::default(),
        }
    }
}

impl Drop for OutgoingBody {
    fn drop(&mut self) {
        // The peer is gone or the body is done: stop the guest and free its
        // instance.
        if let OutgoingBody::Streamed {
            guest: Some(task), ..
        } = self
        {
            task.abort();
        }
    }
}

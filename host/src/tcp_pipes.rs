//! A TCP socket's bytes to and from a guest's streams, with nothing in
//! between: what the client sends is read straight into the guest's read
//! buffer when the guest reads, and what the guest writes goes straight
//! from its buffer to the socket as fast as the client takes it. The host
//! holds no bytes of its own for either direction; the kernel's socket
//! buffers are the only queue.

use crate::runtime::ChargeCopies;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::oneshot;
use wasmtime::component::{Destination, Source, StreamConsumer, StreamProducer, StreamResult};
use wasmtime::{AsContextMut, StoreContextMut};

/// The fixed point activity times count from.
static START: LazyLock<Instant> = LazyLock::new(Instant::now);

/// When a connection last moved bytes, shared with its watcher.
#[derive(Debug, Default)]
pub(crate) struct Activity(AtomicU64);

impl Activity {
    /// Bytes just moved.
    pub(crate) fn touch(&self) {
        let now = u64::try_from(START.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.0.store(now, Ordering::Relaxed);
    }

    /// How long since bytes last moved.
    pub(crate) fn idle_for(&self) -> Duration {
        let last = Duration::from_millis(self.0.load(Ordering::Relaxed));
        START.elapsed().saturating_sub(last)
    }

    /// Resolves once no byte has moved for `timeout`.
    pub(crate) async fn idle(&self, timeout: Duration) {
        loop {
            let idle = self.idle_for();
            if idle >= timeout {
                return;
            }
            tokio::time::sleep(timeout - idle + Duration::from_millis(10)).await;
        }
    }
}

/// How much of a guest's read buffer one read may fill.
const READ_CAPACITY: usize = 64 * 1024;

/// Feeds what a client sends into a guest's `stream<u8>`, read from the
/// socket only when the guest reads. The stream ends when the client
/// half-closes or the connection breaks.
pub(crate) struct SocketReader {
    socket: OwnedReadHalf,
    activity: Arc<Activity>,
    _place: Option<Place>,
}

/// What a connection holds while either of its halves lives (its place
/// under a limit).
pub(crate) type Place = Arc<dyn Send + Sync>;

impl SocketReader {
    pub(crate) fn new(socket: OwnedReadHalf, activity: Arc<Activity>) -> Self {
        SocketReader {
            socket,
            activity,
            _place: None,
        }
    }

    /// Hold `place` as long as this half lives.
    pub(crate) fn holding(self, place: Place) -> Self {
        SocketReader {
            _place: Some(place),
            ..self
        }
    }
}

impl<D: ChargeCopies + 'static> StreamProducer<D> for SocketReader {
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
        // A zero-length read only asks whether data is ready: say so at once.
        if destination.remaining(&mut store) == Some(0) {
            return Poll::Ready(Ok(StreamResult::Completed));
        }
        let mut direct = destination.as_direct(store.as_context_mut(), READ_CAPACITY);
        let mut buffer = ReadBuf::new(direct.remaining());
        let count = match Pin::new(&mut this.socket).poll_read(cx, &mut buffer) {
            Poll::Pending if finish => return Poll::Ready(Ok(StreamResult::Cancelled)),
            Poll::Pending => return Poll::Pending,
            // Reset or broken: for the guest, the client is gone.
            Poll::Ready(Err(_)) => return Poll::Ready(Ok(StreamResult::Dropped)),
            Poll::Ready(Ok(())) => buffer.filled().len(),
        };
        if count == 0 {
            // The client half-closed.
            return Poll::Ready(Ok(StreamResult::Dropped));
        }
        direct.mark_written(count);
        this.activity.touch();
        if let Err(spent) = store.data_mut().charge_copied(count) {
            return Poll::Ready(Err(spent.into()));
        }
        Poll::Ready(Ok(StreamResult::Completed))
    }
}

/// Takes what a guest writes to its `stream<u8>` and writes it to the
/// socket; a write stays pending while the client does not read (the
/// backpressure). When the guest ends its stream, the socket's write half
/// is handed back through `ended` to be shut down (a FIN to the client).
pub(crate) struct SocketWriter {
    socket: Option<OwnedWriteHalf>,
    activity: Arc<Activity>,
    ended: Option<oneshot::Sender<OwnedWriteHalf>>,
    _place: Option<Place>,
}

impl SocketWriter {
    /// The writer, and where its write half comes back once the guest's
    /// stream has ended.
    pub(crate) fn new(
        socket: OwnedWriteHalf,
        activity: Arc<Activity>,
    ) -> (Self, oneshot::Receiver<OwnedWriteHalf>) {
        let (ended, receiver) = oneshot::channel();
        let writer = SocketWriter {
            socket: Some(socket),
            activity,
            ended: Some(ended),
            _place: None,
        };
        (writer, receiver)
    }

    /// Hold `place` as long as this half lives.
    pub(crate) fn holding(mut self, place: Place) -> Self {
        self._place = Some(place);
        self
    }
}

impl<D: ChargeCopies + 'static> StreamConsumer<D> for SocketWriter {
    type Item = u8;

    fn poll_consume(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        mut store: StoreContextMut<D>,
        source: Source<'_, u8>,
        finish: bool,
    ) -> Poll<wasmtime::Result<StreamResult>> {
        let this = self.get_mut();
        let Some(socket) = this.socket.as_mut() else {
            return Poll::Ready(Ok(StreamResult::Dropped));
        };
        let mut source = source.as_direct(store.as_context_mut());
        let available = source.remaining();
        if available.is_empty() {
            return Poll::Ready(Ok(StreamResult::Completed));
        }
        let count = match Pin::new(socket).poll_write(cx, available) {
            Poll::Pending if finish => return Poll::Ready(Ok(StreamResult::Cancelled)),
            Poll::Pending => return Poll::Pending,
            // The client is gone: the guest's writes fail from now on.
            Poll::Ready(Err(_)) => {
                this.socket = None;
                return Poll::Ready(Ok(StreamResult::Dropped));
            }
            Poll::Ready(Ok(count)) => count,
        };
        source.mark_read(count);
        this.activity.touch();
        if let Err(spent) = store.data_mut().charge_copied(count) {
            return Poll::Ready(Err(spent.into()));
        }
        Poll::Ready(Ok(StreamResult::Completed))
    }
}

impl Drop for SocketWriter {
    fn drop(&mut self) {
        if let (Some(socket), Some(ended)) = (self.socket.take(), self.ended.take()) {
            let _ = ended.send(socket);
        }
    }
}

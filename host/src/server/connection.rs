//! One accepted connection's socket, tracked: it holds the connection's
//! place under the server's `max_connections` (for as long as the socket
//! lives, through a WebSocket upgrade too), and notes when bytes last moved
//! and when a request last began or ended, so an idle connection can be
//! closed (one whose client only sends HTTP/2 PINGs is idle too).

pub(crate) use crate::tcp_pipes::Activity;
use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::OwnedSemaphorePermit;

/// A TCP stream that holds its place under `max_connections` and records
/// its activity.
pub(super) struct TrackedStream {
    stream: TcpStream,
    activity: Arc<Activity>,
    _place: OwnedSemaphorePermit,
}

impl TrackedStream {
    pub(super) fn new(stream: TcpStream, place: OwnedSemaphorePermit) -> (Self, Arc<Activity>) {
        let activity = Arc::new(Activity::default());
        activity.touch();
        let tracked = TrackedStream {
            stream,
            activity: activity.clone(),
            _place: place,
        };
        crate::stats::connections(1.0);
        (tracked, activity)
    }
}

impl Drop for TrackedStream {
    fn drop(&mut self) {
        crate::stats::connections(-1.0);
    }
}

impl AsyncRead for TrackedStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.stream).poll_read(cx, buf);
        if polled.is_ready() {
            this.activity.touch();
        }
        polled
    }
}

impl AsyncWrite for TrackedStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.stream).poll_write(cx, buf);
        if polled.is_ready() {
            this.activity.touch();
        }
        polled
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.stream).poll_write_vectored(cx, bufs);
        if polled.is_ready() {
            this.activity.touch();
        }
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }
}

/// A connection's requests: how many wait for their answer, and when the
/// connection last made progress (a request began, an answer began, sent a
/// frame, or ended). Bytes alone do not tell an idle connection: an HTTP/2
/// client's PINGs move bytes without asking anything, and a client that
/// stops reading an answer while it pings would hold it for ever.
pub(super) struct Requests {
    waiting: AtomicUsize,
    last: Activity,
}

impl Requests {
    /// A connection's, counted from now.
    pub(super) fn new() -> Arc<Requests> {
        let requests = Requests {
            waiting: AtomicUsize::new(0),
            last: Activity::default(),
        };
        requests.last.touch();
        Arc::new(requests)
    }

    /// A request begins; it waits for its answer until the guard is
    /// [`Waiting::answered`] (or dropped).
    pub(super) fn begin(self: &Arc<Self>) -> Waiting {
        self.waiting.fetch_add(1, Ordering::Relaxed);
        self.last.touch();
        Waiting(self.clone())
    }

    /// Whether a request waits for its app's answer (which the app's
    /// `timeout` bounds).
    pub(super) fn any_waiting(&self) -> bool {
        self.waiting.load(Ordering::Relaxed) > 0
    }

    /// How long the connection has made no progress (zero while a request
    /// waits for its answer).
    pub(super) fn idle_for(&self) -> Duration {
        if self.any_waiting() {
            return Duration::ZERO;
        }
        self.last.idle_for()
    }
}

/// A request waiting for its answer.
pub(super) struct Waiting(Arc<Requests>);

impl Waiting {
    /// Its answer is ready: from now on it is its body's frames that show
    /// progress.
    pub(super) fn answered(self) -> Sending {
        Sending(self.0.clone())
    }
}

impl Drop for Waiting {
    fn drop(&mut self) {
        self.0.last.touch();
        self.0.waiting.fetch_sub(1, Ordering::Relaxed);
    }
}

/// An answer on its way to the client.
pub(super) struct Sending(Arc<Requests>);

impl Drop for Sending {
    fn drop(&mut self) {
        self.0.last.touch();
    }
}

/// A response body that shows its connection's progress as it is sent.
pub(super) struct Counted<B> {
    body: B,
    sending: Sending,
}

impl<B> Counted<B> {
    pub(super) fn new(body: B, sending: Sending) -> Self {
        Counted { body, sending }
    }
}

impl<B: Body<Data = Bytes> + Unpin> Body for Counted<B> {
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.body).poll_frame(cx);
        if polled.is_ready() {
            this.sending.0.last.touch();
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

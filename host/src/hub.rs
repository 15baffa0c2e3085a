//! The open WebSocket connections, by id: how the `websocket` capability
//! and the pub/sub broker reach a socket (through its bounded outgoing
//! queue), and how shutdown reaches them all.

use crate::broker::{AppTopics, Broker, Subscriber, TopicKey, TopicRefused};
use bytes::Bytes;
use futures::task::AtomicWaker;
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::Poll;
use std::time::Duration;
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::Message as Frame;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

/// Largest message the host sends a client (a guest's `send`, or a topic's
/// message: the same as a publish's largest payload).
pub(crate) const MAX_OUTGOING: usize = crate::broker::MAX_PAYLOAD;

/// Queue storage an idle connection may keep after a burst (in frames).
const IDLE_QUEUE_CAPACITY: usize = 8;

/// Largest per-connection state blob.
pub(crate) const MAX_STATE: usize = 64 << 10;

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poison| poison.into_inner())
}

/// Why a message or state was not taken for a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SendRefused {
    /// The connection is closed.
    Closed,
    /// Its outgoing queue is full: the client reads too slowly, so it is
    /// being closed.
    QueueFull,
    /// Over the size limit.
    TooLarge,
}

/// Every open connection of every app.
pub(crate) struct Hub {
    connections: Mutex<HashMap<u64, Arc<Connection>>>,
    next_id: AtomicU64,
    shutdown: watch::Sender<bool>,
    broker: Arc<Broker>,
}

/// One open (or opening) connection.
pub(crate) struct Connection {
    id: u64,
    app: Arc<str>,
    path: String,
    /// Frames queued for the client: a plain deque rather than a channel,
    /// as an idle socket then holds no queue storage at all.
    outgoing: Mutex<Outgoing>,
    /// Wakes the socket task when a frame is queued. One waiter, the task
    /// holding the outbox: a waker slot is lighter than `Notify`'s locked
    /// list of waiters, and a broadcast wakes thousands of these.
    outgoing_waker: AtomicWaker,
    /// How many frames, and how many bytes, may be queued.
    max_frames: usize,
    max_queued: usize,
    /// Whether the socket task has taken the queue.
    outbox_taken: AtomicBool,
    /// A close the socket task must perform (asked by the guest, or forced
    /// by a full queue), whether there is one (read without the lock on
    /// every turn of the socket task), and the task to wake for it.
    close_request: Mutex<Option<CloseFrame>>,
    close_asked: AtomicBool,
    close_waker: AtomicWaker,
    state: Mutex<Bytes>,
    topics: Mutex<Vec<TopicKey>>,
}

impl Hub {
    pub(crate) fn new(broker: Arc<Broker>) -> Arc<Self> {
        Arc::new(Hub {
            connections: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(1),
            shutdown: watch::Sender::new(false),
            broker,
        })
    }

    /// A connection id unique in the host (WebSockets and TCP alike).
    pub(crate) fn new_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    /// Register a new connection of `app` on `path`, with room for `queue`
    /// outgoing messages of `queue_bytes` bytes together.
    pub(crate) fn connect(
        &self,
        app: &str,
        path: &str,
        queue: usize,
        queue_bytes: usize,
    ) -> Arc<Connection> {
        let id = self.new_id();
        let connection = Arc::new(Connection {
            id,
            app: app.into(),
            path: path.to_owned(),
            outgoing: Mutex::new(Outgoing::default()),
            outgoing_waker: AtomicWaker::new(),
            max_frames: queue.max(1),
            max_queued: queue_bytes.max(MAX_OUTGOING),
            outbox_taken: AtomicBool::new(false),
            close_request: Mutex::new(None),
            close_asked: AtomicBool::new(false),
            close_waker: AtomicWaker::new(),
            state: Mutex::new(Bytes::new()),
            topics: Mutex::new(Vec::new()),
        });
        lock(&self.connections).insert(id, connection.clone());
        connection
    }

    /// Forget a connection and its subscriptions.
    pub(crate) fn disconnect(&self, connection: &Connection) {
        lock(&self.connections).remove(&connection.id);
        for topic in lock(&connection.topics).drain(..) {
            self.broker.unsubscribe(&topic, connection.id);
        }
    }

    /// The connection `id`, if it is open and belongs to `app`.
    pub(crate) fn get(&self, app: &str, id: u64) -> Option<Arc<Connection>> {
        lock(&self.connections)
            .get(&id)
            .filter(|connection| &*connection.app == app)
            .cloned()
    }

    /// Feed `topic` to `connection`.
    pub(crate) fn subscribe(
        &self,
        connection: &Arc<Connection>,
        topic: TopicKey,
        with_id: bool,
        fence: &Arc<AppTopics>,
    ) -> Result<(), TopicRefused> {
        let subscriber: Arc<dyn Subscriber> = connection.clone();
        self.broker
            .subscribe(&topic, connection.id, subscriber, with_id, fence)?;
        let mut topics = lock(&connection.topics);
        if !topics.contains(&topic) {
            topics.push(topic);
        }
        Ok(())
    }

    pub(crate) fn unsubscribe(&self, connection: &Connection, topic: &TopicKey) {
        self.broker.unsubscribe(topic, connection.id);
        lock(&connection.topics).retain(|t| t != topic);
    }

    /// How many connections are open.
    pub(crate) fn len(&self) -> usize {
        lock(&self.connections).len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A receiver that turns true when the server shuts down.
    pub(crate) fn shutdown_signal(&self) -> watch::Receiver<bool> {
        self.shutdown.subscribe()
    }

    /// Close every connection with 1001 (going away) and wait, up to
    /// `timeout`, for them to finish.
    pub(crate) async fn shut_down(&self, timeout: Duration) {
        self.shutdown.send_replace(true);
        let deadline = tokio::time::Instant::now() + timeout;
        while !self.is_empty() && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Connection {
    pub(crate) fn id(&self) -> u64 {
        self.id
    }

    pub(crate) fn path(&self) -> &str {
        &self.path
    }

    /// Queue `frame` for the client. A message over [`MAX_OUTGOING`] is
    /// refused as too large. A full queue (by count or by bytes) means the
    /// client reads too slowly: it is closed rather than buffered forever.
    pub(crate) fn send(&self, frame: Frame) -> Result<(), SendRefused> {
        let len = frame.len();
        if len > MAX_OUTGOING {
            return Err(SendRefused::TooLarge);
        }
        let mut outgoing = lock(&self.outgoing);
        if outgoing.closed {
            return Err(SendRefused::Closed);
        }
        let fits = outgoing.frames.len() < self.max_frames
            && outgoing
                .bytes
                .checked_add(len)
                .is_some_and(|total| total <= self.max_queued);
        if !fits {
            drop(outgoing);
            self.request_close(CloseCode::Policy, "send queue full");
            return Err(SendRefused::QueueFull);
        }
        outgoing.bytes += len;
        outgoing.frames.push_back(frame);
        drop(outgoing);
        self.outgoing_waker.wake();
        Ok(())
    }

    /// Ask the socket task to close with `code` (the first request wins).
    pub(crate) fn request_close(&self, code: CloseCode, reason: &str) {
        let mut request = lock(&self.close_request);
        if request.is_none() {
            *request = Some(CloseFrame {
                code,
                reason: reason.into(),
            });
            self.close_asked.store(true, Ordering::Release);
            drop(request);
            self.close_waker.wake();
        }
    }

    /// The close asked for, once there is one. One task waits for it at a
    /// time: the one serving the connection. The future may be polled
    /// again after it resolved (it resolves again), so a socket task can
    /// keep one for the connection's life.
    pub(crate) fn close_requested(&self) -> impl Future<Output = CloseFrame> + '_ {
        std::future::poll_fn(|cx| {
            if let Some(frame) = self.pending_close() {
                return Poll::Ready(frame);
            }
            self.close_waker.register(cx.waker());
            // A request made between the check and the registration.
            self.pending_close().map_or(Poll::Pending, Poll::Ready)
        })
    }

    fn pending_close(&self) -> Option<CloseFrame> {
        if !self.close_asked.load(Ordering::Acquire) {
            return None;
        }
        lock(&self.close_request).clone()
    }

    /// The receiving end of the outgoing queue, for the socket task (once).
    pub(crate) fn take_outbox(self: &Arc<Self>) -> Option<Outbox> {
        if self.outbox_taken.swap(true, Ordering::Relaxed) {
            return None;
        }
        Some(Outbox {
            connection: self.clone(),
        })
    }

    pub(crate) fn state(&self) -> Bytes {
        lock(&self.state).clone()
    }

    pub(crate) fn set_state(&self, state: Bytes) -> Result<(), SendRefused> {
        if state.len() > MAX_STATE {
            return Err(SendRefused::TooLarge);
        }
        *lock(&self.state) = state;
        Ok(())
    }
}

/// Frames waiting to be written to the client, and their bytes.
#[derive(Default)]
struct Outgoing {
    frames: VecDeque<Frame>,
    bytes: usize,
    /// The socket task is gone: nothing more is taken.
    closed: bool,
}

/// A connection's queued frames, as the socket task takes them: each frame
/// taken gives its bytes back to the queue. Dropping it closes the queue.
pub(crate) struct Outbox {
    connection: Arc<Connection>,
}

impl Outbox {
    /// The next frame, waiting for one. Cancel-safe: a frame leaves the
    /// queue only in the poll that returns it.
    pub(crate) async fn recv(&mut self) -> Frame {
        std::future::poll_fn(|cx| {
            if let Some(frame) = self.try_recv() {
                return Poll::Ready(frame);
            }
            self.connection.outgoing_waker.register(cx.waker());
            // A frame queued between the check and the registration.
            self.try_recv().map_or(Poll::Pending, Poll::Ready)
        })
        .await
    }

    /// The next frame if one is queued now.
    pub(crate) fn try_recv(&mut self) -> Option<Frame> {
        let mut outgoing = lock(&self.connection.outgoing);
        let frame = outgoing.frames.pop_front()?;
        outgoing.bytes -= frame.len();
        if outgoing.frames.is_empty() && outgoing.frames.capacity() > IDLE_QUEUE_CAPACITY {
            // A burst's storage goes back once it is written.
            outgoing.frames = VecDeque::new();
        }
        Some(frame)
    }
}

impl Drop for Outbox {
    fn drop(&mut self) {
        let mut outgoing = lock(&self.connection.outgoing);
        outgoing.closed = true;
        outgoing.frames = VecDeque::new();
        outgoing.bytes = 0;
        drop(outgoing);
        // The socket task is ending: its wakers must not keep it alive
        // while something else still holds the connection.
        drop(self.connection.outgoing_waker.take());
        drop(self.connection.close_waker.take());
    }
}

impl Subscriber for Connection {
    fn deliver(&self, frame: Frame) {
        // A full queue closes the connection (see `send`); nothing else to do.
        let _ = self.send(frame);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hub() -> Arc<Hub> {
        Hub::new(Broker::new())
    }

    #[test]
    fn a_connection_is_found_only_by_its_own_app() {
        let hub = hub();
        let connection = hub.connect("chat", "/ws", 4, 1 << 20);
        assert!(hub.get("chat", connection.id()).is_some());
        assert!(hub.get("other", connection.id()).is_none());
        hub.disconnect(&connection);
        assert!(hub.get("chat", connection.id()).is_none());
        assert!(hub.is_empty());
    }

    #[tokio::test]
    async fn a_full_queue_refuses_and_asks_for_a_1008_close() {
        let hub = hub();
        let connection = hub.connect("chat", "/ws", 2, 1 << 20);
        assert_eq!(connection.send(Frame::Text("1".into())), Ok(()));
        assert_eq!(connection.send(Frame::Text("2".into())), Ok(()));
        assert_eq!(
            connection.send(Frame::Text("3".into())),
            Err(SendRefused::QueueFull)
        );
        let close = connection.close_requested().await;
        assert_eq!(close.code, CloseCode::Policy);
    }

    #[tokio::test]
    async fn the_first_close_request_wins() {
        let connection = hub().connect("chat", "/ws", 2, 1 << 20);
        connection.request_close(CloseCode::Normal, "bye");
        connection.request_close(CloseCode::Away, "later");
        let close = connection.close_requested().await;
        assert_eq!(close.code, CloseCode::Normal);
        assert_eq!(close.reason, "bye");
    }

    #[test]
    fn state_is_bounded() {
        let connection = hub().connect("chat", "/ws", 2, 1 << 20);
        assert_eq!(connection.set_state(Bytes::from_static(b"{}")), Ok(()));
        assert_eq!(connection.state(), "{}");
        let big = Bytes::from(vec![0u8; MAX_STATE + 1]);
        assert_eq!(connection.set_state(big), Err(SendRefused::TooLarge));
        assert_eq!(connection.state(), "{}", "the old state is kept");
    }

    #[test]
    fn a_closed_outbox_refuses_as_closed() {
        let connection = hub().connect("chat", "/ws", 2, 1 << 20);
        drop(connection.take_outbox());
        assert_eq!(
            connection.send(Frame::Text("late".into())),
            Err(SendRefused::Closed)
        );
        assert!(connection.take_outbox().is_none(), "taken once");
    }

    #[tokio::test]
    async fn subscriptions_end_with_the_connection() {
        let broker = Broker::new();
        let hub = Hub::new(broker.clone());
        let connection = hub.connect("chat", "/ws", 8, 1 << 20);
        let mut outbox = connection.take_outbox().expect("outbox");
        let topic = TopicKey::new(&Arc::from("chat"), "room");
        let fence = AppTopics::new(10, 1 << 20, 10);
        hub.subscribe(&connection, topic.clone(), false, &fence)
            .expect("room");
        broker
            .publish(&topic, Bytes::from_static(b"hello"), &fence)
            .expect("published");
        assert_eq!(outbox.recv().await, Frame::Text("hello".into()));
        hub.disconnect(&connection);
        broker
            .publish(&topic, Bytes::from_static(b"gone"), &fence)
            .expect("published");
        assert!(outbox.try_recv().is_none(), "no frame after disconnect");
    }

    #[test]
    fn the_queue_is_bounded_by_bytes_and_gives_them_back() {
        let connection = hub().connect("chat", "/ws", 100, MAX_OUTGOING + 10);
        let mut outbox = connection.take_outbox().expect("outbox");
        let big = Frame::Binary(Bytes::from(vec![0u8; MAX_OUTGOING]));
        assert_eq!(connection.send(big.clone()), Ok(()));
        assert_eq!(connection.send(Frame::Text("0123456789".into())), Ok(()));
        assert_eq!(
            connection.send(Frame::Text("x".into())),
            Err(SendRefused::QueueFull),
            "one byte over the bytes queued"
        );
        assert!(outbox.try_recv().is_some());
        assert_eq!(lock(&connection.outgoing).bytes, 10);
    }

    #[test]
    fn a_message_over_the_limit_is_refused_without_closing() {
        let connection = hub().connect("chat", "/ws", 4, 1 << 20);
        let huge = Frame::Binary(Bytes::from(vec![0u8; MAX_OUTGOING + 1]));
        assert_eq!(connection.send(huge), Err(SendRefused::TooLarge));
        assert!(lock(&connection.close_request).is_none());
        assert_eq!(connection.send(Frame::Text("fine".into())), Ok(()));
    }
}

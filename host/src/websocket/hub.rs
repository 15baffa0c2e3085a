//! The open connections, by id: how the `websocket` import and the pub/sub
//! broker reach a socket, and how shutdown reaches them all.

use crate::bindings::websocket_types::WsError;
use crate::pubsub::{Broker, Subscriber, TopicKey};
use bytes::Bytes;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::{Notify, mpsc, watch};
use tokio_tungstenite::tungstenite::Message as Frame;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

/// Largest per-connection state blob.
pub const MAX_STATE: usize = 64 << 10;

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poison| poison.into_inner())
}

/// Every open connection of every app.
pub struct Hub {
    connections: Mutex<HashMap<u64, Arc<Connection>>>,
    next_id: AtomicU64,
    shutdown: watch::Sender<bool>,
    broker: Arc<Broker>,
}

/// One open (or opening) connection.
pub struct Connection {
    id: u64,
    app: Arc<str>,
    path: String,
    outbox: mpsc::Sender<Frame>,
    /// Taken by the socket task when it starts.
    outbox_receiver: Mutex<Option<mpsc::Receiver<Frame>>>,
    /// A close the socket task must perform (asked by the guest, or forced
    /// by a full queue), and the signal that there is one.
    close_request: Mutex<Option<CloseFrame>>,
    close_signal: Notify,
    state: Mutex<Bytes>,
    topics: Mutex<Vec<TopicKey>>,
}

impl Hub {
    pub fn new(broker: Arc<Broker>) -> Arc<Self> {
        Arc::new(Hub {
            connections: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(1),
            shutdown: watch::Sender::new(false),
            broker,
        })
    }

    /// Register a new connection of `app` on `path`, with room for `queue`
    /// outgoing messages.
    pub fn connect(&self, app: &str, path: &str, queue: usize) -> Arc<Connection> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (outbox, receiver) = mpsc::channel(queue.max(1));
        let connection = Arc::new(Connection {
            id,
            app: app.into(),
            path: path.to_owned(),
            outbox,
            outbox_receiver: Mutex::new(Some(receiver)),
            close_request: Mutex::new(None),
            close_signal: Notify::new(),
            state: Mutex::new(Bytes::new()),
            topics: Mutex::new(Vec::new()),
        });
        lock(&self.connections).insert(id, connection.clone());
        connection
    }

    /// Forget a connection and its subscriptions.
    pub fn disconnect(&self, connection: &Connection) {
        lock(&self.connections).remove(&connection.id);
        for topic in lock(&connection.topics).drain(..) {
            self.broker.unsubscribe(&topic, connection.id);
        }
    }

    /// The connection `id`, if it is open and belongs to `app`.
    pub fn get(&self, app: &str, id: u64) -> Option<Arc<Connection>> {
        lock(&self.connections)
            .get(&id)
            .filter(|connection| &*connection.app == app)
            .cloned()
    }

    /// Feed `topic` to `connection`.
    pub fn subscribe(
        &self,
        connection: &Arc<Connection>,
        topic: TopicKey,
        with_id: bool,
        history: usize,
    ) {
        let subscriber: Arc<dyn Subscriber> = connection.clone();
        self.broker
            .subscribe(&topic, connection.id, subscriber, with_id, history);
        let mut topics = lock(&connection.topics);
        if !topics.contains(&topic) {
            topics.push(topic);
        }
    }

    pub fn unsubscribe(&self, connection: &Connection, topic: &TopicKey) {
        self.broker.unsubscribe(topic, connection.id);
        lock(&connection.topics).retain(|t| t != topic);
    }

    /// How many connections are open.
    pub fn len(&self) -> usize {
        lock(&self.connections).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A receiver that turns true when the server shuts down.
    pub fn shutdown_signal(&self) -> watch::Receiver<bool> {
        self.shutdown.subscribe()
    }

    /// Close every connection with 1001 (going away) and wait, up to
    /// `timeout`, for them to finish.
    pub async fn shut_down(&self, timeout: Duration) {
        self.shutdown.send_replace(true);
        let deadline = tokio::time::Instant::now() + timeout;
        while !self.is_empty() && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Connection {
    pub fn id(&self) -> u64 {
        self.id
    }

    pub fn path(&self) -> &str {
        &self.path
    }

    /// Queue `frame` for the client. A full queue means the client reads too
    /// slowly: it is closed rather than buffered forever.
    pub fn send(&self, frame: Frame) -> Result<(), WsError> {
        match self.outbox.try_send(frame) {
            Ok(()) => Ok(()),
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.request_close(CloseCode::Policy, "send queue full");
                Err(WsError::QueueFull)
            }
            Err(mpsc::error::TrySendError::Closed(_)) => Err(WsError::Closed),
        }
    }

    /// Ask the socket task to close with `code` (the first request wins).
    pub fn request_close(&self, code: CloseCode, reason: &str) {
        let mut request = lock(&self.close_request);
        if request.is_none() {
            *request = Some(CloseFrame {
                code,
                reason: reason.into(),
            });
            self.close_signal.notify_one();
        }
    }

    pub(super) async fn close_requested(&self) -> CloseFrame {
        loop {
            if let Some(frame) = lock(&self.close_request).clone() {
                return frame;
            }
            self.close_signal.notified().await;
        }
    }

    pub(super) fn take_outbox(&self) -> Option<mpsc::Receiver<Frame>> {
        lock(&self.outbox_receiver).take()
    }

    pub fn state(&self) -> Bytes {
        lock(&self.state).clone()
    }

    pub fn set_state(&self, state: Bytes) -> Result<(), WsError> {
        if state.len() > MAX_STATE {
            return Err(WsError::TooLarge);
        }
        *lock(&self.state) = state;
        Ok(())
    }
}

impl Subscriber for Connection {
    fn deliver(&self, frame: Frame) {
        // A full queue closes the connection (see `send`); nothing else to do.
        let _ = self.send(frame);
    }
}

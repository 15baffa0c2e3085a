//! Hibernate mode: the host keeps the connection, reads the client's lines
//! and hands each event to a fresh instance; nothing of the app is alive
//! while the connection idles, so a server may hold many idle clients.

use super::ConnectionInfo;
use crate::pubsub::PubSubError;
use crate::sys;
use crate::websocket::SendError;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;

/// A hibernate-mode connection, as an event handler sees it: what it can
/// do with it lasts between events (its queue, its subscriptions and its
/// state are kept by the host).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TcpConnection {
    info: ConnectionInfo,
}

impl TcpConnection {
    pub(crate) fn new(info: ConnectionInfo) -> Self {
        TcpConnection { info }
    }

    /// Unique in the host for the connection's lifetime.
    pub fn id(&self) -> u64 {
        self.info.id
    }

    /// The client's address, `127.0.0.1:50312`.
    pub fn peer(&self) -> &str {
        &self.info.peer
    }

    /// The listener that accepted it.
    pub fn listener(&self) -> &str {
        &self.info.listener
    }

    /// Queue `bytes` for the client (it does not wait for the network). A
    /// client that does not read fills the listener's `send_buffer` and is
    /// disconnected: [`SendError::QueueFull`].
    pub fn send(&self, bytes: impl AsRef<[u8]>) -> Result<(), SendError> {
        sys::tcp_send(self.info.id, bytes.as_ref())
    }

    /// Close the connection once what is queued for it is written.
    pub fn close(&self) {
        sys::tcp_close(self.info.id);
    }

    /// Forward every message published to `topic` to the client, by the
    /// host, without waking a guest (the payload's bytes, as they are).
    pub fn subscribe(&self, topic: &str) -> Result<(), PubSubError> {
        sys::tcp_subscribe(self.info.id, topic)
    }

    /// Stop forwarding `topic`.
    pub fn unsubscribe(&self, topic: &str) {
        sys::tcp_unsubscribe(self.info.id, topic);
    }

    /// The state the host keeps for the connection (empty until set).
    pub fn state(&self) -> Vec<u8> {
        sys::tcp_state(self.info.id)
    }

    /// Replace the connection's state (at most 64 KiB).
    pub fn set_state(&self, state: impl AsRef<[u8]>) -> Result<(), SendError> {
        sys::tcp_set_state(self.info.id, state.as_ref())
    }
}

/// An event of a hibernate-mode connection, as the export glue passes it.
#[doc(hidden)]
pub enum TcpEvent {
    Open,
    Frame(Vec<u8>),
    Close,
}

type OnEvent = dyn Fn(TcpConnection, Option<Vec<u8>>) -> Pin<Box<dyn Future<Output = ()>>>;

/// The handlers of a hibernate-mode listener (`mode = "hibernate"` in its
/// `[[app.NAME.tcp]]` table), set with [`Router::tcp_events`](crate::Router::tcp_events).
///
/// ```no_run
/// use squall_sdk::Router;
/// use squall_sdk::tcp::{TcpConnection, TcpEvents};
///
/// fn app() -> Router {
///     Router::new().tcp_events(
///         TcpEvents::new()
///             .on_open(|client: TcpConnection| async move {
///                 let _ = client.subscribe("room");
///             })
///             .on_frame(|client: TcpConnection, line: Vec<u8>| async move {
///                 let said = format!("{}: {}", client.peer(), String::from_utf8_lossy(&line));
///                 let _ = squall_sdk::pubsub::publish("room", said);
///             }),
///     )
/// }
/// ```
#[derive(Default, Clone)]
pub struct TcpEvents {
    open: Option<Rc<OnEvent>>,
    frame: Option<Rc<OnEvent>>,
    close: Option<Rc<OnEvent>>,
}

impl TcpEvents {
    /// No handlers: lines are read and dropped.
    pub fn new() -> Self {
        TcpEvents::default()
    }

    /// A connection was accepted.
    pub fn on_open<F, Fut>(mut self, handler: F) -> Self
    where
        F: Fn(TcpConnection) -> Fut + 'static,
        Fut: Future<Output = ()> + 'static,
    {
        self.open = Some(Rc::new(move |connection, _| Box::pin(handler(connection))));
        self
    }

    /// A line from the client, its `\n` included.
    pub fn on_frame<F, Fut>(mut self, handler: F) -> Self
    where
        F: Fn(TcpConnection, Vec<u8>) -> Fut + 'static,
        Fut: Future<Output = ()> + 'static,
    {
        self.frame = Some(Rc::new(move |connection, frame| {
            Box::pin(handler(connection, frame.unwrap_or_default()))
        }));
        self
    }

    /// The connection ended.
    pub fn on_close<F, Fut>(mut self, handler: F) -> Self
    where
        F: Fn(TcpConnection) -> Fut + 'static,
        Fut: Future<Output = ()> + 'static,
    {
        self.close = Some(Rc::new(move |connection, _| Box::pin(handler(connection))));
        self
    }

    #[cfg_attr(feature = "wasi-http", allow(dead_code))]
    pub(crate) async fn dispatch(&self, connection: TcpConnection, event: TcpEvent) {
        let (handler, frame) = match event {
            TcpEvent::Open => (&self.open, None),
            TcpEvent::Frame(frame) => (&self.frame, Some(frame)),
            TcpEvent::Close => (&self.close, None),
        };
        if let Some(handler) = handler {
            handler(connection, frame).await;
        }
    }
}

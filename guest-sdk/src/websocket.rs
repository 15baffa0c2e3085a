//! WebSockets, Tornado's `WebSocketHandler`: `on_open`, `on_message`,
//! `on_close`, and a [`Connection`] to send on, close, and subscribe to
//! pub/sub topics.
//!
//! ```ignore
//! Router::new().websocket(
//!     "/chatsocket",
//!     WebSocket::new()
//!         .on_open(|ws: Connection, _req: Request| async move {
//!             ws.subscribe_with_id("chat")?;
//!             Ok(Accept::new())
//!         })
//!         .on_message(|_ws: Connection, message: Message| async move {
//!             if let Message::Text(text) = message {
//!                 let _ = pubsub::publish("chat", text);
//!             }
//!         }),
//! )
//! ```
//!
//! The host owns the socket. Events of one connection arrive in order and
//! never before `on_open` has returned. In the manifest's `live` mode one
//! instance serves a connection for its whole life, so statics are
//! per-connection state; in `hibernate` mode each event gets a fresh
//! instance and [`Connection::state`] is what survives between events.

#[cfg(not(feature = "wasi-http"))]
use crate::bindings::squall::app::websocket as host;
#[cfg(not(feature = "wasi-http"))]
use crate::bindings::squall::app::websocket_types as wit;
use crate::pubsub::PubSubError;
use crate::{Error, Request};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::future::Future;
use std::pin::Pin;

/// A message from or to a client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    Text(String),
    Binary(Vec<u8>),
}

impl Message {
    /// The text of a text message.
    pub fn as_text(&self) -> Option<&str> {
        match self {
            Message::Text(text) => Some(text),
            Message::Binary(_) => None,
        }
    }

    /// The message parsed as JSON (text or binary).
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        match self {
            Message::Text(text) => serde_json::from_str(text),
            Message::Binary(bytes) => serde_json::from_slice(bytes),
        }
    }

    #[cfg(not(feature = "wasi-http"))]
    fn from_wit(message: wit::WsMessage) -> Self {
        match message {
            wit::WsMessage::Text(text) => Message::Text(text),
            wit::WsMessage::Binary(bytes) => Message::Binary(bytes),
        }
    }

    #[cfg(not(feature = "wasi-http"))]
    fn into_wit(self) -> wit::WsMessage {
        match self {
            Message::Text(text) => wit::WsMessage::Text(text),
            Message::Binary(bytes) => wit::WsMessage::Binary(bytes),
        }
    }
}

/// Why a send failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendError {
    /// The connection is gone.
    Closed,
    /// The client reads too slowly; the host is closing it.
    QueueFull,
    /// The message or state is too large.
    TooLarge,
}

impl SendError {
    #[cfg(not(feature = "wasi-http"))]
    fn from_wit(error: wit::WsError) -> Self {
        match error {
            wit::WsError::Closed => SendError::Closed,
            wit::WsError::QueueFull => SendError::QueueFull,
            wit::WsError::TooLarge => SendError::TooLarge,
        }
    }
}

impl std::fmt::Display for SendError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            SendError::Closed => "the connection is closed",
            SendError::QueueFull => "the connection's send queue is full",
            SendError::TooLarge => "too large",
        })
    }
}

impl std::error::Error for SendError {}

/// An open connection. Cheap to clone; any instance of the app may act on
/// it by id (an HTTP handler too).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connection {
    id: u64,
    path: String,
    params: Vec<(String, String)>,
}

impl Connection {
    /// The connection with `id` (e.g. one stored earlier), opened on `path`.
    pub fn from_id(id: u64, path: impl Into<String>) -> Self {
        Connection {
            id,
            path: path.into(),
            params: Vec::new(),
        }
    }

    /// Unique in the host while the connection is open.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// The path it was opened on.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// A path parameter of its route.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }

    /// Queue a message for the client (Tornado's `write_message`).
    pub fn send(&self, message: Message) -> Result<(), SendError> {
        #[cfg(not(feature = "wasi-http"))]
        return host::send(self.id, &message.into_wit()).map_err(SendError::from_wit);
        #[cfg(feature = "wasi-http")]
        {
            let _ = message;
            Err(SendError::Closed)
        }
    }

    /// Queue a text message.
    pub fn send_text(&self, text: impl Into<String>) -> Result<(), SendError> {
        self.send(Message::Text(text.into()))
    }

    /// Queue `value` as a JSON text message.
    pub fn send_json<T: Serialize>(&self, value: &T) -> Result<(), SendError> {
        let text = serde_json::to_string(value).map_err(|_| SendError::TooLarge)?;
        self.send_text(text)
    }

    /// Close the connection with `code` (1000 is a normal close).
    pub fn close(&self, code: u16, reason: &str) {
        #[cfg(not(feature = "wasi-http"))]
        host::close(self.id, code, reason);
        #[cfg(feature = "wasi-http")]
        let _ = (code, reason);
    }

    /// Have the host forward every message published to `topic` to this
    /// client, without waking the guest.
    pub fn subscribe(&self, topic: &str) -> Result<(), PubSubError> {
        self.subscribe_as(topic, false)
    }

    /// Like [`subscribe`](Connection::subscribe), adding the message's id as
    /// an `"id"` field to JSON-object payloads.
    pub fn subscribe_with_id(&self, topic: &str) -> Result<(), PubSubError> {
        self.subscribe_as(topic, true)
    }

    fn subscribe_as(&self, topic: &str, with_id: bool) -> Result<(), PubSubError> {
        #[cfg(not(feature = "wasi-http"))]
        return host::subscribe(self.id, topic, with_id).map_err(PubSubError::from_wit);
        #[cfg(feature = "wasi-http")]
        {
            let _ = (topic, with_id);
            Err(PubSubError::Unavailable)
        }
    }

    pub fn unsubscribe(&self, topic: &str) {
        #[cfg(not(feature = "wasi-http"))]
        host::unsubscribe(self.id, topic);
        #[cfg(feature = "wasi-http")]
        let _ = topic;
    }

    /// The connection's state, kept by the host between events (JSON);
    /// `T::default()` until set.
    pub fn state<T: DeserializeOwned + Default>(&self) -> T {
        #[cfg(not(feature = "wasi-http"))]
        return serde_json::from_slice(&host::get_state(self.id)).unwrap_or_default();
        #[cfg(feature = "wasi-http")]
        T::default()
    }

    /// Replace the connection's state (at most 64 KiB of JSON).
    pub fn set_state<T: Serialize>(&self, state: &T) -> Result<(), SendError> {
        let bytes = serde_json::to_vec(state).map_err(|_| SendError::TooLarge)?;
        #[cfg(not(feature = "wasi-http"))]
        return host::set_state(self.id, &bytes).map_err(SendError::from_wit);
        #[cfg(feature = "wasi-http")]
        {
            let _ = bytes;
            Err(SendError::Closed)
        }
    }
}

/// Accept an upgrade.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Accept {
    protocol: Option<String>,
}

impl Accept {
    pub fn new() -> Self {
        Accept::default()
    }

    /// Pick `protocol` from those the client offered (`Sec-WebSocket-Protocol`).
    pub fn protocol(mut self, protocol: impl Into<String>) -> Self {
        self.protocol = Some(protocol.into());
        self
    }
}

type LocalFuture<T> = Pin<Box<dyn Future<Output = T>>>;
type OpenFn = Box<dyn Fn(Connection, Request) -> LocalFuture<Result<Accept, Error>>>;
type MessageFn = Box<dyn Fn(Connection, Message) -> LocalFuture<()>>;
type CloseFn = Box<dyn Fn(Connection, u16, String) -> LocalFuture<()>>;

/// The handlers of one WebSocket route. Any left out does nothing (an
/// upgrade is accepted).
#[derive(Default)]
pub struct WebSocket {
    on_open: Option<OpenFn>,
    on_message: Option<MessageFn>,
    on_close: Option<CloseFn>,
}

impl WebSocket {
    pub fn new() -> Self {
        WebSocket::default()
    }

    /// Decide on an upgrade; `Err` refuses it with the error's status.
    pub fn on_open<F, Fut>(mut self, handler: F) -> Self
    where
        F: Fn(Connection, Request) -> Fut + 'static,
        Fut: Future<Output = Result<Accept, Error>> + 'static,
    {
        self.on_open = Some(Box::new(move |ws, req| Box::pin(handler(ws, req))));
        self
    }

    /// Handle a message from the client.
    pub fn on_message<F, Fut>(mut self, handler: F) -> Self
    where
        F: Fn(Connection, Message) -> Fut + 'static,
        Fut: Future<Output = ()> + 'static,
    {
        self.on_message = Some(Box::new(move |ws, message| Box::pin(handler(ws, message))));
        self
    }

    /// Learn that the connection closed, with its code and reason.
    pub fn on_close<F, Fut>(mut self, handler: F) -> Self
    where
        F: Fn(Connection, u16, String) -> Fut + 'static,
        Fut: Future<Output = ()> + 'static,
    {
        self.on_close = Some(Box::new(move |ws, code, reason| {
            Box::pin(handler(ws, code, reason))
        }));
        self
    }

    #[cfg_attr(feature = "wasi-http", allow(dead_code))]
    pub(crate) async fn open(&self, ws: Connection, request: Request) -> Result<Accept, Error> {
        match &self.on_open {
            Some(handler) => handler(ws, request).await,
            None => Ok(Accept::new()),
        }
    }

    #[cfg(not(feature = "wasi-http"))]
    pub(crate) async fn message(&self, ws: Connection, message: wit::WsMessage) {
        if let Some(handler) = &self.on_message {
            handler(ws, Message::from_wit(message)).await;
        }
    }

    #[cfg_attr(feature = "wasi-http", allow(dead_code))]
    pub(crate) async fn close(&self, ws: Connection, code: u16, reason: String) {
        if let Some(handler) = &self.on_close {
            handler(ws, code, reason).await;
        }
    }
}

#[cfg(not(feature = "wasi-http"))]
pub(crate) fn connection(from: wit::Connection, params: Vec<(String, String)>) -> Connection {
    Connection {
        id: from.id,
        path: from.path,
        params,
    }
}

#[cfg(not(feature = "wasi-http"))]
pub(crate) fn accept_to_wit(accept: Accept) -> wit::Accept {
    wit::Accept {
        protocol: accept.protocol,
    }
}

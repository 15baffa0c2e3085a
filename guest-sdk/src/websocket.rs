//! WebSockets, Tornado's `WebSocketHandler`: `on_open`, `on_message`,
//! `on_close`, and a [`Connection`] to send on, close, and subscribe to
//! pub/sub topics.
//!
//! ```no_run
//! use squall_sdk::websocket::{Accept, Connection, Message, WebSocket};
//! use squall_sdk::{Error, Request, Router, StatusCode, pubsub};
//!
//! fn app() -> Router {
//!     Router::new().websocket(
//!         "/chatsocket",
//!         WebSocket::new()
//!             .on_open(|ws: Connection, _req: Request| async move {
//!                 ws.subscribe_with_id("chat").map_err(|err| {
//!                     Error::new(StatusCode::INTERNAL_SERVER_ERROR, err.to_string())
//!                 })?;
//!                 Ok(Accept::new())
//!             })
//!             .on_message(|_ws: Connection, message: Message| async move {
//!                 if let Message::Text(text) = message {
//!                     let _ = pubsub::publish("chat", text);
//!                 }
//!             }),
//!     )
//! }
//! ```
//!
//! The host owns the socket. Events of one connection arrive in order and
//! never before `on_open` has returned. In the manifest's `live` mode one
//! instance serves a connection for its whole life, so statics are
//! per-connection state; in `hibernate` mode each event gets a fresh
//! instance and [`Connection::state`] is what survives between events.

use crate::pubsub::PubSubError;
use crate::{Error, Request, sys};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::future::Future;
use std::pin::Pin;

/// A message from or to a client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// A text message (UTF-8).
    Text(String),
    /// A binary message.
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

impl From<SendError> for crate::Error {
    /// `410 Gone` for a closed connection, `503` for a full queue, `413`
    /// for a message over the limit.
    fn from(error: SendError) -> Self {
        let status = match error {
            SendError::Closed => ::http::StatusCode::GONE,
            SendError::QueueFull => ::http::StatusCode::SERVICE_UNAVAILABLE,
            SendError::TooLarge => ::http::StatusCode::PAYLOAD_TOO_LARGE,
        };
        crate::Error::new(status, error.to_string())
    }
}

impl crate::IntoResponse for SendError {
    /// As its [`Error`](crate::Error).
    fn into_response(self) -> crate::Response {
        crate::Error::from(self).into_response()
    }
}

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

    /// The same connection, with the path parameters of its route.
    pub(crate) fn with_params(mut self, params: Vec<(String, String)>) -> Self {
        self.params = params;
        self
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
        sys::ws_send(self.id, message)
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
        sys::ws_close(self.id, code, reason);
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
        sys::ws_subscribe(self.id, topic, with_id)
    }

    /// Stop forwarding `topic`'s messages to this client.
    pub fn unsubscribe(&self, topic: &str) {
        sys::ws_unsubscribe(self.id, topic);
    }

    /// The connection's state, kept by the host between events (JSON);
    /// `T::default()` until set.
    pub fn state<T: DeserializeOwned + Default>(&self) -> T {
        serde_json::from_slice(&sys::ws_state(self.id)).unwrap_or_default()
    }

    /// Replace the connection's state (at most 64 KiB of JSON).
    pub fn set_state<T: Serialize>(&self, state: &T) -> Result<(), SendError> {
        let bytes = serde_json::to_vec(state).map_err(|_| SendError::TooLarge)?;
        sys::ws_set_state(self.id, &bytes)
    }
}

/// Accept an upgrade.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Accept {
    protocol: Option<String>,
}

impl Accept {
    /// Accept without picking a subprotocol.
    pub fn new() -> Self {
        Accept::default()
    }

    /// Pick `protocol` from those the client offered (`Sec-WebSocket-Protocol`).
    pub fn protocol(mut self, protocol: impl Into<String>) -> Self {
        self.protocol = Some(protocol.into());
        self
    }

    /// The subprotocol picked, if any.
    pub(crate) fn into_protocol(self) -> Option<String> {
        self.protocol
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
    /// A route whose handlers all do nothing; add them with the `on_*` methods.
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

    pub(crate) async fn open(&self, ws: Connection, request: Request) -> Result<Accept, Error> {
        match &self.on_open {
            Some(handler) => handler(ws, request).await,
            None => Ok(Accept::new()),
        }
    }

    pub(crate) async fn message(&self, ws: Connection, message: Message) {
        if let Some(handler) = &self.on_message {
            handler(ws, message).await;
        }
    }

    pub(crate) async fn close(&self, ws: Connection, code: u16, reason: String) {
        if let Some(handler) = &self.on_close {
            handler(ws, code, reason).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_helpers_read_text_and_json() {
        let text = Message::Text(r#"{"n":1}"#.into());
        assert_eq!(text.as_text(), Some(r#"{"n":1}"#));
        let value: serde_json::Value = text.json().expect("JSON text");
        assert_eq!(value["n"], 1);

        let binary = Message::Binary(br#"[1,2]"#.to_vec());
        assert_eq!(binary.as_text(), None);
        assert_eq!(binary.json::<Vec<u8>>().expect("JSON bytes"), vec![1, 2]);
        assert!(
            Message::Text("not json".into())
                .json::<serde_json::Value>()
                .is_err()
        );
    }

    #[test]
    fn send_errors_display_their_reason() {
        assert_eq!(SendError::Closed.to_string(), "the connection is closed");
        assert_eq!(
            SendError::QueueFull.to_string(),
            "the connection's send queue is full"
        );
        assert_eq!(SendError::TooLarge.to_string(), "too large");
    }

    #[test]
    fn a_connection_knows_its_id_path_and_params() {
        let connection = Connection::from_id(42, "/rooms/kitchen");
        assert_eq!((connection.id(), connection.path()), (42, "/rooms/kitchen"));
        assert_eq!(connection.param("room"), None);
        let connection = connection.with_params(vec![("room".into(), "kitchen".into())]);
        assert_eq!(connection.param("room"), Some("kitchen"));
        assert_eq!(connection.clone(), connection);
    }

    #[test]
    fn accept_picks_at_most_one_protocol() {
        assert_eq!(Accept::new().into_protocol(), None);
        assert_eq!(Accept::default(), Accept::new());
        let accept = Accept::new().protocol("chat.v1").protocol("chat.v2");
        assert_eq!(accept.into_protocol().as_deref(), Some("chat.v2"));
    }
}

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
///
/// ```no_run
/// use squall_sdk::websocket::{Connection, Message};
///
/// async fn on_message(ws: Connection, message: Message) {
///     let reply = match message {
///         Message::Text(text) => Message::Text(text.to_uppercase()),
///         Message::Binary(bytes) => Message::Text(format!("{} bytes", bytes.len())),
///     };
///     let _ = ws.send(reply);
/// }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// A text message (UTF-8).
    Text(String),
    /// A binary message.
    Binary(Vec<u8>),
}

impl Message {
    /// The text of a text message.
    ///
    /// ```
    /// use squall_sdk::websocket::Message;
    ///
    /// fn is_ping(message: &Message) -> bool {
    ///     message.text().is_some_and(|text| text.trim() == "ping")
    /// }
    /// assert!(is_ping(&Message::Text("ping\n".into())));
    /// assert!(!is_ping(&Message::Binary(b"ping".to_vec())));
    /// ```
    pub fn text(&self) -> Option<&str> {
        match self {
            Message::Text(text) => Some(text),
            Message::Binary(_) => None,
        }
    }

    /// The message parsed as JSON (text or binary).
    ///
    /// ```
    /// use serde::Deserialize;
    /// use squall_sdk::websocket::Message;
    ///
    /// #[derive(Deserialize)]
    /// #[serde(tag = "type", rename_all = "lowercase")]
    /// enum Command {
    ///     Join { room: String },
    ///     Leave,
    /// }
    ///
    /// let message = Message::Text(r#"{"type":"join","room":"kitchen"}"#.into());
    /// let command: Command = message.json()?;
    /// assert!(matches!(command, Command::Join { room } if room == "kitchen"));
    /// # Ok::<(), squall_sdk::serde_json::Error>(())
    /// ```
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        match self {
            Message::Text(text) => serde_json::from_str(text),
            Message::Binary(bytes) => serde_json::from_slice(bytes),
        }
    }
}

/// Why a send failed.
///
/// A handler's `?` turns it into an [`Error`]: `410 Gone` for
/// a closed connection, `503` for a full queue, `413` for a message over
/// the limit.
///
/// ```no_run
/// use squall_sdk::websocket::{Connection, SendError};
/// use squall_sdk::{Error, Request, StatusCode};
///
/// // An HTTP handler pushing to a connection whose id it was given.
/// async fn poke(req: Request) -> Result<StatusCode, Error> {
///     let id = req.param("id").and_then(|id| id.parse().ok()).ok_or_else(Error::not_found)?;
///     match Connection::from_id(id, "/ws").send_text("poke") {
///         Ok(()) => Ok(StatusCode::NO_CONTENT),
///         Err(SendError::Closed) => Err(Error::not_found()),
///         Err(other) => Err(other.into()),
///     }
/// }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendError {
    /// The connection is gone.
    Closed,
    /// The client reads too slowly; the host is closing it.
    QueueFull,
    /// The message or state is too large.
    TooLarge,
    /// The value does not serialise to JSON (a bug in the app).
    Unencodable,
}

impl std::fmt::Display for SendError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            SendError::Closed => "the connection is closed",
            SendError::QueueFull => "the connection's send queue is full",
            SendError::TooLarge => "too large",
            SendError::Unencodable => "the value does not serialise to JSON",
        })
    }
}

impl std::error::Error for SendError {}

impl From<SendError> for crate::Error {
    /// `410 Gone` for a closed connection, `503` for a full queue, `413`
    /// for a message over the limit, `500` for a value that is not JSON.
    fn from(error: SendError) -> Self {
        let status = match error {
            SendError::Closed => ::http::StatusCode::GONE,
            SendError::QueueFull => ::http::StatusCode::SERVICE_UNAVAILABLE,
            SendError::TooLarge => ::http::StatusCode::PAYLOAD_TOO_LARGE,
            SendError::Unencodable => ::http::StatusCode::INTERNAL_SERVER_ERROR,
        };
        crate::Error::from_capability(status, error.to_string())
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
///
/// ```
/// use squall_sdk::websocket::{Accept, Connection, WebSocket};
/// use squall_sdk::{Request, Router};
///
/// let router = Router::new().websocket(
///     "/rooms/{room}",
///     WebSocket::new().on_open(|ws: Connection, _req: Request| async move {
///         ws.subscribe(ws.param("room").unwrap_or("lobby"))?;
///         ws.send_text(format!("welcome, connection {}", ws.id()))?;
///         Ok(Accept::new())
///     }),
/// );
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connection {
    id: u64,
    path: String,
    params: Vec<(String, String)>,
}

impl Connection {
    /// The connection with `id` (e.g. one stored earlier), opened on `path`.
    ///
    /// ```no_run
    /// use squall_sdk::websocket::Connection;
    /// use squall_sdk::{Error, Request, StatusCode, kv};
    ///
    /// // POST /users/{user}/notify: reach the user's socket from plain HTTP.
    /// async fn notify(mut req: Request) -> Result<StatusCode, Error> {
    ///     let key = format!("socket:{}", req.param("user").unwrap_or_default());
    ///     let id: u64 = kv::get_json(&key).await?.ok_or_else(Error::not_found)?;
    ///     Connection::from_id(id, "/ws").send_text(req.text().await?)?;
    ///     Ok(StatusCode::NO_CONTENT)
    /// }
    /// ```
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
    ///
    /// ```no_run
    /// use squall_sdk::websocket::{Accept, Connection};
    /// use squall_sdk::{Error, Request, kv};
    ///
    /// async fn on_open(ws: Connection, req: Request) -> Result<Accept, Error> {
    ///     let user = req.cookie("user").ok_or_else(Error::unauthorized)?;
    ///     // Remember the socket, for an HTTP handler to reach with `Connection::from_id`.
    ///     kv::set_json(&format!("socket:{user}"), &ws.id()).await?;
    ///     Ok(Accept::new())
    /// }
    /// ```
    pub fn id(&self) -> u64 {
        self.id
    }

    /// The path it was opened on.
    ///
    /// ```
    /// use squall_sdk::websocket::Connection;
    ///
    /// let ws = Connection::from_id(7, "/chat/kitchen");
    /// assert_eq!(ws.path(), "/chat/kitchen");
    /// assert_eq!(ws.id(), 7);
    /// ```
    pub fn path(&self) -> &str {
        &self.path
    }

    /// A path parameter of its route.
    ///
    /// ```
    /// use squall_sdk::websocket::{Connection, Message, WebSocket};
    /// use squall_sdk::{Router, pubsub};
    ///
    /// let router = Router::new().websocket(
    ///     "/rooms/{room}",
    ///     WebSocket::new().on_message(|ws: Connection, message: Message| async move {
    ///         let topic = format!("room:{}", ws.param("room").unwrap_or("lobby"));
    ///         let _ = pubsub::publish(&topic, message.text().unwrap_or_default());
    ///     }),
    /// );
    /// ```
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }

    /// Queue a message for the client (Tornado's `write_message`).
    ///
    /// ```no_run
    /// use squall_sdk::websocket::{Connection, Message};
    ///
    /// // Echo every message back, text or binary.
    /// async fn on_message(ws: Connection, message: Message) {
    ///     if ws.send(message).is_err() {
    ///         ws.close(1011, "cannot echo");
    ///     }
    /// }
    /// ```
    pub fn send(&self, message: Message) -> Result<(), SendError> {
        sys::ws_send(self.id, message)
    }

    /// Queue a text message.
    ///
    /// ```no_run
    /// use squall_sdk::websocket::{Connection, Message};
    ///
    /// async fn on_message(ws: Connection, message: Message) {
    ///     let text = message.text().unwrap_or_default();
    ///     let _ = ws.send_text(format!("you said: {text}"));
    /// }
    /// ```
    pub fn send_text(&self, text: impl Into<String>) -> Result<(), SendError> {
        self.send(Message::Text(text.into()))
    }

    /// Queue `value` as a JSON text message.
    ///
    /// ```no_run
    /// use squall_sdk::serde_json::json;
    /// use squall_sdk::websocket::{Accept, Connection};
    /// use squall_sdk::{Error, Request};
    ///
    /// async fn on_open(ws: Connection, _req: Request) -> Result<Accept, Error> {
    ///     ws.send_json(&json!({ "type": "hello", "connection": ws.id() }))?;
    ///     Ok(Accept::new())
    /// }
    /// ```
    pub fn send_json<T: Serialize>(&self, value: &T) -> Result<(), SendError> {
        let text = serde_json::to_string(value).map_err(|_| SendError::Unencodable)?;
        self.send_text(text)
    }

    /// Close the connection with `code` (1000 is a normal close).
    ///
    /// ```no_run
    /// use squall_sdk::websocket::{Connection, Message};
    ///
    /// async fn on_message(ws: Connection, message: Message) {
    ///     match message.text() {
    ///         Some("bye") => ws.close(1000, "goodbye"),
    ///         Some(_) => {}
    ///         None => ws.close(1003, "text only, please"),
    ///     }
    /// }
    /// ```
    pub fn close(&self, code: u16, reason: &str) {
        sys::ws_close(self.id, code, reason);
    }

    /// Have the host forward every message published to `topic` to this
    /// client, without waking the guest.
    ///
    /// ```no_run
    /// use squall_sdk::websocket::{Accept, Connection};
    /// use squall_sdk::{Error, Request};
    ///
    /// // On "/ticker/{symbol}": forward that symbol's price updates.
    /// async fn on_open(ws: Connection, _req: Request) -> Result<Accept, Error> {
    ///     let symbol = ws.param("symbol").ok_or_else(Error::not_found)?;
    ///     ws.subscribe(&format!("prices:{symbol}"))?;
    ///     Ok(Accept::new())
    /// }
    /// ```
    pub fn subscribe(&self, topic: &str) -> Result<(), PubSubError> {
        self.subscribe_as(topic, false)
    }

    /// Like [`subscribe`](Connection::subscribe), adding the message's id as
    /// an `"id"` field to JSON-object payloads.
    ///
    /// ```no_run
    /// use squall_sdk::serde_json::json;
    /// use squall_sdk::websocket::{Accept, Connection};
    /// use squall_sdk::{Error, Request, pubsub};
    ///
    /// async fn on_open(ws: Connection, _req: Request) -> Result<Accept, Error> {
    ///     // Clients see {"body": "hi", "id": 12} and can resume from 12.
    ///     ws.subscribe_with_id("chat")?;
    ///     Ok(Accept::new())
    /// }
    ///
    /// async fn say(mut req: Request) -> Result<String, Error> {
    ///     let body = req.text().await?;
    ///     let id = pubsub::publish_json("chat", &json!({ "body": body }))?;
    ///     Ok(id.to_string())
    /// }
    /// ```
    pub fn subscribe_with_id(&self, topic: &str) -> Result<(), PubSubError> {
        self.subscribe_as(topic, true)
    }

    fn subscribe_as(&self, topic: &str, with_id: bool) -> Result<(), PubSubError> {
        sys::ws_subscribe(self.id, topic, with_id)
    }

    /// Stop forwarding `topic`'s messages to this client.
    ///
    /// ```no_run
    /// use squall_sdk::websocket::{Connection, Message};
    ///
    /// // Messages like "join:rust" and "leave:rust" pick the channels to follow.
    /// async fn on_message(ws: Connection, message: Message) {
    ///     let text = message.text().unwrap_or_default();
    ///     if let Some(channel) = text.strip_prefix("leave:") {
    ///         ws.unsubscribe(channel);
    ///     } else if let Some(channel) = text.strip_prefix("join:") {
    ///         let _ = ws.subscribe(channel);
    ///     }
    /// }
    /// ```
    pub fn unsubscribe(&self, topic: &str) {
        sys::ws_unsubscribe(self.id, topic);
    }

    /// The connection's state, kept by the host between events (JSON):
    /// `T::default()` until set; `500` naming `T` if what is stored no
    /// longer decodes as `T` (e.g. after a deploy changed its shape).
    ///
    /// ```no_run
    /// use serde::{Deserialize, Serialize};
    /// use squall_sdk::websocket::{Connection, Message};
    ///
    /// #[derive(Default, Serialize, Deserialize)]
    /// struct Session {
    ///     nickname: Option<String>,
    ///     messages: u32,
    /// }
    ///
    /// async fn on_message(ws: Connection, message: Message) {
    ///     let Ok(mut session) = ws.state::<Session>() else {
    ///         return ws.close(1011, "session lost; please reconnect");
    ///     };
    ///     session.messages += 1;
    ///     let name = session.nickname.as_deref().unwrap_or("guest");
    ///     let text = message.text().unwrap_or_default();
    ///     let _ = ws.send_text(format!("{name}, message #{}: {text}", session.messages));
    ///     let _ = ws.set_state(&session);
    /// }
    /// ```
    pub fn state<T: DeserializeOwned + Default>(&self) -> Result<T, Error> {
        let stored = sys::ws_state(self.id);
        if stored.is_empty() {
            return Ok(T::default());
        }
        serde_json::from_slice(&stored).map_err(|err| {
            let wanted = std::any::type_name::<T>();
            Error::internal(format!("the connection's state is not a {wanted}: {err}"))
        })
    }

    /// Replace the connection's state (at most 64 KiB of JSON).
    ///
    /// ```no_run
    /// use squall_sdk::websocket::{Accept, Connection};
    /// use squall_sdk::{Error, Request};
    ///
    /// // In `hibernate` mode, remember the user for the connection's later events.
    /// async fn on_open(ws: Connection, req: Request) -> Result<Accept, Error> {
    ///     let user = req.cookie("user").ok_or_else(Error::unauthorized)?;
    ///     ws.set_state(&user)?;
    ///     Ok(Accept::new())
    /// }
    /// ```
    pub fn set_state<T: Serialize>(&self, state: &T) -> Result<(), SendError> {
        let bytes = serde_json::to_vec(state).map_err(|_| SendError::Unencodable)?;
        sys::ws_set_state(self.id, &bytes)
    }
}

/// Accept an upgrade.
///
/// ```
/// use squall_sdk::websocket::{Accept, Connection, WebSocket};
/// use squall_sdk::{Error, Request, Router};
///
/// let router = Router::new().websocket(
///     "/admin/ws",
///     WebSocket::new().on_open(|_ws: Connection, req: Request| async move {
///         match req.cookie("role") {
///             Some("admin") => Ok(Accept::new()),
///             _ => Err(Error::forbidden()),
///         }
///     }),
/// );
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Accept {
    protocol: Option<String>,
}

impl Accept {
    /// Accept without picking a subprotocol.
    ///
    /// ```
    /// use squall_sdk::websocket::{Accept, Connection, WebSocket};
    /// use squall_sdk::{Request, Router};
    ///
    /// let router = Router::new().websocket(
    ///     "/ws",
    ///     WebSocket::new().on_open(|ws: Connection, _req: Request| async move {
    ///         ws.send_text("hello")?;
    ///         Ok(Accept::new())
    ///     }),
    /// );
    /// ```
    pub fn new() -> Self {
        Accept::default()
    }

    /// Pick `protocol` from those the client offered (`Sec-WebSocket-Protocol`).
    ///
    /// ```
    /// use squall_sdk::websocket::{Accept, Connection};
    /// use squall_sdk::{Error, Request, StatusCode};
    ///
    /// async fn on_open(_ws: Connection, req: Request) -> Result<Accept, Error> {
    ///     let offered = req.header("sec-websocket-protocol").unwrap_or_default();
    ///     if offered.split(',').any(|protocol| protocol.trim() == "chat.v2") {
    ///         Ok(Accept::new().protocol("chat.v2"))
    ///     } else {
    ///         Err(Error::new(StatusCode::BAD_REQUEST, "this server speaks chat.v2"))
    ///     }
    /// }
    /// # use squall_sdk::futures::FutureExt;
    /// # let request = Request::new(squall_sdk::Method::GET, "/ws").with_header("sec-websocket-protocol", "chat.v1, chat.v2");
    /// # assert_eq!(on_open(Connection::from_id(1, "/ws"), request).now_or_never().expect("ready"), Ok(Accept::new().protocol("chat.v2")));
    /// ```
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
///
/// ```
/// use squall_sdk::websocket::{Accept, Connection, Message, WebSocket};
/// use squall_sdk::{Request, Router};
///
/// let chat = WebSocket::new()
///     .on_open(|ws: Connection, _req: Request| async move {
///         ws.subscribe("chat")?;
///         Ok(Accept::new())
///     })
///     .on_message(|_ws: Connection, message: Message| async move {
///         let _ = squall_sdk::pubsub::publish("chat", message.text().unwrap_or_default());
///     })
///     .on_close(|ws: Connection, code: u16, _reason: String| async move {
///         squall_sdk::log::info(format!("connection {} left with {code}", ws.id()));
///     });
/// let router = Router::new().websocket("/chat", chat);
/// ```
#[derive(Default)]
pub struct WebSocket {
    on_open: Option<OpenFn>,
    on_message: Option<MessageFn>,
    on_close: Option<CloseFn>,
}

impl WebSocket {
    /// A route whose handlers all do nothing; add them with the `on_*` methods.
    ///
    /// ```
    /// use squall_sdk::Router;
    /// use squall_sdk::websocket::WebSocket;
    ///
    /// // Clients connect and receive only what the host forwards to them.
    /// let router = Router::new().websocket("/silent", WebSocket::new());
    /// ```
    pub fn new() -> Self {
        WebSocket::default()
    }

    /// Decide on an upgrade; `Err` refuses it with the error's status.
    ///
    /// ```
    /// use squall_sdk::websocket::{Accept, Connection, WebSocket};
    /// use squall_sdk::{Error, Request, Router};
    ///
    /// async fn open(_ws: Connection, req: Request) -> Result<Accept, Error> {
    ///     match req.query_arguments().get("token") {
    ///         Some("s3cret") => Ok(Accept::new()),
    ///         _ => Err(Error::unauthorized()),
    ///     }
    /// }
    ///
    /// let router = Router::new().websocket("/live", WebSocket::new().on_open(open));
    /// ```
    pub fn on_open<F, Fut>(mut self, handler: F) -> Self
    where
        F: Fn(Connection, Request) -> Fut + 'static,
        Fut: Future<Output = Result<Accept, Error>> + 'static,
    {
        self.on_open = Some(Box::new(move |ws, req| Box::pin(handler(ws, req))));
        self
    }

    /// Handle a message from the client.
    ///
    /// ```
    /// use squall_sdk::websocket::{Connection, Message, WebSocket};
    /// use squall_sdk::Router;
    ///
    /// async fn echo(ws: Connection, message: Message) {
    ///     let _ = ws.send(message);
    /// }
    ///
    /// let router = Router::new().websocket("/echo", WebSocket::new().on_message(echo));
    /// ```
    pub fn on_message<F, Fut>(mut self, handler: F) -> Self
    where
        F: Fn(Connection, Message) -> Fut + 'static,
        Fut: Future<Output = ()> + 'static,
    {
        self.on_message = Some(Box::new(move |ws, message| Box::pin(handler(ws, message))));
        self
    }

    /// Learn that the connection closed, with its code and reason.
    ///
    /// ```
    /// use squall_sdk::websocket::{Connection, WebSocket};
    /// use squall_sdk::{Router, pubsub};
    ///
    /// async fn left(ws: Connection, code: u16, reason: String) {
    ///     let notice = format!("{} left ({code} {reason})", ws.id());
    ///     let _ = pubsub::publish("presence", notice);
    /// }
    ///
    /// let router = Router::new().websocket("/chat", WebSocket::new().on_close(left));
    /// ```
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
        assert_eq!(text.text(), Some(r#"{"n":1}"#));
        let value: serde_json::Value = text.json().expect("JSON text");
        assert_eq!(value["n"], 1);

        let binary = Message::Binary(br#"[1,2]"#.to_vec());
        assert_eq!(binary.text(), None);
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
    fn a_value_that_is_not_json_is_reported_as_such_not_as_too_large() {
        let not_json: std::collections::HashMap<(u8, u8), u8> = [((1, 2), 3)].into();
        let connection = Connection::from_id(7, "/ws");
        assert_eq!(connection.send_json(&not_json), Err(SendError::Unencodable));
        assert_eq!(connection.set_state(&not_json), Err(SendError::Unencodable));
        let error = crate::Error::from(SendError::Unencodable);
        assert_eq!(error.status(), ::http::StatusCode::INTERNAL_SERVER_ERROR);
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

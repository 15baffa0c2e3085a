//! Publish/subscribe: the shared state between requests and connections.
//!
//! Instances share no memory, so what Tornado keeps in a class attribute
//! (the chat demo's `waiters`) lives in host topics. A topic keeps its last
//! messages with increasing ids, so a long-polling client that sends the
//! last id it saw misses nothing.
//!
//! ```no_run
//! use squall_sdk::pubsub::{self, PubSubError};
//! use std::time::Duration;
//!
//! async fn post_and_follow(cursor: u64) -> Result<usize, PubSubError> {
//!     let _id = pubsub::publish("chat", br#"{"body":"hi"}"#)?;
//!     let newer = pubsub::wait("chat", Some(cursor), Duration::from_secs(30)).await?;
//!     Ok(newer.len())
//! }
//! ```

use crate::sys;
use serde::de::DeserializeOwned;
use std::time::Duration;

/// A published message.
///
/// ```no_run
/// use squall_sdk::pubsub::{self, Message};
/// use squall_sdk::{Error, Request};
/// use std::time::Duration;
///
/// async fn poll(req: Request) -> Result<String, Error> {
///     let after = req.query_arguments().get("after").and_then(|id| id.parse().ok());
///     let messages: Vec<Message> = pubsub::wait("news", after, Duration::from_secs(25)).await?;
///     let lines: Vec<String> =
///         messages.iter().map(|m| format!("{} {}", m.id, m.text().unwrap_or(""))).collect();
///     Ok(lines.join("\n"))
/// }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// Increasing per topic, from 1.
    pub id: u64,
    /// The topic it was published to.
    pub topic: String,
    /// The bytes published.
    pub payload: Vec<u8>,
}

impl Message {
    /// The payload as text, if it is UTF-8.
    ///
    /// ```
    /// use squall_sdk::pubsub::Message;
    ///
    /// fn preview(message: &Message) -> &str {
    ///     message.text().unwrap_or("(binary)")
    /// }
    /// # let message = Message { id: 1, topic: "chat".into(), payload: b"hello".to_vec() };
    /// # assert_eq!(preview(&message), "hello");
    /// # assert_eq!(preview(&Message { payload: vec![0xff], ..message }), "(binary)");
    /// ```
    pub fn text(&self) -> Option<&str> {
        std::str::from_utf8(&self.payload).ok()
    }

    /// The payload parsed as JSON.
    ///
    /// ```
    /// use serde::Deserialize;
    /// use squall_sdk::pubsub::Message;
    ///
    /// #[derive(Deserialize)]
    /// struct Chat {
    ///     user: String,
    ///     body: String,
    /// }
    ///
    /// fn render(message: &Message) -> Option<String> {
    ///     let chat: Chat = message.json().ok()?;
    ///     Some(format!("<{}> {}", chat.user, chat.body))
    /// }
    /// # let message = Message { id: 1, topic: "chat".into(), payload: br#"{"user":"ada","body":"hi"}"#.to_vec() };
    /// # assert_eq!(render(&message).as_deref(), Some("<ada> hi"));
    /// ```
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        serde_json::from_slice(&self.payload)
    }
}

/// Why a pub/sub call failed.
///
/// A handler's `?` turns it into an [`Error`](crate::Error): `503` for a
/// limit of the app's, `500` otherwise. The client is told the status; the
/// detail goes to the log (and to the client too in debug mode: the app's
/// config value `debug = "true"`, or `squall serve --dev`).
///
/// ```
/// use squall_sdk::pubsub::PubSubError;
/// use squall_sdk::{Error, StatusCode};
///
/// let limit = PubSubError::Limit("pubsub_topics (16) reached".into());
/// assert_eq!(limit.to_string(), "pubsub limit: pubsub_topics (16) reached");
/// let error = Error::from(limit);
/// assert_eq!(error.status(), StatusCode::SERVICE_UNAVAILABLE);
/// assert_eq!(error.message(), "Service Unavailable");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PubSubError {
    /// The manifest's `pubsub` list does not grant the topic.
    Denied(String),
    /// A bad topic name or an oversized payload.
    Invalid(String),
    /// The app is at one of its pub/sub limits; the manifest key
    /// (`pubsub_topics`, `pubsub_history_bytes`) is named.
    Limit(String),
    /// The host has no pub/sub: the app was built as a standard wasi:http
    /// component, and pub/sub is a Squall capability.
    Unavailable,
    /// Pub/sub crosses hosts through a backend (Redis) the host cannot
    /// reach just now; try again shortly.
    Backend(String),
}

impl std::fmt::Display for PubSubError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PubSubError::Denied(why) => write!(f, "pubsub denied: {why}"),
            PubSubError::Invalid(why) => write!(f, "pubsub: {why}"),
            PubSubError::Limit(why) => write!(f, "pubsub limit: {why}"),
            PubSubError::Unavailable => f.write_str(
                "pubsub is a Squall capability and there is no Squall host here (a component built for \
                 standard wasi:http hosts, or a native test: use squall-test for a real host)",
            ),
            PubSubError::Backend(why) => write!(f, "pubsub backend unavailable: {why}"),
        }
    }
}

impl std::error::Error for PubSubError {}

impl From<PubSubError> for crate::Error {
    /// `503` for a limit of the app's or a backend out of reach, `500`
    /// otherwise (a topic the manifest does not grant is the app's mistake,
    /// not the client's).
    fn from(error: PubSubError) -> Self {
        let status = match error {
            PubSubError::Limit(_) | PubSubError::Backend(_) => {
                ::http::StatusCode::SERVICE_UNAVAILABLE
            }
            _ => ::http::StatusCode::INTERNAL_SERVER_ERROR,
        };
        crate::Error::from_capability(status, error.to_string())
    }
}

impl crate::IntoResponse for PubSubError {
    /// As its [`Error`](crate::Error).
    fn into_response(self) -> crate::Response {
        crate::Error::from(self).into_response()
    }
}

/// Publish `payload` to `topic`; returns its id. WebSocket connections
/// subscribed to the topic receive it straight from the host.
///
/// ```no_run
/// use squall_sdk::{Error, Request, pubsub};
///
/// async fn say(mut req: Request) -> Result<String, Error> {
///     let text = req.text().await?;
///     let id = pubsub::publish("chat", text)?;
///     Ok(format!("message {id}"))
/// }
/// ```
pub fn publish(topic: &str, payload: impl AsRef<[u8]>) -> Result<u64, PubSubError> {
    sys::pubsub_publish(topic, payload.as_ref())
}

/// Publish `value` as JSON.
///
/// ```no_run
/// use serde::Serialize;
/// use squall_sdk::{Error, Request, StatusCode, pubsub};
///
/// #[derive(Serialize)]
/// struct OrderShipped<'a> {
///     order: &'a str,
///     carrier: &'a str,
/// }
///
/// async fn ship(req: Request) -> Result<StatusCode, Error> {
///     let order = req.param("order").unwrap_or_default();
///     pubsub::publish_json("orders", &OrderShipped { order, carrier: "ups" })?;
///     Ok(StatusCode::ACCEPTED)
/// }
/// ```
pub fn publish_json<T: serde::Serialize>(topic: &str, value: &T) -> Result<u64, PubSubError> {
    let payload = serde_json::to_vec(value)
        .map_err(|err| PubSubError::Invalid(format!("cannot serialize the message: {err}")))?;
    publish(topic, payload)
}

/// The messages of `topic` with ids above `after` (`None`: only new ones),
/// waiting up to `timeout` for the first. An empty list means the time ran
/// out. Dropped (and the wait cancelled) if the client goes away. At most
/// what the app's `memory` can take comes back at once: the rest comes
/// with the next call, after the last id received.
///
/// ```no_run
/// use squall_sdk::serde_json::{Value, json};
/// use squall_sdk::{Error, Json, Request, pubsub};
/// use std::time::Duration;
///
/// // Long polling: the client sends the last id it saw, and waits for newer.
/// async fn updates(req: Request) -> Result<Json<Value>, Error> {
///     let cursor = req.query_arguments().get("cursor").and_then(|id| id.parse().ok());
///     let messages = pubsub::wait("chat", cursor, Duration::from_secs(30)).await?;
///     let texts: Vec<&str> = messages.iter().filter_map(|m| m.text()).collect();
///     let next = messages.last().map(|m| m.id).or(cursor);
///     Ok(Json(json!({ "messages": texts, "cursor": next })))
/// }
/// ```
pub async fn wait(
    topic: &str,
    after: Option<u64>,
    timeout: Duration,
) -> Result<Vec<Message>, PubSubError> {
    sys::pubsub_wait(topic, after, timeout).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::IntoResponse;
    use std::collections::HashMap;

    #[test]
    fn errors_display_their_reason() {
        assert_eq!(
            PubSubError::Denied("topic \"x\" is not granted".into()).to_string(),
            "pubsub denied: topic \"x\" is not granted"
        );
        assert_eq!(
            PubSubError::Invalid("empty topic".into()).to_string(),
            "pubsub: empty topic"
        );
        assert!(
            PubSubError::Unavailable
                .to_string()
                .starts_with("pubsub is a Squall capability")
        );
    }

    #[test]
    fn an_error_answers_500_without_its_detail() {
        let response = PubSubError::Invalid("too large".into()).into_response();
        assert_eq!(response.status(), ::http::StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(response.body(), Some(&b"Internal Server Error\n"[..]));
    }

    #[test]
    fn message_payloads_read_as_text_or_json() {
        let message = Message {
            id: 3,
            topic: "chat".into(),
            payload: br#"{"body":"hi"}"#.to_vec(),
        };
        assert_eq!(message.text(), Some(r#"{"body":"hi"}"#));
        let value: serde_json::Value = message.json().expect("JSON");
        assert_eq!(value["body"], "hi");

        let binary = Message {
            payload: vec![0xff, 0xfe],
            ..message
        };
        assert_eq!(binary.text(), None);
        assert!(binary.json::<serde_json::Value>().is_err());
    }

    #[test]
    fn publish_json_refuses_what_cannot_serialize_before_publishing() {
        let value: HashMap<(u8, u8), u8> = HashMap::from([((1, 2), 3)]);
        let error = publish_json("chat", &value).expect_err("object keys must be strings");
        assert!(
            matches!(&error, PubSubError::Invalid(why) if why.starts_with("cannot serialize the message: ")),
            "{error:?}"
        );
    }
}

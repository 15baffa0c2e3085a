//! Publish/subscribe: the shared state between requests and connections.
//!
//! Instances share no memory, so what Tornado keeps in a class attribute
//! (the chat demo's `waiters`) lives in host topics. A topic keeps its last
//! messages with increasing ids, so a long-polling client that sends the
//! last id it saw misses nothing.
//!
//! ```ignore
//! let id = pubsub::publish("chat", br#"{"body":"hi"}"#)?;
//! let newer = pubsub::wait("chat", Some(cursor), Duration::from_secs(30)).await?;
//! ```

#[cfg(not(feature = "wasi-http"))]
use crate::bindings::squall::app::pubsub as host;
use serde::de::DeserializeOwned;
use std::time::Duration;

/// A published message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// Increasing per topic, from 1.
    pub id: u64,
    pub topic: String,
    pub payload: Vec<u8>,
}

impl Message {
    /// The payload as text, if it is UTF-8.
    pub fn text(&self) -> Option<&str> {
        std::str::from_utf8(&self.payload).ok()
    }

    /// The payload parsed as JSON.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        serde_json::from_slice(&self.payload)
    }
}

/// Why a pub/sub call failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PubSubError {
    /// The manifest's `pubsub` list does not grant the topic.
    Denied(String),
    /// A bad topic name or an oversized payload.
    Invalid(String),
    /// The host has no pub/sub: the app was built as a standard wasi:http
    /// component (`wasi-http` feature), and pub/sub is a Squall capability.
    Unavailable,
}

impl PubSubError {
    #[cfg(not(feature = "wasi-http"))]
    pub(crate) fn from_wit(error: host::PubsubError) -> Self {
        match error {
            host::PubsubError::Denied(why) => PubSubError::Denied(why),
            host::PubsubError::Invalid(why) => PubSubError::Invalid(why),
        }
    }
}

impl std::fmt::Display for PubSubError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PubSubError::Denied(why) => write!(f, "pubsub denied: {why}"),
            PubSubError::Invalid(why) => write!(f, "pubsub: {why}"),
            PubSubError::Unavailable => f.write_str(
                "pubsub is a Squall capability: this component was built for standard wasi:http hosts",
            ),
        }
    }
}

impl std::error::Error for PubSubError {}

impl crate::IntoResponse for PubSubError {
    fn into_response(self) -> crate::Response {
        crate::Error::new(::http::StatusCode::INTERNAL_SERVER_ERROR, self.to_string())
            .into_response()
    }
}

/// Publish `payload` to `topic`; returns its id. WebSocket connections
/// subscribed to the topic receive it straight from the host.
pub fn publish(topic: &str, payload: impl AsRef<[u8]>) -> Result<u64, PubSubError> {
    #[cfg(not(feature = "wasi-http"))]
    return host::publish(topic, payload.as_ref()).map_err(PubSubError::from_wit);
    #[cfg(feature = "wasi-http")]
    {
        let _ = (topic, payload);
        Err(PubSubError::Unavailable)
    }
}

/// Publish `value` as JSON.
pub fn publish_json<T: serde::Serialize>(topic: &str, value: &T) -> Result<u64, PubSubError> {
    let payload = serde_json::to_vec(value)
        .map_err(|err| PubSubError::Invalid(format!("cannot serialize the message: {err}")))?;
    publish(topic, payload)
}

/// The messages of `topic` with ids above `after` (`None`: only new ones),
/// waiting up to `timeout` for the first. An empty list means the time ran
/// out. Dropped (and the wait cancelled) if the client goes away.
pub async fn wait(
    topic: &str,
    after: Option<u64>,
    timeout: Duration,
) -> Result<Vec<Message>, PubSubError> {
    #[cfg(feature = "wasi-http")]
    {
        let _ = (topic, after, timeout);
        Err(PubSubError::Unavailable)
    }
    #[cfg(not(feature = "wasi-http"))]
    {
        let timeout_ms = u32::try_from(timeout.as_millis()).unwrap_or(u32::MAX);
        let messages = host::wait(topic.to_owned(), after, timeout_ms)
            .await
            .map_err(PubSubError::from_wit)?;
        Ok(messages
            .into_iter()
            .map(|message| Message {
                id: message.id,
                topic: message.topic,
                payload: message.payload,
            })
            .collect())
    }
}

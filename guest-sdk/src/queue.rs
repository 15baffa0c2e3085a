//! Queues between an app's parts (`tornado.queues` feeding workers,
//! Cloudflare Queues): [`send`] a message to a queue, and the consumer the
//! router names for it ([`Router::consumer`](crate::Router::consumer))
//! gets it in a batch, in a fresh instance, once per delivery. A queue is
//! one a manifest consumer reads:
//!
//! ```toml
//! [[app.NAME.consumer]]
//! queue = "emails"
//! batch = 10            # messages per delivery, at most (1-100)
//! max_retries = 3       # deliveries after the first before a dead letter
//! retry_delay = "5s"    # the wait before a message runs again
//! concurrency = 2       # batches in flight at once on a host (1-16)
//! ```
//!
//! Delivery is at least once: a message the consumer does not acknowledge
//! (it called [`Batch::retry`], or returned an error, or its instance
//! failed) runs again after `retry_delay`, and one whose host died
//! mid-delivery runs again too. [`Message::attempt`] says which delivery
//! this is and [`Message::id`] names the message, to make the work
//! idempotent. After `max_retries` retries a message is a dead letter,
//! which the app reads with [`dead_letters`] and forgets with
//! [`forget_dead_letter`].
//!
//! ```
//! use squall_sdk::queue::{self, Batch};
//! use squall_sdk::{Error, Request, Router, log};
//!
//! fn app() -> Router {
//!     Router::new()
//!         .post("/signup", signup)
//!         .consumer("emails", welcome)
//! }
//!
//! async fn signup(mut req: Request) -> Result<&'static str, Error> {
//!     queue::send("emails", req.bytes().await).await?;
//!     Ok("welcome mail queued")
//! }
//!
//! async fn welcome(batch: Batch) -> Result<(), Error> {
//!     for message in batch.messages() {
//!         if message.payload().is_empty() {
//!             batch.retry(message); // the others are acknowledged
//!             continue;
//!         }
//!         log::info(format!("welcoming {}", message.payload_text()));
//!     }
//!     Ok(())
//! }
//! # let _ = app();
//! ```

use crate::{Error, sys};
use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;

/// Why a message could not be sent, or dead letters read.
///
/// A handler's `?` turns it into an [`Error`]: `507` for a full queue,
/// `413` for an oversized message, `503` when the backend is unavailable,
/// `500` otherwise.
///
/// ```
/// use squall_sdk::queue::QueueError;
/// use squall_sdk::{Error, StatusCode};
///
/// let full = QueueError::Quota("the queue holds 10000 messages (queue_max_messages)".into());
/// assert_eq!(Error::from(full).status(), StatusCode::INSUFFICIENT_STORAGE);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QueueError {
    /// No manifest consumer reads this queue.
    Denied(String),
    /// A payload over `queue_max_payload`, or over 100 in one batch.
    TooLarge(String),
    /// The queue holds `queue_max_messages`; nothing was sent.
    Quota(String),
    /// The call cannot apply as given.
    Invalid(String),
    /// The backend cannot be reached (or there is no Squall host: a
    /// native test, a standard wasi:http host); nothing is known sent.
    Unavailable(String),
}

impl std::fmt::Display for QueueError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            QueueError::Denied(why) => write!(f, "queue denied: {why}"),
            QueueError::TooLarge(why) => write!(f, "queue: too large: {why}"),
            QueueError::Quota(why) => write!(f, "queue quota: {why}"),
            QueueError::Invalid(why) => write!(f, "queue: {why}"),
            QueueError::Unavailable(why) => write!(f, "queue unavailable: {why}"),
        }
    }
}

impl std::error::Error for QueueError {}

impl crate::IntoResponse for QueueError {
    fn into_response(self) -> crate::Response {
        Error::from(self).into_response()
    }
}

impl From<QueueError> for Error {
    fn from(error: QueueError) -> Self {
        use ::http::StatusCode;
        let status = match &error {
            QueueError::Quota(_) => StatusCode::INSUFFICIENT_STORAGE,
            QueueError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            QueueError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            QueueError::Denied(_) | QueueError::Invalid(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        Error::from_capability(status, error.to_string())
    }
}

/// Send `payload` to `queue`: the message's id.
pub async fn send(queue: &str, payload: impl Into<Vec<u8>>) -> Result<String, QueueError> {
    sys::queue_send(queue.to_owned(), payload.into()).await
}

/// Send several messages to `queue`, all or none (at most 100): their ids,
/// in order.
pub async fn send_batch<P: Into<Vec<u8>>>(
    queue: &str,
    payloads: impl IntoIterator<Item = P>,
) -> Result<Vec<String>, QueueError> {
    let payloads = payloads.into_iter().map(Into::into).collect();
    sys::queue_send_batch(queue.to_owned(), payloads).await
}

/// A message that failed on every delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    /// The id [`send`] returned.
    pub id: String,
    /// What was sent.
    pub payload: Vec<u8>,
    /// Deliveries it had.
    pub attempts: u32,
    /// Why the last one failed.
    pub error: String,
}

/// The dead letters of `queue`, at most `limit` (at most 100).
pub async fn dead_letters(queue: &str, limit: u32) -> Result<Vec<DeadLetter>, QueueError> {
    sys::queue_dead_letters(queue.to_owned(), limit).await
}

/// Forget the dead letter `id` of `queue` (once handled): whether it was there.
pub async fn forget_dead_letter(queue: &str, id: &str) -> Result<bool, QueueError> {
    sys::queue_forget_dead_letter(queue.to_owned(), id.to_owned()).await
}

/// One message, as its consumer gets it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    id: String,
    payload: Vec<u8>,
    attempt: u32,
}

impl Message {
    /// Delivery `attempt` of the message `id`, to run a consumer natively
    /// in a test with [`Router::run_consumer`](crate::Router::run_consumer).
    pub fn new(id: &str, payload: impl Into<Vec<u8>>, attempt: u32) -> Message {
        Message {
            id: id.to_owned(),
            payload: payload.into(),
            attempt,
        }
    }

    /// The id [`send`] returned: the same on every delivery.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Which delivery this is: 1 the first time.
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// What was sent.
    pub fn payload(&self) -> &[u8] {
        &self.payload
    }

    /// The payload as text (lossy).
    pub fn payload_text(&self) -> String {
        String::from_utf8_lossy(&self.payload).into_owned()
    }
}

/// A batch of a queue's messages. When its consumer returns `Ok`, each
/// message is acknowledged unless [`Batch::retry`] was called for it;
/// when it returns an error, all of them run again.
pub struct Batch {
    queue: String,
    messages: Vec<Message>,
    retried: Rc<RefCell<Vec<bool>>>,
}

impl Batch {
    /// A batch of `queue`'s `messages`, to run a consumer natively in a test.
    pub fn new(queue: &str, messages: Vec<Message>) -> Batch {
        let retried = Rc::new(RefCell::new(vec![false; messages.len()]));
        Batch {
            queue: queue.to_owned(),
            messages,
            retried,
        }
    }

    /// The queue it came from.
    pub fn queue(&self) -> &str {
        &self.queue
    }

    /// Its messages, oldest first.
    pub fn messages(&self) -> &[Message] {
        &self.messages
    }

    /// Deliver `message` again later (after the consumer's `retry_delay`).
    pub fn retry(&self, message: &Message) {
        if let Some(index) = self
            .messages
            .iter()
            .position(|known| known.id == message.id)
        {
            self.retried.borrow_mut()[index] = true;
        }
    }

    /// Deliver every message again later.
    pub fn retry_all(&self) {
        self.retried.borrow_mut().fill(true);
    }
}

type Run = Box<dyn Fn(Batch) -> Pin<Box<dyn Future<Output = Result<(), Error>>>>>;

/// What consumes one queue.
pub(crate) struct ConsumerHandler {
    run: Run,
}

impl ConsumerHandler {
    pub(crate) fn new<F, Fut>(handler: F) -> ConsumerHandler
    where
        F: Fn(Batch) -> Fut + 'static,
        Fut: Future<Output = Result<(), Error>> + 'static,
    {
        ConsumerHandler {
            run: Box::new(move |batch| Box::pin(handler(batch))),
        }
    }

    /// Run the consumer on `batch`: whether each message is done.
    pub(crate) async fn run(&self, batch: Batch) -> Result<Vec<bool>, Error> {
        let retried = batch.retried.clone();
        (self.run)(batch).await?;
        Ok(retried.borrow().iter().map(|again| !again).collect())
    }
}

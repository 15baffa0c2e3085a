//! The Squall capabilities a backend without a Squall host lacks (a
//! standard wasi:http host, or none at all in a native test): each call
//! fails the way its API documents for "unavailable" (`KvError::Unavailable`,
//! `PubSubError::Unavailable`, `SendError::Closed`, `ConnectError::Denied`)
//! or does nothing.

use crate::jobs::JobError;
use crate::kv::{self, KvError};
use crate::pubsub::{self, PubSubError};
use crate::queue::{self, QueueError};
use crate::websocket::{Message, SendError};
use std::time::Duration;

/// Why `call` fails here, and what to do instead.
pub(super) fn unavailable(call: &str) -> String {
    if cfg!(target_arch = "wasm32") {
        format!(
            "{call}: a Squall capability, and this component was built for standard wasi:http hosts"
        )
    } else {
        format!(
            "{call} called outside a Squall host (a native test): \
             use squall-test to serve the app with a real host"
        )
    }
}

fn no_jobs<T>(call: &str) -> Result<T, JobError> {
    Err(JobError::Unavailable(unavailable(call)))
}

pub(crate) async fn jobs_after(
    _delay_ms: u64,
    _name: String,
    _payload: Vec<u8>,
) -> Result<String, JobError> {
    no_jobs("jobs::after")
}

pub(crate) async fn jobs_at(
    _when_ms: u64,
    _name: String,
    _payload: Vec<u8>,
) -> Result<String, JobError> {
    no_jobs("jobs::at")
}

pub(crate) async fn jobs_cancel(_id: String) -> Result<bool, JobError> {
    no_jobs("jobs::cancel")
}

fn no_queue<T>(call: &str) -> Result<T, QueueError> {
    Err(QueueError::Unavailable(unavailable(call)))
}

pub(crate) async fn queue_send(_queue: String, _payload: Vec<u8>) -> Result<String, QueueError> {
    no_queue("queue::send")
}

pub(crate) async fn queue_send_batch(
    _queue: String,
    _payloads: Vec<Vec<u8>>,
) -> Result<Vec<String>, QueueError> {
    no_queue("queue::send_batch")
}

pub(crate) async fn queue_dead_letters(
    _queue: String,
    _limit: u32,
) -> Result<Vec<queue::DeadLetter>, QueueError> {
    no_queue("queue::dead_letters")
}

pub(crate) async fn queue_forget_dead_letter(
    _queue: String,
    _id: String,
) -> Result<bool, QueueError> {
    no_queue("queue::forget_dead_letter")
}

fn no_store<T>(call: &str) -> Result<T, KvError> {
    Err(KvError::Unavailable(unavailable(call)))
}

pub(crate) async fn kv_get(_key: String) -> Result<Option<Vec<u8>>, KvError> {
    no_store("kv::get")
}

pub(crate) async fn kv_get_many(_keys: Vec<String>) -> Result<Vec<Option<Vec<u8>>>, KvError> {
    no_store("kv::get_many")
}

pub(crate) async fn kv_set(
    _key: String,
    _value: Vec<u8>,
    _ttl_ms: Option<u64>,
) -> Result<(), KvError> {
    no_store("kv::set")
}

pub(crate) async fn kv_set_many(
    _entries: Vec<(String, Vec<u8>)>,
    _ttl_ms: Option<u64>,
) -> Result<(), KvError> {
    no_store("kv::set_many")
}

pub(crate) async fn kv_delete(_key: String) -> Result<bool, KvError> {
    no_store("kv::delete")
}

pub(crate) async fn kv_exists(_key: String) -> Result<bool, KvError> {
    no_store("kv::exists")
}

pub(crate) async fn kv_list(
    _prefix: String,
    _cursor: Option<String>,
    _limit: u32,
) -> Result<kv::Page, KvError> {
    no_store("kv::list")
}

pub(crate) async fn kv_increment(_key: String, _delta: i64) -> Result<i64, KvError> {
    no_store("kv::increment")
}

pub(crate) async fn kv_compare_and_swap(
    _key: String,
    _expected: Option<Vec<u8>>,
    _new: Option<Vec<u8>>,
) -> Result<bool, KvError> {
    no_store("kv::compare_and_swap")
}

/// No static files: URLs go unversioned.
pub(crate) async fn static_version(_path: &str) -> Option<String> {
    None
}

pub(crate) fn pubsub_publish(_topic: &str, _payload: &[u8]) -> Result<u64, PubSubError> {
    Err(PubSubError::Unavailable)
}

pub(crate) async fn pubsub_wait(
    _topic: &str,
    _after: Option<u64>,
    _timeout: Duration,
) -> Result<Vec<pubsub::Message>, PubSubError> {
    Err(PubSubError::Unavailable)
}

/// No connection is open.
pub(crate) fn ws_send(_id: u64, _message: Message) -> Result<(), SendError> {
    Err(SendError::Closed)
}

pub(crate) fn ws_close(_id: u64, _code: u16, _reason: &str) {}

pub(crate) fn ws_subscribe(_id: u64, _topic: &str, _with_id: bool) -> Result<(), PubSubError> {
    Err(PubSubError::Unavailable)
}

pub(crate) fn ws_unsubscribe(_id: u64, _topic: &str) {}

/// No state (the default's).
pub(crate) fn ws_state(_id: u64) -> Vec<u8> {
    Vec::new()
}

pub(crate) fn ws_set_state(_id: u64, _state: &[u8]) -> Result<(), SendError> {
    Err(SendError::Closed)
}

/// No TCP connection is accepted, so none of these exists.
#[derive(Debug)]
pub(crate) enum TcpInput {}

impl TcpInput {
    pub(crate) async fn chunk(&mut self) -> Option<Vec<u8>> {
        match *self {}
    }
}

/// See [`TcpInput`].
#[derive(Debug)]
pub(crate) enum TcpOutput {}

impl TcpOutput {
    pub(crate) async fn write(&mut self, _bytes: Vec<u8>) -> Result<(), crate::tcp::Closed> {
        match *self {}
    }
}

pub(crate) fn tcp_send(_id: u64, _bytes: &[u8]) -> Result<(), SendError> {
    Err(SendError::Closed)
}

pub(crate) fn tcp_close(_id: u64) {}

pub(crate) fn tcp_subscribe(_id: u64, _topic: &str) -> Result<(), PubSubError> {
    Err(PubSubError::Unavailable)
}

pub(crate) fn tcp_unsubscribe(_id: u64, _topic: &str) {}

pub(crate) fn tcp_state(_id: u64) -> Vec<u8> {
    Vec::new()
}

pub(crate) fn tcp_set_state(_id: u64, _state: &[u8]) -> Result<(), SendError> {
    Err(SendError::Closed)
}

pub(crate) async fn tcp_connect(
    _host: &str,
    _port: u16,
) -> Result<crate::tcp::TcpStream, crate::tcp::ConnectError> {
    Err(crate::tcp::ConnectError::Denied(unavailable(
        "tcp::connect",
    )))
}

//! The app's key-value store: durable state between requests.
//!
//! Instances keep nothing between requests; a session, a counter or a user
//! lives here instead. Each app has its own store (no key of another app's
//! can be named), granted by `kv = true` in its `squall.toml` table, and
//! fenced by `kv_max_keys`, `kv_max_bytes`, `kv_max_key` and `kv_max_value`.
//! A write is acknowledged once it is on disk.
//!
//! ```no_run
//! use squall_sdk::kv::{self, KvError};
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Serialize, Deserialize)]
//! struct Profile {
//!     name: String,
//! }
//!
//! async fn visit(user: &str) -> Result<i64, KvError> {
//!     kv::set_json(&format!("profile:{user}"), &Profile { name: user.into() }).await?;
//!     let _profile: Option<Profile> = kv::get_json(&format!("profile:{user}")).await?;
//!     kv::increment(&format!("visits:{user}"), 1).await
//! }
//! ```

use crate::sys;
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::time::Duration;

/// Why a key-value call failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KvError {
    /// The manifest does not grant `kv` to this app.
    Denied(String),
    /// A key or value over its size limit, or too many keys in one call.
    TooLarge(String),
    /// The app's store is full (`kv_max_keys`, `kv_max_bytes`); nothing
    /// was written.
    Quota(String),
    /// The call cannot apply: an empty key, an increment of a value that is
    /// not an integer, or a value that is not the JSON asked for.
    Invalid(String),
    /// The store cannot be reached, or (built as a standard wasi:http
    /// component) there is none.
    Unavailable(String),
}

impl std::fmt::Display for KvError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KvError::Denied(why) => write!(f, "kv denied: {why}"),
            KvError::TooLarge(why) => write!(f, "kv: too large: {why}"),
            KvError::Quota(why) => write!(f, "kv quota: {why}"),
            KvError::Invalid(why) => write!(f, "kv: {why}"),
            KvError::Unavailable(why) => write!(f, "kv unavailable: {why}"),
        }
    }
}

impl std::error::Error for KvError {}

impl crate::IntoResponse for KvError {
    fn into_response(self) -> crate::Response {
        crate::Error::from(self).into_response()
    }
}

impl From<KvError> for crate::Error {
    /// `507 Insufficient Storage` for a full store, `413` for an oversized
    /// value, `503` when the store is unavailable, `500` otherwise.
    fn from(error: KvError) -> Self {
        use ::http::StatusCode;
        let status = match &error {
            KvError::Quota(_) => StatusCode::INSUFFICIENT_STORAGE,
            KvError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            KvError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            KvError::Denied(_) | KvError::Invalid(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        crate::Error::new(status, error.to_string())
    }
}

/// One page of keys, in order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Page {
    /// The keys of this page.
    pub keys: Vec<String>,
    /// Pass it to [`list_keys`] for the next page; `None`: this was the last.
    pub cursor: Option<String>,
}

/// The value of `key`, if present (an expired key is absent).
pub async fn get(key: &str) -> Result<Option<Vec<u8>>, KvError> {
    sys::kv_get(key.to_owned()).await
}

/// The values of `keys`, in the same order (at most 1000 keys).
pub async fn get_many<K: AsRef<str>>(keys: &[K]) -> Result<Vec<Option<Vec<u8>>>, KvError> {
    sys::kv_get_many(keys.iter().map(|key| key.as_ref().to_owned()).collect()).await
}

/// Store `value` at `key`.
pub async fn set(key: &str, value: impl AsRef<[u8]>) -> Result<(), KvError> {
    sys::kv_set(key.to_owned(), value.as_ref().to_vec(), None).await
}

/// Store `value` at `key`, forgotten after `ttl` (at least a millisecond).
pub async fn set_with_ttl(
    key: &str,
    value: impl AsRef<[u8]>,
    ttl: Duration,
) -> Result<(), KvError> {
    sys::kv_set(key.to_owned(), value.as_ref().to_vec(), Some(ttl_ms(ttl))).await
}

/// Store several values, all or none (at most 1000), each forgotten after
/// `ttl` if given.
pub async fn set_many<K: AsRef<str>, V: AsRef<[u8]>>(
    entries: &[(K, V)],
    ttl: Option<Duration>,
) -> Result<(), KvError> {
    let entries = entries
        .iter()
        .map(|(key, value)| (key.as_ref().to_owned(), value.as_ref().to_vec()))
        .collect();
    sys::kv_set_many(entries, ttl.map(ttl_ms)).await
}

/// Remove `key`; whether it was there.
pub async fn delete(key: &str) -> Result<bool, KvError> {
    sys::kv_delete(key.to_owned()).await
}

/// Whether `key` is present.
pub async fn exists(key: &str) -> Result<bool, KvError> {
    sys::kv_exists(key.to_owned()).await
}

/// The keys starting with `prefix`, `limit` at most (up to 1000) per page,
/// after `cursor` (the previous page's).
pub async fn list_keys(prefix: &str, cursor: Option<&str>, limit: u32) -> Result<Page, KvError> {
    sys::kv_list(prefix.to_owned(), cursor.map(str::to_owned), limit).await
}

/// Add `delta` to the integer at `key` (0 if absent), atomically: the new
/// value. The value is stored as decimal text, as Redis's INCRBY does.
pub async fn increment(key: &str, delta: i64) -> Result<i64, KvError> {
    sys::kv_increment(key.to_owned(), delta).await
}

/// Replace the value at `key` with `new` (`None`: remove it) only if it is
/// `expected` now (`None`: absent), atomically: whether it did.
pub async fn compare_and_swap(
    key: &str,
    expected: Option<&[u8]>,
    new: Option<&[u8]>,
) -> Result<bool, KvError> {
    sys::kv_compare_and_swap(
        key.to_owned(),
        expected.map(<[u8]>::to_vec),
        new.map(<[u8]>::to_vec),
    )
    .await
}

/// The value at `key`, parsed as JSON.
pub async fn get_json<T: DeserializeOwned>(key: &str) -> Result<Option<T>, KvError> {
    match get(key).await? {
        Some(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|err| {
            KvError::Invalid(format!(
                "the value at {key:?} is not the JSON expected: {err}"
            ))
        }),
        None => Ok(None),
    }
}

/// Store `value` at `key` as JSON.
pub async fn set_json<T: Serialize + ?Sized>(key: &str, value: &T) -> Result<(), KvError> {
    let bytes = serde_json::to_vec(value)
        .map_err(|err| KvError::Invalid(format!("cannot encode the value as JSON: {err}")))?;
    set(key, bytes).await
}

fn ttl_ms(ttl: Duration) -> u64 {
    u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX)
}

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
///
/// A handler's `?` turns it into an [`Error`](crate::Error): `507` for a
/// full store, `413` for an oversized value, `503` when the store is
/// unavailable, `500` otherwise. The client is told the status; the detail
/// goes to the log (and to the client too in debug mode: the app's config
/// value `debug = "true"`, or `squall serve --dev`).
///
/// ```
/// use squall_sdk::kv::KvError;
/// use squall_sdk::{Error, StatusCode};
///
/// let quota = KvError::Quota("kv_max_keys (10000) reached".into());
/// assert_eq!(quota.to_string(), "kv quota: kv_max_keys (10000) reached");
/// let error = Error::from(quota);
/// assert_eq!(error.status(), StatusCode::INSUFFICIENT_STORAGE);
/// assert_eq!(error.message(), "Insufficient Storage");
/// ```
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
        crate::Error::from_capability(status, error.to_string())
    }
}

/// One page of keys, in order.
///
/// ```no_run
/// use squall_sdk::kv::{self, Page};
/// use squall_sdk::serde_json::{Value, json};
/// use squall_sdk::{Error, Json, Request};
///
/// async fn users(req: Request) -> Result<Json<Value>, Error> {
///     let after = req.query_arguments().get("after");
///     let page: Page = kv::list_keys("user:", after.as_deref(), 50).await?;
///     Ok(Json(json!({ "users": page.keys, "next": page.cursor })))
/// }
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Page {
    /// The keys of this page.
    pub keys: Vec<String>,
    /// Pass it to [`list_keys`] for the next page; `None`: this was the last.
    pub cursor: Option<String>,
}

/// The value of `key`, if present (an expired key is absent).
///
/// ```no_run
/// use squall_sdk::{Error, Request, kv};
///
/// async fn download(req: Request) -> Result<Vec<u8>, Error> {
///     let name = req.param("name").unwrap_or_default();
///     let file = kv::get(&format!("file:{name}")).await?;
///     file.ok_or_else(Error::not_found)
/// }
/// ```
pub async fn get(key: &str) -> Result<Option<Vec<u8>>, KvError> {
    sys::kv_get(key.to_owned()).await
}

/// The values of `keys`, in the same order (at most 1000 keys). Values
/// adding up to more than the app's `memory` (or its `max_call_bytes`) are
/// [`KvError::TooLarge`], refused before the host reads them.
///
/// ```no_run
/// use squall_sdk::{Error, Request, kv};
///
/// async fn feature_flags(_req: Request) -> Result<String, Error> {
///     let names = ["flag:dark-mode", "flag:beta", "flag:new-checkout"];
///     let values = kv::get_many(&names).await?;
///     let on: Vec<&str> = names.iter().zip(&values)
///         .filter(|(_, value)| value.as_deref() == Some(b"on"))
///         .map(|(name, _)| *name)
///         .collect();
///     Ok(on.join(","))
/// }
/// ```
pub async fn get_many<K: AsRef<str>>(keys: &[K]) -> Result<Vec<Option<Vec<u8>>>, KvError> {
    sys::kv_get_many(keys.iter().map(|key| key.as_ref().to_owned()).collect()).await
}

/// Store `value` at `key`.
///
/// ```no_run
/// use squall_sdk::{Error, Request, StatusCode, kv};
///
/// async fn save_note(mut req: Request) -> Result<StatusCode, Error> {
///     let key = format!("note:{}", req.param("id").unwrap_or_default());
///     let text = req.text().await?;
///     kv::set(&key, text).await?;
///     Ok(StatusCode::NO_CONTENT)
/// }
/// ```
pub async fn set(key: &str, value: impl AsRef<[u8]>) -> Result<(), KvError> {
    sys::kv_set(key.to_owned(), value.as_ref().to_vec(), None).await
}

/// Store `value` at `key`, forgotten after `ttl` (at least a millisecond).
///
/// ```no_run
/// use squall_sdk::{Error, Request, http, kv};
/// use std::time::Duration;
///
/// async fn exchange_rates(_req: Request) -> Result<Vec<u8>, Error> {
///     if let Some(cached) = kv::get("cache:rates").await? {
///         return Ok(cached);
///     }
///     let rates = http::get("https://rates.example.com/latest").await?.bytes().await?;
///     kv::set_with_ttl("cache:rates", &rates, Duration::from_secs(60)).await?;
///     Ok(rates)
/// }
/// ```
pub async fn set_with_ttl(
    key: &str,
    value: impl AsRef<[u8]>,
    ttl: Duration,
) -> Result<(), KvError> {
    sys::kv_set(key.to_owned(), value.as_ref().to_vec(), Some(ttl_ms(ttl))).await
}

/// Store several values, all or none (at most 1000), each forgotten after
/// `ttl` if given.
///
/// ```no_run
/// use squall_sdk::{Error, Request, StatusCode, kv};
///
/// async fn transfer_seat(req: Request) -> Result<StatusCode, Error> {
///     let seat = req.param("seat").unwrap_or_default();
///     let to = req.query_arguments().get("to").ok_or_else(|| Error::bad_request("to whom?"))?;
///     // Both keys change, or neither does.
///     let entries = [
///         (format!("seat:{seat}"), to.to_owned()),
///         (format!("holder:{to}"), seat.to_owned()),
///     ];
///     kv::set_many(&entries, None).await?;
///     Ok(StatusCode::NO_CONTENT)
/// }
/// ```
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
///
/// ```no_run
/// use squall_sdk::{Error, Request, StatusCode, kv};
///
/// async fn delete_note(req: Request) -> Result<StatusCode, Error> {
///     let key = format!("note:{}", req.param("id").unwrap_or_default());
///     if kv::delete(&key).await? {
///         Ok(StatusCode::NO_CONTENT)
///     } else {
///         Err(Error::not_found())
///     }
/// }
/// ```
pub async fn delete(key: &str) -> Result<bool, KvError> {
    sys::kv_delete(key.to_owned()).await
}

/// Whether `key` is present.
///
/// ```no_run
/// use squall_sdk::{Error, Request, kv};
///
/// async fn check_username(req: Request) -> Result<&'static str, Error> {
///     let name = req.query_arguments().get("name").unwrap_or_default();
///     let taken = kv::exists(&format!("user:{name}")).await?;
///     Ok(if taken { "taken" } else { "available" })
/// }
/// ```
pub async fn exists(key: &str) -> Result<bool, KvError> {
    sys::kv_exists(key.to_owned()).await
}

/// The keys starting with `prefix`, `limit` at most (up to 1000) per page,
/// after `cursor` (the previous page's).
///
/// ```no_run
/// use squall_sdk::kv::{self, KvError};
///
/// async fn all_keys(prefix: &str) -> Result<Vec<String>, KvError> {
///     let mut keys = Vec::new();
///     let mut cursor = None;
///     loop {
///         let page = kv::list_keys(prefix, cursor.as_deref(), 1000).await?;
///         keys.extend(page.keys);
///         match page.cursor {
///             Some(next) => cursor = Some(next),
///             None => return Ok(keys),
///         }
///     }
/// }
/// ```
pub async fn list_keys(prefix: &str, cursor: Option<&str>, limit: u32) -> Result<Page, KvError> {
    sys::kv_list(prefix.to_owned(), cursor.map(str::to_owned), limit).await
}

/// Add `delta` to the integer at `key` (0 if absent), atomically: the new
/// value. The value is stored as decimal text, as Redis's INCRBY does: read
/// it back with `increment(key, 0)` or `get_json::<i64>(key)`.
///
/// ```no_run
/// use squall_sdk::{Error, Request, kv};
///
/// async fn page_view(req: Request) -> Result<String, Error> {
///     let views = kv::increment(&format!("views:{}", req.path()), 1).await?;
///     Ok(format!("{views} views"))
/// }
/// ```
pub async fn increment(key: &str, delta: i64) -> Result<i64, KvError> {
    sys::kv_increment(key.to_owned(), delta).await
}

/// Replace the value at `key` with `new` (`None`: remove it) only if it is
/// `expected` now (`None`: absent), atomically: whether it did.
///
/// ```no_run
/// use squall_sdk::{Error, Request, StatusCode, kv};
///
/// async fn claim(req: Request) -> Result<StatusCode, Error> {
///     let key = format!("claim:{}", req.param("ticket").unwrap_or_default());
///     let who = req.header("x-user").unwrap_or("anonymous");
///     // Only the first claimant gets the ticket.
///     if kv::compare_and_swap(&key, None, Some(who.as_bytes())).await? {
///         Ok(StatusCode::CREATED)
///     } else {
///         Err(Error::conflict("already claimed"))
///     }
/// }
/// ```
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
///
/// ```no_run
/// use serde::{Deserialize, Serialize};
/// use squall_sdk::{Error, Json, Request, kv};
///
/// #[derive(Serialize, Deserialize)]
/// struct Profile {
///     name: String,
///     bio: String,
/// }
///
/// async fn profile(req: Request) -> Result<Json<Profile>, Error> {
///     let key = format!("profile:{}", req.param("user").unwrap_or_default());
///     let profile: Option<Profile> = kv::get_json(&key).await?;
///     profile.map(Json).ok_or_else(Error::not_found)
/// }
/// ```
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
///
/// ```no_run
/// use serde::{Deserialize, Serialize};
/// use squall_sdk::{Error, Request, StatusCode, kv};
///
/// #[derive(Serialize, Deserialize)]
/// struct Profile {
///     name: String,
///     bio: String,
/// }
///
/// async fn update_profile(mut req: Request) -> Result<StatusCode, Error> {
///     let profile: Profile = req.json().await?;
///     let key = format!("profile:{}", req.param("user").unwrap_or_default());
///     kv::set_json(&key, &profile).await?;
///     Ok(StatusCode::NO_CONTENT)
/// }
/// ```
pub async fn set_json<T: Serialize + ?Sized>(key: &str, value: &T) -> Result<(), KvError> {
    let bytes = serde_json::to_vec(value)
        .map_err(|err| KvError::Invalid(format!("cannot encode the value as JSON: {err}")))?;
    set(key, bytes).await
}

fn ttl_ms(ttl: Duration) -> u64 {
    u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX)
}

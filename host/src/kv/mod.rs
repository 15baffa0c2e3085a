//! The key-value store behind the `kv` capabilities: each app's keys in
//! their own namespace, with quotas counted where the writes happen.
//!
//! [`KvBackend`] is the seam between the capabilities and a store. The
//! embedded one ([`embedded::Embedded`], on redb) is the default; the
//! operations are the ones Redis offers (GET/MGET, SET with PX, DEL,
//! EXISTS, SCAN by prefix with a cursor, INCRBY, compare-and-swap as a
//! script), so a Redis backend maps onto them one to one.

pub(crate) mod embedded;
mod layout;
pub(crate) mod redis;
mod writer;

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

/// Entries one listing looks at: past them the page ends early (fewer
/// keys than asked, and a cursor), so expired keys not yet swept cost a
/// call a bounded amount of work however many there are.
pub(crate) const MAX_SCANNED: usize = 2000;

/// What a backend hands back: a boxed future, so a backend is a trait object.
pub(crate) type KvFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, KvFailure>> + Send + 'a>>;

/// A key-value store shared by every app; `namespace` keeps apps apart (a
/// separate part of the stored key, so no key name reaches another app's).
pub(crate) trait KvBackend: Send + Sync + 'static {
    /// The values of `keys`, `None` where absent or expired; refused
    /// ([`KvFailure::TooLarge`]) before more than `most` bytes of values
    /// are built, here or in the store.
    fn get_many(
        &self,
        namespace: &str,
        keys: Vec<String>,
        most: u64,
    ) -> KvFuture<'_, Vec<Option<Vec<u8>>>>;

    /// Whether `key` is present.
    fn exists(&self, namespace: &str, key: String) -> KvFuture<'_, bool>;

    /// Keys starting with `prefix`, in order, after `cursor` (exclusive), at
    /// most `limit` of them, looking at no more than [`MAX_SCANNED`]
    /// entries; the page's cursor is `None` at the end.
    fn list(
        &self,
        namespace: &str,
        prefix: String,
        cursor: Option<String>,
        limit: u32,
    ) -> KvFuture<'_, Page>;

    /// Apply `writes` all or nothing, in order, within `quota`; one outcome
    /// per write. Acknowledged only once durable.
    fn apply(
        &self,
        namespace: &str,
        writes: Vec<Write>,
        quota: Quota,
    ) -> KvFuture<'_, Vec<WriteOutcome>>;

    /// The keys and bytes (keys plus values) a namespace holds.
    fn usage(&self, namespace: &str) -> KvFuture<'_, NamespaceUsage>;
}

/// One page of a listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Page {
    pub(crate) keys: Vec<String>,
    /// Where the next page starts; `None`: this was the last.
    pub(crate) cursor: Option<String>,
}

/// A change to one key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Write {
    /// Store `value`, forgetting it after `ttl` if given.
    Set {
        key: String,
        value: Vec<u8>,
        ttl: Option<Duration>,
    },
    /// Remove the key.
    Delete { key: String },
    /// Add `delta` to the decimal integer stored (0 when absent), keeping
    /// the key's expiry.
    Increment { key: String, delta: i64 },
    /// Replace the value (`None`: remove it) only if it is `expected`
    /// (`None`: absent).
    CompareAndSwap {
        key: String,
        expected: Option<Vec<u8>>,
        new: Option<Vec<u8>>,
    },
}

impl Write {
    /// The bytes it carries (its key and values).
    pub(crate) fn carried(&self) -> u64 {
        let values = match self {
            Write::Set { value, .. } => value.len(),
            Write::CompareAndSwap { expected, new, .. } => {
                expected.as_ref().map_or(0, Vec::len) + new.as_ref().map_or(0, Vec::len)
            }
            Write::Delete { .. } | Write::Increment { .. } => 0,
        };
        (self.key().len() + values) as u64
    }

    /// The key it changes.
    pub(crate) fn key(&self) -> &str {
        match self {
            Write::Set { key, .. }
            | Write::Delete { key }
            | Write::Increment { key, .. }
            | Write::CompareAndSwap { key, .. } => key,
        }
    }
}

/// What one write did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WriteOutcome {
    /// A set.
    Stored,
    /// A delete: whether there was a value.
    Deleted(bool),
    /// An increment: the new value.
    Counter(i64),
    /// A compare-and-swap: whether it swapped.
    Swapped(bool),
}

/// What a namespace may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Quota {
    pub(crate) max_keys: u64,
    pub(crate) max_bytes: u64,
}

/// What a namespace holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct NamespaceUsage {
    pub(crate) keys: u64,
    pub(crate) bytes: u64,
}

/// Why a store call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum KvFailure {
    /// The writes would take the namespace over its quota; nothing was written.
    #[error("{0}")]
    Quota(String),
    /// A write cannot apply (an increment of a value that is not an
    /// integer, or one that overflows); nothing was written.
    #[error("{0}")]
    Invalid(String),
    /// The store cannot be reached or failed.
    #[error("the store is unavailable: {0}")]
    Unavailable(String),
    /// The values asked for add up to more than the call may return.
    #[error("the values asked for are over the {0} bytes this call may return")]
    TooLarge(u64),
}

/// Now, in ms since the Unix epoch: what expiries and job due times are
/// counted in.
pub(crate) fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| {
            u64::try_from(since.as_millis()).unwrap_or(u64::MAX)
        })
}

/// The bytes an entry counts against its namespace's quota.
pub(crate) fn entry_bytes(key: &str, value: &[u8]) -> u64 {
    (key.len() + value.len()) as u64
}

/// The integer stored in a counter's value, as Redis reads INCRBY's.
pub(crate) fn parse_counter(value: &[u8]) -> Result<i64, KvFailure> {
    std::str::from_utf8(value)
        .ok()
        .and_then(|text| text.parse::<i64>().ok())
        .ok_or_else(|| KvFailure::Invalid("the value is not a decimal integer".to_owned()))
}

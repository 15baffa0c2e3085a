//! `squall:app/kv`: the app's own key-value store, under its size limits
//! and quota. The namespace is the app's name, set by the host: no key a
//! guest names reaches another app's.

use super::{Grants, GuestState, KvGrant, StoreCapabilities};
use crate::bindings::kv::{Host, HostWithStore, KvError, Page};
use crate::kv::{KvFailure, Write, WriteOutcome};
use crate::limit_log::Limit;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;
use tokio::sync::OwnedSemaphorePermit;
use wasmtime::component::{Accessor, HasSelf};

/// Keys or entries one call may carry.
const MAX_KEYS_PER_CALL: usize = 1000;
/// Keys one page may hold.
const MAX_PAGE: u32 = 1000;
/// Calls in flight at once for one request, and for a whole app: each
/// holds what it carries (up to a value per key) until the store answers.
const MAX_CALLS_PER_REQUEST: u32 = 16;
pub(super) const MAX_CALLS_PER_APP: usize = 256;

impl Host for GuestState {}

type Answer<T> = wasmtime::Result<Result<T, KvError>>;

impl Grants {
    /// The app's store, if granted.
    fn kv_store(&self) -> Result<&KvGrant, KvError> {
        self.kv.as_ref().ok_or_else(|| {
            tracing::info!("kv denied: the app's manifest does not grant kv");
            KvError::Denied(format!(
                "kv is not granted: add `kv = true` to [app.{}]",
                self.app
            ))
        })
    }

    fn kv_too_large(&self, why: String) -> KvError {
        self.hits.hit(Limit::KvSize, &why);
        KvError::TooLarge(why)
    }

    fn kv_failure(&self, failure: KvFailure) -> KvError {
        match failure {
            KvFailure::Quota(why) => {
                self.hits.hit(Limit::KvQuota, &why);
                KvError::Quota(why)
            }
            KvFailure::Invalid(why) => KvError::Invalid(why),
            KvFailure::TooLarge(most) => {
                let why = format!(
                    "the values asked for are over the {most} bytes this call may return \
                     (the guest's memory limit, within the app's max_call_bytes)"
                );
                self.hits.hit(Limit::CallBytes, &why);
                KvError::TooLarge(why)
            }
            KvFailure::Unavailable(why) => {
                tracing::warn!(app = %self.app, %why, "kv unavailable");
                KvError::Unavailable(why)
            }
        }
    }

    fn check_key(&self, store: &KvGrant, key: &str) -> Result<(), KvError> {
        if key.is_empty() {
            return Err(KvError::Invalid("a key cannot be empty".into()));
        }
        if key.len() as u64 > store.max_key {
            return Err(self.kv_too_large(format!(
                "a key of {} bytes is over the app's kv_max_key of {}",
                key.len(),
                store.max_key
            )));
        }
        Ok(())
    }

    fn check_value(&self, store: &KvGrant, value: &[u8]) -> Result<(), KvError> {
        if value.len() as u64 > store.max_value {
            return Err(self.kv_too_large(format!(
                "a value of {} bytes is over the app's kv_max_value of {}",
                value.len(),
                store.max_value
            )));
        }
        Ok(())
    }

    fn check_count(&self, count: usize) -> Result<(), KvError> {
        if count > MAX_KEYS_PER_CALL {
            return Err(self.kv_too_large(format!(
                "{count} keys in one call, over {MAX_KEYS_PER_CALL}"
            )));
        }
        Ok(())
    }
}

/// The longest ttl: ten years (expiry times stay exact integers in Redis's
/// Lua numbers).
const MAX_TTL_MS: u64 = 10 * 365 * 24 * 3600 * 1000;

fn ttl(ttl_ms: Option<u64>) -> Result<Option<Duration>, KvError> {
    match ttl_ms {
        Some(0) => Err(KvError::Invalid("a ttl must be at least 1 ms".into())),
        Some(ms) if ms > MAX_TTL_MS => Err(KvError::Invalid(format!(
            "a ttl may be {MAX_TTL_MS} ms (ten years) at most"
        ))),
        ttl => Ok(ttl.map(Duration::from_millis)),
    }
}

/// One app's use of its store, shared by `squall:app/kv` and
/// `wasi:keyvalue`: every key and value checked before the store sees it.
pub(super) struct KvCall {
    grants: Arc<Grants>,
    /// What the call may hand its guest at most (see [`crate::budget`]).
    per_call: u64,
    /// Whether a read may wait for its bytes. Not from a call its guest
    /// made synchronously (`wasi:keyvalue`): that holds the guest's whole
    /// instance, whose other calls may hold the very bytes it waits for.
    may_wait: bool,
    _place: CallPlace,
}

/// A call's place among the request's and the app's calls in flight.
struct CallPlace {
    request: Arc<AtomicU32>,
    _app: OwnedSemaphorePermit,
}

impl Drop for CallPlace {
    fn drop(&mut self) {
        self.request.fetch_sub(1, Ordering::Relaxed);
    }
}

impl KvCall {
    /// A call for the store `state`, if the request and the app have room
    /// for one more in flight.
    pub(super) fn new(state: &GuestState) -> Result<KvCall, KvError> {
        let store: &StoreCapabilities = state.host();
        let grants = store.grants().clone();
        let per_call = grants.call_bytes.per_call(state.memory_limit());
        let request = store.kv_calls.clone();
        let counted = request.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |count| {
            (count < MAX_CALLS_PER_REQUEST).then_some(count + 1)
        });
        if counted.is_err() {
            return Err(grants.kv_too_large(format!(
                "over {MAX_CALLS_PER_REQUEST} kv calls in flight in one request"
            )));
        }
        let Ok(app) = grants.kv_calls.clone().try_acquire_owned() else {
            request.fetch_sub(1, Ordering::Relaxed);
            return Err(grants.kv_too_large(format!(
                "over {MAX_CALLS_PER_APP} kv calls in flight for the app"
            )));
        };
        Ok(KvCall {
            grants,
            per_call,
            may_wait: true,
            _place: CallPlace { request, _app: app },
        })
    }

    /// The same, for a call its guest made synchronously: a read whose
    /// bytes are not free now is refused rather than waiting.
    pub(super) fn without_waiting(self) -> KvCall {
        KvCall {
            may_wait: false,
            ..self
        }
    }

    /// Hold `bytes` for this call: waiting for them if it may.
    async fn hold(&self, bytes: u64) -> Result<crate::budget::Held, KvError> {
        let held = match self.may_wait {
            true => self.grants.call_bytes.hold(bytes, self.per_call).await,
            false => self.grants.call_bytes.try_hold(bytes, self.per_call),
        };
        held.map_err(|refused| KvError::TooLarge(self.grants.over_budget(&refused)))
    }

    /// The app's store, if granted.
    pub(super) fn granted(&self) -> Result<&KvGrant, KvError> {
        self.grants.kv_store()
    }

    /// The values of `keys`.
    pub(super) async fn get_many(
        &self,
        keys: Vec<String>,
    ) -> Result<Vec<Option<Vec<u8>>>, KvError> {
        let grants = &self.grants;
        crate::stats::kv(&grants.app, "read");
        let store = grants.kv_store()?;
        grants.check_count(keys.len())?;
        for key in &keys {
            grants.check_key(store, key)?;
        }
        // Held at the most the values could be, before they are read.
        let most = (keys.len() as u64)
            .saturating_mul(store.max_value)
            .min(self.per_call);
        let mut held = self.hold(most).await?;
        let values = store
            .backend
            .get_many(&grants.app, keys, most)
            .await
            .map_err(|failure| grants.kv_failure(failure))?;
        held.shrink_to(
            values
                .iter()
                .flatten()
                .map(|value| value.len() as u64)
                .sum(),
        );
        Ok(values)
    }

    /// Whether `key` is present.
    pub(super) async fn exists(&self, key: String) -> Result<bool, KvError> {
        let grants = &self.grants;
        crate::stats::kv(&grants.app, "read");
        let store = grants.kv_store()?;
        grants.check_key(store, &key)?;
        store
            .backend
            .exists(&grants.app, key)
            .await
            .map_err(|failure| grants.kv_failure(failure))
    }

    /// A page of keys under `prefix`.
    pub(super) async fn list(
        &self,
        prefix: String,
        cursor: Option<String>,
        limit: u32,
    ) -> Result<crate::kv::Page, KvError> {
        let grants = &self.grants;
        crate::stats::kv(&grants.app, "read");
        let store = grants.kv_store()?;
        for bound in std::iter::once(&prefix).chain(&cursor) {
            if bound.len() as u64 > store.max_key {
                return Err(grants.kv_too_large(format!(
                    "a prefix or cursor of {} bytes is over the app's kv_max_key of {}",
                    bound.len(),
                    store.max_key
                )));
            }
        }
        // A page no larger than the guest can take.
        let fits = u32::try_from(self.per_call / store.max_key.max(1)).unwrap_or(u32::MAX);
        let limit = limit.clamp(1, MAX_PAGE).min(fits.max(1));
        let _held = self.hold(u64::from(limit) * store.max_key).await?;
        store
            .backend
            .list(&grants.app, prefix, cursor, limit)
            .await
            .map_err(|failure| grants.kv_failure(failure))
    }

    /// Check `writes` and apply them, all or nothing.
    pub(super) async fn apply(&self, writes: Vec<Write>) -> Result<Vec<WriteOutcome>, KvError> {
        let grants = &self.grants;
        crate::stats::kv(&grants.app, "write");
        let store = grants.kv_store()?;
        grants.check_count(writes.len())?;
        for write in &writes {
            grants.check_key(store, write.key())?;
            match write {
                Write::Set { value, .. } => grants.check_value(store, value)?,
                Write::CompareAndSwap { expected, new, .. } => {
                    for value in [expected, new].into_iter().flatten() {
                        grants.check_value(store, value)?;
                    }
                }
                Write::Delete { .. } | Write::Increment { .. } => {}
            }
        }
        // What the guest passed exists already: held now, or refused (and
        // dropped) at once.
        let carried = writes.iter().map(Write::carried).sum();
        let _held = grants
            .call_bytes
            .try_hold(carried, u64::MAX)
            .map_err(|refused| KvError::TooLarge(grants.over_budget(&refused)))?;
        store
            .backend
            .apply(&grants.app, writes, store.quota)
            .await
            .map_err(|failure| grants.kv_failure(failure))
    }

    /// The one outcome of a one-write call.
    pub(super) async fn apply_one(&self, write: Write) -> Result<WriteOutcome, KvError> {
        self.apply(vec![write])
            .await?
            .into_iter()
            .next()
            .ok_or_else(|| KvError::Unavailable("the store answered nothing".into()))
    }
}

fn call(accessor: &Accessor<GuestState, HasSelf<GuestState>>) -> Result<KvCall, KvError> {
    accessor.with(|mut access| KvCall::new(access.get()))
}

impl HostWithStore<GuestState> for HasSelf<GuestState> {
    async fn get(accessor: &Accessor<GuestState, Self>, key: String) -> Answer<Option<Vec<u8>>> {
        Ok(async {
            let mut values = call(accessor)?.get_many(vec![key]).await?;
            Ok(values.pop().flatten())
        }
        .await)
    }

    async fn get_many(
        accessor: &Accessor<GuestState, Self>,
        keys: Vec<String>,
    ) -> Answer<Vec<Option<Vec<u8>>>> {
        Ok(async { call(accessor)?.get_many(keys).await }.await)
    }

    async fn set(
        accessor: &Accessor<GuestState, Self>,
        key: String,
        value: Vec<u8>,
        ttl_ms: Option<u64>,
    ) -> Answer<()> {
        Ok(async {
            let write = Write::Set {
                key,
                value,
                ttl: ttl(ttl_ms)?,
            };
            call(accessor)?.apply_one(write).await.map(drop)
        }
        .await)
    }

    async fn set_many(
        accessor: &Accessor<GuestState, Self>,
        entries: Vec<(String, Vec<u8>)>,
        ttl_ms: Option<u64>,
    ) -> Answer<()> {
        Ok(async {
            let ttl = ttl(ttl_ms)?;
            let writes = entries
                .into_iter()
                .map(|(key, value)| Write::Set { key, value, ttl })
                .collect();
            call(accessor)?.apply(writes).await.map(drop)
        }
        .await)
    }

    async fn delete(accessor: &Accessor<GuestState, Self>, key: String) -> Answer<bool> {
        Ok(async {
            let applied = call(accessor)?.apply_one(Write::Delete { key }).await?;
            Ok(applied == WriteOutcome::Deleted(true))
        }
        .await)
    }

    async fn exists(accessor: &Accessor<GuestState, Self>, key: String) -> Answer<bool> {
        Ok(async { call(accessor)?.exists(key).await }.await)
    }

    async fn list_keys(
        accessor: &Accessor<GuestState, Self>,
        prefix: String,
        cursor: Option<String>,
        limit: u32,
    ) -> Answer<Page> {
        Ok(async {
            let page = call(accessor)?.list(prefix, cursor, limit).await?;
            Ok(Page {
                keys: page.keys,
                cursor: page.cursor,
            })
        }
        .await)
    }

    async fn increment(
        accessor: &Accessor<GuestState, Self>,
        key: String,
        delta: i64,
    ) -> Answer<i64> {
        Ok(async {
            match call(accessor)?
                .apply_one(Write::Increment { key, delta })
                .await?
            {
                WriteOutcome::Counter(value) => Ok(value),
                _ => Err(KvError::Unavailable("the store answered otherwise".into())),
            }
        }
        .await)
    }

    async fn compare_and_swap(
        accessor: &Accessor<GuestState, Self>,
        key: String,
        expected: Option<Vec<u8>>,
        new: Option<Vec<u8>>,
    ) -> Answer<bool> {
        Ok(async {
            let write = Write::CompareAndSwap { key, expected, new };
            let applied = call(accessor)?.apply_one(write).await?;
            Ok(applied == WriteOutcome::Swapped(true))
        }
        .await)
    }
}

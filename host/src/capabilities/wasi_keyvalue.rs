//! `wasi:keyvalue@0.2.0-draft` (store, atomics, batch) for standard
//! components, as wasmtime 48, Spin and wasmCloud serve it, on the app's
//! own store with the same grant, limits and quota as `squall:app/kv`.
//!
//! wasmtime's `wasmtime-wasi-keyvalue` keeps its buckets in memory only, so
//! the interfaces are bound here from the same WIT (`wit-standard/keyvalue`).
//! The one bucket is `"default"` (Spin's name; `""` too). A listing cursor
//! is a `u64` in this WIT: it indexes the keys this bucket handed out as
//! cursors, so it is good within the request that got it.

use super::GuestState;
use super::kv::KvCall;
use crate::bindings::kv::KvError;
use crate::kv::{Write, WriteOutcome};
use generated::wasi::keyvalue::{atomics, batch, store};
use wasmtime::component::{HasSelf, Linker, Resource};

mod generated {
    #![allow(missing_docs, unreachable_pub)]
    wasmtime::component::bindgen!({
        path: "../wit-standard/keyvalue",
        world: "wasi:keyvalue/imports",
        imports: { default: async | trappable },
        with: {
            "wasi:keyvalue/store.bucket": super::Bucket,
        },
    });
}

/// Cursors one bucket hands out at most.
const MAX_CURSORS: usize = 10_000;

/// An open bucket: the app's store, and the cursors it has handed out.
/// (`pub` because the generated bindings re-export it.)
#[allow(unreachable_pub)]
pub struct Bucket {
    cursors: Vec<String>,
}

/// Link the three interfaces.
pub(super) fn add_to_linker(linker: &mut Linker<GuestState>) -> wasmtime::Result<()> {
    store::add_to_linker::<GuestState, HasSelf<GuestState>>(linker, |state| state)?;
    atomics::add_to_linker::<GuestState, HasSelf<GuestState>>(linker, |state| state)?;
    batch::add_to_linker::<GuestState, HasSelf<GuestState>>(linker, |state| state)
}

fn error(error: KvError) -> store::Error {
    match error {
        KvError::Denied(_) => store::Error::AccessDenied,
        KvError::TooLarge(why)
        | KvError::Quota(why)
        | KvError::Invalid(why)
        | KvError::Unavailable(why) => store::Error::Other(why),
    }
}

type Answer<T> = wasmtime::Result<Result<T, store::Error>>;

impl GuestState {
    /// A call on the app's store, if there is room for one more in flight;
    /// these calls are synchronous for the guest, so they never wait for
    /// the bytes they would hold.
    fn call(&self) -> Result<KvCall, store::Error> {
        KvCall::new(self)
            .map(KvCall::without_waiting)
            .map_err(error)
    }
}

impl store::Host for GuestState {
    async fn open(&mut self, identifier: String) -> Answer<Resource<Bucket>> {
        if !matches!(identifier.as_str(), "" | "default") {
            return Ok(Err(store::Error::NoSuchStore));
        }
        let granted = self
            .call()
            .and_then(|call| call.granted().map(drop).map_err(error));
        if let Err(err) = granted {
            return Ok(Err(err));
        }
        let (table, _) = self.table_and_host();
        Ok(Ok(table.push(Bucket {
            cursors: Vec::new(),
        })?))
    }
}

impl store::HostBucket for GuestState {
    async fn get(&mut self, _bucket: Resource<Bucket>, key: String) -> Answer<Option<Vec<u8>>> {
        let call = self.call();
        Ok(async {
            let mut values = call?.get_many(vec![key]).await.map_err(error)?;
            Ok(values.pop().flatten())
        }
        .await)
    }

    async fn set(&mut self, _bucket: Resource<Bucket>, key: String, value: Vec<u8>) -> Answer<()> {
        let write = Write::Set {
            key,
            value,
            ttl: None,
        };
        let call = self.call();
        Ok(async { call?.apply(vec![write]).await.map(drop).map_err(error) }.await)
    }

    async fn delete(&mut self, _bucket: Resource<Bucket>, key: String) -> Answer<()> {
        let write = Write::Delete { key };
        let call = self.call();
        Ok(async { call?.apply(vec![write]).await.map(drop).map_err(error) }.await)
    }

    async fn exists(&mut self, _bucket: Resource<Bucket>, key: String) -> Answer<bool> {
        let call = self.call();
        Ok(async { call?.exists(key).await.map_err(error) }.await)
    }

    async fn list_keys(
        &mut self,
        bucket: Resource<Bucket>,
        cursor: Option<u64>,
    ) -> Answer<store::KeyResponse> {
        let after = {
            let (table, _) = self.table_and_host();
            let open = table.get(&bucket)?;
            match cursor {
                None => None,
                Some(index) => match usize::try_from(index)
                    .ok()
                    .and_then(|index| open.cursors.get(index))
                {
                    Some(after) => Some(after.clone()),
                    None => {
                        return Ok(Err(store::Error::Other(format!(
                            "cursor {index} was not handed out by this bucket"
                        ))));
                    }
                },
            }
        };
        let call = self.call();
        let listed = async { call?.list(String::new(), after, 1000).await.map_err(error) };
        let page = match listed.await {
            Ok(page) => page,
            Err(err) => return Ok(Err(err)),
        };
        let cursor = match page.cursor {
            None => None,
            Some(next) => {
                let (table, _) = self.table_and_host();
                let open = table.get_mut(&bucket)?;
                if open.cursors.len() >= MAX_CURSORS {
                    return Ok(Err(store::Error::Other(format!(
                        "over {MAX_CURSORS} pages listed with one bucket"
                    ))));
                }
                open.cursors.push(next);
                Some((open.cursors.len() - 1) as u64)
            }
        };
        Ok(Ok(store::KeyResponse {
            keys: page.keys,
            cursor,
        }))
    }

    async fn drop(&mut self, bucket: Resource<Bucket>) -> wasmtime::Result<()> {
        let (table, _) = self.table_and_host();
        table.delete(bucket)?;
        Ok(())
    }
}

impl atomics::Host for GuestState {
    async fn increment(
        &mut self,
        _bucket: Resource<Bucket>,
        key: String,
        delta: u64,
    ) -> Answer<u64> {
        let Ok(delta) = i64::try_from(delta) else {
            return Ok(Err(store::Error::Other(
                "the delta is over a signed 64-bit integer".into(),
            )));
        };
        let write = Write::Increment { key, delta };
        let call = self.call();
        Ok(async {
            let applied = call?.apply(vec![write]).await.map_err(error)?;
            match applied.first() {
                Some(WriteOutcome::Counter(value)) => u64::try_from(*value)
                    .map_err(|_| store::Error::Other(format!("the value {value} is negative"))),
                _ => Err(store::Error::Other("the store answered otherwise".into())),
            }
        }
        .await)
    }
}

impl batch::Host for GuestState {
    async fn get_many(
        &mut self,
        _bucket: Resource<Bucket>,
        keys: Vec<String>,
    ) -> Answer<Vec<Option<(String, Vec<u8>)>>> {
        let call = self.call();
        Ok(async {
            let values = call?.get_many(keys.clone()).await.map_err(error)?;
            Ok(keys
                .into_iter()
                .zip(values)
                .map(|(key, value)| value.map(|value| (key, value)))
                .collect())
        }
        .await)
    }

    async fn set_many(
        &mut self,
        _bucket: Resource<Bucket>,
        key_values: Vec<(String, Vec<u8>)>,
    ) -> Answer<()> {
        let writes = key_values
            .into_iter()
            .map(|(key, value)| Write::Set {
                key,
                value,
                ttl: None,
            })
            .collect();
        let call = self.call();
        Ok(async { call?.apply(writes).await.map(drop).map_err(error) }.await)
    }

    async fn delete_many(&mut self, _bucket: Resource<Bucket>, keys: Vec<String>) -> Answer<()> {
        let writes = keys.into_iter().map(|key| Write::Delete { key }).collect();
        let call = self.call();
        Ok(async { call?.apply(writes).await.map(drop).map_err(error) }.await)
    }
}

//! The embedded store: one redb file under the data directory.
//!
//! Writes go through one writer thread (`writer.rs`) that commits whatever
//! has queued up in a single durable transaction (group commit): each write
//! is acknowledged only after the fsync that makes it survive `kill -9`, and
//! concurrent writers share that fsync. Reads run on tokio's blocking pool
//! in their own MVCC snapshots and never wait for the writer.
//!
//! An entry is `(namespace, key) -> expiry ++ value`; an index ordered by
//! expiry lets the writer drop expired entries a batch at a time, and reads
//! treat an expired entry as absent, so no read scans anything.

use super::{Applied, KvBackend, KvFailure, KvFuture, Page, Quota, Usage, Write};
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use std::ops::Bound;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::{mpsc, oneshot};

/// `(namespace, key)` -> expiry in ms since the epoch (0: never), little
/// endian, then the value.
pub(super) const ENTRIES: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("entries");
/// `(expiry, namespace, key)` for every entry that expires.
pub(super) const EXPIRY: TableDefinition<(u64, &str, &str), ()> = TableDefinition::new("expiry");
/// `namespace` -> (keys, bytes).
pub(super) const USAGE: TableDefinition<&str, (u64, u64)> = TableDefinition::new("usage");

/// Writes waiting for the writer; senders wait beyond (backpressure on guests).
const QUEUED_WRITES: usize = 1024;
/// Jobs committed together at most.
pub(super) const BATCH: usize = 256;
/// How often expired entries are removed, and how many at a time.
const SWEEP_EVERY: Duration = Duration::from_secs(1);
pub(super) const SWEEP_BATCH: usize = 1000;
/// redb's page cache.
const CACHE_BYTES: usize = 64 << 20;

/// The embedded backend.
pub(crate) struct Embedded {
    db: Arc<Database>,
    writer: mpsc::Sender<Job>,
}

pub(super) enum Job {
    Apply {
        namespace: String,
        writes: Vec<Write>,
        quota: Quota,
        reply: oneshot::Sender<Result<Vec<Applied>, KvFailure>>,
    },
    Sweep,
}

/// A stored entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Record {
    /// Ms since the epoch; 0: never.
    pub(super) expires_at: u64,
    pub(super) value: Vec<u8>,
}

impl Record {
    pub(super) fn decode(raw: &[u8]) -> Record {
        let (expiry, value) = raw.split_at(raw.len().min(8));
        let mut bytes = [0u8; 8];
        bytes[..expiry.len()].copy_from_slice(expiry);
        Record {
            expires_at: u64::from_le_bytes(bytes),
            value: value.to_vec(),
        }
    }

    pub(super) fn encode(&self) -> Vec<u8> {
        let mut raw = Vec::with_capacity(8 + self.value.len());
        raw.extend_from_slice(&self.expires_at.to_le_bytes());
        raw.extend_from_slice(&self.value);
        raw
    }

    pub(super) fn live(&self, now: u64) -> bool {
        self.expires_at == 0 || self.expires_at > now
    }
}

pub(super) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|since| since.as_millis() as u64)
        .unwrap_or(0)
}

pub(super) fn unavailable(err: impl std::fmt::Display) -> KvFailure {
    KvFailure::Unavailable(err.to_string())
}

impl Embedded {
    /// Open (or create) the store at `path` and start its writer.
    pub(crate) fn open(path: &Path) -> anyhow::Result<Arc<Embedded>> {
        use anyhow::Context;
        let db = Database::builder()
            .set_cache_size(CACHE_BYTES)
            .create(path)
            .with_context(|| format!("cannot open the key-value store {}", path.display()))?;
        let setup = db.begin_write()?;
        setup.open_table(ENTRIES)?;
        setup.open_table(EXPIRY)?;
        setup.open_table(USAGE)?;
        setup.commit()?;
        let db = Arc::new(db);
        let (writer, jobs) = mpsc::channel(QUEUED_WRITES);
        let writer_db = db.clone();
        std::thread::Builder::new()
            .name("kv-writer".into())
            .spawn(move || super::writer::write_loop(&writer_db, jobs))
            .context("cannot start the key-value writer")?;
        let sweeps = writer.downgrade();
        std::thread::Builder::new()
            .name("kv-expiry".into())
            .spawn(move || {
                loop {
                    std::thread::sleep(SWEEP_EVERY);
                    // The store is gone once its last sender is.
                    let Some(writer) = sweeps.upgrade() else {
                        return;
                    };
                    if writer.try_send(Job::Sweep).is_err() && writer.is_closed() {
                        return;
                    }
                }
            })
            .context("cannot start the key-value expiry")?;
        Ok(Arc::new(Embedded { db, writer }))
    }

    /// Run `read` in a snapshot, off the event loop.
    fn snapshot<T: Send + 'static>(
        &self,
        read: impl FnOnce(&redb::ReadTransaction, u64) -> Result<T, KvFailure> + Send + 'static,
    ) -> KvFuture<'_, T> {
        let db = self.db.clone();
        Box::pin(async move {
            tokio::task::spawn_blocking(move || {
                let snapshot = db.begin_read().map_err(unavailable)?;
                read(&snapshot, now_ms())
            })
            .await
            .map_err(unavailable)?
        })
    }

    /// Run `read` on the entries table in a snapshot, off the event loop.
    fn read<T: Send + 'static>(
        &self,
        read: impl FnOnce(&redb::ReadOnlyTable<(&str, &str), &[u8]>, u64) -> Result<T, KvFailure>
        + Send
        + 'static,
    ) -> KvFuture<'_, T> {
        self.snapshot(move |snapshot, now| {
            let entries = snapshot.open_table(ENTRIES).map_err(unavailable)?;
            read(&entries, now)
        })
    }
}

/// What `namespace` holds, from the usage table.
pub(super) fn usage_in(
    usage: &impl ReadableTable<&'static str, (u64, u64)>,
    namespace: &str,
) -> Result<Usage, KvFailure> {
    let found = usage.get(namespace).map_err(unavailable)?;
    Ok(found
        .map(|row| {
            let (keys, bytes) = row.value();
            Usage { keys, bytes }
        })
        .unwrap_or_default())
}

fn live_value(
    entries: &impl ReadableTable<(&'static str, &'static str), &'static [u8]>,
    namespace: &str,
    key: &str,
    now: u64,
) -> Result<Option<Record>, KvFailure> {
    let found = entries.get((namespace, key)).map_err(unavailable)?;
    Ok(found
        .map(|raw| Record::decode(raw.value()))
        .filter(|record| record.live(now)))
}

impl KvBackend for Embedded {
    fn get_many(&self, namespace: &str, keys: Vec<String>) -> KvFuture<'_, Vec<Option<Vec<u8>>>> {
        let namespace = namespace.to_owned();
        self.read(move |entries, now| {
            keys.iter()
                .map(|key| {
                    live_value(entries, &namespace, key, now)
                        .map(|record| record.map(|record| record.value))
                })
                .collect()
        })
    }

    fn exists(&self, namespace: &str, key: String) -> KvFuture<'_, bool> {
        let namespace = namespace.to_owned();
        self.read(move |entries, now| {
            live_value(entries, &namespace, &key, now).map(|record| record.is_some())
        })
    }

    fn list(
        &self,
        namespace: &str,
        prefix: String,
        cursor: Option<String>,
        limit: u32,
    ) -> KvFuture<'_, Page> {
        let namespace = namespace.to_owned();
        self.read(move |entries, now| {
            let start = match &cursor {
                Some(after) if after.as_str() >= prefix.as_str() => {
                    Bound::Excluded((namespace.as_str(), after.as_str()))
                }
                _ => Bound::Included((namespace.as_str(), prefix.as_str())),
            };
            let range = entries
                .range::<(&str, &str)>((start, Bound::Unbounded))
                .map_err(unavailable)?;
            let mut keys = Vec::new();
            let mut more = false;
            for item in range {
                let (key, raw) = item.map_err(unavailable)?;
                let (space, name) = key.value();
                if space != namespace || !name.starts_with(prefix.as_str()) {
                    break;
                }
                if !Record::decode(raw.value()).live(now) {
                    continue;
                }
                if keys.len() as u32 >= limit {
                    more = true;
                    break;
                }
                keys.push(name.to_owned());
            }
            let cursor = if more { keys.last().cloned() } else { None };
            Ok(Page { keys, cursor })
        })
    }

    fn apply(
        &self,
        namespace: &str,
        writes: Vec<Write>,
        quota: Quota,
    ) -> KvFuture<'_, Vec<Applied>> {
        let namespace = namespace.to_owned();
        Box::pin(async move {
            let (reply, applied) = oneshot::channel();
            self.writer
                .send(Job::Apply {
                    namespace,
                    writes,
                    quota,
                    reply,
                })
                .await
                .map_err(|_| unavailable("the writer has stopped"))?;
            applied
                .await
                .map_err(|_| unavailable("the writer has stopped"))?
        })
    }

    fn usage(&self, namespace: &str) -> KvFuture<'_, Usage> {
        let namespace = namespace.to_owned();
        self.snapshot(move |snapshot, _| {
            let usage = snapshot.open_table(USAGE).map_err(unavailable)?;
            usage_in(&usage, &namespace)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROOMY: Quota = Quota {
        max_keys: 1_000_000,
        max_bytes: 1 << 30,
    };

    fn store() -> (tempfile::TempDir, Arc<Embedded>) {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let store = Embedded::open(&dir.path().join("kv.redb")).expect("the store opens");
        (dir, store)
    }

    fn set(key: &str, value: &[u8]) -> Write {
        Write::Set {
            key: key.into(),
            value: value.to_vec(),
            ttl: None,
        }
    }

    async fn get(store: &Embedded, namespace: &str, key: &str) -> Option<Vec<u8>> {
        store
            .get_many(namespace, vec![key.into()])
            .await
            .expect("get")
            .pop()
            .flatten()
    }

    #[tokio::test]
    async fn namespaces_never_meet() {
        let (_dir, store) = store();
        store
            .apply("a", vec![set("k", b"1")], ROOMY)
            .await
            .expect("set");
        store
            .apply("b", vec![set("k", b"2")], ROOMY)
            .await
            .expect("set");
        assert_eq!(get(&store, "a", "k").await, Some(b"1".to_vec()));
        assert_eq!(get(&store, "b", "k").await, Some(b"2".to_vec()));
        let page = store
            .list("a", String::new(), None, 10)
            .await
            .expect("list");
        assert_eq!(page.keys, ["k"]);
    }

    #[tokio::test]
    async fn increments_and_swaps_follow_redis() {
        let (_dir, store) = store();
        let inc = |delta| Write::Increment {
            key: "n".into(),
            delta,
        };
        let applied = store
            .apply("a", vec![inc(5), inc(-2)], ROOMY)
            .await
            .expect("increments");
        assert_eq!(applied, [Applied::Counter(5), Applied::Counter(3)]);
        store
            .apply("a", vec![set("t", b"x")], ROOMY)
            .await
            .expect("set");
        let refused = store
            .apply(
                "a",
                vec![
                    inc(1),
                    Write::Increment {
                        key: "t".into(),
                        delta: 1,
                    },
                ],
                ROOMY,
            )
            .await;
        assert!(matches!(refused, Err(KvFailure::Invalid(_))));
        assert_eq!(
            get(&store, "a", "n").await,
            Some(b"3".to_vec()),
            "all or nothing"
        );
        let cas = |expected: Option<&[u8]>, new: Option<&[u8]>| Write::CompareAndSwap {
            key: "c".into(),
            expected: expected.map(<[u8]>::to_vec),
            new: new.map(<[u8]>::to_vec),
        };
        let applied = store
            .apply(
                "a",
                vec![
                    cas(None, Some(b"1")),
                    cas(None, Some(b"2")),
                    cas(Some(b"1"), None),
                ],
                ROOMY,
            )
            .await
            .expect("swaps");
        assert_eq!(
            applied,
            [
                Applied::Swapped(true),
                Applied::Swapped(false),
                Applied::Swapped(true)
            ]
        );
        assert_eq!(get(&store, "a", "c").await, None);
    }

    #[tokio::test]
    async fn quotas_count_keys_and_bytes_and_refuse_the_whole_batch() {
        let (_dir, store) = store();
        let quota = Quota {
            max_keys: 2,
            max_bytes: 10,
        };
        store
            .apply("a", vec![set("a", b"1234")], quota)
            .await
            .expect("5 bytes");
        let over = store
            .apply("a", vec![set("b", b"1"), set("c", b"1")], quota)
            .await;
        assert!(matches!(over, Err(KvFailure::Quota(_))), "{over:?}");
        assert_eq!(get(&store, "a", "b").await, None);
        let over = store.apply("a", vec![set("b", b"123456")], quota).await;
        assert!(matches!(over, Err(KvFailure::Quota(_))), "{over:?}");
        // Shrinking is always allowed, and frees room.
        store
            .apply("a", vec![set("a", b"")], quota)
            .await
            .expect("shrink");
        store
            .apply("a", vec![set("b", b"12345678")], quota)
            .await
            .expect("fits now");
        assert_eq!(
            store.usage("a").await.expect("usage"),
            Usage { keys: 2, bytes: 10 }
        );
        store
            .apply("a", vec![Write::Delete { key: "a".into() }], quota)
            .await
            .expect("delete");
        assert_eq!(
            store.usage("a").await.expect("usage"),
            Usage { keys: 1, bytes: 9 }
        );
    }

    #[tokio::test]
    async fn expired_entries_read_as_absent_and_are_swept() {
        let (_dir, store) = store();
        let short = Write::Set {
            key: "s".into(),
            value: b"v".to_vec(),
            ttl: Some(Duration::from_millis(50)),
        };
        store
            .apply("a", vec![short, set("keep", b"v")], ROOMY)
            .await
            .expect("set");
        assert_eq!(get(&store, "a", "s").await, Some(b"v".to_vec()));
        tokio::time::sleep(Duration::from_millis(80)).await;
        assert_eq!(get(&store, "a", "s").await, None);
        assert!(!store.exists("a", "s".into()).await.expect("exists"));
        let page = store
            .list("a", String::new(), None, 10)
            .await
            .expect("list");
        assert_eq!(page.keys, ["keep"]);
        let mut swept = false;
        for _ in 0..30 {
            if store.usage("a").await.expect("usage").keys == 1 {
                swept = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(swept, "the expiry thread removes the entry and its usage");
    }

    #[tokio::test]
    async fn listing_pages_through_a_prefix_with_cursors() {
        let (_dir, store) = store();
        let writes = (0..250)
            .map(|n| set(&format!("user:{n:04}"), b"x"))
            .chain([set("other", b"x"), set("user", b"x")])
            .collect();
        store.apply("a", writes, ROOMY).await.expect("set");
        store
            .apply("b", vec![set("user:9999", b"x")], ROOMY)
            .await
            .expect("set");
        let mut cursor = None;
        let mut seen = Vec::new();
        loop {
            let page = store
                .list("a", "user:".into(), cursor, 100)
                .await
                .expect("list");
            seen.extend(page.keys);
            cursor = page.cursor;
            if cursor.is_none() {
                break;
            }
        }
        let expected: Vec<String> = (0..250).map(|n| format!("user:{n:04}")).collect();
        assert_eq!(seen, expected);
    }

    #[tokio::test]
    async fn writes_survive_reopening() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let path = dir.path().join("kv.redb");
        {
            let store = Embedded::open(&path).expect("opens");
            store
                .apply("a", vec![set("k", b"v")], ROOMY)
                .await
                .expect("set");
        }
        // The writer thread lets go of the file once its channel closes.
        let mut reopened = None;
        for _ in 0..50 {
            match Embedded::open(&path) {
                Ok(store) => {
                    reopened = Some(store);
                    break;
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        }
        let store = reopened.expect("the store opens again");
        assert_eq!(get(&store, "a", "k").await, Some(b"v".to_vec()));
        assert_eq!(
            store.usage("a").await.expect("usage"),
            Usage { keys: 1, bytes: 2 }
        );
    }
}

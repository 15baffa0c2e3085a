//! The embedded store: one redb file under the data directory.
//!
//! Writes go through one writer thread that commits whatever has queued up
//! in a single durable transaction (group commit): each write is
//! acknowledged only after the fsync that makes it survive `kill -9`, and
//! concurrent writers share that fsync. Reads run on tokio's blocking pool
//! in their own MVCC snapshots and never wait for the writer.
//!
//! An entry is `(namespace, key) -> expiry ++ value`; an index ordered by
//! expiry lets the writer drop expired entries a batch at a time, and reads
//! treat an expired entry as absent, so no read scans anything.

use super::{
    Applied, KvBackend, KvFailure, KvFuture, Page, Quota, Usage, Write, entry_bytes, parse_counter,
};
use redb::{Database, ReadableDatabase, ReadableTable, Table, TableDefinition, WriteTransaction};
use std::collections::HashMap;
use std::ops::Bound;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::{mpsc, oneshot};

/// `(namespace, key)` -> expiry in ms since the epoch (0: never), little
/// endian, then the value.
const ENTRIES: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("entries");
/// `(expiry, namespace, key)` for every entry that expires.
const EXPIRY: TableDefinition<(u64, &str, &str), ()> = TableDefinition::new("expiry");
/// `namespace` -> (keys, bytes).
const USAGE: TableDefinition<&str, (u64, u64)> = TableDefinition::new("usage");

/// Writes waiting for the writer; senders wait beyond (backpressure on guests).
const QUEUED_WRITES: usize = 1024;
/// Jobs committed together at most.
const BATCH: usize = 256;
/// How often expired entries are removed, and how many at a time.
const SWEEP_EVERY: Duration = Duration::from_secs(1);
const SWEEP_BATCH: usize = 1000;
/// redb's page cache.
const CACHE_BYTES: usize = 64 << 20;

/// The embedded backend.
pub(crate) struct Embedded {
    db: Arc<Database>,
    writer: mpsc::Sender<Job>,
}

enum Job {
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
struct Record {
    /// Ms since the epoch; 0: never.
    expires_at: u64,
    value: Vec<u8>,
}

impl Record {
    fn decode(raw: &[u8]) -> Record {
        let (expiry, value) = raw.split_at(raw.len().min(8));
        let mut bytes = [0u8; 8];
        bytes[..expiry.len()].copy_from_slice(expiry);
        Record {
            expires_at: u64::from_le_bytes(bytes),
            value: value.to_vec(),
        }
    }

    fn encode(&self) -> Vec<u8> {
        let mut raw = Vec::with_capacity(8 + self.value.len());
        raw.extend_from_slice(&self.expires_at.to_le_bytes());
        raw.extend_from_slice(&self.value);
        raw
    }

    fn live(&self, now: u64) -> bool {
        self.expires_at == 0 || self.expires_at > now
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|since| since.as_millis() as u64)
        .unwrap_or(0)
}

fn unavailable(err: impl std::fmt::Display) -> KvFailure {
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
            .spawn(move || write_loop(&writer_db, jobs))
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
    fn read<T: Send + 'static>(
        &self,
        read: impl FnOnce(&redb::ReadOnlyTable<(&str, &str), &[u8]>, u64) -> Result<T, KvFailure>
        + Send
        + 'static,
    ) -> KvFuture<'_, T> {
        let db = self.db.clone();
        Box::pin(async move {
            tokio::task::spawn_blocking(move || {
                let snapshot = db.begin_read().map_err(unavailable)?;
                let entries = snapshot.open_table(ENTRIES).map_err(unavailable)?;
                read(&entries, now_ms())
            })
            .await
            .map_err(unavailable)?
        })
    }
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
        let db = self.db.clone();
        Box::pin(async move {
            tokio::task::spawn_blocking(move || {
                let snapshot = db.begin_read().map_err(unavailable)?;
                let usage = snapshot.open_table(USAGE).map_err(unavailable)?;
                let found = usage.get(namespace.as_str()).map_err(unavailable)?;
                Ok(found
                    .map(|row| {
                        let (keys, bytes) = row.value();
                        Usage { keys, bytes }
                    })
                    .unwrap_or_default())
            })
            .await
            .map_err(unavailable)?
        })
    }
}

/// The writer: take what has queued, apply it in one transaction, commit
/// durably, then answer every job.
fn write_loop(db: &Database, mut jobs: mpsc::Receiver<Job>) {
    while let Some(first) = jobs.blocking_recv() {
        let mut batch = vec![first];
        while batch.len() < BATCH {
            match jobs.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let mut replies = Vec::with_capacity(batch.len());
        let committed = db.begin_write().map_err(unavailable).and_then(|txn| {
            {
                let mut tables = Tables::open(&txn)?;
                for job in batch {
                    match job {
                        Job::Apply {
                            namespace,
                            writes,
                            quota,
                            reply,
                        } => {
                            let outcome = tables.apply(&namespace, &writes, quota, now_ms());
                            // A store error may leave the job half written:
                            // nothing of the batch is committed then.
                            if let Err(failure @ KvFailure::Unavailable(_)) = &outcome {
                                return Err(failure.clone());
                            }
                            replies.push((reply, outcome));
                        }
                        Job::Sweep => {
                            if let Err(err) = tables.sweep(now_ms()) {
                                tracing::warn!(%err, "key-value expiry failed");
                            }
                        }
                    }
                }
            }
            txn.commit().map_err(unavailable)
        });
        for (reply, outcome) in replies {
            let answer = match &committed {
                Ok(()) => outcome,
                Err(failure) => Err(failure.clone()),
            };
            // The caller may have gone (its request ended): the write stands.
            let _ = reply.send(answer);
        }
        if let Err(err) = committed {
            tracing::error!(%err, "key-value commit failed");
        }
    }
}

/// The tables of one write transaction.
struct Tables<'txn> {
    entries: Table<'txn, (&'static str, &'static str), &'static [u8]>,
    expiry: Table<'txn, (u64, &'static str, &'static str), ()>,
    usage: Table<'txn, &'static str, (u64, u64)>,
}

/// A key a job touches: what is stored, and what it will be.
struct Touched {
    before: Option<Record>,
    after: Option<Record>,
}

impl<'txn> Tables<'txn> {
    fn open(txn: &'txn WriteTransaction) -> Result<Tables<'txn>, KvFailure> {
        Ok(Tables {
            entries: txn.open_table(ENTRIES).map_err(unavailable)?,
            expiry: txn.open_table(EXPIRY).map_err(unavailable)?,
            usage: txn.open_table(USAGE).map_err(unavailable)?,
        })
    }

    fn stored(&self, namespace: &str, key: &str) -> Result<Option<Record>, KvFailure> {
        let found = self.entries.get((namespace, key)).map_err(unavailable)?;
        Ok(found.map(|raw| Record::decode(raw.value())))
    }

    /// One job, all or nothing: work out every key's new value first, check
    /// the quota, then write.
    fn apply(
        &mut self,
        namespace: &str,
        writes: &[Write],
        quota: Quota,
        now: u64,
    ) -> Result<Vec<Applied>, KvFailure> {
        let mut touched: HashMap<&str, Touched> = HashMap::new();
        let mut applied = Vec::with_capacity(writes.len());
        for write in writes {
            let key = write.key();
            if !touched.contains_key(key) {
                let before = self.stored(namespace, key)?;
                let after = before.clone().filter(|record| record.live(now));
                touched.insert(key, Touched { before, after });
            }
            let Some(entry) = touched.get_mut(key) else {
                continue;
            };
            let current = &mut entry.after;
            applied.push(match write {
                Write::Set { value, ttl, .. } => {
                    let expires_at =
                        ttl.map_or(0, |ttl| now.saturating_add(ttl.as_millis() as u64).max(1));
                    *current = Some(Record {
                        expires_at,
                        value: value.clone(),
                    });
                    Applied::Stored
                }
                Write::Delete { .. } => Applied::Deleted(current.take().is_some()),
                Write::Increment { delta, .. } => {
                    let (old, expires_at) = match current {
                        Some(record) => (parse_counter(&record.value)?, record.expires_at),
                        None => (0, 0),
                    };
                    let new = old.checked_add(*delta).ok_or_else(|| {
                        KvFailure::Invalid("the increment overflows a 64-bit integer".to_owned())
                    })?;
                    *current = Some(Record {
                        expires_at,
                        value: new.to_string().into_bytes(),
                    });
                    Applied::Counter(new)
                }
                Write::CompareAndSwap { expected, new, .. } => {
                    let matches = current.as_ref().map(|record| &record.value) == expected.as_ref();
                    if matches {
                        *current = new.clone().map(|value| Record {
                            expires_at: 0,
                            value,
                        });
                    }
                    Applied::Swapped(matches)
                }
            });
        }
        let size = |key: &str, record: &Option<Record>| {
            record
                .as_ref()
                .map_or(0, |record| entry_bytes(key, &record.value))
        };
        let (mut keys_delta, mut bytes_delta) = (0i64, 0i64);
        for (key, entry) in &touched {
            keys_delta += i64::from(entry.after.is_some()) - i64::from(entry.before.is_some());
            bytes_delta += size(key, &entry.after) as i64 - size(key, &entry.before) as i64;
        }
        let usage = self.usage_of(namespace)?;
        let keys = usage.keys.saturating_add_signed(keys_delta);
        let bytes = usage.bytes.saturating_add_signed(bytes_delta);
        if keys_delta > 0 && keys > quota.max_keys {
            return Err(KvFailure::Quota(format!(
                "the app's store would hold {keys} keys, over its kv_max_keys of {}",
                quota.max_keys
            )));
        }
        if bytes_delta > 0 && bytes > quota.max_bytes {
            return Err(KvFailure::Quota(format!(
                "the app's store would hold {bytes} bytes, over its kv_max_bytes of {}",
                quota.max_bytes
            )));
        }
        for (key, entry) in touched {
            if entry.before == entry.after {
                continue;
            }
            if let Some(before) = &entry.before
                && before.expires_at != 0
            {
                self.expiry
                    .remove((before.expires_at, namespace, key))
                    .map_err(unavailable)?;
            }
            match &entry.after {
                Some(after) => {
                    self.entries
                        .insert((namespace, key), after.encode().as_slice())
                        .map_err(unavailable)?;
                    if after.expires_at != 0 {
                        self.expiry
                            .insert((after.expires_at, namespace, key), ())
                            .map_err(unavailable)?;
                    }
                }
                None => {
                    self.entries.remove((namespace, key)).map_err(unavailable)?;
                }
            }
        }
        self.set_usage(namespace, Usage { keys, bytes })?;
        Ok(applied)
    }

    fn usage_of(&self, namespace: &str) -> Result<Usage, KvFailure> {
        let found = self.usage.get(namespace).map_err(unavailable)?;
        Ok(found
            .map(|row| {
                let (keys, bytes) = row.value();
                Usage { keys, bytes }
            })
            .unwrap_or_default())
    }

    fn set_usage(&mut self, namespace: &str, usage: Usage) -> Result<(), KvFailure> {
        if usage.keys == 0 {
            self.usage.remove(namespace).map_err(unavailable)?;
        } else {
            self.usage
                .insert(namespace, (usage.keys, usage.bytes))
                .map_err(unavailable)?;
        }
        Ok(())
    }

    /// Remove up to a batch of expired entries.
    fn sweep(&mut self, now: u64) -> Result<(), KvFailure> {
        let mut due = Vec::new();
        for item in self
            .expiry
            .range::<(u64, &str, &str)>(..=(now, "\u{10FFFF}", "\u{10FFFF}"))
            .map_err(unavailable)?
            .take(SWEEP_BATCH)
        {
            let (key, _) = item.map_err(unavailable)?;
            let (at, namespace, name) = key.value();
            due.push((at, namespace.to_owned(), name.to_owned()));
        }
        for (at, namespace, key) in due {
            self.expiry
                .remove((at, namespace.as_str(), key.as_str()))
                .map_err(unavailable)?;
            let Some(record) = self.stored(&namespace, &key)? else {
                continue;
            };
            if record.expires_at != at {
                continue;
            }
            self.entries
                .remove((namespace.as_str(), key.as_str()))
                .map_err(unavailable)?;
            let usage = self.usage_of(&namespace)?;
            self.set_usage(
                &namespace,
                Usage {
                    keys: usage.keys.saturating_sub(1),
                    bytes: usage.bytes.saturating_sub(entry_bytes(&key, &record.value)),
                },
            )?;
        }
        Ok(())
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

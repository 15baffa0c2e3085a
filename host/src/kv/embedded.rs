//! The embedded store: one redb file under the data directory.
//!
//! Writes go through one writer thread (`writer.rs`) that commits whatever
//! has queued up in a single durable transaction (group commit): each write
//! is acknowledged only after the fsync that makes it survive `kill -9`, and
//! concurrent writers share that fsync. Reads run on tokio's blocking pool
//! in their own MVCC snapshots and never wait for the writer.
//!
//! An entry is `(namespace, key) -> expiry ++ value`; an index of each
//! namespace's entries ordered by expiry lets the writer drop expired
//! entries a batch per namespace at a time (one app's flood delays no
//! other's), and reads treat an expired entry as absent.

use super::layout::{Clock, ENTRIES, EXPIRY, Record, USAGE, unavailable, unexpired, usage_in};
use super::writer::{Job, write_loop};
use super::{KvBackend, KvFailure, KvFuture, NamespaceUsage, Page, Quota, Write, WriteOutcome};
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use std::ops::Bound;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

/// What stores before it kept instead: `(expiry, namespace, key)`, moved
/// into [`EXPIRY`] when such a store is opened.
const EXPIRY_BEFORE: TableDefinition<(u64, &str, &str), ()> = TableDefinition::new("expiry");
/// Writes waiting for the writer; senders wait beyond (backpressure on guests).
const QUEUED_WRITES: usize = 1024;
/// How often expired entries are removed, and how many of each
/// namespace's at a time; while some namespace had more due than a batch,
/// the next sweep comes after [`SWEEP_BEHIND`] instead.
const SWEEP_EVERY: Duration = Duration::from_secs(1);
const SWEEP_BEHIND: Duration = Duration::from_millis(50);
/// redb's page cache.
const CACHE_BYTES: usize = 64 << 20;

/// The embedded backend.
pub(crate) struct Embedded {
    db: Arc<Database>,
    writer: mpsc::Sender<Job>,
    clock: Clock,
}

impl Embedded {
    /// Open (or create) the store at `path` and start its writer.
    pub(crate) fn open(path: &Path) -> anyhow::Result<Arc<Embedded>> {
        Embedded::open_with_clock(path, Clock::default())
    }

    /// Open the store at `path`, its expiry told by `clock`.
    fn open_with_clock(path: &Path, clock: Clock) -> anyhow::Result<Arc<Embedded>> {
        use anyhow::Context;
        let db = Database::builder()
            .set_cache_size(CACHE_BYTES)
            .create(path)
            .with_context(|| format!("cannot open the key-value store {}", path.display()))?;
        let setup = db.begin_write()?;
        setup.open_table(ENTRIES)?;
        move_expiry_index(&setup)?;
        setup.open_table(USAGE)?;
        setup.commit()?;
        let db = Arc::new(db);
        let (writer, jobs) = mpsc::channel(QUEUED_WRITES);
        let (writer_db, writer_clock) = (db.clone(), clock.clone());
        std::thread::Builder::new()
            .name("kv-writer".into())
            .spawn(move || write_loop(&writer_db, jobs, &writer_clock))
            .context("cannot start the key-value writer")?;
        let sweeps = writer.downgrade();
        std::thread::Builder::new()
            .name("kv-expiry".into())
            .spawn(move || {
                let behind = Arc::new(AtomicBool::new(false));
                loop {
                    let behind_now = behind.swap(false, Ordering::Relaxed);
                    std::thread::sleep(if behind_now {
                        SWEEP_BEHIND
                    } else {
                        SWEEP_EVERY
                    });
                    // The store is gone once its last sender is.
                    let Some(writer) = sweeps.upgrade() else {
                        return;
                    };
                    let sweep = Job::Sweep {
                        behind: behind.clone(),
                        done: None,
                    };
                    if writer.try_send(sweep).is_err() && writer.is_closed() {
                        return;
                    }
                }
            })
            .context("cannot start the key-value expiry")?;
        Ok(Arc::new(Embedded { db, writer, clock }))
    }

    /// Sweep once now, as the expiry thread does each second.
    #[cfg(test)]
    async fn sweep_now(&self) {
        let (done, swept) = oneshot::channel();
        let sweep = Job::Sweep {
            behind: Arc::default(),
            done: Some(done),
        };
        if self.writer.send(sweep).await.is_ok() {
            let _ = swept.await;
        }
    }

    /// Run `read` in a snapshot, off the event loop.
    fn snapshot<T: Send + 'static>(
        &self,
        read: impl FnOnce(&redb::ReadTransaction, u64) -> Result<T, KvFailure> + Send + 'static,
    ) -> KvFuture<'_, T> {
        let (db, clock) = (self.db.clone(), self.clock.clone());
        Box::pin(async move {
            tokio::task::spawn_blocking(move || {
                let snapshot = db.begin_read().map_err(unavailable)?;
                read(&snapshot, clock.now_ms())
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

/// Move the expiry index of a store written before it was kept by
/// namespace into [`EXPIRY`].
fn move_expiry_index(setup: &redb::WriteTransaction) -> anyhow::Result<()> {
    let mut index = setup.open_table(EXPIRY)?;
    let before = setup.open_table(EXPIRY_BEFORE)?;
    for item in before.iter()? {
        let (key, _) = item?;
        let (at, namespace, name) = key.value();
        index.insert((namespace, at, name), ())?;
    }
    drop((index, before));
    setup.delete_table(EXPIRY_BEFORE)?;
    Ok(())
}

impl KvBackend for Embedded {
    fn get_many(
        &self,
        namespace: &str,
        keys: Vec<String>,
        most: u64,
    ) -> KvFuture<'_, Vec<Option<Vec<u8>>>> {
        let namespace = namespace.to_owned();
        self.read(move |entries, now| {
            let mut built = 0u64;
            keys.iter()
                .map(|key| {
                    let found = entries
                        .get((namespace.as_str(), key.as_str()))
                        .map_err(unavailable)?;
                    let Some(found) = found else { return Ok(None) };
                    let (expires_at, value) = Record::split(found.value());
                    if !unexpired(expires_at, now) {
                        return Ok(None);
                    }
                    // Counted before it is copied.
                    built = built.saturating_add(value.len() as u64);
                    if built > most {
                        return Err(KvFailure::TooLarge(most));
                    }
                    Ok(Some(value.to_vec()))
                })
                .collect()
        })
    }

    fn exists(&self, namespace: &str, key: String) -> KvFuture<'_, bool> {
        let namespace = namespace.to_owned();
        self.read(move |entries, now| {
            let found = entries
                .get((namespace.as_str(), key.as_str()))
                .map_err(unavailable)?;
            Ok(found.is_some_and(|raw| unexpired(Record::split(raw.value()).0, now)))
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
            let (mut cursor, mut examined) = (None, None::<String>);
            for (scanned, item) in range.enumerate() {
                let (key, raw) = item.map_err(unavailable)?;
                let (space, name) = key.value();
                if space != namespace || !name.starts_with(prefix.as_str()) {
                    break;
                }
                if keys.len() as u32 >= limit {
                    cursor = keys.last().cloned();
                    break;
                }
                if scanned >= super::MAX_SCANNED {
                    // Expired entries not yet swept: the page ends after
                    // the last one looked at.
                    cursor = examined;
                    break;
                }
                if unexpired(Record::split(raw.value()).0, now) {
                    keys.push(name.to_owned());
                }
                examined = Some(name.to_owned());
            }
            Ok(Page { keys, cursor })
        })
    }

    fn apply(
        &self,
        namespace: &str,
        writes: Vec<Write>,
        quota: Quota,
    ) -> KvFuture<'_, Vec<WriteOutcome>> {
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

    fn usage(&self, namespace: &str) -> KvFuture<'_, NamespaceUsage> {
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
    use crate::kv::writer::SWEEP_BATCH;

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
            .get_many(namespace, vec![key.into()], u64::MAX)
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
        assert_eq!(
            applied,
            [WriteOutcome::Counter(5), WriteOutcome::Counter(3)]
        );
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
                WriteOutcome::Swapped(true),
                WriteOutcome::Swapped(false),
                WriteOutcome::Swapped(true)
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
            NamespaceUsage { keys: 2, bytes: 10 }
        );
        store
            .apply("a", vec![Write::Delete { key: "a".into() }], quota)
            .await
            .expect("delete");
        assert_eq!(
            store.usage("a").await.expect("usage"),
            NamespaceUsage { keys: 1, bytes: 9 }
        );
    }

    #[tokio::test]
    async fn expired_entries_read_as_absent_and_are_swept() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let clock = Clock::manual();
        let store = Embedded::open_with_clock(&dir.path().join("kv.redb"), clock.clone())
            .expect("the store opens");
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
        clock.advance(Duration::from_millis(80));
        assert_eq!(get(&store, "a", "s").await, None);
        assert!(!store.exists("a", "s".into()).await.expect("exists"));
        let page = store
            .list("a", String::new(), None, 10)
            .await
            .expect("list");
        assert_eq!(page.keys, ["keep"]);
        // The expiry thread's sweep removes the entry and its usage.
        store.sweep_now().await;
        assert_eq!(store.usage("a").await.expect("usage").keys, 1);
    }

    #[tokio::test]
    async fn a_read_over_its_bound_is_refused_before_it_is_built() {
        let (_dir, store) = store();
        store
            .apply("a", vec![set("big", &[7; 1000]), set("small", b"s")], ROOMY)
            .await
            .expect("set");
        let keys = vec!["big".to_owned(); 5];
        assert_eq!(
            store.get_many("a", keys.clone(), 4999).await,
            Err(KvFailure::TooLarge(4999))
        );
        let values = store.get_many("a", keys, 5000).await.expect("within");
        assert_eq!(values.len(), 5);
        let absent = store
            .get_many("a", vec!["none".into(), "small".into()], 1)
            .await
            .expect("within");
        assert_eq!(absent, [None, Some(b"s".to_vec())]);
    }

    #[tokio::test]
    async fn one_namespaces_flood_of_expired_keys_delays_no_others_sweep() {
        let (_dir, store) = store();
        let expiring = |key: String| Write::Set {
            key,
            value: b"v".to_vec(),
            ttl: Some(Duration::from_millis(1)),
        };
        let flood = (0..20 * SWEEP_BATCH).map(|n| expiring(format!("k{n}")));
        store
            .apply("flood", flood.collect(), ROOMY)
            .await
            .expect("set");
        store
            .apply("calm", vec![expiring("k".into())], ROOMY)
            .await
            .expect("set");
        // Both due once a millisecond has passed.
        while get(&store, "calm", "k").await.is_some() {
            tokio::task::yield_now().await;
        }
        store.sweep_now().await;
        assert_eq!(store.usage("calm").await.expect("usage").keys, 0);
        let flood_left = store.usage("flood").await.expect("usage").keys;
        assert!(flood_left > 10 * SWEEP_BATCH as u64, "{flood_left} left");
    }

    #[tokio::test]
    async fn a_listing_looks_at_a_bounded_number_of_expired_entries() {
        let (_dir, store) = store();
        let scanned = super::super::MAX_SCANNED;
        let expired = (0..3 * scanned).map(|n| Write::Set {
            key: format!("gone:{n:05}"),
            value: b"v".to_vec(),
            ttl: Some(Duration::from_millis(1)),
        });
        // A live key just where the first page's scan stops: not skipped.
        let at_the_cut = format!("gone:{:05}x", scanned - 1);
        store
            .apply(
                "a",
                expired
                    .chain([set("live", b"v"), set(&at_the_cut, b"v")])
                    .collect(),
                ROOMY,
            )
            .await
            .expect("set");
        while get(&store, "a", "gone:00000").await.is_some() {
            tokio::task::yield_now().await;
        }
        // Pages end early, with a cursor, until the live key is reached.
        let (mut cursor, mut pages, mut seen) = (None, 0, Vec::new());
        loop {
            let page = store
                .list("a", String::new(), cursor, 10)
                .await
                .expect("list");
            pages += 1;
            seen.extend(page.keys);
            cursor = page.cursor;
            if cursor.is_none() {
                break;
            }
        }
        assert_eq!(seen, [at_the_cut.as_str(), "live"]);
        assert!(pages >= 3, "{pages} pages");
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
            NamespaceUsage { keys: 1, bytes: 2 }
        );
    }
}

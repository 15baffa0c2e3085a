//! The embedded store's writer: one thread that applies every queued job
//! in one durable transaction (group commit), all or nothing per job, with
//! each namespace's quota checked in the transaction that would pass it,
//! and that removes expired entries a batch at a time.

use super::layout::{Clock, ENTRIES, EXPIRY, Record, USAGE, unavailable, usage_in};
use super::{KvFailure, NamespaceUsage, Quota, Write, WriteOutcome, entry_bytes, parse_counter};
use redb::{Database, ReadableTable, Table, WriteTransaction};
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use tokio::sync::{mpsc, oneshot};

/// Jobs committed together at most.
const BATCH: usize = 256;
/// Expired entries removed per namespace per sweep at most.
pub(super) const SWEEP_BATCH: usize = 1000;

/// What the writer is asked to do.
pub(super) enum Job {
    Apply {
        namespace: String,
        writes: Vec<Write>,
        quota: Quota,
        reply: oneshot::Sender<Result<Vec<WriteOutcome>, KvFailure>>,
    },
    /// Remove a batch of each namespace's expired entries; whether some
    /// namespace had more due is noted in `behind`.
    Sweep {
        behind: Arc<AtomicBool>,
        done: Option<oneshot::Sender<()>>,
    },
}

/// The writer: take what has queued, apply it in one transaction, commit
/// durably, then answer every job.
pub(super) fn write_loop(db: &Database, mut jobs: mpsc::Receiver<Job>, clock: &Clock) {
    while let Some(first) = jobs.blocking_recv() {
        let mut batch = vec![first];
        while batch.len() < BATCH {
            match jobs.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let mut replies = Vec::with_capacity(batch.len());
        let mut swept = Vec::new();
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
                            let outcome = tables.apply(&namespace, &writes, quota, clock.now_ms());
                            // A store error may leave the job half written:
                            // nothing of the batch is committed then.
                            if let Err(failure @ KvFailure::Unavailable(_)) = &outcome {
                                return Err(failure.clone());
                            }
                            replies.push((reply, outcome));
                        }
                        Job::Sweep { behind, done } => {
                            match tables.sweep(clock.now_ms()) {
                                Ok(more_due) => behind.store(more_due, Ordering::Relaxed),
                                Err(err) => tracing::warn!(%err, "key-value expiry failed"),
                            }
                            if let Some(done) = done {
                                swept.push(done);
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
        for done in swept {
            let _ = done.send(());
        }
        if let Err(err) = committed {
            tracing::error!(%err, "key-value commit failed");
        }
    }
}

/// The tables of one write transaction.
struct Tables<'txn> {
    entries: Table<'txn, (&'static str, &'static str), &'static [u8]>,
    expiry: Table<'txn, (&'static str, u64, &'static str), ()>,
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
    ) -> Result<Vec<WriteOutcome>, KvFailure> {
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
                    WriteOutcome::Stored
                }
                Write::Delete { .. } => WriteOutcome::Deleted(current.take().is_some()),
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
                    WriteOutcome::Counter(new)
                }
                Write::CompareAndSwap { expected, new, .. } => {
                    let matches = current.as_ref().map(|record| &record.value) == expected.as_ref();
                    if matches {
                        *current = new.clone().map(|value| Record {
                            expires_at: 0,
                            value,
                        });
                    }
                    WriteOutcome::Swapped(matches)
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
                    .remove((namespace, before.expires_at, key))
                    .map_err(unavailable)?;
            }
            match &entry.after {
                Some(after) => {
                    self.entries
                        .insert((namespace, key), after.encode().as_slice())
                        .map_err(unavailable)?;
                    if after.expires_at != 0 {
                        self.expiry
                            .insert((namespace, after.expires_at, key), ())
                            .map_err(unavailable)?;
                    }
                }
                None => {
                    self.entries.remove((namespace, key)).map_err(unavailable)?;
                }
            }
        }
        self.set_usage(namespace, NamespaceUsage { keys, bytes })?;
        Ok(applied)
    }

    fn usage_of(&self, namespace: &str) -> Result<NamespaceUsage, KvFailure> {
        usage_in(&self.usage, namespace)
    }

    fn set_usage(&mut self, namespace: &str, usage: NamespaceUsage) -> Result<(), KvFailure> {
        if usage.keys == 0 {
            self.usage.remove(namespace).map_err(unavailable)?;
        } else {
            self.usage
                .insert(namespace, (usage.keys, usage.bytes))
                .map_err(unavailable)?;
        }
        Ok(())
    }

    /// Remove up to a batch of each namespace's expired entries; whether
    /// some namespace had more due.
    fn sweep(&mut self, now: u64) -> Result<bool, KvFailure> {
        // Every namespace with an entry has a usage row.
        let mut namespaces = Vec::new();
        for item in self.usage.iter().map_err(unavailable)? {
            let (namespace, _) = item.map_err(unavailable)?;
            namespaces.push(namespace.value().to_owned());
        }
        let mut more_due = false;
        for namespace in namespaces {
            let mut due = Vec::new();
            let start = (namespace.as_str(), 0, "");
            let end = (namespace.as_str(), now, "\u{10FFFF}");
            for item in self
                .expiry
                .range::<(&str, u64, &str)>(start..=end)
                .map_err(unavailable)?
                .take(SWEEP_BATCH + 1)
            {
                let (key, _) = item.map_err(unavailable)?;
                let (_, at, name) = key.value();
                due.push((at, name.to_owned()));
            }
            more_due |= due.len() > SWEEP_BATCH;
            due.truncate(SWEEP_BATCH);
            for (at, key) in due {
                self.expire(&namespace, at, &key)?;
            }
        }
        Ok(more_due)
    }

    /// Remove `key` of `namespace`, due at `at`, and its share of the usage.
    fn expire(&mut self, namespace: &str, at: u64, key: &str) -> Result<(), KvFailure> {
        self.expiry
            .remove((namespace, at, key))
            .map_err(unavailable)?;
        let Some(record) = self.stored(namespace, key)? else {
            return Ok(());
        };
        if record.expires_at != at {
            return Ok(());
        }
        self.entries.remove((namespace, key)).map_err(unavailable)?;
        let usage = self.usage_of(namespace)?;
        self.set_usage(
            namespace,
            NamespaceUsage {
                keys: usage.keys.saturating_sub(1),
                bytes: usage.bytes.saturating_sub(entry_bytes(key, &record.value)),
            },
        )
    }
}

//! Delayed jobs, and a queue's messages, kept in the store the server's
//! backend names (redb, or Redis shared by several hosts), in a namespace
//! of the host's own per app (`APP:jobs`, `APP:queue:QUEUE`: app names
//! hold no ':', so no app's own store reaches it). A queued message is a
//! job named for its queue, due when it may be delivered.
//!
//! A job is a record (`j:ID`: due time, attempt, whether a host holds it,
//! name, payload) and an
//! index entry (`d:DUE:ID`, keys listed in due order). Only the record
//! decides: a host takes a due job by swapping its record for one leased
//! until a deadline (compare-and-swap, so exactly one host wins each
//! attempt), and a host that dies mid-run leaves a lease that falls due
//! again. A move writes the new index entry before the swap and drops the
//! old one after it, so a host dying in between leaves an extra entry,
//! never a record without one; entries that no longer match their record
//! are dropped when met. Only keeping a job meets the app's quota: the
//! host's own moves and removals never grow what a job holds for long.

use crate::kv::{KvBackend, KvFailure, Quota, Write, WriteOutcome};
use std::sync::Arc;

/// One job as the store keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct JobRecord {
    /// When it runs next (ms since the epoch): its due time, or while a
    /// host runs it, the end of that host's lease.
    pub(crate) due_ms: u64,
    /// Runs started so far.
    pub(crate) attempt: u32,
    /// Whether a host took it (until `due_ms`): it is running, or its
    /// host died and it falls due again then.
    pub(crate) leased: bool,
    pub(crate) name: String,
    pub(crate) payload: Vec<u8>,
}

impl JobRecord {
    fn encode(&self) -> Vec<u8> {
        let leased = u8::from(self.leased);
        let mut bytes = format!(
            "{}\n{}\n{leased}\n{}\n",
            self.due_ms, self.attempt, self.name
        )
        .into_bytes();
        bytes.extend_from_slice(&self.payload);
        bytes
    }

    fn decode(bytes: &[u8]) -> Option<JobRecord> {
        let mut parts = bytes.splitn(5, |byte| *byte == b'\n');
        let mut text = || std::str::from_utf8(parts.next()?).ok().map(str::to_owned);
        let due_ms = text()?.parse().ok()?;
        let attempt = text()?.parse().ok()?;
        let leased = match text()?.as_str() {
            "0" => false,
            "1" => true,
            _ => return None,
        };
        let name = text()?;
        let payload = parts.next()?.to_vec();
        Some(JobRecord {
            due_ms,
            attempt,
            leased,
            name,
            payload,
        })
    }
}

/// An app's jobs in the store.
pub(crate) struct JobStore {
    backend: Arc<dyn KvBackend>,
    namespace: String,
    quota: Quota,
}

/// The jobs due now, and when the next one not yet due is.
pub(crate) struct DueJobs {
    pub(crate) jobs: Vec<(String, JobRecord)>,
    /// The due time of the first job listed that is not due yet, if any.
    pub(crate) next_ms: Option<u64>,
}

/// What the host's own moves may hold for a moment: the new index entry
/// of a job beside its old one, whatever the app's quota.
const HOST_MOVES: Quota = Quota {
    max_keys: u64::MAX,
    max_bytes: u64::MAX,
};

/// What one look at due records reads at most (and one record more).
const DUE_READS_AT_MOST: u64 = 16 << 20;

/// The most a kept record may be: the largest payload a manifest may
/// allow, and its name and numbers. A bigger one is not read.
const MAX_RECORD: u64 = crate::config::JOBS_PAYLOAD_CEILING + 1024;

/// A new job id: 128 random bits in hex, unique across hosts.
pub(crate) fn new_job_id() -> Result<String, KvFailure> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes)
        .map_err(|err| KvFailure::Unavailable(format!("no randomness for a job id: {err}")))?;
    Ok(bytes.iter().map(|byte| format!("{byte:02x}")).collect())
}

/// Whether `id` could be one [`new_job_id`] made (ids from guests are
/// checked before they name a key).
pub(crate) fn is_job_id(id: &str) -> bool {
    id.len() == 32
        && id
            .bytes()
            .all(|byte| byte.is_ascii_hexdigit() && !byte.is_ascii_uppercase())
}

fn record_key(id: &str) -> String {
    format!("j:{id}")
}

fn index_key(due_ms: u64, id: &str) -> String {
    format!("d:{due_ms:020}:{id}")
}

/// The due time and id an index key names.
fn parse_index(key: &str) -> Option<(u64, &str)> {
    let rest = key.strip_prefix("d:")?;
    let (due, id) = rest.split_once(':')?;
    Some((due.parse().ok()?, id))
}

impl JobStore {
    /// `app`'s jobs, at most `max_pending` of them, each payload at most
    /// `max_payload` bytes (the bytes quota allows that many full ones).
    pub(crate) fn new(
        backend: Arc<dyn KvBackend>,
        app: &str,
        max_pending: u64,
        max_payload: u64,
    ) -> JobStore {
        JobStore::in_namespace(backend, format!("{app}:jobs"), max_pending, max_payload)
    }

    /// `app`'s messages of `queue`, at most `max_messages` of them.
    pub(crate) fn for_queue(
        backend: Arc<dyn KvBackend>,
        app: &str,
        queue: &str,
        max_messages: u64,
        max_payload: u64,
    ) -> JobStore {
        let namespace = format!("{app}:queue:{queue}");
        JobStore::in_namespace(backend, namespace, max_messages, max_payload)
    }

    fn in_namespace(
        backend: Arc<dyn KvBackend>,
        namespace: String,
        max_pending: u64,
        max_payload: u64,
    ) -> JobStore {
        let per_job = max_payload.saturating_add(256);
        JobStore {
            backend,
            namespace,
            quota: Quota {
                max_keys: max_pending.saturating_mul(2),
                max_bytes: max_pending.saturating_mul(per_job),
            },
        }
    }

    /// Jobs pending (running ones included).
    pub(crate) async fn pending(&self) -> Result<u64, KvFailure> {
        Ok(self.backend.usage(&self.namespace).await?.keys / 2)
    }

    /// Keep job `id`; `KvFailure::Quota` past the app's limits.
    pub(crate) async fn add(&self, id: &str, job: &JobRecord) -> Result<(), KvFailure> {
        self.add_all(&[(id.to_owned(), job.clone())]).await
    }

    /// Keep all of `jobs`, or none of them past the app's limits.
    pub(crate) async fn add_all(&self, jobs: &[(String, JobRecord)]) -> Result<(), KvFailure> {
        let writes = jobs
            .iter()
            .flat_map(|(id, job)| {
                [
                    set(record_key(id), job.encode()),
                    set(index_key(job.due_ms, id), Vec::new()),
                ]
            })
            .collect();
        self.backend
            .apply(&self.namespace, writes, self.quota)
            .await
            .map(drop)
    }

    /// The record of job `id`, if it is kept.
    pub(crate) async fn get(&self, id: &str) -> Result<Option<JobRecord>, KvFailure> {
        let mut found = self
            .backend
            .get_many(&self.namespace, vec![record_key(id)], MAX_RECORD)
            .await?;
        Ok(found
            .pop()
            .flatten()
            .and_then(|bytes| JobRecord::decode(&bytes)))
    }

    /// Forget job `id` if it is pending and not taken: whether it did.
    pub(crate) async fn cancel(&self, id: &str) -> Result<bool, KvFailure> {
        match self.get(id).await? {
            Some(seen) if !seen.leased => self.remove(id, &seen).await,
            _ => Ok(false),
        }
    }

    /// Forget job `id` if it is still as `seen`: whether this call removed it.
    pub(crate) async fn remove(&self, id: &str, seen: &JobRecord) -> Result<bool, KvFailure> {
        let removed = self.remove_all(&[(id.to_owned(), seen.clone())]).await?;
        Ok(removed.first() == Some(&true))
    }

    /// Take the due job `id`, seen as `seen`, until `lease_until_ms`: the
    /// record with its attempt counted, or `None` if another host took it
    /// (or it changed) first.
    pub(crate) async fn take(
        &self,
        id: &str,
        seen: &JobRecord,
        lease_until_ms: u64,
    ) -> Result<Option<JobRecord>, KvFailure> {
        let leased = JobRecord {
            due_ms: lease_until_ms,
            attempt: seen.attempt.saturating_add(1),
            leased: true,
            ..seen.clone()
        };
        self.move_to(id, seen, leased).await
    }

    /// Give the taken job `id` back, due at `due_ms`, its attempt not
    /// counted: the host could not run it (no instance free).
    pub(crate) async fn release(
        &self,
        id: &str,
        taken: &JobRecord,
        due_ms: u64,
    ) -> Result<bool, KvFailure> {
        let again = JobRecord {
            due_ms,
            attempt: taken.attempt.saturating_sub(1),
            leased: false,
            ..taken.clone()
        };
        Ok(self.move_to(id, taken, again).await?.is_some())
    }

    /// Run the taken job `id` again at `due_ms` (a retry).
    pub(crate) async fn put_back(
        &self,
        id: &str,
        taken: &JobRecord,
        due_ms: u64,
    ) -> Result<bool, KvFailure> {
        let again = JobRecord {
            due_ms,
            leased: false,
            ..taken.clone()
        };
        Ok(self.move_to(id, taken, again).await?.is_some())
    }

    /// The jobs due at `now_ms`, earliest first, at most `limit` of them
    /// (the listing's own bound applies too), read until their payloads
    /// pass [`DUE_READS_AT_MOST`] bytes (whatever the limits were when they
    /// were kept). Index entries whose record is gone or has moved are
    /// dropped on the way, and so are records that cannot be read (over
    /// [`MAX_RECORD`], or not a record).
    pub(crate) async fn due(&self, now_ms: u64, limit: u32) -> Result<DueJobs, KvFailure> {
        let page = self
            .backend
            .list(&self.namespace, "d:".to_owned(), None, limit)
            .await?;
        let mut due = DueJobs {
            jobs: Vec::new(),
            next_ms: None,
        };
        let mut read = 0u64;
        for key in &page.keys {
            if read >= DUE_READS_AT_MOST {
                break;
            }
            let Some((due_ms, id)) = parse_index(key) else {
                continue;
            };
            if due_ms > now_ms {
                due.next_ms = Some(due_ms);
                break;
            }
            match self.get(id).await {
                Ok(Some(record)) if record.due_ms == due_ms => {
                    read = read.saturating_add(record.payload.len() as u64);
                    due.jobs.push((id.to_owned(), record));
                }
                // A leftover of a move that a host did not finish.
                Ok(_) => self.drop_index(due_ms, id).await?,
                Err(KvFailure::TooLarge(_)) => self.drop_unreadable(due_ms, id).await?,
                Err(failure) => return Err(failure),
            }
        }
        Ok(due)
    }

    /// Forget a job whose record cannot be read, index entry and all.
    async fn drop_unreadable(&self, due_ms: u64, id: &str) -> Result<(), KvFailure> {
        tracing::warn!(job = id, "job dropped: its record is over the host's bound");
        let writes = vec![
            Write::Delete {
                key: record_key(id),
            },
            Write::Delete {
                key: index_key(due_ms, id),
            },
        ];
        self.backend
            .apply(&self.namespace, writes, HOST_MOVES)
            .await
            .map(drop)
    }

    /// Swap the record `seen` for `next` and move its index entry: the
    /// new entry first, the old one dropped after.
    async fn move_to(
        &self,
        id: &str,
        seen: &JobRecord,
        next: JobRecord,
    ) -> Result<Option<JobRecord>, KvFailure> {
        let mut moved = self
            .move_all(&[(id.to_owned(), seen.clone())], vec![next])
            .await?;
        Ok(moved.pop().flatten())
    }

    /// [`JobStore::move_to`] for many jobs at once, in three writes
    /// whatever their number: the new index entries, the swaps, the old
    /// entries of those swapped. Each job's record, moved, or `None` if
    /// another host moved it first (its new entry is then left for `due`
    /// to drop if stale: the winner may have written that very entry).
    async fn move_all(
        &self,
        seen: &[(String, JobRecord)],
        next: Vec<JobRecord>,
    ) -> Result<Vec<Option<JobRecord>>, KvFailure> {
        let pairs = || seen.iter().zip(&next);
        let entries: Vec<Write> = pairs()
            .filter(|((_, was), now)| was.due_ms != now.due_ms)
            .map(|((id, _), now)| set(index_key(now.due_ms, id), Vec::new()))
            .collect();
        if !entries.is_empty() {
            self.backend
                .apply(&self.namespace, entries, HOST_MOVES)
                .await?;
        }
        let swaps = pairs()
            .map(|((id, was), now)| Write::CompareAndSwap {
                key: record_key(id),
                expected: Some(was.encode()),
                new: Some(now.encode()),
            })
            .collect();
        let outcomes = self
            .backend
            .apply(&self.namespace, swaps, HOST_MOVES)
            .await?;
        let mut stale = Vec::new();
        let mut moved = Vec::with_capacity(next.len());
        for (((id, was), now), outcome) in seen.iter().zip(next).zip(&outcomes) {
            if *outcome != WriteOutcome::Swapped(true) {
                moved.push(None);
                continue;
            }
            if was.due_ms != now.due_ms {
                stale.push(Write::Delete {
                    key: index_key(was.due_ms, id),
                });
            }
            moved.push(Some(now));
        }
        if !stale.is_empty() {
            self.backend
                .apply(&self.namespace, stale, HOST_MOVES)
                .await?;
        }
        Ok(moved)
    }

    /// Forget each of `taken` still as seen, in two writes: whether each was.
    pub(crate) async fn remove_all(
        &self,
        taken: &[(String, JobRecord)],
    ) -> Result<Vec<bool>, KvFailure> {
        let swaps = taken
            .iter()
            .map(|(id, was)| Write::CompareAndSwap {
                key: record_key(id),
                expected: Some(was.encode()),
                new: None,
            })
            .collect();
        let outcomes = self
            .backend
            .apply(&self.namespace, swaps, HOST_MOVES)
            .await?;
        let removed: Vec<bool> = outcomes
            .iter()
            .map(|outcome| *outcome == WriteOutcome::Swapped(true))
            .collect();
        let entries: Vec<Write> = taken
            .iter()
            .zip(&removed)
            .filter(|(_, removed)| **removed)
            .map(|((id, was), _)| Write::Delete {
                key: index_key(was.due_ms, id),
            })
            .collect();
        if !entries.is_empty() {
            self.backend
                .apply(&self.namespace, entries, HOST_MOVES)
                .await?;
        }
        Ok(removed)
    }

    /// Take each of the due jobs `seen` until `lease_until_ms`, as
    /// [`JobStore::take`] does, in three writes for all of them.
    pub(crate) async fn take_all(
        &self,
        seen: &[(String, JobRecord)],
        lease_until_ms: u64,
    ) -> Result<Vec<Option<JobRecord>>, KvFailure> {
        let next = seen
            .iter()
            .map(|(_, was)| JobRecord {
                due_ms: lease_until_ms,
                attempt: was.attempt.saturating_add(1),
                leased: true,
                ..was.clone()
            })
            .collect();
        self.move_all(seen, next).await
    }

    /// Put each of the taken jobs back, due at `due_ms` (a retry), in three
    /// writes for all of them: whether each was still ours.
    pub(crate) async fn put_back_all(
        &self,
        taken: &[(String, JobRecord)],
        due_ms: u64,
    ) -> Result<Vec<bool>, KvFailure> {
        let next = taken
            .iter()
            .map(|(_, was)| JobRecord {
                due_ms,
                leased: false,
                ..was.clone()
            })
            .collect();
        let moved = self.move_all(taken, next).await?;
        Ok(moved.iter().map(Option::is_some).collect())
    }

    async fn drop_index(&self, due_ms: u64, id: &str) -> Result<(), KvFailure> {
        let write = Write::Delete {
            key: index_key(due_ms, id),
        };
        self.backend
            .apply(&self.namespace, vec![write], HOST_MOVES)
            .await
            .map(drop)
    }
}

fn set(key: String, value: Vec<u8>) -> Write {
    Write::Set {
        key,
        value,
        ttl: None,
    }
}

#[cfg(test)]
mod tests;

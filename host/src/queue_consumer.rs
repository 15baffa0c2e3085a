//! Delivering a queue's messages to its consumer: the job runner looks
//! at each queue as it looks at each app's jobs, and starts as many
//! batches as the consumer's `concurrency` has room for on this host.
//! A batch takes each message by a lease (one host per delivery, as a
//! job's attempt), runs `on-messages` in a fresh instance, and then, per
//! message: removes it (acknowledged), puts it back for `retry_delay`
//! (not acknowledged, or the run failed), or, past `max_retries`, moves
//! it to the queue's dead letters.

use crate::app::AppRef;
use crate::bindings::exports::squall::app::background::QueuedMessage;
use crate::capabilities::QueueGrant;
use crate::config::ConsumerConfig;
use crate::dead_letters::{DeadLetter, DeadLetters};
use crate::dispatch::background_runs::{BackgroundCall, RunFailure, run_background};
use crate::error::HostError;
use crate::job_store::{JobRecord, JobStore};
use crate::kv::{KvFailure, now_ms};
use crate::stats;
use std::sync::Arc;
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};
use tracing::Instrument;

/// How long a lease outlives its run's `timeout` (as a job's).
const LEASE_MARGIN_MS: u64 = 10_000;
/// When the host could not start a batch (no instance free), its messages
/// are given back due this much later, their delivery not counted.
const NO_ROOM_WAIT_MS: u64 = 1_000;

/// One consumer's batches in flight on this host.
pub(crate) fn places_for(consumer: &ConsumerConfig) -> Arc<Semaphore> {
    Arc::new(Semaphore::new(consumer.concurrency as usize))
}

/// Start the batches of `queue` that are due at `now` and have room,
/// reading at most `reads` messages (what is left of its app's share of
/// this look; [`crate::job_store`] bounds their bytes); the messages
/// read, and when its next one not yet due is, if one was seen.
pub(crate) async fn look(
    app: &AppRef,
    queue: &QueueGrant,
    places: &Arc<Semaphore>,
    (now, reads): (u64, usize),
    finished: &Arc<Notify>,
) -> Result<(usize, Option<u64>), KvFailure> {
    let free = places.available_permits();
    if free == 0 || reads == 0 || !app.has_instance_room() {
        return Ok((0, None));
    }
    let batch = queue.consumer.batch as usize;
    let listed = free.saturating_mul(batch).min(reads);
    let listed = u32::try_from(listed).unwrap_or(u32::MAX);
    let due = queue.messages.due(now, listed).await?;
    let read = due.jobs.len();
    for chunk in due.jobs.chunks(batch.max(1)) {
        let Ok(place) = places.clone().try_acquire_owned() else {
            break;
        };
        let batch = Batch {
            app: app.clone(),
            consumer: queue.consumer.clone(),
            messages: queue.messages.clone(),
            dead: queue.dead.clone(),
        };
        let (seen, finished) = (chunk.to_vec(), finished.clone());
        let span = tracing::info_span!(
            "queue",
            app = %app.name_label(),
            queue = %queue.consumer.queue,
        );
        tokio::spawn(
            async move {
                batch.deliver(seen, place).await;
                // Its place is free: there may be more due.
                finished.notify_one();
            }
            .instrument(span),
        );
    }
    Ok((read, due.next_ms))
}

/// How a message past its retries was settled.
#[derive(Clone, Copy)]
enum Settled {
    /// Not moved (the store failed): it runs again when its lease lapses.
    Retried,
    Dead,
    /// Failed on every attempt, with the dead letters full.
    Dropped,
}

/// What a batch needs of its queue.
struct Batch {
    app: AppRef,
    consumer: ConsumerConfig,
    messages: Arc<JobStore>,
    dead: Arc<DeadLetters>,
}

impl Batch {
    /// Take what of `seen` no other host took first, deliver it, and
    /// settle each message by what the consumer said.
    async fn deliver(self, seen: Vec<(String, JobRecord)>, _place: OwnedSemaphorePermit) {
        // An app over its CPU share waits its turn, before it holds a lease.
        if let Some(pause) = self.app.component().charge_request() {
            tokio::time::sleep(pause).await;
        }
        let taken = self.take(seen).await;
        if taken.is_empty() {
            return;
        }
        let delivered = taken
            .iter()
            .map(|(id, record)| QueuedMessage {
                id: id.clone(),
                payload: record.payload.clone(),
                attempt: record.attempt,
            })
            .collect();
        let started = std::time::Instant::now();
        let call = BackgroundCall::Messages {
            queue: self.consumer.queue.clone(),
            messages: delivered,
        };
        let outcome = run_background(&self.app, call).await;
        let ms = started.elapsed().as_secs_f64() * 1000.0;
        let (acks, why) = match outcome {
            Ok(acks) => (acks, "the consumer did not acknowledge it".to_owned()),
            Err(RunFailure::Host(HostError::NoInstanceSlot(why))) => {
                self.give_back(&taken).await;
                tracing::info!(outcome = "postponed", "batch not started: {why}");
                return;
            }
            Err(RunFailure::Handler(message)) => (Vec::new(), message),
            Err(RunFailure::Host(failure)) => {
                if let Some(kind) = failure.guest_kind() {
                    stats::guest_failure(self.app.name_label(), kind);
                }
                (Vec::new(), failure.to_string())
            }
        };
        let (done, failed): (Vec<_>, Vec<_>) = taken
            .into_iter()
            .enumerate()
            .partition(|(index, _)| acks.get(*index).copied().unwrap_or(false));
        let done: Vec<(String, JobRecord)> = done.into_iter().map(|(_, taken)| taken).collect();
        let failed: Vec<(String, JobRecord)> = failed.into_iter().map(|(_, taken)| taken).collect();
        let acked = self.acknowledge(&done).await;
        let (retried, dead, dropped) = self.settle_failed(&failed, &why).await;
        // One line a batch, whatever befell its messages.
        tracing::info!(
            messages = done.len() + failed.len(),
            acked,
            retried,
            dead,
            dropped,
            ms,
            "queue batch"
        );
    }

    /// Take what of `seen` no other host took first; bury those whose last
    /// delivery's host died mid-run.
    async fn take(&self, seen: Vec<(String, JobRecord)>) -> Vec<(String, JobRecord)> {
        let timeout_ms = u64::try_from(self.app.limits().timeout.as_millis()).unwrap_or(u64::MAX);
        let lease_until = now_ms()
            .saturating_add(timeout_ms)
            .saturating_add(LEASE_MARGIN_MS);
        // Those whose last delivery's host died mid-run are dead already.
        let (lost, seen): (Vec<_>, Vec<_>) = seen
            .into_iter()
            .partition(|(_, record)| record.attempt > self.consumer.max_retries);
        for (id, record) in &lost {
            let why = "its last delivery did not finish".to_owned();
            let _ = self.bury(id, record, why).await;
        }
        match self.messages.take_all(&seen, lease_until).await {
            Ok(taken) => seen
                .iter()
                .zip(taken)
                .filter_map(|((id, _), record)| Some((id.clone(), record?)))
                .collect(),
            Err(failure) => {
                tracing::warn!("messages not taken: {failure}");
                Vec::new()
            }
        }
    }

    /// Remove the acknowledged messages: how many.
    async fn acknowledge(&self, done: &[(String, JobRecord)]) -> u64 {
        if done.is_empty() {
            return 0;
        }
        if let Err(failure) = self.messages.remove_all(done).await {
            tracing::warn!(
                "messages acknowledged, but not removed (they may run again): {failure}"
            );
        }
        let acked = done.len() as u64;
        stats::queue_delivered(self.app.name_label(), &self.consumer.queue, "acked", acked);
        acked
    }

    /// Put back the messages not acknowledged, or bury those past
    /// `max_retries`: how many were retried, dead, and dropped.
    async fn settle_failed(&self, failed: &[(String, JobRecord)], why: &str) -> (u64, u64, u64) {
        let (past, again): (Vec<_>, Vec<_>) = failed
            .iter()
            .cloned()
            .partition(|(_, record)| record.attempt > self.consumer.max_retries);
        let (mut dead, mut dropped) = (0, 0);
        for (id, record) in &past {
            match self.bury(id, record, why.to_owned()).await {
                Settled::Dead => dead += 1,
                Settled::Dropped => dropped += 1,
                Settled::Retried => {}
            }
        }
        if again.is_empty() {
            return (0, dead, dropped);
        }
        let delay = u64::try_from(self.consumer.retry_delay.as_millis()).unwrap_or(u64::MAX);
        let due = now_ms().saturating_add(delay);
        if let Err(failure) = self.messages.put_back_all(&again, due).await {
            tracing::warn!("messages not put back (they run when their lease lapses): {failure}");
        }
        let retried = again.len() as u64;
        stats::queue_delivered(
            self.app.name_label(),
            &self.consumer.queue,
            "retry",
            retried,
        );
        (retried, dead, dropped)
    }

    /// Move a message that failed on every attempt to the dead letters.
    async fn bury(&self, id: &str, record: &JobRecord, error: String) -> Settled {
        let label = self.app.name_label();
        let queue = &self.consumer.queue;
        let letter = DeadLetter {
            id: id.to_owned(),
            payload: record.payload.clone(),
            attempts: record.attempt,
            error,
        };
        // Full dead letters drop it: counted, and in the batch's line.
        let settled = match self.dead.add(&letter).await {
            Ok(()) => Settled::Dead,
            Err(KvFailure::Quota(_)) => Settled::Dropped,
            Err(failure) => {
                tracing::debug!("message not moved to the dead letters: {failure}");
                return Settled::Retried;
            }
        };
        if let Err(failure) = self.messages.remove(id, record).await {
            tracing::debug!("dead message cannot be removed from its queue: {failure}");
        }
        let outcome = match settled {
            Settled::Dropped => "dropped",
            _ => "dead",
        };
        stats::queue_delivered(label, queue, outcome, 1);
        settled
    }

    /// Give back messages the host could not deliver, not counted.
    async fn give_back(&self, taken: &[(String, JobRecord)]) {
        let due = now_ms().saturating_add(NO_ROOM_WAIT_MS);
        for (id, record) in taken {
            if let Err(failure) = self.messages.release(id, record, due).await {
                tracing::warn!("message not given back: {failure}");
            }
        }
    }
}

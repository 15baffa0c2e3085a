//! When the apps' due jobs run, and their queues' messages are delivered
//! ([`crate::queue_consumer`]): one task for the whole host, looking at
//! each app's job store when a job is kept here, when a run ends, when
//! the apps change, at the next due time it knows of, and at least every
//! second (hosts sharing Redis keep jobs for one another), but never
//! twice within [`LOOK_AT_MOST_EVERY`] however fast a tenant keeps jobs.
//! Each app runs at most [`RUNS_PER_APP`] jobs at once on this host, each
//! charged to its `cpu_share` as a request is and only with an instance
//! free in its share, so a tenant's flood of due jobs waits its turn in
//! its own store.
//!
//! A run takes its job by a lease in the store (exactly one host wins
//! each attempt): it ends by removing the job, or putting it back for a
//! later attempt after a failure (until `jobs_max_attempts`). A host that
//! dies mid-run leaves the lease to lapse: the job falls due again, its
//! attempt counted.

use crate::app::{AppHandle, AppRef};
use crate::dispatch::background_runs::{BackgroundCall, RunFailure, run_background};
use crate::error::HostError;
use crate::job_store::{JobRecord, JobStore};
use crate::kv::{KvFailure, now_ms};
use crate::stats;
use arc_swap::ArcSwap;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};
use tracing::Instrument;

/// Jobs of one app running at once on this host.
pub(crate) const RUNS_PER_APP: usize = 4;
/// The longest wait between two looks at the stores.
const LOOK_AT_LEAST_EVERY: Duration = Duration::from_secs(1);
/// The shortest: a look costs a listing per app.
const LOOK_AT_MOST_EVERY: Duration = Duration::from_millis(50);
/// Due jobs and messages one look reads for one app, all its queues
/// together: a tenant with many busy queues waits its turn, never holds
/// the look from the others.
const READS_PER_APP: usize = 400;
/// When the host could not start a taken job (no instance free), it is
/// given back due this much later, its attempt not counted.
const NO_ROOM_WAIT_MS: u64 = 1_000;
/// How long a lease outlives its run's `timeout`: time to start an
/// instance, and to tell the store how the run ended.
const LEASE_MARGIN_MS: u64 = 10_000;
/// The wait before a failed job's first retry; doubled for each attempt
/// after, up to [`RETRY_AT_MOST_MS`].
const RETRY_FIRST_MS: u64 = 1_000;
const RETRY_AT_MOST_MS: u64 = 3_600_000;

/// What the job runner watches: the apps served now, and signals when
/// they change or keep a job.
#[derive(Clone)]
pub(crate) struct JobRunner {
    pub(crate) apps: Arc<ArcSwap<Vec<Arc<AppHandle>>>>,
    pub(crate) changed: Arc<Notify>,
    /// Woken when a job is kept, or a run ends.
    pub(crate) kept: Arc<Notify>,
}

/// Places in flight on this host, and the apps whose store failed.
#[derive(Default)]
struct Places {
    /// Each app's job runs.
    runs: HashMap<Arc<str>, Arc<Semaphore>>,
    /// Each consumer's batches, by app, queue and `concurrency`.
    batches: HashMap<(Arc<str>, String, u32), Arc<Semaphore>>,
    /// Apps whose store failed at their last look (logged once).
    failing: HashSet<Arc<str>>,
}

impl Places {
    /// Forget the places of apps no longer served.
    fn follow(&mut self, apps: &[Arc<AppHandle>]) {
        let served: HashSet<Arc<str>> = apps
            .iter()
            .map(|handle| handle.current().name_label().clone())
            .collect();
        self.runs.retain(|name, _| served.contains(name));
        self.batches.retain(|(name, _, _), _| served.contains(name));
        self.failing.retain(|name| served.contains(name));
    }

    /// What a look at `app`'s store answered, its failure logged once.
    fn answered<T>(&mut self, app: &AppRef, answer: Result<T, KvFailure>) -> Option<T> {
        let name = app.name_label();
        match answer {
            Ok(answer) => {
                if self.failing.remove(name) {
                    tracing::info!(app = %name, "jobs and queues: the store answers again");
                }
                Some(answer)
            }
            Err(failure) => {
                if self.failing.insert(name.clone()) {
                    tracing::warn!(app = %name, "jobs and queues: cannot list what is due: {failure}");
                }
                None
            }
        }
    }
}

/// Stops the job runner when dropped (runs going on end on their own).
pub(crate) struct JobRunnerTask(tokio::task::AbortHandle);

impl Drop for JobRunnerTask {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl JobRunner {
    /// Run the job runner on the current tokio runtime until the value
    /// returned is dropped.
    pub(crate) fn start(self) -> JobRunnerTask {
        JobRunnerTask(tokio::spawn(self.run()).abort_handle())
    }

    async fn run(self) {
        let mut places = Places::default();
        loop {
            let kept = self.kept.notified();
            let changed = self.changed.notified();
            tokio::pin!(kept, changed);
            kept.as_mut().enable();
            changed.as_mut().enable();
            let now = now_ms();
            let mut wake = now.saturating_add(LOOK_AT_LEAST_EVERY.as_millis() as u64);
            let looked = tokio::time::Instant::now();
            let apps = self.apps.load_full();
            places.follow(&apps);
            for handle in apps.iter() {
                let app = handle.current();
                if let Some(next) = self.look_at_jobs(&app, &mut places, now).await {
                    wake = wake.min(next);
                }
                if let Some(next) = self.look_at_queues(&app, &mut places, now).await {
                    wake = wake.min(next);
                }
            }
            let wait = Duration::from_millis(wake.saturating_sub(now_ms()));
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                () = kept => {}
                () = changed => {}
            }
            tokio::time::sleep_until(looked + LOOK_AT_MOST_EVERY).await;
        }
    }

    /// Start the due batches of `app`'s queues that have room, reading at
    /// most [`READS_PER_APP`] messages: when the next one not yet due is.
    async fn look_at_queues(&self, app: &AppRef, places: &mut Places, now: u64) -> Option<u64> {
        let (mut reads, mut wake) = (READS_PER_APP, None::<u64>);
        for queue in app.queues() {
            // A new `concurrency` gets places of its own.
            let consumer = &queue.consumer;
            let key = (
                app.name_label().clone(),
                consumer.queue.clone(),
                consumer.concurrency,
            );
            let room = places
                .batches
                .entry(key)
                .or_insert_with(|| crate::queue_consumer::places_for(consumer))
                .clone();
            let looked = crate::queue_consumer::look(app, queue, &room, (now, reads), &self.kept);
            if let Some((read, next)) = places.answered(app, looked.await) {
                reads = reads.saturating_sub(read);
                wake = match (wake, next) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                };
            }
        }
        wake
    }

    /// Start `app`'s due jobs that have room: when its next one not yet
    /// due is, if one was seen.
    async fn look_at_jobs(&self, app: &AppRef, places: &mut Places, now: u64) -> Option<u64> {
        let grant = app.jobs()?;
        let runs = places
            .runs
            .entry(app.name_label().clone())
            .or_insert_with(|| Arc::new(Semaphore::new(RUNS_PER_APP)))
            .clone();
        // Listed only as many as could start now.
        let free = runs.available_permits();
        if free == 0 || !app.has_instance_room() {
            return None;
        }
        let listed = u32::try_from(free).unwrap_or(1);
        let due = places.answered(app, grant.store.due(now, listed).await)?;
        for (id, seen) in due.jobs {
            let Ok(place) = runs.clone().try_acquire_owned() else {
                break;
            };
            self.spawn_run(app.clone(), grant.store.clone(), id, seen, place);
        }
        due.next_ms
    }

    fn spawn_run(
        &self,
        app: AppRef,
        store: Arc<JobStore>,
        id: String,
        seen: JobRecord,
        place: OwnedSemaphorePermit,
    ) {
        let kept = self.kept.clone();
        let span = tracing::info_span!(
            "job",
            app = %app.name_label(),
            job = %seen.name,
            id = %id,
            attempt = seen.attempt.saturating_add(1)
        );
        tokio::spawn(
            async move {
                take_and_run(&app, &store, &id, &seen).await;
                drop(place);
                // Its place is free: there may be more due.
                kept.notify_one();
            }
            .instrument(span),
        );
    }
}

/// The name a job's metrics carry: one its app's current version handles,
/// or `other` (kept names outlive versions; labels stay few).
fn job_label<'a>(app: &AppRef, name: &'a str) -> &'a str {
    match app.jobs() {
        Some(grant) if grant.handles(name) => name,
        _ => "other",
    }
}

/// Take the due job `id` (as `seen`) and run it, unless another host
/// takes it first; then remove it, or put it back for a retry.
async fn take_and_run(app: &AppRef, store: &JobStore, id: &str, seen: &JobRecord) {
    let label = app.name_label().clone();
    let job = job_label(app, &seen.name);
    let max_attempts = app.limits().jobs_max_attempts;
    if seen.attempt >= max_attempts {
        // Its last attempt's host died mid-run.
        if let Ok(true) = store.remove(id, seen).await {
            stats::job_run(&label, job, "dropped");
            tracing::warn!(
                outcome = "dropped",
                "job dropped: its last attempt did not finish"
            );
        }
        return;
    }
    // An app over its CPU share waits its turn, before it holds a lease.
    if let Some(pause) = app.component().charge_request() {
        tokio::time::sleep(pause).await;
    }
    let timeout_ms = u64::try_from(app.limits().timeout.as_millis()).unwrap_or(u64::MAX);
    let lease_until = now_ms()
        .saturating_add(timeout_ms)
        .saturating_add(LEASE_MARGIN_MS);
    let taken = match store.take(id, seen, lease_until).await {
        Ok(Some(taken)) => taken,
        Ok(None) => {
            tracing::debug!("job taken by another host");
            return;
        }
        Err(failure) => {
            tracing::warn!("job not taken: {failure}");
            return;
        }
    };
    let started = std::time::Instant::now();
    let call = BackgroundCall::Job {
        id: id.to_owned(),
        name: taken.name.clone(),
        payload: taken.payload.clone(),
        attempt: taken.attempt,
    };
    let outcome = run_background(app, call).await;
    let ms = started.elapsed().as_secs_f64() * 1000.0;
    let failure = match outcome {
        Ok(_) => {
            if let Err(failure) = store.remove(id, &taken).await {
                tracing::warn!("job ran, but cannot be removed (it may run again): {failure}");
            }
            stats::job_run(&label, job, "ok");
            tracing::info!(outcome = "ok", ms, "job run");
            return;
        }
        Err(RunFailure::Host(HostError::NoInstanceSlot(why))) => {
            // Not the job's failure: given back, its attempt not counted.
            let due = now_ms().saturating_add(NO_ROOM_WAIT_MS);
            if let Err(failure) = store.release(id, &taken, due).await {
                tracing::warn!("job not started, and cannot be given back: {failure}");
            }
            tracing::info!(outcome = "postponed", "job not started: {why}");
            return;
        }
        Err(RunFailure::Handler(_)) => "the handler returned an error".to_owned(),
        Err(RunFailure::Host(failure)) => {
            if let Some(kind) = failure.guest_kind() {
                stats::guest_failure(&label, kind);
            }
            failure.to_string()
        }
    };
    if taken.attempt >= max_attempts {
        if let Err(failure) = store.remove(id, &taken).await {
            tracing::warn!("job failed, and cannot be removed: {failure}");
        }
        stats::job_run(&label, job, "dropped");
        tracing::warn!(
            outcome = "dropped",
            ms,
            "job run: {failure}; dropped after {max_attempts} attempts (jobs_max_attempts)"
        );
        return;
    }
    let wait = retry_wait_ms(taken.attempt);
    if let Err(failure) = store
        .put_back(id, &taken, now_ms().saturating_add(wait))
        .await
    {
        tracing::warn!(
            "job failed, and cannot be put back (it runs when its lease lapses): {failure}"
        );
    }
    stats::job_run(&label, job, "retry");
    tracing::warn!(
        outcome = "retry",
        ms,
        retry_in_ms = wait,
        "job run: {failure}; it runs again"
    );
}

/// The wait before the attempt after `attempt`.
fn retry_wait_ms(attempt: u32) -> u64 {
    let doublings = attempt.saturating_sub(1).min(32);
    RETRY_FIRST_MS
        .saturating_mul(1u64 << doublings)
        .min(RETRY_AT_MOST_MS)
}

#[cfg(test)]
mod tests {
    use super::retry_wait_ms;

    #[test]
    fn retries_back_off_by_doubling_up_to_an_hour() {
        assert_eq!(retry_wait_ms(1), 1_000);
        assert_eq!(retry_wait_ms(2), 2_000);
        assert_eq!(retry_wait_ms(5), 16_000);
        assert_eq!(retry_wait_ms(99), 3_600_000);
    }
}

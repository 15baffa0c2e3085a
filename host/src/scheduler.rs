//! When the apps' schedules tick, and which ticks run: one task for the
//! whole host, asleep until the next tick of any schedule or a change of
//! the apps. A tick runs the app version current then (a swap applies at
//! the next tick); a tick that comes while the schedule's last run on this
//! host is still going is skipped and counted, so a schedule never runs
//! twice at once here; with hosts sharing Redis, each tick runs on the one
//! that claims it ([`TickClaims`]).

use crate::app::AppHandle;
use crate::config::{ScheduleConfig, When};
use crate::dispatch::background_runs::{BackgroundCall, RunFailure, run_background};
use crate::stats;
use crate::tick_claims::TickClaims;
use arc_swap::ArcSwap;
use chrono::{DateTime, Utc};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use tokio::sync::Notify;
use tracing::Instrument;

/// What the scheduler watches: the apps served now, and a signal when
/// they change.
#[derive(Clone)]
pub(crate) struct Schedules {
    pub(crate) apps: Arc<ArcSwap<Vec<Arc<AppHandle>>>>,
    pub(crate) changed: Arc<Notify>,
    pub(crate) claims: Arc<TickClaims>,
}

/// One schedule of one app, as the scheduler follows it.
struct Entry {
    handle: Arc<AppHandle>,
    when: When,
    payload: Arc<[u8]>,
    next: Option<DateTime<Utc>>,
    running: Arc<AtomicBool>,
}

/// Stops the scheduler when dropped.
pub(crate) struct SchedulerTask(tokio::task::AbortHandle);

impl Drop for SchedulerTask {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl Schedules {
    /// Run the scheduler on the current tokio runtime until the value
    /// returned is dropped.
    pub(crate) fn start(self) -> SchedulerTask {
        SchedulerTask(tokio::spawn(self.run()).abort_handle())
    }

    async fn run(self) {
        let mut entries: HashMap<(String, String), Entry> = HashMap::new();
        let mut changed_apps = true;
        let mut last_now = Utc::now();
        loop {
            let changed = self.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            let now = Utc::now();
            if changed_apps {
                self.follow(&mut entries, now);
            }
            // The clock stepped back (NTP): every next tick is further
            // away than it should be; count them again from now.
            if now < last_now {
                for entry in entries.values_mut() {
                    entry.next = entry.when.next_after(now);
                }
            }
            last_now = now;
            for ((_, schedule), entry) in &mut entries {
                if let Some(due) = entry.next.filter(|next| *next <= now) {
                    tick(schedule, entry, due, &self.claims);
                    // Strictly after now (`next_after`'s contract, which the
                    // manifest fuzzer checks): never the same tick twice.
                    entry.next = entry.when.next_after(now);
                }
            }
            let wake = entries.values().filter_map(|entry| entry.next).min();
            changed_apps = match wake {
                Some(at) => {
                    let wait = (at - Utc::now()).to_std().unwrap_or_default();
                    tokio::select! {
                        () = tokio::time::sleep(wait) => false,
                        () = changed => true,
                    }
                }
                None => {
                    changed.await;
                    true
                }
            };
        }
    }

    /// Follow the schedules the apps have now: new ones start counting,
    /// changed ones start again (a run still going stays counted), and
    /// those of removed apps are dropped.
    fn follow(&self, entries: &mut HashMap<(String, String), Entry>, now: DateTime<Utc>) {
        let apps = self.apps.load();
        let mut present = HashSet::new();
        for handle in apps.iter() {
            let app = handle.current();
            for schedule in &app.config().schedules {
                let key = (app.name().to_owned(), schedule.name.clone());
                match entries.get_mut(&key) {
                    Some(entry)
                        if entry.when == schedule.when && Arc::ptr_eq(&entry.handle, handle) =>
                    {
                        entry.payload = schedule.payload.clone();
                    }
                    found => {
                        let running = found.map(|old| old.running.clone());
                        let entry = Entry::new(handle.clone(), schedule, now, running);
                        entries.insert(key.clone(), entry);
                    }
                }
                present.insert(key);
            }
        }
        entries.retain(|key, _| present.contains(key));
    }
}

impl Entry {
    /// `running`: the flag of the entry it replaces, whose run may go on.
    fn new(
        handle: Arc<AppHandle>,
        schedule: &ScheduleConfig,
        now: DateTime<Utc>,
        running: Option<Arc<AtomicBool>>,
    ) -> Entry {
        Entry {
            handle,
            next: schedule.when.next_after(now),
            when: schedule.when.clone(),
            payload: schedule.payload.clone(),
            running: running.unwrap_or_default(),
        }
    }
}

/// Clears a schedule's running flag however its run ends.
struct Running(Arc<AtomicBool>);

impl Drop for Running {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

/// The tick of `schedule` due at `due`: run it, unless its last run is
/// still going or another host claimed it.
fn tick(schedule: &str, entry: &Entry, due: DateTime<Utc>, claims: &Arc<TickClaims>) {
    let current = entry.handle.current();
    let label = current.name_label().clone();
    if entry.running.swap(true, Ordering::AcqRel) {
        stats::schedule_tick(&label, schedule, "skipped");
        tracing::info!(
            app = %label,
            schedule,
            "schedule tick skipped: its last run is still going"
        );
        return;
    }
    let running = Running(entry.running.clone());
    let (name, payload) = (schedule.to_owned(), entry.payload.to_vec());
    let claims = claims.clone();
    let span = tracing::info_span!("schedule", app = %label, schedule = %name);
    tokio::spawn(
        async move {
            let _running = running;
            let due_ms = due.timestamp_millis();
            match claims.claim(&label, &name, due_ms).await {
                Ok(true) => {}
                Ok(false) => {
                    tracing::debug!("schedule tick taken by another host");
                    return;
                }
                Err(why) => {
                    stats::schedule_tick(&label, &name, "skipped");
                    tracing::warn!("schedule tick skipped: cannot claim it in Redis: {why}");
                    return;
                }
            }
            let started = std::time::Instant::now();
            let scheduled_at = u64::try_from(due_ms).unwrap_or_default();
            let call = BackgroundCall::Tick {
                name: name.clone(),
                payload,
                scheduled_at,
            };
            let outcome = run_background(&current, call).await.map(drop);
            let ms = started.elapsed().as_secs_f64() * 1000.0;
            match outcome {
                Ok(()) => {
                    stats::schedule_tick(&label, &name, "ok");
                    tracing::info!(outcome = "ok", ms, "schedule run");
                }
                Err(RunFailure::Handler(_)) => {
                    stats::schedule_tick(&label, &name, "failed");
                    tracing::warn!(
                        outcome = "failed",
                        ms,
                        "schedule run: the handler returned an error"
                    );
                }
                Err(RunFailure::Host(failure)) => {
                    if let Some(kind) = failure.guest_kind() {
                        stats::guest_failure(&label, kind);
                    }
                    stats::schedule_tick(&label, &name, "failed");
                    tracing::warn!(outcome = "failed", ms, "schedule run: {failure}");
                }
            }
        }
        .instrument(span),
    );
}

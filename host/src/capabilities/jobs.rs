//! `squall:app/jobs`: work the app keeps to run later, in its own job
//! store ([`JobStore`]) under `jobs_max_pending` and `jobs_max_payload`.
//! Names are checked against the app's `on-job` handlers and ids against
//! the form the host gives them, before either names a key.

use super::{Grants, GuestState, grants_of};
use crate::bindings::jobs::{Host, HostWithStore, JobError};
use crate::job_store::{JobRecord, JobStore, is_job_id, new_job_id};
use crate::kv::{KvFailure, now_ms};
use crate::limit_log::Limit;
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tokio::sync::{Notify, OwnedSemaphorePermit};
use wasmtime::component::{Accessor, HasSelf};

/// Job calls in flight at once for a whole app: each holds its payload
/// until the backend answers.
pub(super) const MAX_JOB_CALLS_PER_APP: usize = 64;
/// The furthest ahead a job may be due: a year.
const MAX_DELAY: Duration = Duration::from_secs(366 * 24 * 3600);

impl Host for GuestState {}

type Answer<T> = wasmtime::Result<Result<T, JobError>>;

/// An app's jobs, as its grants hold them.
pub(crate) struct JobGrant {
    pub(crate) store: Arc<JobStore>,
    max_pending: u64,
    max_payload: u64,
    /// Its `on-job` handlers, known once a fresh instance has said.
    handlers: OnceLock<Vec<String>>,
    /// Woken when a job is kept, so the runner looks again.
    kept: Arc<Notify>,
}

impl JobGrant {
    pub(crate) fn new(
        store: JobStore,
        max_pending: u64,
        max_payload: u64,
        kept: Arc<Notify>,
    ) -> JobGrant {
        JobGrant {
            store: Arc::new(store),
            max_pending,
            max_payload,
            handlers: OnceLock::new(),
            kept,
        }
    }

    /// Whether the app's `on-job` handles `name`.
    pub(crate) fn handles(&self, name: &str) -> bool {
        self.handlers
            .get()
            .is_some_and(|names| names.iter().any(|known| known == name))
    }

    /// The names the app's `on-job` handles (from its `app-info`).
    pub(crate) fn set_handlers(&self, names: Vec<String>) {
        let _ = self.handlers.set(names);
    }
}

impl Grants {
    fn job_grant(&self) -> Result<&JobGrant, JobError> {
        self.jobs.as_ref().ok_or_else(|| {
            tracing::info!("jobs denied: the app's manifest does not grant jobs");
            JobError::Denied(format!(
                "jobs are not granted: add `jobs = true` to [app.{}]",
                self.app
            ))
        })
    }

    /// A place among the app's job and queue calls in flight (they share
    /// [`MAX_JOB_CALLS_PER_APP`]); the refusal, counted, in words.
    pub(super) fn background_call_place(&self) -> Result<OwnedSemaphorePermit, String> {
        self.job_calls.clone().try_acquire_owned().map_err(|_| {
            let why =
                format!("over {MAX_JOB_CALLS_PER_APP} job and queue calls in flight for the app");
            self.hits.hit(Limit::Jobs, &why);
            why
        })
    }

    fn job_failure(&self, failure: KvFailure) -> JobError {
        match failure {
            // The bytes quota allows that many full payloads: the count
            // is what a tenant meets.
            KvFailure::Quota(_) => {
                let why = format!(
                    "the app has {} jobs pending (jobs_max_pending)",
                    self.jobs.as_ref().map_or(0, |grant| grant.max_pending)
                );
                self.hits.hit(Limit::Jobs, &why);
                JobError::Quota(why)
            }
            KvFailure::Invalid(why) => JobError::Invalid(why),
            KvFailure::TooLarge(most) => JobError::TooLarge(format!("over {most} bytes")),
            KvFailure::Unavailable(why) => {
                tracing::warn!(app = %self.app, %why, "jobs unavailable");
                JobError::Unavailable(why)
            }
        }
    }

    /// Keep a job `name` with `payload`, due at `due` (ms since the epoch).
    async fn keep_job(
        &self,
        due_ms: u64,
        name: String,
        payload: Vec<u8>,
    ) -> Result<String, JobError> {
        let grant = self.job_grant()?;
        if payload.len() as u64 > grant.max_payload {
            let why = format!(
                "a job payload of {} bytes is over the app's jobs_max_payload of {}",
                payload.len(),
                grant.max_payload
            );
            self.hits.hit(Limit::Jobs, &why);
            return Err(JobError::TooLarge(why));
        }
        if !grant.handles(&name) {
            return Err(JobError::Invalid(format!(
                "no job handler is named {:?}: add Router::on_job (in Python, application.on_job)",
                name.chars().take(64).collect::<String>()
            )));
        }
        let _place = self.background_call_place().map_err(JobError::Quota)?;
        // What the guest passed exists already: held now, or refused.
        let _held = self
            .call_bytes
            .try_hold(payload.len() as u64, u64::MAX)
            .map_err(|refused| JobError::TooLarge(self.over_budget(&refused)))?;
        let id = new_job_id().map_err(|failure| self.job_failure(failure))?;
        let record = JobRecord {
            due_ms,
            attempt: 0,
            leased: false,
            name,
            payload,
        };
        grant
            .store
            .add(&id, &record)
            .await
            .map_err(|failure| self.job_failure(failure))?;
        crate::stats::job_kept(&self.app);
        grant.kept.notify_one();
        Ok(id)
    }

    async fn cancel_job(&self, id: String) -> Result<bool, JobError> {
        let grant = self.job_grant()?;
        // Not an id the host gives: no job of this app's has it.
        if !is_job_id(&id) {
            return Ok(false);
        }
        let _place = self.background_call_place().map_err(JobError::Quota)?;
        grant
            .store
            .cancel(&id)
            .await
            .map_err(|failure| self.job_failure(failure))
    }
}

/// `when` (ms since the epoch), if it is not further ahead than a job may be.
fn within_reach(when: u64) -> Result<u64, JobError> {
    let furthest = now_ms().saturating_add(MAX_DELAY.as_millis() as u64);
    if when > furthest {
        return Err(JobError::Invalid(format!(
            "a job may be due at most {} days ahead",
            MAX_DELAY.as_secs() / 86_400
        )));
    }
    Ok(when)
}

impl HostWithStore<GuestState> for HasSelf<GuestState> {
    async fn after(
        accessor: &Accessor<GuestState, Self>,
        delay_ms: u64,
        name: String,
        payload: Vec<u8>,
    ) -> Answer<String> {
        let grants = grants_of(accessor);
        Ok(async {
            let due = within_reach(now_ms().saturating_add(delay_ms))?;
            grants.keep_job(due, name, payload).await
        }
        .await)
    }

    async fn at(
        accessor: &Accessor<GuestState, Self>,
        when: u64,
        name: String,
        payload: Vec<u8>,
    ) -> Answer<String> {
        let grants = grants_of(accessor);
        Ok(async {
            let due = within_reach(when)?;
            grants.keep_job(due, name, payload).await
        }
        .await)
    }

    async fn cancel(accessor: &Accessor<GuestState, Self>, id: String) -> Answer<bool> {
        let grants = grants_of(accessor);
        Ok(grants.cancel_job(id).await)
    }
}

//! Work to run later (Tornado's `IOLoop.call_later` and `call_at`, a
//! Durable Object's alarm): [`after`] or [`at`] keeps a job in the
//! server's backend, and once it is due the host runs the handler the
//! router names for it ([`Router::on_job`](crate::Router::on_job)) in a
//! fresh instance. Jobs survive a restart or a deploy (one due while the
//! host was down runs when it is back), and hosts sharing Redis run each
//! attempt on one host only.
//!
//! A handler that fails (an error, a trap, its `timeout`) runs again
//! later, 1 s after the first attempt and twice as long after each next
//! one, until `jobs_max_attempts`; a job whose host died mid-run runs
//! again too. So a job may run more than once: [`Job::attempt`] says
//! which run this is, and [`Job::id`] names the job, to make its work
//! idempotent.
//!
//! ```
//! use squall_sdk::jobs::{self, Job};
//! use squall_sdk::{Error, Request, Router};
//! use std::time::Duration;
//!
//! fn app() -> Router {
//!     Router::new()
//!         .post("/signup", signup)
//!         .on_job("remind", remind)
//! }
//!
//! async fn signup(mut req: Request) -> Result<String, Error> {
//!     let id = jobs::after(Duration::from_secs(3600), "remind", req.bytes().await).await?;
//!     Ok(id) // jobs::cancel(&id) forgets it, if it has not run
//! }
//!
//! async fn remind(job: Job) -> Result<(), Error> {
//!     squall_sdk::log::info(format!("reminding {} (attempt {})", job.payload_text(), job.attempt()));
//!     Ok(())
//! }
//! # let _ = app();
//! ```
//!
//! The manifest grants jobs and bounds them:
//!
//! ```toml
//! [app.NAME]
//! jobs = true
//! jobs_max_pending = 10000    # kept and not yet done (the default)
//! jobs_max_payload = "64KiB"  # the default
//! jobs_max_attempts = 3       # runs of a failing job (the default)
//! ```

use crate::{Error, sys};
use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Why a job could not be kept or cancelled.
///
/// A handler's `?` turns it into an [`Error`]: `507` when the app has
/// `jobs_max_pending` jobs, `413` for a payload over `jobs_max_payload`,
/// `503` when the backend is unavailable, `500` otherwise.
///
/// ```
/// use squall_sdk::jobs::JobError;
/// use squall_sdk::{Error, StatusCode};
///
/// let full = JobError::Quota("the app has 10000 jobs pending (jobs_max_pending)".into());
/// assert_eq!(full.to_string(), "jobs quota: the app has 10000 jobs pending (jobs_max_pending)");
/// assert_eq!(Error::from(full).status(), StatusCode::INSUFFICIENT_STORAGE);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobError {
    /// The manifest does not grant `jobs` to this app.
    Denied(String),
    /// A payload over `jobs_max_payload`.
    TooLarge(String),
    /// The app has `jobs_max_pending` jobs already; nothing was kept.
    Quota(String),
    /// A name no [`Router::on_job`](crate::Router::on_job) handles, or a
    /// time more than a year ahead.
    Invalid(String),
    /// The backend cannot be reached (or there is no Squall host: a
    /// native test, a standard wasi:http host); nothing is known kept.
    Unavailable(String),
}

impl std::fmt::Display for JobError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            JobError::Denied(why) => write!(f, "jobs denied: {why}"),
            JobError::TooLarge(why) => write!(f, "jobs: too large: {why}"),
            JobError::Quota(why) => write!(f, "jobs quota: {why}"),
            JobError::Invalid(why) => write!(f, "jobs: {why}"),
            JobError::Unavailable(why) => write!(f, "jobs unavailable: {why}"),
        }
    }
}

impl std::error::Error for JobError {}

impl crate::IntoResponse for JobError {
    fn into_response(self) -> crate::Response {
        Error::from(self).into_response()
    }
}

impl From<JobError> for Error {
    fn from(error: JobError) -> Self {
        use ::http::StatusCode;
        let status = match &error {
            JobError::Quota(_) => StatusCode::INSUFFICIENT_STORAGE,
            JobError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            JobError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            JobError::Denied(_) | JobError::Invalid(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        Error::from_capability(status, error.to_string())
    }
}

/// Run the handler of `name` with `payload` once `delay` has passed; the
/// job's id, for [`cancel`].
pub async fn after(
    delay: Duration,
    name: &str,
    payload: impl Into<Vec<u8>>,
) -> Result<String, JobError> {
    let delay_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX);
    sys::jobs_after(delay_ms, name.to_owned(), payload.into()).await
}

/// Run the handler of `name` with `payload` at `when` (now, if it has
/// passed); the job's id, for [`cancel`].
pub async fn at(
    when: SystemTime,
    name: &str,
    payload: impl Into<Vec<u8>>,
) -> Result<String, JobError> {
    let when_ms = when.duration_since(UNIX_EPOCH).map_or(0, |since| {
        u64::try_from(since.as_millis()).unwrap_or(u64::MAX)
    });
    sys::jobs_at(when_ms, name.to_owned(), payload.into()).await
}

/// Forget the job `id` if it has not started: whether it did (`false`: it
/// is running, has run, or is no job of this app's).
pub async fn cancel(id: &str) -> Result<bool, JobError> {
    sys::jobs_cancel(id.to_owned()).await
}

/// One run of a job, as its handler gets it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Job {
    id: String,
    name: String,
    payload: Vec<u8>,
    attempt: u32,
}

impl Job {
    /// Attempt `attempt` of the job `id` named `name`, to run a handler
    /// natively in a test with [`Router::run_job`](crate::Router::run_job).
    pub fn new(id: &str, name: &str, payload: impl Into<Vec<u8>>, attempt: u32) -> Job {
        Job {
            id: id.to_owned(),
            name: name.to_owned(),
            payload: payload.into(),
            attempt,
        }
    }

    /// The id [`after`] or [`at`] returned: the same on every attempt.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The name it was kept under.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Which run this is: 1 the first time, more after a failure or after
    /// the host running it died.
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// The payload it was kept with.
    pub fn payload(&self) -> &[u8] {
        &self.payload
    }

    /// The payload as text (lossy).
    pub fn payload_text(&self) -> String {
        String::from_utf8_lossy(&self.payload).into_owned()
    }
}

type Run = Box<dyn Fn(Job) -> Pin<Box<dyn Future<Output = Result<(), Error>>>>>;

/// What runs the jobs of one name.
pub(crate) struct JobHandler {
    run: Run,
}

impl JobHandler {
    pub(crate) fn new<F, Fut>(handler: F) -> JobHandler
    where
        F: Fn(Job) -> Fut + 'static,
        Fut: Future<Output = Result<(), Error>> + 'static,
    {
        JobHandler {
            run: Box::new(move |job| Box::pin(handler(job))),
        }
    }

    pub(crate) fn run(&self, job: Job) -> Pin<Box<dyn Future<Output = Result<(), Error>>>> {
        (self.run)(job)
    }
}

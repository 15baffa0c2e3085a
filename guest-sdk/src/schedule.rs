//! Work no request asked for (Tornado's `PeriodicCallback`): the manifest
//! says when (`[[app.NAME.schedule]]`, `every = "30s"` or a `cron` line),
//! the router says what ([`Router::on_schedule`](crate::Router::on_schedule)).
//! Each tick runs in a fresh instance under the app's `timeout`, `cpu_time`
//! and `memory`; on one host, a tick that comes while the last run is still
//! going is skipped (and counted), never run beside it; hosts sharing Redis
//! run each tick once (a run longer than its period may then overlap the
//! next tick's on another host).
//!
//! ```
//! use squall_sdk::schedule::Tick;
//! use squall_sdk::{Error, Router, kv};
//!
//! fn app() -> Router {
//!     Router::new().on_schedule("heartbeat", beat)
//! }
//!
//! async fn beat(_tick: Tick) -> Result<(), Error> {
//!     kv::increment("heartbeats", 1).await?;
//!     Ok(())
//! }
//! # let _ = app();
//! ```
//!
//! ```toml
//! [[app.NAME.schedule]]
//! name = "heartbeat"
//! every = "2s"          # or cron = "0 */5 * * * *" (seconds optional), tz = "Europe/Paris"
//! payload = "optional text handed to every tick"
//! ```

use crate::Error;
use std::future::Future;
use std::pin::Pin;

/// One tick of a schedule, as its handler gets it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tick {
    name: String,
    payload: Vec<u8>,
    scheduled_ms: u64,
}

impl Tick {
    /// A tick of the schedule `name` due at `scheduled_ms` (milliseconds
    /// since the Unix epoch), to run a handler natively in a test with
    /// [`Router::run_schedule`](crate::Router::run_schedule).
    pub fn new(name: &str, payload: impl Into<Vec<u8>>, scheduled_ms: u64) -> Tick {
        Tick {
            name: name.to_owned(),
            payload: payload.into(),
            scheduled_ms,
        }
    }

    /// When the tick was due, in milliseconds since the Unix epoch: the
    /// same on every host, so it names the tick (Cloudflare's
    /// `scheduledTime`). A run may start a little after it.
    pub fn scheduled_ms(&self) -> u64 {
        self.scheduled_ms
    }

    /// When the tick was due.
    pub fn scheduled_at(&self) -> std::time::SystemTime {
        std::time::UNIX_EPOCH + std::time::Duration::from_millis(self.scheduled_ms)
    }

    /// The schedule's `name` in the manifest.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The schedule's `payload` (empty if the manifest gives none).
    pub fn payload(&self) -> &[u8] {
        &self.payload
    }

    /// The payload as text (lossy).
    pub fn payload_text(&self) -> String {
        String::from_utf8_lossy(&self.payload).into_owned()
    }
}

type Run = Box<dyn Fn(Tick) -> Pin<Box<dyn Future<Output = Result<(), Error>>>>>;

/// What runs a schedule's ticks.
pub(crate) struct ScheduleHandler {
    run: Run,
}

impl ScheduleHandler {
    pub(crate) fn new<F, Fut>(handler: F) -> ScheduleHandler
    where
        F: Fn(Tick) -> Fut + 'static,
        Fut: Future<Output = Result<(), Error>> + 'static,
    {
        ScheduleHandler {
            run: Box::new(move |tick| Box::pin(handler(tick))),
        }
    }

    pub(crate) fn run(&self, tick: Tick) -> Pin<Box<dyn Future<Output = Result<(), Error>>>> {
        (self.run)(tick)
    }
}

//! Timers backed by the host's event loop.

use crate::bindings::squall::app::time as host;
use std::time::Duration;

/// Wait for `duration` without blocking the host: other requests, and other
/// tasks of this one, run meanwhile (Tornado's `gen.sleep`).
pub async fn sleep(duration: Duration) {
    let nanos = u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX);
    host::sleep(nanos).await;
}

/// A point on the host's monotonic clock, for measuring how long things take.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Instant(u64);

impl Instant {
    /// Now.
    pub fn now() -> Self {
        Instant(host::monotonic_now())
    }

    /// The time elapsed since `self`.
    pub fn elapsed(&self) -> Duration {
        Duration::from_nanos(host::monotonic_now().saturating_sub(self.0))
    }
}

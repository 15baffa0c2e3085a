//! Timers backed by the host's event loop.

#[cfg(not(feature = "wasi-http"))]
use crate::bindings::squall::app::time::{monotonic_now, sleep as host_sleep};
use std::time::Duration;
#[cfg(feature = "wasi-http")]
use wasip3::clocks::monotonic_clock::{now as monotonic_now, wait_for as host_sleep};

/// Wait for `duration` without blocking the host: other requests, and other
/// tasks of this one, run meanwhile (Tornado's `gen.sleep`).
pub async fn sleep(duration: Duration) {
    let nanos = u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX);
    host_sleep(nanos).await;
}

/// A point on the host's monotonic clock, for measuring how long things take.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Instant(u64);

impl Instant {
    /// Now.
    pub fn now() -> Self {
        Instant(monotonic_now())
    }

    /// The time elapsed since `self`.
    pub fn elapsed(&self) -> Duration {
        Duration::from_nanos(monotonic_now().saturating_sub(self.0))
    }
}

/// A [`timeout`] ran out before its future finished.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Elapsed;

impl std::fmt::Display for Elapsed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the time limit elapsed")
    }
}

impl std::error::Error for Elapsed {}

/// Run `future` for at most `duration`; when time runs out it is dropped,
/// which cancels whatever it was waiting for (a fetch, a sleep).
///
/// ```ignore
/// match timeout(Duration::from_secs(2), http::get(url).send()).await {
///     Ok(response) => { /* ... */ }
///     Err(Elapsed) => { /* too slow */ }
/// }
/// ```
pub async fn timeout<F: std::future::Future>(
    duration: Duration,
    future: F,
) -> Result<F::Output, Elapsed> {
    let future = std::pin::pin!(future);
    let timer = std::pin::pin!(sleep(duration));
    match futures::future::select(future, timer).await {
        futures::future::Either::Left((output, _)) => Ok(output),
        futures::future::Either::Right(((), _)) => Err(Elapsed),
    }
}

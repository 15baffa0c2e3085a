//! Timers backed by the host's event loop.

use crate::sys;
use std::time::Duration;

/// Wait for `duration` without blocking the host: other requests, and other
/// tasks of this one, run meanwhile (Tornado's `gen.sleep`).
///
/// ```no_run
/// use squall_sdk::{Error, Request, http, sleep};
/// use std::time::Duration;
///
/// async fn flaky_upstream(_req: Request) -> Result<String, Error> {
///     for attempt in 1..=3 {
///         match http::get("https://api.example.com/status").await {
///             Ok(response) if response.status().is_success() => return Ok(response.text().await?),
///             _ => sleep(Duration::from_millis(100 * attempt)).await,
///         }
///     }
///     Err(Error::new(squall_sdk::StatusCode::BAD_GATEWAY, "upstream is down"))
/// }
/// ```
pub async fn sleep(duration: Duration) {
    let nanos = u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX);
    sys::sleep_ns(nanos).await;
}

/// A point on the host's monotonic clock, for measuring how long things take.
///
/// ```no_run
/// use squall_sdk::{Error, Instant, Request, http};
///
/// async fn ping(_req: Request) -> Result<String, Error> {
///     let start = Instant::now();
///     http::get("https://example.com/").await?;
///     Ok(format!("example.com answered in {:?}", start.elapsed()))
/// }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Instant(u64);

impl Instant {
    /// Now.
    ///
    /// ```no_run
    /// use squall_sdk::{Instant, Request, log};
    ///
    /// async fn render(_req: Request) -> String {
    ///     let start = Instant::now();
    ///     let page = (1..=100).map(|n| format!("<li>{n}</li>")).collect::<String>();
    ///     log::debug(format!("rendered in {:?}", start.elapsed()));
    ///     page
    /// }
    /// ```
    pub fn now() -> Self {
        Instant(sys::monotonic_now())
    }

    /// The time elapsed since `self`.
    ///
    /// ```no_run
    /// use squall_sdk::{Error, Instant, Request, http};
    /// use std::time::Duration;
    ///
    /// async fn crawl(_req: Request) -> Result<String, Error> {
    ///     let start = Instant::now();
    ///     let mut pages = 0;
    ///     while pages < 10 && start.elapsed() < Duration::from_secs(5) {
    ///         http::get(format!("https://api.example.com/items?page={pages}")).await?;
    ///         pages += 1;
    ///     }
    ///     Ok(format!("{pages} pages in {:?}", start.elapsed()))
    /// }
    /// ```
    pub fn elapsed(&self) -> Duration {
        Duration::from_nanos(sys::monotonic_now().saturating_sub(self.0))
    }
}

/// A [`timeout`] ran out before its future finished.
///
/// A handler's `?` turns it into a `504 Gateway Timeout`.
///
/// ```
/// use squall_sdk::{Error, Request, timeout};
/// use std::time::Duration;
///
/// async fn report(_req: Request) -> Result<String, Error> {
///     let total = timeout(Duration::from_secs(2), sum_orders()).await?;
///     Ok(format!("total: {total}"))
/// }
///
/// async fn sum_orders() -> u64 {
///     42
/// }
/// # use squall_sdk::futures::FutureExt;
/// # let answer = report(Request::new(squall_sdk::Method::GET, "/report")).now_or_never().expect("ready");
/// # assert_eq!(answer, Ok("total: 42".to_owned()));
/// # assert_eq!(Error::from(squall_sdk::Elapsed).status(), squall_sdk::StatusCode::GATEWAY_TIMEOUT);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Elapsed;

impl std::fmt::Display for Elapsed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the time limit elapsed")
    }
}

impl std::error::Error for Elapsed {}

impl From<Elapsed> for crate::Error {
    /// `504 Gateway Timeout`: what the handler waited for took too long.
    fn from(error: Elapsed) -> Self {
        crate::Error::new(::http::StatusCode::GATEWAY_TIMEOUT, error.to_string())
    }
}

impl crate::IntoResponse for Elapsed {
    /// As its [`Error`](crate::Error).
    fn into_response(self) -> crate::Response {
        crate::Error::from(self).into_response()
    }
}

/// Run `future` for at most `duration`; when time runs out it is dropped,
/// which cancels whatever it was waiting for (a fetch, a sleep).
///
/// ```no_run
/// use squall_sdk::{Elapsed, http, timeout};
/// use std::time::Duration;
///
/// async fn probe(url: &str) -> &'static str {
///     match timeout(Duration::from_secs(2), http::get(url).send()).await {
///         Ok(Ok(_response)) => "up",
///         Ok(Err(_fetch_error)) => "down",
///         Err(Elapsed) => "too slow",
///     }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn elapsed_says_the_limit_passed() {
        assert_eq!(Elapsed.to_string(), "the time limit elapsed");
        assert!(Instant(1) < Instant(2));
    }
}

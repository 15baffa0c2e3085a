//! No host: the SDK compiled for the machine itself, as `cargo test` does
//! for an app's native unit tests. The clock and timers work (on threads);
//! every capability fails the way its API documents for "unavailable", with
//! a message naming the call and what to use instead; config values come
//! from [`Request::with_config`](crate::Request::with_config).

pub(crate) use super::absent::*;
use crate::Disconnected;
use crate::client::Outgoing;
use crate::http::{FetchError, FetchResponse};
use std::cell::RefCell;
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

/// A request body from a host: natively there is none (a test's request
/// carries its body in memory).
#[derive(Debug, Default)]
pub(crate) enum IncomingBody {
    #[default]
    Empty,
}

impl IncomingBody {
    pub(crate) async fn chunk(&mut self) -> Option<Vec<u8>> {
        None
    }
}

/// Where a streamed body goes on a host: natively none is ever made.
#[derive(Debug)]
pub(crate) enum BodySink {}

impl BodySink {
    pub(crate) async fn write(&mut self, _chunk: Vec<u8>) -> Result<(), Disconnected> {
        match *self {}
    }
}

/// A fetched body: natively no fetch succeeds, so none exists.
#[derive(Debug)]
pub(crate) enum FetchBody {}

impl FetchBody {
    pub(crate) async fn chunk(&mut self) -> Option<Result<Vec<u8>, FetchError>> {
        match *self {}
    }
}

/// No host to fetch through.
pub(crate) async fn fetch(_request: Outgoing) -> Result<FetchResponse, FetchError> {
    Err(FetchError::Denied(super::absent::unavailable(
        "http::fetch",
    )))
}

/// Nanoseconds since the first reading (a monotonic clock, as the host's).
pub(crate) fn monotonic_now() -> u64 {
    static START: OnceLock<Instant> = OnceLock::new();
    let start = *START.get_or_init(Instant::now);
    u64::try_from(start.elapsed().as_nanos()).unwrap_or(u64::MAX)
}

/// Wait `nanos` nanoseconds: a thread wakes the task, so a native test can
/// await timers under any executor (`futures::executor::block_on`).
pub(crate) async fn sleep_ns(nanos: u64) {
    NativeSleep {
        duration: Duration::from_nanos(nanos),
        shared: None,
    }
    .await;
}

struct NativeSleep {
    duration: Duration,
    /// Set once the timer thread runs: whether it fired, and whom to wake.
    shared: Option<Arc<Mutex<(bool, Waker)>>>,
}

impl Future for NativeSleep {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.duration.is_zero() {
            return Poll::Ready(());
        }
        match &self.shared {
            Some(shared) => {
                let mut state = shared
                    .lock()
                    .unwrap_or_else(|poisoned| poisoned.into_inner());
                if state.0 {
                    return Poll::Ready(());
                }
                state.1 = cx.waker().clone();
                Poll::Pending
            }
            None => {
                let shared = Arc::new(Mutex::new((false, cx.waker().clone())));
                let fired = shared.clone();
                let duration = self.duration;
                std::thread::spawn(move || {
                    std::thread::sleep(duration);
                    let waker = {
                        let mut state = fired
                            .lock()
                            .unwrap_or_else(|poisoned| poisoned.into_inner());
                        state.0 = true;
                        state.1.clone()
                    };
                    // Woken outside the lock: an executor may poll in `wake`.
                    waker.wake();
                });
                self.shared = Some(shared);
                Poll::Pending
            }
        }
    }
}

/// The log line goes to stderr, where `cargo test` shows a failing test's.
pub(crate) fn log(level: crate::log::Level, message: &str) {
    eprintln!("{level:?}: {message}");
}

thread_local! {
    /// Config values a native test set with `Request::with_config`.
    static CONFIG: RefCell<HashMap<String, String>> = RefCell::new(HashMap::new());
}

/// The value a test set for `key` on this thread.
pub(crate) fn config_get(key: &str) -> Option<String> {
    CONFIG.with(|config| config.borrow().get(key).cloned())
}

/// Set config value `key` for what runs on this thread (a native test).
pub(crate) fn config_set(key: &str, value: &str) {
    CONFIG.with(|config| config.borrow_mut().insert(key.to_owned(), value.to_owned()));
}

/// Export `app`, a `fn() -> Router`, as this component's request handler.
///
/// Use it once, at the crate root of a `cdylib` built for `wasm32-wasip2`.
/// `app` runs once per instance, at its first request or event; an
/// instance the host reuses keeps the router for its next ones. With the
/// SDK's `wasi-http` feature the component exports the standard
/// `wasi:http/handler` (WASI 0.3) instead, to run on `wasmtime serve` and
/// other standard hosts. Compiled natively (`cargo test`) there is nothing
/// to export to: it only checks that `app` builds a [`Router`](crate::Router).
///
/// ```
/// use squall_sdk::Router;
///
/// fn app() -> Router {
///     Router::new().get("/", |_req| async { "Hello, world!" })
/// }
///
/// squall_sdk::export!(app);
/// ```
#[macro_export]
macro_rules! export {
    ($app:path) => {
        const _: fn() -> $crate::Router = || $app();
    };
}

/// What `export!` expands to natively: nothing.
pub(crate) mod __private {}

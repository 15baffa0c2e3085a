//! Instances kept for an app's next requests (`reuse` in its manifest):
//! an instance that served a request to its end — answer, body and work
//! after the response all done, nothing failed, no limit hit — waits, idle,
//! for the next one. One request at a time each; every request gets its
//! own CPU and log budgets and runs under its own deadline. An instance is
//! dropped after `requests` requests, after `idle` without one, or when
//! more than `instances` wait; one that fails or runs out of time is never
//! given back (its store goes with the request).

pub(crate) mod concurrent;

use crate::capabilities::GuestState;
use crate::config::Reuse;
use std::sync::{Arc, Mutex, OnceLock, PoisonError, Weak};
use std::time::{Duration, Instant};
use wasmtime::Store;

/// An instance's exports, by kind of guest.
pub(crate) enum Handler {
    /// A squall-sdk app.
    Squall(Box<crate::bindings::App>),
    /// A standard wasi:http component (0.2 or 0.3).
    Standard(wasmtime_wasi_http::handler::Proxy),
}

impl Handler {
    /// The export each request calls concurrently, where the guest's
    /// backpressure shows; none for a WASI 0.2 component.
    pub(crate) fn handle_func(&self) -> Option<wasmtime::component::Func> {
        match self {
            Handler::Squall(app) => Some(*app.squall_app_handler().func_handle().func()),
            Handler::Standard(wasmtime_wasi_http::handler::Proxy::P3(service)) => {
                Some(*service.wasi_http_handler().func_handle().func())
            }
            Handler::Standard(_) => None,
        }
    }
}

/// An instance of the app and the store it lives in.
pub(crate) struct Instance {
    pub(crate) store: Store<GuestState>,
    pub(crate) guest: Handler,
    /// Requests it has served, this one included.
    served: u32,
}

impl Instance {
    /// A fresh instance, about to serve its first request.
    pub(crate) fn fresh(store: Store<GuestState>, guest: Handler) -> Self {
        Instance {
            store,
            guest,
            served: 1,
        }
    }
}

/// The idle instances of one app version.
pub(crate) struct WarmInstances {
    reuse: Reuse,
    idle: Mutex<Vec<(Instance, Instant)>>,
    /// The task that drops instances idle too long, started with the first
    /// one given back (it lives as long as this does).
    reaper: OnceLock<()>,
}

impl WarmInstances {
    /// Keep instances as `reuse` says.
    pub(crate) fn new(reuse: &Reuse) -> Arc<WarmInstances> {
        Arc::new(WarmInstances {
            reuse: reuse.clone(),
            idle: Mutex::new(Vec::new()),
            reaper: OnceLock::new(),
        })
    }

    /// An idle instance ready for a request, if one waits (and has not
    /// waited too long).
    pub(crate) fn take(&self) -> Option<Instance> {
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        let (mut instance, since) = idle.pop()?;
        drop(idle);
        if since.elapsed() >= self.reuse.idle {
            // The reaper is due to drop it (and the others, older still).
            self.drop_idle_since(self.reuse.idle);
            return None;
        }
        instance.served += 1;
        instance.store.data_mut().start_request();
        Some(instance)
    }

    /// `instance` served its request to the end: keep it for the next one,
    /// unless it has served its share or enough wait already.
    pub(crate) fn give_back(self: &Arc<Self>, instance: Instance) {
        if instance.served >= self.reuse.requests {
            return;
        }
        self.reaper.get_or_init(|| {
            tokio::spawn(drop_idle(Arc::downgrade(self), self.reuse.idle));
        });
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        if idle.len() < usize::try_from(self.reuse.instances).unwrap_or(usize::MAX) {
            idle.push((instance, Instant::now()));
        }
    }

    /// Drop the instances idle for `idle` or longer.
    fn drop_idle_since(&self, idle: Duration) {
        let expired: Vec<(Instance, Instant)> = {
            let mut waiting = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
            let (expired, kept) = std::mem::take(&mut *waiting)
                .into_iter()
                .partition(|(_, since)| since.elapsed() >= idle);
            *waiting = kept;
            expired
        };
        // Stores are dropped outside the lock.
        drop(expired);
    }

    /// Instances idle now.
    pub(crate) fn idle_count(&self) -> usize {
        self.idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }
}

/// Every `idle / 4` (at least 10 ms), drop what has been idle for `idle`;
/// stop when the app version is gone.
async fn drop_idle(warm: Weak<WarmInstances>, idle: Duration) {
    let period = (idle / 4).max(Duration::from_millis(10));
    loop {
        tokio::time::sleep(period).await;
        let Some(warm) = warm.upgrade() else { return };
        warm.drop_idle_since(idle);
    }
}

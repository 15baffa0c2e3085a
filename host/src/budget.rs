//! The bytes the host holds for guests' calls, charged before they are
//! held: values read from the store, messages a long poll takes, values
//! waiting for the store to write them. Two budgets bound them, the
//! host's (`[server] max_call_bytes`) and each app's (`max_call_bytes` in
//! its table), so no call, and no number of calls, makes the host allocate
//! what it cannot afford, and one app cannot take the whole host's.
//!
//! What is yet to be built waits for its bytes ([`CallBytes::hold`]: a
//! burst queues, its request's deadline bounding the wait); what exists
//! already (arguments a guest passed) is refused at once when its bytes are
//! not free ([`CallBytes::try_hold`]), so it is dropped at once.
//!
//! A single call is bounded besides by what its guest could ever receive
//! ([`CallBytes::per_call`]): its memory limit, and never more than the
//! app's budget. A call over it is refused before anything is built.

use std::sync::Arc;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Budgets count in units of this many bytes (a semaphore counts in `u32`).
const UNIT: u64 = 1024;

/// A budget of bytes.
#[derive(Debug)]
struct Pool {
    units: Arc<Semaphore>,
    bytes: u64,
}

impl Pool {
    fn new(bytes: u64) -> Pool {
        let units = usize::try_from(units_of(bytes))
            .unwrap_or(usize::MAX)
            .min(Semaphore::MAX_PERMITS);
        Pool {
            units: Arc::new(Semaphore::new(units)),
            bytes,
        }
    }
}

/// Whole units covering `bytes`.
fn units_of(bytes: u64) -> u64 {
    bytes.div_ceil(UNIT)
}

/// The host's budget, shared by every app.
#[derive(Debug, Clone)]
pub(crate) struct HostBytes(Arc<Pool>);

impl HostBytes {
    /// A host budget of `bytes`.
    pub(crate) fn new(bytes: u64) -> HostBytes {
        HostBytes(Arc::new(Pool::new(bytes)))
    }

    /// Bytes held now, for all apps.
    pub(crate) fn held(&self) -> u64 {
        let free = self.0.units.available_permits() as u64;
        units_of(self.0.bytes).saturating_sub(free) * UNIT
    }
}

/// One app's budget, within the host's.
#[derive(Debug, Clone)]
pub(crate) struct CallBytes {
    app: Arc<Pool>,
    host: HostBytes,
}

/// Why bytes could not be held.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum BytesRefused {
    /// More than one call may ever hold.
    #[error("{0} bytes in one call, over the {1} it may hold")]
    OverCall(u64, u64),
    /// The app's calls in flight hold its whole budget.
    #[error("the app's calls in flight hold its max_call_bytes of {0}")]
    AppBusy(u64),
    /// The calls in flight of all apps hold the host's whole budget.
    #[error("the host's calls in flight hold its max_call_bytes of {0}")]
    HostBusy(u64),
}

/// Bytes held for one call until dropped.
#[derive(Debug)]
pub(crate) struct Held {
    app: OwnedSemaphorePermit,
    host: OwnedSemaphorePermit,
}

impl Held {
    /// Keep only what `bytes` need, giving the rest back (a call charged
    /// its bound, then built less).
    pub(crate) fn shrink_to(&mut self, bytes: u64) {
        let keep = usize::try_from(units_of(bytes)).unwrap_or(usize::MAX);
        let extra = self.app.num_permits().saturating_sub(keep);
        if extra > 0 {
            drop(self.app.split(extra));
            drop(self.host.split(extra));
        }
    }
}

impl CallBytes {
    /// An app's budget of `bytes` within `host`'s.
    pub(crate) fn new(bytes: u64, host: &HostBytes) -> CallBytes {
        CallBytes {
            app: Arc::new(Pool::new(bytes.min(host.0.bytes))),
            host: host.clone(),
        }
    }

    /// The app's budget in bytes.
    pub(crate) fn bytes(&self) -> u64 {
        self.app.bytes
    }

    /// What one call may hold for a guest whose memory limit is
    /// `guest_memory`: no more than that, nor than the app's budget.
    pub(crate) fn per_call(&self, guest_memory: u64) -> u64 {
        guest_memory.min(self.app.bytes)
    }

    /// Hold `bytes` for a call bounded by `per_call`, waiting until the
    /// app and the host have them free.
    pub(crate) async fn hold(&self, bytes: u64, per_call: u64) -> Result<Held, BytesRefused> {
        let units = self.units(bytes, per_call)?;
        let app = self.app.units.clone().acquire_many_owned(units).await;
        let app = app.map_err(|_| BytesRefused::AppBusy(self.app.bytes))?;
        let host = self.host.0.units.clone().acquire_many_owned(units).await;
        let host = host.map_err(|_| BytesRefused::HostBusy(self.host.0.bytes))?;
        Ok(Held { app, host })
    }

    /// Hold `bytes` for a call bounded by `per_call` if the app and the
    /// host have them free now.
    pub(crate) fn try_hold(&self, bytes: u64, per_call: u64) -> Result<Held, BytesRefused> {
        let units = self.units(bytes, per_call)?;
        let app = self.app.units.clone().try_acquire_many_owned(units);
        let app = app.map_err(|_| BytesRefused::AppBusy(self.app.bytes))?;
        let host = self.host.0.units.clone().try_acquire_many_owned(units);
        let host = host.map_err(|_| BytesRefused::HostBusy(self.host.0.bytes))?;
        Ok(Held { app, host })
    }

    fn units(&self, bytes: u64, per_call: u64) -> Result<u32, BytesRefused> {
        let per_call = self.per_call(per_call);
        if bytes > per_call {
            return Err(BytesRefused::OverCall(bytes, per_call));
        }
        // Within the app's budget, which fits a semaphore's count.
        Ok(u32::try_from(units_of(bytes)).unwrap_or(u32::MAX))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_app_holds_no_more_than_its_budget_and_waits_for_it() {
        let host = HostBytes::new(10 * UNIT);
        let app = CallBytes::new(4 * UNIT, &host);
        let first = app.try_hold(3 * UNIT, u64::MAX).expect("free");
        assert_eq!(
            app.try_hold(2 * UNIT, u64::MAX).expect_err("busy"),
            BytesRefused::AppBusy(4 * UNIT)
        );
        assert_eq!(
            app.try_hold(5 * UNIT, u64::MAX).expect_err("never"),
            BytesRefused::OverCall(5 * UNIT, 4 * UNIT)
        );
        // A neighbour has the rest of the host's.
        let neighbour = CallBytes::new(8 * UNIT, &host);
        let theirs = neighbour.try_hold(7 * UNIT, u64::MAX).expect("free");
        assert_eq!(host.held(), 10 * UNIT);
        assert_eq!(
            neighbour.try_hold(UNIT, u64::MAX).expect_err("host"),
            BytesRefused::HostBusy(10 * UNIT)
        );
        drop(theirs);
        // Waiting: served once the first call gives its bytes back.
        let waiting = tokio::spawn({
            let app = app.clone();
            async move { app.hold(2 * UNIT, u64::MAX).await }
        });
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished());
        drop(first);
        let second = waiting.await.expect("joined").expect("held");
        assert_eq!(host.held(), 2 * UNIT);
        drop(second);
        assert_eq!(host.held(), 0);
    }

    #[test]
    fn a_call_gives_back_what_it_did_not_build() {
        let host = HostBytes::new(10 * UNIT);
        let app = CallBytes::new(10 * UNIT, &host);
        let mut held = app.try_hold(8 * UNIT, u64::MAX).expect("free");
        held.shrink_to(UNIT + 1);
        assert_eq!(host.held(), 2 * UNIT);
        held.shrink_to(0);
        assert_eq!(host.held(), 0);
    }

    #[test]
    fn one_call_is_bounded_by_its_guests_memory() {
        let host = HostBytes::new(100 * UNIT);
        let app = CallBytes::new(50 * UNIT, &host);
        assert_eq!(app.per_call(10 * UNIT), 10 * UNIT);
        assert_eq!(app.per_call(u64::MAX), 50 * UNIT);
        assert_eq!(
            app.try_hold(11 * UNIT, 10 * UNIT).expect_err("room"),
            BytesRefused::OverCall(11 * UNIT, 10 * UNIT)
        );
    }
}

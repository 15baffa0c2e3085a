//! `squall:app/time`: timers on the host's event loop.

use super::GuestState;
use crate::bindings::time::{Host, HostWithStore};
use std::sync::LazyLock;
use std::time::{Duration, Instant};
use wasmtime::component::{Accessor, HasSelf};

/// The fixed point `monotonic-now` counts from.
static EPOCH: LazyLock<Instant> = LazyLock::new(Instant::now);

impl HostWithStore<GuestState> for HasSelf<GuestState> {
    async fn sleep(
        _accessor: &Accessor<GuestState, Self>,
        duration_ns: u64,
    ) -> wasmtime::Result<()> {
        // Cancelled with everything else when the request's store is dropped.
        tokio::time::sleep(Duration::from_nanos(duration_ns)).await;
        Ok(())
    }
}

impl Host for GuestState {
    fn monotonic_now(&mut self) -> wasmtime::Result<u64> {
        Ok(u64::try_from(EPOCH.elapsed().as_nanos()).unwrap_or(u64::MAX))
    }
}

//! What each store holds: the WASI context, the resource table, and the
//! accounting that enforces an app's limits.

use super::guest_log::GuestLog;
use super::{EPOCH_TICK, Grants};
use crate::capabilities::wasi_http::HttpHooks;
use crate::config::Limits;
use std::sync::Arc;
use wasmtime::component::ResourceTable;
use wasmtime::{Engine, Store, StoreLimits, StoreLimitsBuilder, UpdateDeadline};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

/// The data of one store (one instance, normally one request).
pub struct State {
    wasi: WasiCtx,
    table: ResourceTable,
    limits: StoreLimits,
    /// Epoch ticks of guest execution left before the CPU limit stops it.
    cpu_ticks_left: u64,
    cpu_budget: u64,
    /// `wasi:http` state, for standard components; the hooks hold the
    /// app's grants.
    http: WasiHttpCtx,
    hooks: HttpHooks,
}

impl State {
    /// What this store's app may reach.
    pub fn grants(&self) -> &Arc<Grants> {
        self.hooks.grants()
    }

    /// Give a long-lived instance its full CPU budget again (per event).
    pub fn refill_cpu_budget(&mut self) {
        self.cpu_ticks_left = self.cpu_budget;
    }
}

/// A limit a guest ran into; the dispatcher turns each into its status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum LimitExceeded {
    #[error("the request ran guest code for longer than its cpu_time limit")]
    CpuTime,
    #[error("the request body is larger than the app's max_body limit")]
    RequestBody,
}

impl WasiHttpView for State {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.hooks,
        }
    }
}

impl WasiView for State {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

pub(super) fn new_store(engine: &Engine, limits: &Limits, grants: Arc<Grants>) -> Store<State> {
    // No files, sockets, environment or arguments: capabilities are granted
    // through squall:app imports, never ambient.
    let wasi = WasiCtx::builder()
        .stdout(GuestLog::stdout())
        .stderr(GuestLog::stderr())
        .allow_tcp(false)
        .allow_udp(false)
        .allow_ip_name_lookup(false)
        .build();
    let state = State {
        wasi,
        table: ResourceTable::new(),
        limits: StoreLimitsBuilder::new()
            .memory_size(usize::try_from(limits.memory).unwrap_or(usize::MAX))
            .trap_on_grow_failure(true)
            .build(),
        cpu_ticks_left: ticks(limits.cpu_time),
        cpu_budget: ticks(limits.cpu_time),
        http: WasiHttpCtx::new(),
        hooks: HttpHooks::new(grants),
    };
    let mut store = Store::new(engine, state);
    store.limiter(|state| &mut state.limits);
    // Called once per tick in which the guest runs: charge it, then yield so
    // a busy guest never holds the event loop for more than one tick.
    store.epoch_deadline_callback(|mut store| {
        let state = store.data_mut();
        if state.cpu_ticks_left == 0 {
            return Err(LimitExceeded::CpuTime.into());
        }
        state.cpu_ticks_left -= 1;
        Ok(UpdateDeadline::Yield(1))
    });
    store.set_epoch_deadline(1);
    store
}

fn ticks(duration: std::time::Duration) -> u64 {
    u64::try_from(duration.as_millis() / EPOCH_TICK.as_millis())
        .unwrap_or(u64::MAX)
        .max(1)
}

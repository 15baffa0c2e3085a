//! What each store holds: the WASI context, the resource table, the
//! accounting that enforces an app's limits, and the capabilities' own
//! per-store data (`H`, chosen by the layer above: the runtime never knows
//! which capabilities exist).

use super::cpu_share::CpuShare;
use super::engine::{EPOCH_TICK, TickedEngine};
use super::guest_log::{GuestLevel, GuestLog, LogBudget};
use super::pool_share::InstanceSlot;
use super::sockets::{HeldConnections, TcpConnectGrant};
use crate::config::Limits;
use crate::error::HostError;
use crate::limit_log::LimitHits;
use std::sync::Arc;
use std::time::Duration;
use wasmtime::component::ResourceTable;
use wasmtime::{CallHook, ResourceLimiter, Store, UpdateDeadline};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

/// Bytes the host copies for a guest that count as one tick of its CPU
/// time (a copy of this size takes about a millisecond here).
const COPIED_PER_TICK: usize = 4 << 20;

/// A store whose guest is charged for the copies the host makes for it
/// (stream bodies in and out), so that moving bytes is not free CPU.
pub(crate) trait ChargeCopies {
    /// Charge `bytes` copied; an error once the CPU budget is spent.
    fn charge_copied(&mut self, bytes: usize) -> Result<(), HostError>;
}

/// The data of one store (one instance, normally one request).
pub(crate) struct State<H> {
    wasi: WasiCtx,
    table: ResourceTable,
    memory: MemoryLimit,
    cpu: CpuBudget,
    run: GuestRun,
    host: H,
    /// What the request may still log (stdout, stderr and its own lines).
    log: Arc<LogBudget>,
    /// The places its `wasi:sockets` connections hold, if it may connect.
    sockets: Option<HeldConnections>,
    /// The pool slot this store holds, given back when it is dropped.
    _slot: InstanceSlot,
}

impl<H> State<H> {
    /// The capabilities' data for this store.
    pub(crate) fn host(&self) -> &H {
        &self.host
    }

    /// The resource table and the capabilities' data, borrowed together.
    pub(crate) fn table_and_host(&mut self) -> (&mut ResourceTable, &mut H) {
        (&mut self.table, &mut self.host)
    }

    /// The guest's memory limit: the most a host call could ever hand it.
    pub(crate) fn memory_limit(&self) -> u64 {
        u64::try_from(self.memory.max).unwrap_or(u64::MAX)
    }

    /// Log a line the guest wrote at `level`, within the request's budget.
    pub(crate) fn log(&self, level: GuestLevel, message: &str) {
        self.log.log(level, message);
    }

    /// Give a long-lived instance its full CPU budget again (per event).
    pub(crate) fn refill_cpu_budget(&mut self) {
        self.cpu.left = self.cpu.budget;
    }

    /// Give the store `cpu_time` of guest execution in all, instead of the
    /// app's per-request budget (a TCP connection's whole life).
    pub(crate) fn set_cpu_time(&mut self, cpu_time: Duration) {
        self.cpu = CpuBudget::new(cpu_time);
    }

    /// Ready the store for another request: its own CPU and log budgets,
    /// and the places of sockets it closed given back.
    pub(crate) fn start_request(&mut self) {
        self.refill_cpu_budget();
        self.cpu.copied = 0;
        self.log.refill();
        if let Some(sockets) = &self.sockets {
            sockets.keep_open_ones(&mut self.table);
        }
    }
}

impl<H> ChargeCopies for State<H> {
    fn charge_copied(&mut self, bytes: usize) -> Result<(), HostError> {
        self.cpu.charge_copied(bytes)
    }
}

impl<H: Send + 'static> WasiView for State<H> {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

/// Where the guest is in its current run, for charging ticks.
#[derive(Default)]
struct GuestRun {
    /// Entries into the guest not yet returned from (nested entries are
    /// the host's calls into it while it runs).
    depth: u32,
    /// The tick count up to which this run's time is paid for: its start,
    /// or the tick last charged.
    paid_to: u64,
}

/// Epoch ticks of guest execution left before the CPU limit stops it.
struct CpuBudget {
    left: u64,
    budget: u64,
    /// Bytes copied since the last tick charged for copies.
    copied: usize,
}

impl CpuBudget {
    fn new(cpu_time: Duration) -> Self {
        let budget = ticks(cpu_time);
        CpuBudget {
            left: budget,
            budget,
            copied: 0,
        }
    }

    /// Charge `bytes` the host copied for the guest, a tick per
    /// [`COPIED_PER_TICK`].
    fn charge_copied(&mut self, bytes: usize) -> Result<(), HostError> {
        self.copied = self.copied.saturating_add(bytes);
        while self.copied >= COPIED_PER_TICK {
            self.copied -= COPIED_PER_TICK;
            self.charge()?;
        }
        Ok(())
    }

    /// Charge one tick; an error once the budget is spent.
    fn charge(&mut self) -> Result<(), HostError> {
        if self.left == 0 {
            return Err(HostError::CpuTime);
        }
        self.left -= 1;
        Ok(())
    }
}

/// The app's `memory` limit on linear memory, reported as
/// [`HostError::Memory`] when a guest grows past it.
struct MemoryLimit {
    max: usize,
}

impl ResourceLimiter for MemoryLimit {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.max {
            return Err(HostError::Memory.into());
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        _desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        // Tables are bounded by the pool's slot size.
        Ok(true)
    }
}

/// What an app's stores share besides their limits: the CPU share they
/// charge, and where WASI sockets may connect.
#[derive(Default)]
pub(crate) struct StoreGrants {
    pub(crate) cpu_share: Option<Arc<CpuShare>>,
    /// `tcp_outbound`, for a component's `wasi:sockets`; none: no sockets
    /// at all.
    pub(crate) tcp_connect: Option<TcpConnectGrant>,
    /// Whether the component imports WASI 0.3 sockets, whose streams
    /// outlive the socket resource: their places are then kept for the
    /// store's whole life.
    pub(crate) p3_sockets: bool,
}

/// What each of an app's stores is made with, besides its host state and
/// its slot of the pool.
pub(super) struct StoreRecipe {
    pub(super) limits: Limits,
    pub(super) hits: Arc<LimitHits>,
    /// Text never to appear in the log (the app's secrets).
    pub(super) redact: Arc<[String]>,
    pub(super) grants: StoreGrants,
}

/// A fresh store made as `recipe` says, holding `host` for the
/// capabilities and `slot` of the pool.
pub(super) fn new_store<H: Send + 'static>(
    engine: &TickedEngine,
    recipe: &StoreRecipe,
    host: H,
    slot: InstanceSlot,
) -> Store<State<H>> {
    let StoreRecipe {
        limits,
        hits,
        redact,
        grants,
    } = recipe;
    let log = LogBudget::new(limits.log_per_request, hits.clone(), redact.clone());
    // No files, environment or arguments, and no sockets unless the app's
    // tcp_outbound names where they may connect: capabilities are granted
    // through imports, never ambient.
    let mut wasi = WasiCtx::builder();
    wasi.stdout(GuestLog::stdout(log.clone()))
        .stderr(GuestLog::stderr(log.clone()))
        .allow_udp(false);
    // Name lookups stay off even then: wasmtime-wasi's resolver holds a
    // thread of the shared blocking pool per lookup, with no bound and no
    // timeout, so a guest looping over names a nameserver never answers
    // would starve every app. A component connects by address.
    wasi.allow_ip_name_lookup(false);
    let sockets = match &grants.tcp_connect {
        Some(grant) => {
            let held = HeldConnections::new(!grants.p3_sockets);
            wasi.allow_tcp(true)
                .socket_addr_check(super::sockets::check(grant.clone(), held.clone()));
            Some(held)
        }
        None => {
            wasi.allow_tcp(false);
            None
        }
    };
    let wasi = wasi.build();
    let state = State {
        wasi,
        table: ResourceTable::new(),
        memory: MemoryLimit {
            max: usize::try_from(limits.memory).unwrap_or(usize::MAX),
        },
        cpu: CpuBudget::new(limits.cpu_time),
        run: GuestRun::default(),
        host,
        log,
        sockets,
        _slot: slot,
    };
    let mut store = Store::new(&engine.engine, state);
    store.limiter(|state| &mut state.memory);
    // What the host copies for one call (or one answer) is bounded by the
    // guest's own memory: a list of lists whose elements all point at the
    // same bytes would otherwise be copied once per element (wasmtime's
    // default bound is 128 MiB per call, whatever the guest's size).
    store.set_hostcall_fuel(usize::try_from(limits.memory).unwrap_or(usize::MAX));
    // Called once per tick in which the guest runs: charge it, then yield so
    // a busy guest never holds the event loop for more than one tick. An app
    // over its CPU share pauses until its share allows another tick.
    let (clock, share) = (engine.clone(), grants.cpu_share.clone());
    store.epoch_deadline_callback(move |mut store| {
        let state = store.data_mut();
        state.cpu.charge()?;
        state.run.paid_to = clock.ticks();
        let pause = share
            .as_ref()
            .and_then(|share| share.charge(std::time::Instant::now()));
        Ok(match pause {
            None => UpdateDeadline::Yield(1),
            Some(pause) => UpdateDeadline::YieldCustom(1, Box::pin(tokio::time::sleep(pause))),
        })
    });
    store.set_epoch_deadline(1);
    // A run of the guest starts when the event loop enters it and ends when
    // it returns there. The deadline restarts with each run, so the time a
    // guest waits between runs (a timer, a fetch, a publish, a connection's
    // next bytes) is never charged. A tick that passed after the run's last
    // check (a long `memory.fill`, straight-line code) is charged when the
    // run ends. Entries while it runs (allocations for a host call's
    // results) are part of the run.
    let (clock, share) = (engine.clone(), grants.cpu_share.clone());
    store.call_hook(move |mut store, hook| {
        match hook {
            CallHook::CallingWasm => {
                let run = &mut store.data_mut().run;
                if run.depth == 0 {
                    run.paid_to = clock.ticks();
                    store.set_epoch_deadline(1);
                }
                store.data_mut().run.depth += 1;
            }
            CallHook::ReturningFromWasm => {
                let now = clock.ticks();
                let state = store.data_mut();
                state.run.depth = state.run.depth.saturating_sub(1);
                if state.run.depth == 0 && now > state.run.paid_to {
                    state.run.paid_to = now;
                    state.cpu.charge()?;
                    // Owed to the share: the next pause pays it back.
                    if let Some(share) = &share {
                        let _ = share.charge(std::time::Instant::now());
                    }
                }
            }
            CallHook::CallingHost | CallHook::ReturningFromHost => {}
        }
        Ok(())
    });
    store
}

/// Whole ticks in `duration`, at least one.
fn ticks(duration: Duration) -> u64 {
    u64::try_from(duration.as_micros() / EPOCH_TICK.as_micros())
        .unwrap_or(u64::MAX)
        .max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_time_is_counted_in_whole_ticks() {
        let tick = EPOCH_TICK.as_micros();
        assert_eq!(
            u128::from(ticks(Duration::from_secs(10))),
            10_000_000 / tick
        );
        assert_eq!(u128::from(ticks(EPOCH_TICK * 5 / 2)), 2);
        assert_eq!(ticks(EPOCH_TICK / 2), 1, "never zero");
    }

    #[test]
    fn the_budget_runs_out_and_can_be_refilled() {
        let mut cpu = CpuBudget::new(EPOCH_TICK * 2);
        assert!(cpu.charge().is_ok());
        assert!(cpu.charge().is_ok());
        assert!(matches!(cpu.charge(), Err(HostError::CpuTime)));
        cpu.left = cpu.budget;
        assert!(cpu.charge().is_ok());
    }

    #[test]
    fn copies_are_charged_a_tick_per_four_mebibytes() {
        let mut cpu = CpuBudget::new(EPOCH_TICK * 3);
        cpu.charge_copied(COPIED_PER_TICK - 1)
            .expect("under a tick");
        assert_eq!(cpu.left, 3);
        cpu.charge_copied(1).expect("one tick");
        assert_eq!(cpu.left, 2);
        cpu.charge_copied(2 * COPIED_PER_TICK).expect("two more");
        assert!(matches!(
            cpu.charge_copied(COPIED_PER_TICK),
            Err(HostError::CpuTime)
        ));
    }

    #[test]
    fn memory_past_the_limit_is_refused_as_a_memory_error() {
        let mut limit = MemoryLimit { max: 1 << 20 };
        assert!(matches!(limit.memory_growing(0, 1 << 20, None), Ok(true)));
        let refused = limit
            .memory_growing(1 << 20, 2 << 20, None)
            .expect_err("over the limit");
        assert!(matches!(HostError::from_guest(refused), HostError::Memory));
    }
}

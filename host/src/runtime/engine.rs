//! The one wasmtime `Engine`: the pooling allocator sized for the host's
//! instances, and the epoch ticker that CPU limits count on.

use anyhow::{Context, Result};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use wasmtime::{Config, Enabled, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

/// How often the epoch advances: the granularity of CPU accounting and of
/// the slices a busy guest runs for before it yields to other tasks.
pub(crate) const EPOCH_TICK: std::time::Duration = std::time::Duration::from_millis(10);

/// Bytes of each pool slot kept resident and reset in place between instances.
const KEEP_RESIDENT: usize = 1 << 20;

/// Engine-wide settings, from the manifest's `[server]` table and the apps.
#[derive(Debug, Clone)]
pub(crate) struct RuntimeConfig {
    /// Instances alive at once, over all apps.
    pub(crate) max_instances: u32,
    /// The largest `memory` limit of any app (the size of a pool slot).
    pub(crate) max_memory: u64,
    /// Where compiled components are kept between runs; none: compile
    /// at every start.
    pub(crate) cache_dir: Option<std::path::PathBuf>,
}

/// The engine, with the count of ticks its ticker has made: wasmtime keeps
/// its epoch to itself, and a store must know whether a tick passed while
/// its guest ran.
#[derive(Clone)]
pub(crate) struct TickedEngine {
    pub(crate) engine: Engine,
    ticks: Arc<AtomicU64>,
}

impl TickedEngine {
    /// Ticks made so far.
    pub(crate) fn ticks(&self) -> u64 {
        self.ticks.load(Ordering::Relaxed)
    }
}

/// Start the engine and its epoch ticker.
pub(super) fn start(config: &RuntimeConfig) -> Result<TickedEngine> {
    let engine = Engine::new(&engine_config(config))
        .map_err(anyhow::Error::from)
        .with_context(|| {
            format!(
                "cannot start the wasm engine with max_instances = {} \
                 (each instance slot reserves about 4 GiB of address space; lower it)",
                config.max_instances
            )
        })?;
    let ticks = Arc::new(AtomicU64::new(0));
    start_epoch_ticker(&engine, ticks.clone())?;
    Ok(TickedEngine { engine, ticks })
}

fn engine_config(config: &RuntimeConfig) -> Config {
    let instances = config.max_instances.max(1);
    let mut pool = PoolingAllocationConfig::new();
    pool.total_component_instances(instances)
        // A Rust component is a handful of core instances (3 for hello), a
        // CPython one from componentize-py 14; both have 2 tables and one
        // memory (a component with more fails to instantiate: 503). Unused
        // core instance slots cost address space, not memory.
        .total_core_instances(instances.saturating_mul(16))
        .total_memories(instances)
        .total_tables(instances.saturating_mul(8))
        // Each live store keeps one fiber stack.
        .total_stacks(instances)
        .max_memory_size(usize::try_from(config.max_memory).unwrap_or(usize::MAX))
        // Reset a used slot by rewriting only its dirty pages (found with
        // PAGEMAP_SCAN where the kernel has it) instead of madvise: the next
        // instance then takes no page faults and no TLB shootdowns.
        .pagemap_scan(Enabled::Auto)
        .linear_memory_keep_resident(KEEP_RESIDENT)
        .table_keep_resident(KEEP_RESIDENT);
    let mut wasm = Config::new();
    wasm.wasm_component_model_async(true)
        .epoch_interruption(true)
        .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    // `SQUALL_PERF_MAP=1` writes /tmp/perf-PID.map so `perf report` names
    // guest functions (for profiling; off by default, as it costs at load).
    if std::env::var_os("SQUALL_PERF_MAP").is_some_and(|value| value == "1") {
        wasm.profiler(wasmtime::ProfilingStrategy::PerfMap);
    }
    wasm
}

/// Advance the engine's epoch every [`EPOCH_TICK`] until the engine is
/// dropped. Without it no guest would ever be stopped or made to yield, so
/// a host that cannot start it does not start at all.
fn start_epoch_ticker(engine: &Engine, ticks: Arc<AtomicU64>) -> Result<()> {
    let weak = engine.weak();
    std::thread::Builder::new()
        .name("squall-epoch".into())
        .spawn(move || {
            while let Some(engine) = weak.upgrade() {
                // Counted before the epoch moves: a store that sees the
                // epoch's deadline pass always sees the count moved too.
                ticks.fetch_add(1, Ordering::Relaxed);
                engine.increment_epoch();
                drop(engine);
                std::thread::sleep(EPOCH_TICK);
            }
        })
        .map(drop)
        .context("cannot start the epoch ticker that enforces cpu_time and timeouts")
}

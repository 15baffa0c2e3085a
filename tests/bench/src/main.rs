//! Squall's benchmarks. Run with `cargo run --release -p squall-bench`.
//!
//! `http` (the default) serves the same hello world from a native
//! tokio + hyper server and from `squall serve examples/hello`, each pinned
//! to core 0, and drives them alternately with `wrk` pinned to core 1. The
//! last line is the throughput ratio. `instance` measures the per-request
//! cost of a fresh instance (instantiate + call + drop) without HTTP.

mod apps_bench;
mod fanout_bench;
mod http_bench;
mod instance_bench;
mod interop_bench;
mod jobs_bench;
mod kv_bench;
mod native;
mod native_realtime;
mod ops_bench;
mod parked_bench;
mod python_bench;
mod raw_client;
mod realtime_bench;
mod scaleout_bench;
mod soak_bench;
mod tcp_bench;
mod tenants_bench;
mod tools;

use anyhow::Result;
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(about = "Squall benchmarks")]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Throughput and latency of hello world: native hyper vs squall (default).
    Http(http_bench::HttpArgs),
    /// Per-request cost of a fresh instance: instantiate + call + drop.
    Instance(instance_bench::InstanceArgs),
    /// Requests parked on a host timer, 10,000 at once: memory per request.
    Parked(parked_bench::ParkedArgs),
    /// Idle WebSockets, broadcast latency, and long polls woken by a publish.
    Realtime(realtime_bench::RealtimeArgs),
    /// A standard wasi:http hello: squall vs `wasmtime serve` 48.0.8 vs native.
    Interop(interop_bench::InteropArgs),
    /// Fanout throughput: squall's examples/fanout vs a native hyper proxy.
    Fanout(fanout_bench::FanoutArgs),
    /// A healthy tenant alone, then while a hostile tenant is hammered.
    Tenants(tenants_bench::TenantsArgs),
    /// Mixed HTTP, WebSocket and long-poll load for 10 minutes: memory over time.
    Soak(soak_bench::SoakArgs),
    /// Key-value get and set through a guest vs native code on the same store.
    Kv(kv_bench::KvArgs),
    /// Start with 20 apps (compile cache empty vs warm); an app swapped under load.
    Ops(ops_bench::OpsArgs),
    /// 1,000 apps in one host: start, memory per app, throughput.
    Apps(apps_bench::AppsArgs),
    /// Broadcast to sockets on two hosts sharing Redis vs one host.
    Scaleout(scaleout_bench::ScaleoutArgs),
    /// Queue throughput (embedded, Redis) and schedule jitter under load vs native tokio.
    Jobs(jobs_bench::JobsArgs),
    /// Plain TCP echo: ping-pong, bulk and idle memory vs a native tokio server.
    Tcp(tcp_bench::TcpArgs),
    /// A Python hello (the Tornado-shaped SDK) vs Tornado itself, natively.
    Python(python_bench::PythonArgs),
    /// All of the above, one after the other.
    All,
    /// (internal) the native baseline server.
    #[command(hide = true)]
    NativeServer(native::NativeArgs),
    /// (internal) the native fanout baseline.
    #[command(hide = true)]
    NativeFanout(native::NativeArgs),
    /// (internal) the native realtime baseline.
    #[command(hide = true)]
    NativeRealtime(native::NativeArgs),
    /// (internal) the native TCP echo baseline.
    #[command(hide = true)]
    NativeTcpEcho(native::NativeArgs),
    /// (internal) the native key-value baseline.
    #[command(hide = true)]
    NativeKv(native::NativeKvArgs),
}

fn main() -> Result<()> {
    match Cli::parse().command {
        None | Some(Command::All) => {
            instance_bench::run(&instance_bench::InstanceArgs::default())?;
            parked_bench::run(&parked_bench::ParkedArgs::default())?;
            fanout_bench::run(&fanout_bench::FanoutArgs::default())?;
            realtime_bench::run(&realtime_bench::RealtimeArgs::default())?;
            http_bench::run(&http_bench::HttpArgs::default())
        }
        Some(Command::Http(args)) => http_bench::run(&args),
        Some(Command::Instance(args)) => instance_bench::run(&args),
        Some(Command::Parked(args)) => parked_bench::run(&args),
        Some(Command::Fanout(args)) => fanout_bench::run(&args),
        Some(Command::Tenants(args)) => tenants_bench::run(&args),
        Some(Command::Soak(args)) => soak_bench::run(&args),
        Some(Command::Kv(args)) => kv_bench::run(&args),
        Some(Command::Ops(args)) => ops_bench::run(&args),
        Some(Command::Apps(args)) => apps_bench::run(&args),
        Some(Command::Scaleout(args)) => scaleout_bench::run(&args),
        Some(Command::Realtime(args)) => realtime_bench::run(&args),
        Some(Command::Interop(args)) => interop_bench::run(&args),
        Some(Command::NativeServer(args)) => native::run(&args),
        Some(Command::NativeFanout(args)) => native::run_fanout(&args),
        Some(Command::NativeRealtime(args)) => native_realtime::run(&args),
        Some(Command::NativeKv(args)) => native::run_kv(&args),
        Some(Command::Tcp(args)) => tcp_bench::run(&args),
        Some(Command::Jobs(args)) => jobs_bench::run(&args),
        Some(Command::Python(args)) => python_bench::run(&args),
        Some(Command::NativeTcpEcho(args)) => tcp_bench::run_native(&args),
    }
}

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

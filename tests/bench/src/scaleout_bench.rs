//! Scale-out on Redis: one message broadcast to 10,000 subscribed sockets
//! spread over two hosts that share a Redis, against the same sockets on
//! one host with its in-process broker, in the same run. Redis (Debian's
//! `redis-server`) is started on a free port; the hosts are pinned to
//! core 0, Redis and the clients to core 1.

use crate::realtime_bench::{broadcast, report};
use crate::tools::{self, Running};
use anyhow::Result;
use clap::Args;
use std::time::Duration;

#[derive(Args, Clone)]
pub(crate) struct ScaleoutArgs {
    /// Subscribed sockets, spread over the hosts.
    #[arg(long, default_value_t = 10_000)]
    sockets: usize,
    /// Broadcasts to measure (a second apart).
    #[arg(long, default_value_t = 5)]
    broadcasts: usize,
}

/// Sockets left to the processes' other files under the open-file limit.
const SPARE_FILES: usize = 100;

pub(crate) fn run(args: &ScaleoutArgs) -> Result<()> {
    let limit = tools::raise_fd_limit()? as usize;
    let count = args.sockets.min(limit.saturating_sub(SPARE_FILES));
    let squall = tools::squall_binary()?;
    let sockets = tools::component(&squall, "tests/guests/sockets")?;
    let redis = tools::Redis::start()?;
    let manifest = |backend: &str| {
        format!(
            "[server]\nmax_instances = 256\nmax_connections = 20000\n{backend}\n[app.sockets]\nsource = {:?}\ntimeout = \"120s\"\npubsub = [\"news\"]\nmax_connections = 20000\n\n\
             [[app.sockets.websocket]]\nroutes = [\"/count\"]\nmode = \"hibernate\"\nping_interval = \"10m\"\n",
            sockets.display().to_string()
        )
    };
    let shared = format!(
        "[server.backend]\nkind = \"redis\"\nurl = \"redis://127.0.0.1:{}\"\n",
        redis.port
    );
    let one = tools::serve_manifest(&squall, 0, &manifest(""))?;
    let a = tools::serve_manifest(&squall, 0, &manifest(&shared))?;
    let b = tools::serve_manifest(&squall, 0, &manifest(&shared))?;
    tools::pin_to_core(1)?;
    let tokio = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    println!(
        "broadcast to {count} subscribed sockets, {} rounds; hosts on core 0, Redis and clients on core 1",
        args.broadcasts
    );
    tokio.block_on(async {
        let address = |server: &Running| server.url.trim_start_matches("http://").to_owned();
        let mut alone = broadcast(&[address(&one)], &address(&one), count, args.broadcasts).await?;
        report("one host, in-process broker", "deliveries", &mut alone);
        drop(one);
        tokio::time::sleep(Duration::from_secs(2)).await;
        let hosts = [address(&a), address(&b)];
        let mut spread = broadcast(&hosts, &hosts[0], count, args.broadcasts).await?;
        report(
            "two hosts through Redis, published on one",
            "deliveries",
            &mut spread,
        );
        let p99 = |latencies: &[Duration]| latencies[(latencies.len() - 1) * 99 / 100];
        println!(
            "p99 ratio two hosts through Redis / one host: {:.2}",
            p99(&spread).as_secs_f64() / p99(&alone).as_secs_f64()
        );
        Ok(())
    })
}

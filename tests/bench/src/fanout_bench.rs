//! Fanout throughput: each request fetches the same upstream three times at
//! once and answers a JSON summary. `squall serve examples/fanout` against
//! a native hyper proxy doing the same work, same run, alternating.

use crate::tools::{self, WrkResult};
use anyhow::Result;
use clap::Args;

#[derive(Args, Clone)]
pub struct FanoutArgs {
    /// Rounds; each round measures both servers once.
    #[arg(long, default_value_t = 3)]
    rounds: u32,
    /// Seconds per measurement.
    #[arg(long, default_value_t = 5)]
    seconds: u32,
    /// Concurrent connections.
    #[arg(long, default_value_t = 64)]
    connections: u32,
    /// Upstream fetches per request.
    #[arg(long, default_value_t = 3)]
    fetches: usize,
}

impl Default for FanoutArgs {
    fn default() -> Self {
        FanoutArgs {
            rounds: 3,
            seconds: 5,
            connections: 64,
            fetches: 3,
        }
    }
}

pub fn run(args: &FanoutArgs) -> Result<()> {
    let squall = tools::squall_binary()?;
    let fanout = tools::component(&squall, "examples/fanout")?;
    let own_binary = std::env::current_exe()?;
    // The upstream shares core 1 with wrk; the servers under test get core 0.
    let upstream = tools::start_pinned(1, &own_binary, &["native-server"], "warn")?;
    let native = tools::start_pinned(0, &own_binary, &["native-fanout"], "warn")?;
    let dir = tempfile::tempdir()?;
    let manifest = dir.path().join("squall.toml");
    std::fs::write(
        &manifest,
        format!(
            "[app.fanout]\nsource = {:?}\noutbound = [\"http://127.0.0.1:*\"]\n",
            fanout.display().to_string()
        ),
    )?;
    let squall_server = tools::start_pinned(
        0,
        &squall,
        &[
            "serve",
            &manifest.to_string_lossy(),
            "--listen",
            "127.0.0.1:0",
        ],
        "warn",
    )?;
    let query: Vec<String> = (0..args.fetches)
        .map(|_| format!("url={}/", upstream.url))
        .collect();
    let path = format!("/fanout?{}", query.join("&"));
    println!(
        "fanout of {} fetches to a local upstream per request; servers on core 0, upstream and wrk -t1 -c{} -d{}s on core 1",
        args.fetches, args.connections, args.seconds
    );
    let servers = [("native", &native.url), ("squall", &squall_server.url)];
    for (_, url) in servers {
        tools::wrk(1, &format!("{url}{path}"), args.connections, 1)?; // warm up
    }
    let mut results: Vec<Vec<WrkResult>> = vec![Vec::new(), Vec::new()];
    for round in 1..=args.rounds {
        for (index, (name, url)) in servers.iter().enumerate() {
            let result = tools::wrk(1, &format!("{url}{path}"), args.connections, args.seconds)?;
            println!(
                "round {round} {name:>7}: {:>9.0} req/s  p50 {:>6.2} ms  p99 {:>6.2} ms  non-2xx {}",
                result.requests_per_second, result.p50_ms, result.p99_ms, result.errors
            );
            results[index].push(result);
        }
    }
    let native_median = tools::median_by_throughput(&results[0]);
    let squall_median = tools::median_by_throughput(&results[1]);
    println!(
        "median: native {:.0} req/s, squall {:.0} req/s",
        native_median.requests_per_second, squall_median.requests_per_second
    );
    println!(
        "fanout throughput ratio squall/native: {:.2}",
        squall_median.requests_per_second / native_median.requests_per_second
    );
    Ok(())
}

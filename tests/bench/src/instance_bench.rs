//! The per-request cost of isolation: new store + instantiate (pooling,
//! `InstancePre`) + async call of `handle` + drop, without any HTTP.

use crate::tools;
use anyhow::{Context, Result};
use clap::Args;
use squall::testing::Harness;
use std::time::{Duration, Instant};

#[derive(Args)]
pub(crate) struct InstanceArgs {
    /// Calls to time.
    #[arg(long, default_value_t = 20_000)]
    iterations: u32,
    /// The component to instantiate (default: `examples/hello`, built).
    #[arg(long)]
    component: Option<std::path::PathBuf>,
    /// Time `GET /` through the host in process instead (routing, dispatch,
    /// the instance): any component, standard wasi:http ones too.
    #[arg(long)]
    through_host: bool,
}

impl Default for InstanceArgs {
    fn default() -> Self {
        InstanceArgs {
            iterations: 20_000,
            component: None,
            through_host: false,
        }
    }
}

pub(crate) fn run(args: &InstanceArgs) -> Result<()> {
    let hello = match &args.component {
        Some(component) => component.clone(),
        None => tools::hello_component(&tools::squall_binary()?)?,
    };
    if args.through_host {
        let mean = in_process_get(&hello, "", 1)?;
        println!(
            "GET / through the host in process, a fresh instance each: mean {:.1} µs",
            mean.as_secs_f64() * 1e6
        );
        return Ok(());
    }
    let (harness, tokio) = in_process(&hello, "")?;
    let mut samples: Vec<Duration> = tokio.block_on(async {
        for _ in 0..1000 {
            harness.call_once("/").await?; // warm up
        }
        let mut samples = Vec::with_capacity(args.iterations as usize);
        for _ in 0..args.iterations {
            let started = Instant::now();
            let status = harness.call_once("/").await?;
            samples.push(started.elapsed());
            anyhow::ensure!(status == 200, "hello answered {status}");
        }
        Ok::<_, anyhow::Error>(samples)
    })?;
    samples.sort();
    let at = |q: f64| samples[((samples.len() - 1) as f64 * q) as usize];
    let total: Duration = samples.iter().sum();
    println!(
        "fresh instance per call (store + instantiate + handle(\"/\") + drop), {} calls, one thread:",
        samples.len()
    );
    println!(
        "  median {:.1} µs  p99 {:.1} µs  mean {:.1} µs  => {:.0} calls/s",
        at(0.5).as_secs_f64() * 1e6,
        at(0.99).as_secs_f64() * 1e6,
        total.as_secs_f64() * 1e6 / samples.len() as f64,
        samples.len() as f64 / total.as_secs_f64()
    );
    samples.first().context("no samples")?;
    Ok(())
}

/// `component` as the app `hello` in an in-process host (`app_lines` in
/// its table), and a runtime on this thread to drive it.
fn in_process(
    component: &std::path::Path,
    app_lines: &str,
) -> Result<(Harness, tokio::runtime::Runtime)> {
    let manifest = format!(
        "[server]\nmax_instances = 100\n[app.hello]\nsource = {:?}\n{app_lines}\n",
        component.display().to_string()
    );
    let harness = Harness::from_manifest(&manifest, std::path::Path::new("."))?;
    let tokio = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    Ok((harness, tokio))
}

/// Calls timed by [`in_process_get`], after as many to warm up.
const IN_PROCESS_CALLS: u32 = 5_000;

/// Mean time of `GET /` answered by `component` through the host in this
/// process: routing, dispatch, the guest's instance, the body collected; no
/// socket and no hyper. What a request costs squall on top of what native
/// hyper pays too, so `native + this` is a floor under squall's request.
/// `app_lines` go in the app's table (a `reuse` line, or nothing);
/// `at_once` requests are sent together (more than one where requests
/// share instances, as under load).
pub(crate) fn in_process_get(
    component: &std::path::Path,
    app_lines: &str,
    at_once: u32,
) -> Result<Duration> {
    let (harness, tokio) = in_process(component, app_lines)?;
    let at_once = at_once.max(1);
    let rounds = (IN_PROCESS_CALLS / at_once).max(1);
    tokio.block_on(async {
        // Wall time over many rounds, yielding after each: what a call
        // leaves to a task of its own (a WASI 0.2 store's drop) runs then,
        // on this thread, and is counted.
        let mut started = Instant::now();
        for round in 0..2 * rounds {
            if round == rounds {
                started = Instant::now();
            }
            let answers = futures::future::join_all((0..at_once).map(|_| harness.get("/"))).await;
            for answer in answers {
                let response = answer?;
                anyhow::ensure!(
                    response.status() == 200,
                    "GET / answered {} (round {round}): {}",
                    response.status(),
                    String::from_utf8_lossy(response.body())
                );
            }
            tokio::task::yield_now().await;
        }
        Ok(started.elapsed() / (rounds * at_once))
    })
}

/// Print what bounds squall (serving as `how`) against `rival` (native
/// hyper, or another wasm server) whose request takes `rival_request`:
/// squall's request takes at least native's plus `in_process`.
pub(crate) fn print_floor(
    how: &str,
    rival: &str,
    rival_request: Duration,
    native_request: Duration,
    in_process: Duration,
) {
    let floor = native_request + in_process;
    println!(
        "  floor, {how}: squall answers GET / in process (routing, dispatch, the guest; no \
         socket, no hyper) in {:.1} µs, native's whole request takes {:.1} µs, so squall's takes \
         at least {:.1} µs: at most {:.2}x {rival} ({:.1} µs per request)",
        in_process.as_secs_f64() * 1e6,
        native_request.as_secs_f64() * 1e6,
        floor.as_secs_f64() * 1e6,
        rival_request.as_secs_f64() / floor.as_secs_f64(),
        rival_request.as_secs_f64() * 1e6,
    );
}

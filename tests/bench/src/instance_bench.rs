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
}

impl Default for InstanceArgs {
    fn default() -> Self {
        InstanceArgs {
            iterations: 20_000,
            component: None,
        }
    }
}

pub(crate) fn run(args: &InstanceArgs) -> Result<()> {
    let hello = match &args.component {
        Some(component) => component.clone(),
        None => tools::hello_component(&tools::squall_binary()?)?,
    };
    let manifest = format!(
        "[server]\nmax_instances = 100\n[app.hello]\nsource = {:?}\n",
        hello.display().to_string()
    );
    let harness = Harness::from_manifest(&manifest, std::path::Path::new("."))?;
    let tokio = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
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

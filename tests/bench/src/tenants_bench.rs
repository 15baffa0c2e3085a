//! A healthy tenant's throughput and latency alone, then in the same run
//! while a hostile tenant in the same host is hammered on all its routes at
//! once (`examples/hostile` under the limits `examples/multi-tenant` gives
//! it). Alternating rounds; medians; the ratios at the end.

use crate::tools::{self, WrkResult};
use anyhow::{Context, Result};
use clap::Args;
use std::process::{Child, Stdio};
use std::time::Duration;

#[derive(Args, Default)]
pub(crate) struct TenantsArgs {
    #[command(flatten)]
    load: tools::Load,
}

const SERVER_CORE: usize = 0;

/// The hostile routes, each hammered by its own wrk while the healthy
/// tenant is measured.
const ATTACKS: [&str; 7] = [
    "/loop",
    "/oom",
    "/panic",
    "/big",
    "/park/1000",
    "/topics/100",
    "/log/64",
];

pub(crate) fn run(args: &TenantsArgs) -> Result<()> {
    let squall = tools::squall_binary()?;
    let hello = tools::hello_component(&squall)?;
    let hostile = tools::component(&squall, "examples/hostile")?;
    let manifest = format!(
        "[server]\nmax_instances = 200\n\
         [app.hello]\nsource = {:?}\nhosts = [\"hello.test\"]\n\
         [app.hostile]\nsource = {:?}\nhosts = [\"hostile.test\"]\n{}",
        hello.display().to_string(),
        hostile.display().to_string(),
        HOSTILE_LIMITS
    );
    let server = tools::serve_manifest(&squall, SERVER_CORE, &manifest)?;
    let load = &args.load;
    println!(
        "a healthy tenant (hello) alone, then while a hostile tenant is hammered on {} routes; \
         server pinned to core {SERVER_CORE}, wrk -t1 -c{} -d{}s on core {}",
        ATTACKS.len(),
        load.connections,
        load.seconds,
        load.core
    );
    let url = format!("{}/", server.url);
    let healthy = |seconds| {
        tools::wrk_with(
            load.core,
            &url,
            load.connections,
            seconds,
            &["Host: hello.test"],
        )
    };
    healthy(1)?;
    let mut alone = Vec::new();
    let mut attacked = Vec::new();
    for round in 1..=load.rounds {
        let quiet = healthy(load.seconds)?;
        print_run(round, "alone", &quiet);
        alone.push(quiet);
        let attackers = Attackers::start(&server.url, load)?;
        std::thread::sleep(Duration::from_millis(500));
        let busy = healthy(load.seconds)?;
        drop(attackers);
        print_run(round, "attacked", &busy);
        attacked.push(busy);
        std::thread::sleep(Duration::from_secs(3));
    }
    let alone = tools::median_by_throughput(&alone);
    let attacked = tools::median_by_throughput(&attacked);
    print_run(0, "median alone", &alone);
    print_run(0, "median attacked", &attacked);
    println!(
        "throughput under attack / alone: {:.2}",
        attacked.requests_per_second / alone.requests_per_second
    );
    println!(
        "p99 under attack / alone: {:.2}",
        attacked.p99_ms / alone.p99_ms
    );
    Ok(())
}

/// The limits `examples/multi-tenant` gives its hostile tenant.
const HOSTILE_LIMITS: &str = "memory = \"16MiB\"\ncpu_time = \"200ms\"\ntimeout = \"2s\"\n\
     max_instances = 20\nmax_concurrency = 20\ncpu_share = \"10%\"\npubsub = [\"spam.*\"]\n\
     pubsub_topics = 50\npubsub_history_bytes = \"64KiB\"\nlog_per_request = \"8KiB\"\n";

fn print_run(round: u32, name: &str, run: &WrkResult) {
    let label = if round == 0 {
        name.to_owned()
    } else {
        format!("round {round} {name}")
    };
    println!(
        "  {label:>18}: {:>9.0} req/s  p50 {:>6.2} ms  p99 {:>6.2} ms  non-2xx {}",
        run.requests_per_second, run.p50_ms, run.p99_ms, run.errors
    );
}

/// One wrk per hostile route, for as long as they are held.
struct Attackers(Vec<Child>);

impl Attackers {
    fn start(base: &str, load: &tools::Load) -> Result<Attackers> {
        let mut children = Vec::new();
        for route in ATTACKS {
            let child = tools::wrk_command(
                load.core,
                &format!("{base}{route}"),
                2,
                load.seconds + 5,
                &["Host: hostile.test"],
            )
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("cannot run wrk")?;
            children.push(child);
        }
        Ok(Attackers(children))
    }
}

impl Drop for Attackers {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

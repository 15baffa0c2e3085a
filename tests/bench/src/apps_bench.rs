//! Many apps in one host: hello under 1 name, the same component under
//! 1,000 names, and 1,000 apps over 20 distinct components (as 20 tenants'
//! builds would be), each started with an empty compile cache. Prints the
//! time to the last app's first response, resident memory per loaded idle
//! app, and hello throughput with them loaded against native hyper, same
//! run.

use crate::tools::{self, ProcessMemory};
use anyhow::{Result, bail};
use clap::Args;
use std::path::Path;
use std::time::{Duration, Instant};

#[derive(Args, Default)]
pub(crate) struct AppsArgs {
    #[command(flatten)]
    load: tools::Load,
}

const SERVER_CORE: usize = 0;
const MANY: usize = 1_000;
const DISTINCT: usize = 20;

/// One host's figures.
struct Loaded {
    name: String,
    apps: usize,
    started: Duration,
    memory: ProcessMemory,
    server: tools::Running,
}

pub(crate) fn run(args: &AppsArgs) -> Result<()> {
    let squall = tools::squall_binary()?;
    let hello_path = tools::hello_component(&squall)?;
    let hello = std::fs::read(&hello_path)?;
    let dir = tempfile::tempdir()?;
    let mut distinct = Vec::new();
    for n in 0..DISTINCT {
        let wasm = dir.path().join(format!("tenant{n}.wasm"));
        std::fs::write(
            &wasm,
            tools::with_custom_section(&hello, &format!("tenant-{n}")),
        )?;
        distinct.push(wasm);
    }
    println!(
        "hello component {} KiB; apps mounted at /appN (strip_prefix), compile cache off, server pinned to core {SERVER_CORE}",
        hello.len() / 1024
    );

    let own_binary = std::env::current_exe()?;
    let native = tools::start_pinned(SERVER_CORE, &own_binary, &["native-server"], "warn")?;
    let hosts = [
        start(&squall, "1 app", &[hello_path.as_path()], 1)?,
        start(
            &squall,
            "1000 apps, 1 component",
            &[hello_path.as_path()],
            MANY,
        )?,
        start(
            &squall,
            "1000 apps, 20 components",
            &distinct.iter().map(|p| p.as_path()).collect::<Vec<_>>(),
            MANY,
        )?,
    ];
    let one = &hosts[0];
    println!(
        "{:<26} {:>14} {:>12} {:>16} {:>16}",
        "host", "first answer", "RSS idle", "per extra app", "start per app"
    );
    for host in &hosts {
        let extra = host.apps.saturating_sub(1).max(1) as f64;
        let (per_app, start_per_app) = if host.apps > 1 {
            (
                format!(
                    "{:.1} KiB",
                    host.memory.rss_kib.saturating_sub(one.memory.rss_kib) as f64 / extra
                ),
                format!(
                    "{:.2} ms",
                    (host.started.saturating_sub(one.started)).as_secs_f64() * 1000.0 / extra
                ),
            )
        } else {
            ("-".to_owned(), "-".to_owned())
        };
        println!(
            "{:<26} {:>11.0} ms {:>8.1} MiB {:>16} {:>16}",
            host.name,
            host.started.as_secs_f64() * 1000.0,
            host.memory.rss_kib as f64 / 1024.0,
            per_app,
            start_per_app
        );
    }

    // The first app and the last: a request finds its app as fast with
    // 1,000 loaded as with one.
    println!(
        "hello throughput, wrk -t1 -c{} -d{}s on core {}, {} rounds:",
        args.load.connections, args.load.seconds, args.load.core, args.load.rounds
    );
    let mut servers = vec![("native", native.url.as_str())];
    servers.extend(
        hosts
            .iter()
            .map(|host| (host.name.as_str(), host.server.url.as_str())),
    );
    let first = tools::alternate(&servers, "/app0/", &args.load)?;
    let last_path = format!("/app{}/", MANY - 1);
    let last = tools::alternate(&servers[2..], &last_path, &args.load)?;
    println!(
        "throughput with 1000 apps (one component) / with 1 app: {:.2} on /app0, {:.2} on {last_path}",
        first[2].requests_per_second / first[1].requests_per_second,
        last[0].requests_per_second / first[1].requests_per_second,
    );
    println!(
        "throughput with 1000 apps (20 components) / with 1 app: {:.2} on /app0, {:.2} on {last_path}",
        first[3].requests_per_second / first[1].requests_per_second,
        last[1].requests_per_second / first[1].requests_per_second,
    );
    println!(
        "1 app / native: {:.2}",
        first[1].requests_per_second / first[0].requests_per_second
    );
    Ok(())
}

/// Serve `apps` apps over `components` in turn, time the last app's first
/// answer, and take the memory once the host is idle.
fn start(squall: &Path, name: &str, components: &[&Path], apps: usize) -> Result<Loaded> {
    let mut manifest = String::from("[server]\nmax_connections = 100000\n");
    for app in 0..apps {
        let source = components[app % components.len()];
        manifest.push_str(&format!(
            "\n[app.app{app}]\nsource = {:?}\nroutes = [\"/app{app}\"]\nstrip_prefix = true\n",
            source.display().to_string()
        ));
    }
    let began = Instant::now();
    let server = tools::serve_manifest(squall, SERVER_CORE, &manifest)?;
    let address = server.url.trim_start_matches("http://").to_owned();
    let last = format!("/app{}/hello/you", apps - 1);
    let started = loop {
        if tools::get(&address, &last).is_ok() {
            break began.elapsed();
        }
        if began.elapsed() > Duration::from_secs(300) {
            bail!("{last} never answered");
        }
        std::thread::sleep(Duration::from_millis(1));
    };
    // Every app answers once, then the host settles.
    for app in 0..apps {
        tools::get(&address, &format!("/app{app}/hello/you"))?;
    }
    std::thread::sleep(Duration::from_millis(1500));
    let memory = ProcessMemory::of(server.pid())?;
    Ok(Loaded {
        name: name.to_owned(),
        apps,
        started,
        memory,
        server,
    })
}

//! Many requests parked at once on a host timer: `GET /sleep/5000` on the
//! hello app, 10,000 at a time, each its own instance and connection. Prints
//! the server's resident memory per parked request.

use crate::tools::{self, ProcessMemory};
use anyhow::{Context, Result, bail};
use clap::Args;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::Semaphore;

#[derive(Args, Clone)]
pub(crate) struct ParkedArgs {
    /// Requests parked at once.
    #[arg(long, default_value_t = 10_000)]
    count: usize,
    /// How long each request sleeps in the guest, in ms.
    #[arg(long, default_value_t = 5_000)]
    sleep_ms: u64,
    /// Also park them on instances shared by this many requests
    /// (`reuse = { concurrent = N }`); 0: fresh instances only.
    #[arg(long, default_value_t = 100)]
    concurrent: u32,
}

impl Default for ParkedArgs {
    fn default() -> Self {
        ParkedArgs {
            count: 10_000,
            sleep_ms: 5_000,
            concurrent: 100,
        }
    }
}

/// Connections being opened at once, so the listen backlog never overflows.
const CONNECTS_IN_FLIGHT: usize = 256;

pub(crate) fn run(args: &ParkedArgs) -> Result<()> {
    tools::raise_fd_limit()?;
    let squall = tools::squall_binary()?;
    let hello = tools::hello_component(&squall)?;
    let manifest = format!(
        "[server]\nmax_instances = {}\n\n[app.hello]\nsource = {:?}\ntimeout = \"120s\"\n",
        args.count + 64,
        hello.display().to_string()
    );
    println!(
        "{} requests parked at once on a {} ms sleep (`GET /sleep/{}`), one connection each, servers pinned to core 0",
        args.count, args.sleep_ms, args.sleep_ms
    );
    let own_binary = std::env::current_exe()?;
    let native = tools::start_pinned(0, &own_binary, &["native-server"], "warn")?;
    let native_report = park(&native, args)?;
    drop(native);
    let native_kib = native_report.print("native hyper + tokio sleep");
    let server = tools::serve_manifest(&squall, 0, &manifest)?;
    let squall_report = park(&server, args)?;
    let squall_kib = squall_report.print("squall, a fresh instance per request");
    println!(
        "  memory per parked request ratio squall/native: {:.2}",
        squall_kib / native_kib
    );
    drop(server);
    let mut failed = squall_report.failed + native_report.failed;
    if args.concurrent > 1 {
        let shared = format!(
            "{manifest}reuse = {{ concurrent = {}, requests = 1000000 }}\n",
            args.concurrent
        );
        let server = tools::serve_manifest(&squall, 0, &shared)?;
        let shared_report = park(&server, args)?;
        let shared_kib = shared_report.print(&format!(
            "squall, instances shared by {} requests (reuse.concurrent)",
            args.concurrent
        ));
        println!(
            "  memory per parked request ratio squall shared/native: {:.2}",
            shared_kib / native_kib
        );
        failed += shared_report.failed;
    }
    println!("  (kernel socket buffers are not in RSS)");
    if failed > 0 {
        bail!("some parked requests failed");
    }
    Ok(())
}

/// What parking `count` requests on one server cost.
struct Report {
    count: usize,
    failed: usize,
    first_failure: Option<String>,
    elapsed: Duration,
    baseline: ProcessMemory,
    peak: ProcessMemory,
    connected: Vec<Duration>,
    answered: Vec<Duration>,
}

impl Report {
    /// Print it; returns the PSS per parked request, in KiB.
    fn print(&self, name: &str) -> f64 {
        let per = |peak: u64, base: u64| peak.saturating_sub(base) as f64 / self.count as f64;
        let at = |sorted: &[Duration], q: f64| {
            sorted
                .get(((sorted.len().saturating_sub(1)) as f64 * q) as usize)
                .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
        };
        println!(
            "{name}: {} ok, {} failed, all done in {:.2} s",
            self.count - self.failed,
            self.failed,
            self.elapsed.as_secs_f64()
        );
        if let Some(first) = &self.first_failure {
            println!("  first failure: {first}");
        }
        println!(
            "  connected after p50 {:.0} ms / max {:.0} ms; answered after p50 {:.0} ms / p99 {:.0} ms / max {:.0} ms",
            at(&self.connected, 0.5),
            at(&self.connected, 1.0),
            at(&self.answered, 0.5),
            at(&self.answered, 0.99),
            at(&self.answered, 1.0)
        );
        println!(
            "  RSS idle {:.1} MiB, peak {:.1} MiB => {:.1} KiB per parked request (PSS: {:.1} KiB)",
            self.baseline.rss_kib as f64 / 1024.0,
            self.peak.rss_kib as f64 / 1024.0,
            per(self.peak.rss_kib, self.baseline.rss_kib),
            per(self.peak.pss_kib, self.baseline.pss_kib)
        );
        per(self.peak.pss_kib, self.baseline.pss_kib)
    }
}

fn park(server: &tools::Running, args: &ParkedArgs) -> Result<Report> {
    let address = server.url.trim_start_matches("http://").to_owned();
    let tokio = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;

    // Warm up, then take the idle baseline.
    tokio.block_on(async {
        for _ in 0..100 {
            request(&address, 0).await?;
        }
        Ok::<_, anyhow::Error>(())
    })?;
    std::thread::sleep(Duration::from_millis(500));
    let baseline = ProcessMemory::of(server.pid())?;

    let done = Arc::new(AtomicBool::new(false));
    let sampler = {
        let done = done.clone();
        let pid = server.pid();
        std::thread::spawn(move || {
            let mut peak = ProcessMemory::default();
            while !done.load(Ordering::Relaxed) {
                if let Ok(now) = ProcessMemory::of(pid) {
                    peak = peak.max(now);
                }
                // Reading smaps_rollup takes the server's mmap lock: not too often.
                std::thread::sleep(Duration::from_millis(250));
            }
            peak
        })
    };

    let started = Instant::now();
    let outcomes = tokio.block_on(async {
        let connects = Arc::new(Semaphore::new(CONNECTS_IN_FLIGHT));
        let tasks: Vec<_> = (0..args.count)
            .map(|_| {
                let address = address.clone();
                let connects = connects.clone();
                let sleep_ms = args.sleep_ms;
                tokio::spawn(async move { parked_request(&address, sleep_ms, &connects).await })
            })
            .collect();
        let mut outcomes = Vec::with_capacity(tasks.len());
        for task in tasks {
            outcomes.push(task.await.map_err(anyhow::Error::from).and_then(|r| r));
        }
        outcomes
    });
    let elapsed = started.elapsed();
    done.store(true, Ordering::Relaxed);
    let peak = sampler
        .join()
        .map_err(|_| anyhow::anyhow!("the sampler panicked"))?;
    let failures: Vec<String> = outcomes
        .iter()
        .filter_map(|o| o.as_ref().err())
        .map(|err| format!("{err:#}"))
        .collect();
    let mut connected: Vec<Duration> = outcomes.iter().flatten().map(|p| p.connected).collect();
    let mut answered: Vec<Duration> = outcomes.iter().flatten().map(|p| p.answered).collect();
    connected.sort();
    answered.sort();
    Ok(Report {
        count: args.count,
        failed: failures.len(),
        first_failure: failures.into_iter().next(),
        elapsed,
        baseline,
        peak,
        connected,
        answered,
    })
}

/// Timings of one parked request.
struct Parked {
    connected: Duration,
    answered: Duration,
}

async fn parked_request(address: &str, sleep_ms: u64, connects: &Semaphore) -> Result<Parked> {
    let started = Instant::now();
    let permit = connects.acquire().await?;
    let mut stream = tokio::net::TcpStream::connect(address)
        .await
        .context("connect")?;
    drop(permit);
    let connected = started.elapsed();
    let request =
        format!("GET /sleep/{sleep_ms} HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await?;
    let text = String::from_utf8_lossy(&response);
    if !text.starts_with("HTTP/1.1 200") || !text.ends_with(&format!("slept {sleep_ms}ms")) {
        bail!(
            "unexpected response: {}",
            text.lines().next().unwrap_or_default()
        );
    }
    Ok(Parked {
        connected,
        answered: started.elapsed(),
    })
}

async fn request(address: &str, sleep_ms: u64) -> Result<()> {
    parked_request(address, sleep_ms, &Semaphore::new(1))
        .await
        .map(drop)
}

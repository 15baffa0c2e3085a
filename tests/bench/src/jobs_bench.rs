//! Work beyond a request, in one run:
//!
//! - queue throughput: messages a second from `queue::send_batch` (100 a
//!   call) through a trivial consumer (`bench`, batches of 100, four at
//!   once, one store write a batch) to acknowledged, with the store
//!   embedded and on Redis; beside a native tokio channel carrying as many
//!   batches from a producer task to a consumer task;
//! - schedule jitter: how late a schedule ticking every second starts its
//!   run (kept by the guest), p50 and p99, while wrk loads the same host;
//!   beside a native tokio loop ticking every second on a thread pinned
//!   to the same core, under the same load.

use crate::tools;
use anyhow::{Context, Result, bail};
use clap::Args;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

#[derive(Args)]
pub(crate) struct JobsArgs {
    /// Messages sent through each queue.
    #[arg(long, default_value_t = 20_000)]
    messages: u64,
    /// Seconds of load while the schedules tick.
    #[arg(long, default_value_t = 30)]
    seconds: u32,
}

impl Default for JobsArgs {
    fn default() -> Self {
        JobsArgs {
            messages: 20_000,
            seconds: 30,
        }
    }
}

const SERVER_CORE: usize = 0;
const LOAD_CORE: usize = 1;

pub(crate) fn run(args: &JobsArgs) -> Result<()> {
    let squall = tools::squall_binary()?;
    let guest = tools::component(&squall, "tests/guests/ticks")?;
    let app = format!(
        "[app.ticks]\nsource = {:?}\nkv = true\nkv_max_keys = 1000000\n\
         queue_max_messages = {}\n\
         [[app.ticks.consumer]]\nqueue = \"bench\"\nbatch = 100\nconcurrency = 4\n\
         [[app.ticks.schedule]]\nname = \"jitter\"\nevery = \"1s\"\n",
        guest.to_string_lossy(),
        args.messages.max(100)
    );
    let redis = tools::Redis::start()?;
    let backends = [
        ("embedded", String::new()),
        (
            "redis",
            format!(
                "[server.backend]\nkind = \"redis\"\nurl = \"redis://127.0.0.1:{}\"\n\n",
                redis.port
            ),
        ),
    ];
    println!(
        "queue throughput: {} messages, sent 100 a call, consumed 100 a batch, 4 batches at once; server on core {SERVER_CORE}",
        args.messages
    );
    let native = native_channel(args.messages);
    println!("  native tokio channel: {native:>10.0} messages/s");
    for (name, backend) in &backends {
        let server = tools::serve_manifest(&squall, SERVER_CORE, &format!("{backend}{app}"))?;
        let rate = queue_throughput(&server.url, args.messages)?;
        println!(
            "  squall {name:>8}:      {rate:>10.0} messages/s ({:.4}x native)",
            rate / native
        );
    }

    println!(
        "schedule jitter: every 1s for {}s under wrk -t1 -c64 on core {LOAD_CORE} against the same host",
        args.seconds
    );
    let server = tools::serve_manifest(&squall, SERVER_CORE, &app)?;
    let seconds = u64::from(args.seconds);
    let ticker = std::thread::spawn(move || native_ticker(seconds));
    let load = tools::wrk(
        LOAD_CORE,
        &format!("{}/count/load", server.url),
        64,
        args.seconds,
    )?;
    let address = server.url.trim_start_matches("http://");
    let squall_late = parse_lines(&tools::get(address, "/jitter")?);
    let native_late = ticker
        .join()
        .map_err(|_| anyhow::anyhow!("the native ticker panicked"))??;
    println!("  load: {:.0} req/s", load.requests_per_second);
    report("native tokio loop", &native_late);
    report("squall schedule", &squall_late);
    if let (Some(native), Some(squall)) =
        (percentile(&native_late, 99), percentile(&squall_late, 99))
    {
        println!(
            "  p99 late squall - native: {} ms",
            squall as i64 - native as i64
        );
    }
    Ok(())
}

/// Send `messages` to the `bench` queue and wait for all to be acknowledged.
fn queue_throughput(url: &str, messages: u64) -> Result<f64> {
    let address = url.trim_start_matches("http://").to_owned();
    let started = Instant::now();
    let status = std::process::Command::new("curl")
        .args(["-sS", "-X", "POST"])
        .arg(format!("{url}/send-many/bench?count={messages}"))
        .output()
        .context("cannot run curl")?;
    let answer = String::from_utf8_lossy(&status.stdout);
    if !answer.contains("none refused") {
        bail!("sending answered {answer}");
    }
    let deadline = started + Duration::from_secs(600);
    loop {
        let acked: u64 = tools::get(&address, "/count/bench-acked")?
            .trim()
            .parse()
            .unwrap_or(0);
        if acked >= messages {
            return Ok(messages as f64 / started.elapsed().as_secs_f64());
        }
        if Instant::now() > deadline {
            bail!("only {acked} of {messages} acknowledged in 10 minutes");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Messages a second through a tokio channel, in batches of 100.
fn native_channel(messages: u64) -> f64 {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a runtime");
    runtime.block_on(async {
        let (send, mut receive) = tokio::sync::mpsc::channel::<Vec<Vec<u8>>>(64);
        let started = Instant::now();
        let producer = tokio::spawn(async move {
            let mut sent = 0;
            while sent < messages {
                let batch: Vec<Vec<u8>> = (sent..messages.min(sent + 100))
                    .map(|n| n.to_string().into_bytes())
                    .collect();
                sent += batch.len() as u64;
                if send.send(batch).await.is_err() {
                    break;
                }
            }
        });
        let mut acked = 0u64;
        while let Some(batch) = receive.recv().await {
            acked += std::hint::black_box(batch).len() as u64;
        }
        let _ = producer.await;
        acked as f64 / started.elapsed().as_secs_f64()
    })
}

fn parse_lines(text: &str) -> Vec<u64> {
    text.lines()
        .filter_map(|line| line.trim().parse().ok())
        .collect()
}

fn percentile(values: &[u64], percent: usize) -> Option<u64> {
    let mut sorted = values.to_vec();
    sorted.sort_unstable();
    let index = (sorted.len() * percent).div_ceil(100).checked_sub(1)?;
    sorted.get(index).copied()
}

fn report(name: &str, late: &[u64]) {
    match (percentile(late, 50), percentile(late, 99)) {
        (Some(p50), Some(p99)) => println!(
            "  {name:>18}: {} ticks, late p50 {p50} ms, p99 {p99} ms",
            late.len()
        ),
        _ => println!("  {name:>18}: no ticks"),
    }
}

/// A tokio loop ticking every second on the epoch grid for `seconds`, on
/// a thread pinned to the server's core: how late each tick woke, in ms.
fn native_ticker(seconds: u64) -> Result<Vec<u64>> {
    tools::pin_to_core(SERVER_CORE)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()?;
    runtime.block_on(async {
        let mut late = Vec::new();
        for _ in 0..seconds {
            let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_millis();
            let next = (now / 1000 + 1) * 1000;
            tokio::time::sleep(Duration::from_millis((next - now) as u64)).await;
            let woke = SystemTime::now().duration_since(UNIX_EPOCH)?.as_millis();
            late.push(woke.saturating_sub(next) as u64);
        }
        Ok(late)
    })
}

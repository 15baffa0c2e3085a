//! A soak: mixed HTTP, WebSocket and long-poll load on one host for a long
//! while (10 minutes by default), with the server's memory sampled every
//! 10 s. What it shows: whether memory is flat once warmed up, i.e. whether
//! anything (topics, connections, queues, instances) leaks under churn.

use crate::raw_client::{handshake, http_post, read_frame, send_text};
use crate::tools::{self, ProcessMemory};
use anyhow::{Result, bail};
use clap::Args;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

#[derive(Args)]
pub(crate) struct SoakArgs {
    /// How long the load runs.
    #[arg(long, default_value_t = 600)]
    seconds: u64,
    /// Seconds counted as warm-up before memory is expected to be flat.
    #[arg(long, default_value_t = 60)]
    warm_up: u64,
}

/// Subscribed sockets that read every publish.
const SUBSCRIBERS: usize = 100;
/// Sockets that send messages and read the echoes; reconnected in turn.
const ECHOERS: usize = 50;
/// Long polls, each re-polling as soon as it is answered.
const POLLERS: usize = 50;
/// Clients publishing over HTTP as fast as they are answered.
const PUBLISHERS: usize = 4;
/// How often memory is sampled.
const SAMPLE_EVERY: Duration = Duration::from_secs(10);

pub(crate) fn run(args: &SoakArgs) -> Result<()> {
    let squall = tools::squall_binary()?;
    let sockets = tools::component(&squall, "tests/guests/sockets")?;
    let manifest = format!(
        "[server]\nmax_instances = 400\n\n[app.sockets]\nsource = {:?}\ntimeout = \"30s\"\n\
         pubsub = [\"news\"]\npubsub_history = 50\nmax_connections = 2000\n\n\
         [[app.sockets.websocket]]\nroutes = [\"/echo\", \"/count\"]\nping_interval = \"10m\"\n",
        sockets.display().to_string()
    );
    let server = tools::serve_manifest(&squall, 0, &manifest)?;
    let address = server.url.trim_start_matches("http://").to_owned();
    tools::pin_to_core(1)?;
    let tokio = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    println!(
        "soak: {} s of {PUBLISHERS} HTTP publishers, {SUBSCRIBERS} subscribed sockets, \
         {ECHOERS} echoing sockets (reconnecting), {POLLERS} long polls; server on core 0",
        args.seconds
    );
    let stop = Arc::new(AtomicBool::new(false));
    let counts = Arc::new(Counts::default());
    let started = Instant::now();
    let samples = tokio.block_on(async {
        let mut load = Vec::new();
        for _ in 0..SUBSCRIBERS {
            load.push(tokio::spawn(subscriber(address.clone(), stop.clone(), counts.clone())));
        }
        for i in 0..ECHOERS {
            load.push(tokio::spawn(echoer(address.clone(), i, stop.clone(), counts.clone())));
        }
        for _ in 0..POLLERS {
            load.push(tokio::spawn(poller(address.clone(), stop.clone(), counts.clone())));
        }
        for _ in 0..PUBLISHERS {
            load.push(tokio::spawn(publisher(address.clone(), stop.clone(), counts.clone())));
        }
        let mut samples = Vec::new();
        while started.elapsed() < Duration::from_secs(args.seconds) {
            tokio::time::sleep(SAMPLE_EVERY).await;
            let memory = ProcessMemory::of(server.pid())?;
            let at = started.elapsed().as_secs();
            println!(
                "  t={at:>4} s  RSS {:>7.1} MiB  PSS {:>7.1} MiB  publishes {:>8}  frames {:>9}  echoes {:>8}  polls {:>7}  errors {}",
                memory.rss_kib as f64 / 1024.0,
                memory.pss_kib as f64 / 1024.0,
                counts.publishes.load(Ordering::Relaxed),
                counts.frames.load(Ordering::Relaxed),
                counts.echoes.load(Ordering::Relaxed),
                counts.polls.load(Ordering::Relaxed),
                counts.errors.load(Ordering::Relaxed),
            );
            samples.push((at, memory.rss_kib));
        }
        stop.store(true, Ordering::Relaxed);
        for task in load {
            task.abort();
        }
        Ok::<_, anyhow::Error>(samples)
    })?;
    let warm: Vec<u64> = samples
        .iter()
        .filter(|(at, _)| *at >= args.warm_up)
        .map(|(_, rss)| *rss)
        .collect();
    let (Some(first), Some(last)) = (warm.first(), warm.last()) else {
        bail!("no samples after the warm-up: run longer than --warm-up");
    };
    let max = warm.iter().max().copied().unwrap_or_default();
    println!(
        "RSS after warm-up: {:.1} MiB at {} s, {:.1} MiB at the end, at most {:.1} MiB; change {:+.1}%",
        *first as f64 / 1024.0,
        args.warm_up,
        *last as f64 / 1024.0,
        max as f64 / 1024.0,
        (*last as f64 - *first as f64) * 100.0 / *first as f64
    );
    Ok(())
}

#[derive(Default)]
struct Counts {
    publishes: AtomicU64,
    frames: AtomicU64,
    echoes: AtomicU64,
    polls: AtomicU64,
    errors: AtomicU64,
}

/// A socket subscribed to the topic, reading every frame it is sent.
async fn subscriber(address: String, stop: Arc<AtomicBool>, counts: Arc<Counts>) {
    while !stop.load(Ordering::Relaxed) {
        let Ok(mut stream) = handshake(&address, "/count").await else {
            counts.errors.fetch_add(1, Ordering::Relaxed);
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        while read_frame(&mut stream).await.is_ok() {
            counts.frames.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// A socket that sends a message and waits for its echo, 20 times a
/// second, and reconnects every 200 messages (socket churn).
async fn echoer(address: String, index: usize, stop: Arc<AtomicBool>, counts: Arc<Counts>) {
    let message = format!("echo from {index}");
    while !stop.load(Ordering::Relaxed) {
        let Ok(mut stream) = handshake(&address, "/echo").await else {
            counts.errors.fetch_add(1, Ordering::Relaxed);
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        for _ in 0..200 {
            if send_text(&mut stream, &message).await.is_err()
                || read_frame(&mut stream).await.is_err()
            {
                counts.errors.fetch_add(1, Ordering::Relaxed);
                break;
            }
            counts.echoes.fetch_add(1, Ordering::Relaxed);
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// A long poll answered by every publish, re-polling from its cursor.
async fn poller(address: String, stop: Arc<AtomicBool>, counts: Arc<Counts>) {
    let mut after = 0u64;
    while !stop.load(Ordering::Relaxed) {
        match http_post(&address, &format!("/wait/news?after={after}&ms=5000"), "").await {
            Ok(body) => {
                counts.polls.fetch_add(1, Ordering::Relaxed);
                // `[[id, text], ...]`: the last id is the new cursor.
                if let Some(id) = body
                    .rsplit('[')
                    .next()
                    .and_then(|last| last.split(',').next())
                    .and_then(|id| id.trim().parse().ok())
                {
                    after = id;
                }
            }
            Err(_) => {
                counts.errors.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// Publishes over HTTP, each a new connection, as fast as answered.
async fn publisher(address: String, stop: Arc<AtomicBool>, counts: Arc<Counts>) {
    let mut n = 0u64;
    while !stop.load(Ordering::Relaxed) {
        n += 1;
        match http_post(&address, "/publish/news", &format!("news {n}")).await {
            Ok(_) => counts.publishes.fetch_add(1, Ordering::Relaxed),
            Err(_) => counts.errors.fetch_add(1, Ordering::Relaxed),
        };
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

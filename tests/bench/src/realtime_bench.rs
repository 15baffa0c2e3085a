//! Long-lived connections: idle WebSockets (memory per connection, both
//! modes), one message broadcast to every subscribed socket, and long polls
//! all woken by one publish. The server runs the `sockets` test guest,
//! pinned to core 0.

use crate::raw_client::{handshake, http_post, http_post_to, read_frame};
use crate::tools::{self, ProcessMemory, Running};
use anyhow::{Context, Result};
use clap::Args;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Semaphore;

#[derive(Args, Clone)]
pub(crate) struct RealtimeArgs {
    /// Idle hibernate-mode sockets to open (capped by the open-file limit).
    #[arg(long, default_value_t = 50_000)]
    hibernate: usize,
    /// Idle live-mode sockets to open (one instance each).
    #[arg(long, default_value_t = 10_000)]
    live: usize,
    /// Subscribed sockets for the broadcast, and parked long polls.
    #[arg(long, default_value_t = 10_000)]
    fanout: usize,
    /// Broadcasts to measure (a second apart).
    #[arg(long, default_value_t = 5)]
    broadcasts: usize,
    /// Also park the long polls on instances shared by this many requests
    /// (`reuse = { concurrent = N }`); 0: fresh instances only.
    #[arg(long, default_value_t = 100)]
    concurrent: u32,
}

impl Default for RealtimeArgs {
    fn default() -> Self {
        RealtimeArgs {
            hibernate: 50_000,
            live: 10_000,
            fanout: 10_000,
            broadcasts: 5,
            concurrent: 100,
        }
    }
}

/// Sockets left to the processes' other files under the open-file limit.
const SPARE_FILES: usize = 100;
/// The `Host` of the app whose instances are shared by requests.
const SHARED_HOST: &str = "shared.bench";
const CONNECTS_IN_FLIGHT: usize = 256;

pub(crate) fn run(args: &RealtimeArgs) -> Result<()> {
    let limit = tools::raise_fd_limit()? as usize;
    let squall = tools::squall_binary()?;
    let sockets = tools::component(&squall, "tests/guests/sockets")?;
    // Hibernating sockets hold no instance: only live sockets and parked
    // long polls need slots.
    let most = args.live.max(args.fanout);
    let manifest = format!(
        "[server]\nmax_instances = {}\nmax_connections = 100000\n\n[app.sockets]\nsource = {:?}\nmax_instances = {}\ntimeout = \"120s\"\npubsub = [\"news\"]\nmax_connections = 100000\n\n\
             [[app.sockets.websocket]]\nroutes = [\"/live\"]\nmode = \"live\"\nping_interval = \"10m\"\n\n\
             [[app.sockets.websocket]]\nroutes = [\"/echo\", \"/count\"]\nmode = \"hibernate\"\nping_interval = \"10m\"\n\n\
             [app.shared]\nsource = {:?}\nhosts = [\"{SHARED_HOST}\"]\ntimeout = \"120s\"\npubsub = [\"news\"]\nmax_instances = 200\nmax_concurrency = 100000\nreuse = {{ concurrent = {}, requests = 1000000 }}\n",
        most + 300,
        sockets.display().to_string(),
        most + 64,
        sockets.display().to_string(),
        args.concurrent.max(2),
    );
    let own_binary = std::env::current_exe()?;
    let native = tools::start_pinned(0, &own_binary, &["native-realtime"], "warn")?;
    let native_address = native.url.trim_start_matches("http://").to_owned();
    let server = tools::serve_manifest(&squall, 0, &manifest)?;
    let address = server.url.trim_start_matches("http://").to_owned();
    // The clients run on core 1, away from the servers on core 0.
    tools::pin_to_core(1)?;
    let tokio = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let cap = limit.saturating_sub(SPARE_FILES);
    println!(
        "open-file limit {limit}: at most {cap} sockets per process (server and client alike); \
         native: tokio + hyper + tokio-tungstenite with the same 4 KiB buffers"
    );

    tokio.block_on(async {
        let idle_count = args.hibernate.min(cap);
        let native_idle = idle(&native, &native_address, "/echo", "native", idle_count).await?;
        let hibernate = idle(&server, &address, "/echo", "hibernate", idle_count).await?;
        println!(
            "  idle socket memory ratio hibernate/native: {:.2}",
            hibernate / native_idle
        );
        idle(&server, &address, "/live/echo", "live", args.live.min(cap)).await?;

        let count = args.fanout.min(cap);
        let what = format!(
            "broadcast to {count} subscribed sockets, {} rounds",
            args.broadcasts
        );
        let mut native_latencies = broadcast(
            std::slice::from_ref(&native_address),
            &native_address,
            count,
            args.broadcasts,
        )
        .await?;
        let native_p99 = report(
            &format!("native {what}"),
            "deliveries",
            &mut native_latencies,
        );
        let mut latencies = broadcast(
            std::slice::from_ref(&address),
            &address,
            count,
            args.broadcasts,
        )
        .await?;
        let p99 = report(&format!("squall {what}"), "deliveries", &mut latencies);
        println!(
            "  broadcast p99 ratio squall/native: {:.2}",
            p99 / native_p99
        );

        let mut native_latencies =
            long_polls(&native_address, "bench", native.pid(), count).await?;
        let native_p99 = report(
            "native long polls woken by one publish",
            "answered",
            &mut native_latencies,
        );
        let mut latencies = long_polls(&address, "bench", server.pid(), count).await?;
        let p99 = report(
            "squall long polls woken by one publish",
            "answered",
            &mut latencies,
        );
        println!(
            "  long-poll p99 ratio squall/native: {:.2}",
            p99 / native_p99
        );
        if args.concurrent > 1 {
            let mut latencies = long_polls(&address, SHARED_HOST, server.pid(), count).await?;
            let p99 = report(
                &format!(
                    "squall long polls on instances shared by {} (reuse.concurrent)",
                    args.concurrent
                ),
                "answered",
                &mut latencies,
            );
            println!(
                "  long-poll p99 ratio squall shared/native: {:.2}",
                p99 / native_p99
            );
        }
        Ok(())
    })
}

/// Open `count` sockets on `path`, let them idle, and report the server's
/// memory per connection.
async fn idle(
    server: &Running,
    address: &str,
    path: &str,
    mode: &str,
    count: usize,
) -> Result<f64> {
    let baseline = settled_memory(server).await?;
    let started = Instant::now();
    let sockets = open_sockets(address, path, count).await?;
    let opened = started.elapsed();
    let loaded = settled_memory(server).await?;
    let per = |after: u64, before: u64| after.saturating_sub(before) as f64 / count as f64;
    println!(
        "{mode}: {} idle sockets open in {:.1} s; server RSS +{:.1} MiB => {:.1} KiB per connection (PSS {:.1} KiB)",
        sockets.len(),
        opened.as_secs_f64(),
        loaded.rss_kib.saturating_sub(baseline.rss_kib) as f64 / 1024.0,
        per(loaded.rss_kib, baseline.rss_kib),
        per(loaded.pss_kib, baseline.pss_kib)
    );
    drop(sockets);
    tokio::time::sleep(Duration::from_secs(2)).await;
    Ok(per(loaded.rss_kib, baseline.rss_kib))
}

/// Memory once the server has been quiet for a moment.
pub(crate) async fn settled_memory(server: &Running) -> Result<ProcessMemory> {
    tokio::time::sleep(Duration::from_millis(1500)).await;
    ProcessMemory::of(server.pid())
}

async fn open_sockets(address: &str, path: &str, count: usize) -> Result<Vec<TcpStream>> {
    open_sockets_on(&[address.to_owned()], path, count).await
}

/// `count` sockets on `path`, spread over `addresses` in turn.
async fn open_sockets_on(addresses: &[String], path: &str, count: usize) -> Result<Vec<TcpStream>> {
    let connects = Arc::new(Semaphore::new(CONNECTS_IN_FLIGHT));
    let tasks: Vec<_> = (0..count)
        .map(|n| {
            let address = addresses[n % addresses.len()].clone();
            let (path, connects) = (path.to_owned(), connects.clone());
            tokio::spawn(async move {
                let _permit = connects.acquire().await?;
                handshake(&address, &path).await
            })
        })
        .collect();
    let mut sockets = Vec::with_capacity(count);
    for task in tasks {
        sockets.push(task.await??);
    }
    Ok(sockets)
}

/// `rounds` publishes (on `publish_on`) to `count` subscribed sockets
/// spread over `hosts`: how long until each socket has each message.
pub(crate) async fn broadcast(
    hosts: &[String],
    publish_on: &str,
    count: usize,
    rounds: usize,
) -> Result<Vec<Duration>> {
    let sockets = open_sockets_on(hosts, "/count", count).await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let mut sockets: Vec<Option<TcpStream>> = sockets.into_iter().map(Some).collect();
    let mut latencies = Vec::with_capacity(count * rounds);
    for round in 0..rounds {
        let message = format!("breaking news {round}");
        let published = Instant::now();
        let readers: Vec<_> = sockets
            .iter_mut()
            .map(|slot| {
                let mut socket = slot.take().expect("a socket");
                let expected = message.clone();
                tokio::spawn(async move {
                    let payload = read_frame(&mut socket).await?;
                    anyhow::ensure!(payload == expected.as_bytes(), "unexpected {payload:?}");
                    Ok::<_, anyhow::Error>((published.elapsed(), socket))
                })
            })
            .collect();
        http_post(publish_on, "/publish/news", &message).await?;
        for (slot, reader) in sockets.iter_mut().zip(readers) {
            let (latency, socket) = reader.await??;
            latencies.push(latency);
            *slot = Some(socket);
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    Ok(latencies)
}

/// `count` long polls parked on one topic, woken by one publish: how long
/// each took to be answered after the publish.
async fn long_polls(
    address: &str,
    host: &str,
    server_pid: u32,
    count: usize,
) -> Result<Vec<Duration>> {
    let last: u64 = http_post_to(address, host, "/publish/news", "before")
        .await?
        .trim()
        .parse()?;
    let connects = Arc::new(Semaphore::new(CONNECTS_IN_FLIGHT));
    let (parked_tx, mut parked_rx) = tokio::sync::mpsc::channel::<()>(count);
    let published = Arc::new(tokio::sync::OnceCell::<Instant>::new());
    let waiters: Vec<_> = (0..count)
        .map(|_| {
            let (address, host, connects, parked, published) = (
                address.to_owned(),
                host.to_owned(),
                connects.clone(),
                parked_tx.clone(),
                published.clone(),
            );
            tokio::spawn(async move {
                let permit = connects.acquire().await?;
                let mut stream = TcpStream::connect(&address).await?;
                drop(permit);
                let request = format!(
                    "POST /wait/news?after={last}&ms=60000 HTTP/1.1\r\nHost: {host}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                );
                stream.write_all(request.as_bytes()).await?;
                let _ = parked.send(()).await;
                let mut response = Vec::new();
                stream.read_to_end(&mut response).await?;
                let woken = published.get().map(Instant::elapsed).unwrap_or_default();
                let text = String::from_utf8_lossy(&response);
                anyhow::ensure!(text.contains("wake up"), "unexpected: {}", text.lines().next().unwrap_or(""));
                Ok::<_, anyhow::Error>(woken)
            })
        })
        .collect();
    for _ in 0..count {
        parked_rx.recv().await.context("a waiter failed to send")?;
    }
    // Let the requests reach their guests and park: the server's CPU goes
    // quiet once every one waits (a fixed pause once let the last of them
    // arrive after the publish, and counted their parking as waking).
    let parking = tools::settled_cpu(server_pid, Duration::from_secs(60)).await?;
    println!(
        "  {count} long polls parked; the server settled after {:.1} s",
        parking.as_secs_f64()
    );
    let cpu_before = tools::cpu_ticks(server_pid)?;
    let _ = published.set(Instant::now());
    http_post_to(address, host, "/publish/news", "wake up").await?;
    let mut latencies = Vec::with_capacity(count);
    for waiter in waiters {
        latencies.push(waiter.await??);
    }
    // What bounds the wake-up: the server's CPU for it against the time
    // (clock ticks are 10 ms on Linux: USER_HZ is 100).
    let cpu_ms = tools::cpu_ticks(server_pid)?.saturating_sub(cpu_before) as f64 * 10.0;
    let wall_ms = published
        .get()
        .map(Instant::elapsed)
        .unwrap_or_default()
        .as_secs_f64()
        * 1000.0;
    println!(
        "  the server used {cpu_ms:.0} ms of CPU in the {wall_ms:.0} ms to answer them all ({:.1} µs per answer)",
        cpu_ms * 1000.0 / count as f64
    );
    Ok(latencies)
}

/// Print the latencies' p50, p99 and max; return the p99 in ms.
pub(crate) fn report(what: &str, verb: &str, latencies: &mut [Duration]) -> f64 {
    latencies.sort();
    let at = |q: f64| latencies[((latencies.len() - 1) as f64 * q) as usize].as_secs_f64() * 1000.0;
    println!(
        "{what}: {} {verb}; after the publish p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        latencies.len(),
        at(0.5),
        at(0.99),
        at(1.0)
    );
    at(0.99)
}

//! Plain TCP: the tcp test guest's `echo` listener (an instance per
//! connection) against a native tokio echo server, both pinned to core 0,
//! the clients on core 1. Ping-pong round trips of small messages over
//! many connections, bulk streaming over a few, and the memory each idle
//! connection costs.

use crate::realtime_bench::settled_memory;
use crate::tools::{self, Running};
use anyhow::{Context, Result};
use clap::Args;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Semaphore;

#[derive(Args, Clone)]
pub(crate) struct TcpArgs {
    /// Connections doing ping-pong at once.
    #[arg(long, default_value_t = 64)]
    connections: usize,
    /// Bytes per ping-pong message.
    #[arg(long, default_value_t = 64)]
    message: usize,
    /// Connections streaming bulk data.
    #[arg(long, default_value_t = 4)]
    streams: usize,
    /// Idle connections for the memory figure.
    #[arg(long, default_value_t = 5_000)]
    idle: usize,
    /// Seconds per measurement.
    #[arg(long, default_value_t = 5)]
    seconds: u64,
    /// Rounds; each measures both servers once.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
}

impl Default for TcpArgs {
    fn default() -> Self {
        TcpArgs {
            connections: 64,
            message: 64,
            streams: 4,
            idle: 5_000,
            seconds: 5,
            rounds: 3,
        }
    }
}

const CONNECTS_IN_FLIGHT: usize = 256;
const BULK_CHUNK: usize = 64 * 1024;

pub(crate) fn run(args: &TcpArgs) -> Result<()> {
    let limit = tools::raise_fd_limit()? as usize;
    let squall = tools::squall_binary()?;
    let guest = tools::component(&squall, "tests/guests/tcp")?;
    let port = free_port()?;
    let lines_port = free_port()?;
    // A bulk stream's copies count against the connection's CPU time (a
    // tick per 4 MiB), which the default would end within seconds here.
    let manifest = format!(
        "[server]\nmax_instances = {instances}\nmax_connections = 100000\n\n\
         [app.tcp]\nsource = {source:?}\npubsub = [\"news\"]\nmax_connections = 100000\n\n\
         [[app.tcp.tcp]]\nlisten = \"127.0.0.1:{port}\"\nname = \"echo\"\nmax_connections = 100000\n\
         cpu_time = \"1h\"\n\n\
         [[app.tcp.tcp]]\nlisten = \"127.0.0.1:{lines_port}\"\nname = \"lines\"\nmode = \"hibernate\"\n\
         max_connections = 100000\n",
        instances = args.idle.max(args.connections) + 64,
        source = guest.display().to_string()
    );
    let own_binary = std::env::current_exe()?;
    let native = tools::start_pinned(0, &own_binary, &["native-tcp-echo"], "warn")?;
    let native_address: SocketAddr = native.url.trim_start_matches("tcp://").parse()?;
    let server = tools::serve_manifest(&squall, 0, &manifest)?;
    let address: SocketAddr = format!("127.0.0.1:{port}").parse()?;
    tools::pin_to_core(1)?;
    let tokio = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    println!(
        "tcp echo: squall (tcp test guest, an instance per connection) vs native tokio, \
         both pinned to core 0; clients on core 1"
    );
    tokio.block_on(async {
        let servers = [("native", native_address), ("squall", address)];
        let what = format!(
            "ping-pong, {} connections, {} B messages",
            args.connections, args.message
        );
        let medians = alternate(&servers, args.rounds, |address| {
            ping_pong(address, args.connections, args.message, args.seconds)
        })
        .await?;
        println!(
            "{what}: native {:.0} round trips/s, squall {:.0} ({:.2}x native)",
            medians[0],
            medians[1],
            medians[1] / medians[0]
        );
        let what = format!("bulk echo, {} connections", args.streams);
        let medians = alternate(&servers, args.rounds, |address| {
            bulk(address, args.streams, args.seconds)
        })
        .await?;
        println!(
            "{what}: native {:.0} MiB/s, squall {:.0} MiB/s ({:.2}x native)",
            medians[0],
            medians[1],
            medians[1] / medians[0]
        );
        let count = args.idle.min(limit.saturating_sub(100));
        let native_kib = idle(&native, native_address, "native", count, Greeting::Echo).await?;
        // Hibernate first: memory the live run frees stays with the
        // allocator and would hide what hibernate connections take.
        let lines: SocketAddr = format!("127.0.0.1:{lines_port}").parse()?;
        let hibernate_kib =
            idle(&server, lines, "squall hibernate", count, Greeting::Line).await?;
        let squall_kib = idle(&server, address, "squall live", count, Greeting::Echo).await?;
        println!(
            "idle connection memory: native {native_kib:.1} KiB; squall live {squall_kib:.1} KiB \
             ({:.2}x native: the connection's instance), hibernate {hibernate_kib:.1} KiB ({:.2}x native)",
            squall_kib / native_kib,
            hibernate_kib / native_kib
        );
        Ok(())
    })
}

/// A port free now, for the manifest's listener.
fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// Warm up, then measure each server in turn `rounds` times; the medians.
async fn alternate<F, Fut>(
    servers: &[(&str, SocketAddr)],
    rounds: usize,
    measure: F,
) -> Result<Vec<f64>>
where
    F: Fn(SocketAddr) -> Fut,
    Fut: Future<Output = Result<f64>>,
{
    let mut runs = vec![Vec::new(); servers.len()];
    for round in 1..=rounds {
        for ((name, address), runs) in servers.iter().zip(&mut runs) {
            let figure = measure(*address).await?;
            println!("  round {round} {name:>7}: {figure:.0}");
            runs.push(figure);
        }
    }
    Ok(runs
        .into_iter()
        .map(|mut runs| {
            runs.sort_by(f64::total_cmp);
            runs[runs.len() / 2]
        })
        .collect())
}

/// Round trips per second: each connection sends `message` bytes and
/// waits for them back, for `seconds`.
async fn ping_pong(
    address: SocketAddr,
    connections: usize,
    message: usize,
    seconds: u64,
) -> Result<f64> {
    let trips = Arc::new(AtomicU64::new(0));
    let until = Instant::now() + Duration::from_secs(seconds);
    let tasks: Vec<_> = (0..connections)
        .map(|_| {
            let trips = trips.clone();
            tokio::spawn(async move {
                let mut stream = TcpStream::connect(address).await?;
                stream.set_nodelay(true)?;
                let out = vec![b'p'; message];
                let mut back = vec![0u8; message];
                while Instant::now() < until {
                    stream.write_all(&out).await?;
                    stream.read_exact(&mut back).await?;
                    trips.fetch_add(1, Ordering::Relaxed);
                }
                Ok::<_, anyhow::Error>(())
            })
        })
        .collect();
    let started = Instant::now();
    for task in tasks {
        task.await??;
    }
    Ok(trips.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64())
}

/// MiB per second echoed: each connection writes 64 KiB chunks while
/// reading the echo, for `seconds`.
async fn bulk(address: SocketAddr, streams: usize, seconds: u64) -> Result<f64> {
    let echoed = Arc::new(AtomicU64::new(0));
    let until = Instant::now() + Duration::from_secs(seconds);
    let tasks: Vec<_> = (0..streams)
        .map(|_| {
            let echoed = echoed.clone();
            tokio::spawn(async move {
                let stream = TcpStream::connect(address).await?;
                let (mut reader, mut writer) = stream.into_split();
                let writing = tokio::spawn(async move {
                    let chunk = vec![b'b'; BULK_CHUNK];
                    while Instant::now() < until {
                        writer.write_all(&chunk).await?;
                    }
                    writer.shutdown().await?;
                    Ok::<_, anyhow::Error>(())
                });
                let mut buffer = vec![0u8; BULK_CHUNK];
                loop {
                    let read = reader.read(&mut buffer).await?;
                    if read == 0 {
                        break;
                    }
                    echoed.fetch_add(read as u64, Ordering::Relaxed);
                }
                writing.await??;
                Ok::<_, anyhow::Error>(())
            })
        })
        .collect();
    let started = Instant::now();
    for task in tasks {
        task.await??;
    }
    Ok(echoed.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64() / (1 << 20) as f64)
}

/// How an idle connection is known to be served.
#[derive(Clone, Copy)]
enum Greeting {
    /// It echoes two bytes (its instance is up).
    Echo,
    /// It sends a line first (its open event has run).
    Line,
}

/// Open `count` connections (each answers once), let them idle, and report
/// the server's memory per connection (PSS, KiB).
async fn idle(
    server: &Running,
    address: SocketAddr,
    name: &str,
    count: usize,
    greeting: Greeting,
) -> Result<f64> {
    let baseline = settled_memory(server).await?;
    let connects = Arc::new(Semaphore::new(CONNECTS_IN_FLIGHT));
    let tasks: Vec<_> = (0..count)
        .map(|_| {
            let connects = connects.clone();
            tokio::spawn(async move {
                let _permit = connects.acquire().await?;
                let mut stream = TcpStream::connect(address).await?;
                match greeting {
                    Greeting::Echo => {
                        stream.write_all(b"hi").await?;
                        let mut back = [0u8; 2];
                        stream.read_exact(&mut back).await?;
                    }
                    Greeting::Line => {
                        let mut byte = [0u8; 1];
                        while stream.read(&mut byte).await? == 1 && byte[0] != b'\n' {}
                    }
                }
                Ok::<_, anyhow::Error>(stream)
            })
        })
        .collect();
    let mut open = Vec::with_capacity(count);
    for task in tasks {
        open.push(task.await?.context("an idle connection")?);
    }
    let loaded = settled_memory(server).await?;
    let per = |after: u64, before: u64| after.saturating_sub(before) as f64 / count as f64;
    println!(
        "  {name}: {} idle connections; server RSS +{:.1} MiB => {:.1} KiB per connection (PSS {:.1} KiB)",
        open.len(),
        loaded.rss_kib.saturating_sub(baseline.rss_kib) as f64 / 1024.0,
        per(loaded.rss_kib, baseline.rss_kib),
        per(loaded.pss_kib, baseline.pss_kib)
    );
    drop(open);
    tokio::time::sleep(Duration::from_secs(2)).await;
    Ok(per(loaded.pss_kib, baseline.pss_kib))
}

/// The native baseline: a tokio echo server, a task per connection with a
/// 16 KiB buffer (what the guest reads at once is 16 KiB too).
pub(crate) fn run_native(args: &crate::native::NativeArgs) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let listener = squall::bind(args.listen)?;
        println!("listening on tcp://{}", listener.local_addr()?);
        std::io::Write::flush(&mut std::io::stdout())?;
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                continue;
            };
            let _ = stream.set_nodelay(true);
            tokio::spawn(async move {
                let mut buffer = vec![0u8; 16 * 1024];
                loop {
                    match stream.read(&mut buffer).await {
                        Ok(0) | Err(_) => return,
                        Ok(read) => {
                            if stream.write_all(&buffer[..read]).await.is_err() {
                                return;
                            }
                        }
                    }
                }
            });
        }
    })
}

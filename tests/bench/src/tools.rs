//! Building what the benchmarks run, starting servers, and driving wrk.

use anyhow::{Context, Result, bail};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub(crate) fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn cargo() -> Command {
    Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
}

/// Build the release `squall` binary and return its path.
pub(crate) fn squall_binary() -> Result<PathBuf> {
    let output = cargo()
        .args(["build", "--release", "-p", "squall", "--bin", "squall"])
        .arg("--message-format=json-render-diagnostics")
        .current_dir(repo())
        .stderr(Stdio::inherit())
        .output()
        .context("cannot run cargo")?;
    if !output.status.success() {
        bail!("cargo build --release -p squall failed");
    }
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter_map(|message| message.get("executable")?.as_str().map(PathBuf::from))
        .find(|path| path.file_name().is_some_and(|name| name == "squall"))
        .context("cargo reported no squall executable")
}

/// Build `examples/hello` with `squall build` and return the component.
pub(crate) fn hello_component(squall: &Path) -> Result<PathBuf> {
    component(squall, "examples/hello")
}

/// Build the guest crate at `krate` (relative to the repository) with
/// `squall build` and return the component.
pub(crate) fn component(squall: &Path, krate: &str) -> Result<PathBuf> {
    let output = Command::new(squall)
        .arg("build")
        .arg(repo().join(krate))
        .env("CARGO_TARGET_DIR", repo().join("target/guests"))
        .stderr(Stdio::inherit())
        .output()
        .context("cannot run squall build")?;
    if !output.status.success() {
        bail!("squall build {krate} failed");
    }
    Ok(PathBuf::from(
        String::from_utf8_lossy(&output.stdout).trim(),
    ))
}

/// A server process, killed on drop.
pub(crate) struct Running {
    child: Child,
    pub(crate) url: String,
    /// The manifest's directory, kept while the server runs.
    _dir: Option<tempfile::TempDir>,
}

impl Running {
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Start `command` pinned to `core` and wait for its "listening on URL" line.
pub(crate) fn start_pinned(
    core: usize,
    program: &Path,
    args: &[&str],
    log: &str,
) -> Result<Running> {
    start_pinned_announcing(core, program, args, log, Announce::Stdout("listening on "))
}

/// Where a server says its URL, after which marker.
pub(crate) enum Announce {
    Stdout(&'static str),
    Stderr(&'static str),
}

/// Start `program` pinned to `core` and wait for it to announce its URL.
pub(crate) fn start_pinned_announcing(
    core: usize,
    program: &Path,
    args: &[&str],
    log: &str,
    announce: Announce,
) -> Result<Running> {
    let (on_stdout, marker) = match announce {
        Announce::Stdout(marker) => (true, marker),
        Announce::Stderr(marker) => (false, marker),
    };
    let mut child = Command::new("taskset")
        .arg("-c")
        .arg(core.to_string())
        .arg(program)
        .args(args)
        .env("RUST_LOG", log)
        .stdout(if on_stdout {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        // Its log goes to a file, as a served host's would (not to the
        // terminal, which would time the terminal).
        .stderr(if on_stdout {
            Stdio::from(tempfile::tempfile().context("a file for the server's log")?)
        } else {
            Stdio::piped()
        })
        .spawn()
        .context("cannot start the server (is taskset installed?)")?;
    let output: Box<dyn std::io::Read + Send> = if on_stdout {
        Box::new(child.stdout.take().context("no stdout")?)
    } else {
        Box::new(child.stderr.take().context("no stderr")?)
    };
    let mut lines = BufReader::new(output).lines();
    let url = loop {
        let Some(line) = lines.next() else {
            bail!("{} exited before listening", program.display());
        };
        let line = line?;
        if let Some(at) = line.find(marker) {
            let url = line[at + marker.len()..]
                .split_whitespace()
                .next()
                .unwrap_or_default()
                .trim_end_matches('/')
                .to_owned();
            break url;
        }
    };
    std::thread::spawn(move || for _ in lines {});
    Ok(Running {
        child,
        url,
        _dir: None,
    })
}

/// `squall serve` a manifest with `text` as its contents, pinned to `core`,
/// with its default logging.
pub(crate) fn serve_manifest(squall: &Path, core: usize, text: &str) -> Result<Running> {
    serve_manifest_logging(squall, core, text, "info")
}

/// [`serve_manifest`] with `RUST_LOG=log`.
pub(crate) fn serve_manifest_logging(
    squall: &Path,
    core: usize,
    text: &str,
    log: &str,
) -> Result<Running> {
    let dir = tempfile::tempdir()?;
    let manifest = dir.path().join("squall.toml");
    std::fs::write(&manifest, text)?;
    let manifest = manifest.to_string_lossy().into_owned();
    let mut server = start_pinned(
        core,
        squall,
        &["serve", &manifest, "--listen", "127.0.0.1:0"],
        log,
    )?;
    server._dir = Some(dir);
    Ok(server)
}

/// One wrk run's figures.
#[derive(Debug, Clone, Copy)]
pub(crate) struct WrkResult {
    pub(crate) requests_per_second: f64,
    pub(crate) p50_ms: f64,
    pub(crate) p99_ms: f64,
    /// Non-2xx/3xx answers and socket errors.
    pub(crate) errors: u64,
}

impl WrkResult {
    /// The server's time per request, when it was busy the whole run.
    pub(crate) fn time_per_request(&self) -> Duration {
        Duration::from_secs_f64(1.0 / self.requests_per_second)
    }
}

/// Run wrk pinned to `core` against `url`.
pub(crate) fn wrk(core: usize, url: &str, connections: u32, seconds: u32) -> Result<WrkResult> {
    wrk_with(core, url, connections, seconds, &[])
}

/// The wrk command for `url`, pinned to `core`, sending `headers`.
pub(crate) fn wrk_command(
    core: usize,
    url: &str,
    connections: u32,
    seconds: u32,
    headers: &[&str],
) -> Command {
    let mut command = Command::new("taskset");
    command
        .arg("-c")
        .arg(core.to_string())
        .args(["wrk", "-t1", "--latency"])
        .arg(format!("-c{connections}"))
        .arg(format!("-d{seconds}s"));
    for header in headers {
        command.arg("-H").arg(header);
    }
    command.arg(url);
    command
}

/// Run wrk pinned to `core` against `url` with the Lua `script` (e.g. to
/// send another method and a body).
pub(crate) fn wrk_script(
    core: usize,
    url: &str,
    connections: u32,
    seconds: u32,
    script: &Path,
) -> Result<WrkResult> {
    let mut command = wrk_command(core, url, connections, seconds, &[]);
    command.arg("-s").arg(script);
    run_wrk(command)
}

/// Run wrk pinned to `core` against `url`, sending `headers`.
pub(crate) fn wrk_with(
    core: usize,
    url: &str,
    connections: u32,
    seconds: u32,
    headers: &[&str],
) -> Result<WrkResult> {
    run_wrk(wrk_command(core, url, connections, seconds, headers))
}

/// Run a wrk `command` and read its figures.
fn run_wrk(mut command: Command) -> Result<WrkResult> {
    let output = command
        .output()
        .context("cannot run wrk: install it with `apt-get install wrk`")?;
    if !output.status.success() {
        bail!("wrk failed: {}", String::from_utf8_lossy(&output.stderr));
    }
    parse_wrk(&String::from_utf8_lossy(&output.stdout))
}

fn parse_wrk(text: &str) -> Result<WrkResult> {
    let field = |prefix: &str| {
        text.lines()
            .map(str::trim)
            .find_map(|line| line.strip_prefix(prefix).map(str::trim).map(str::to_owned))
    };
    let requests_per_second: f64 = field("Requests/sec:")
        .context("wrk printed no Requests/sec")?
        .parse()?;
    let p50_ms = parse_latency(&field("50%").context("wrk printed no p50")?)?;
    let p99_ms = parse_latency(&field("99%").context("wrk printed no p99")?)?;
    let refused: u64 = text
        .lines()
        .map(str::trim)
        .filter_map(|line| line.strip_prefix("Non-2xx or 3xx responses:"))
        .filter_map(|n| n.trim().parse::<u64>().ok())
        .sum();
    // "Socket errors: connect 0, read 1, write 0, timeout 0"
    let broken: u64 = text
        .lines()
        .map(str::trim)
        .filter_map(|line| line.strip_prefix("Socket errors:"))
        .flat_map(|counts| counts.split(','))
        .filter_map(|count| count.split_whitespace().last()?.parse::<u64>().ok())
        .sum();
    let errors = refused + broken;
    Ok(WrkResult {
        requests_per_second,
        p50_ms,
        p99_ms,
        errors,
    })
}

/// wrk prints latencies like `812.00us`, `1.23ms` or `2.01s`.
fn parse_latency(text: &str) -> Result<f64> {
    let (number, scale) = if let Some(n) = text.strip_suffix("us") {
        (n, 0.001)
    } else if let Some(n) = text.strip_suffix("ms") {
        (n, 1.0)
    } else if let Some(n) = text.strip_suffix('s') {
        (n, 1000.0)
    } else {
        bail!("unknown latency {text:?}")
    };
    Ok(number.trim().parse::<f64>()? * scale)
}

/// Resident memory of a process, in KiB: RSS, and PSS (shared pages split
/// among the processes and mappings that share them).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct ProcessMemory {
    pub(crate) rss_kib: u64,
    pub(crate) pss_kib: u64,
}

impl ProcessMemory {
    pub(crate) fn of(pid: u32) -> Result<Self> {
        let rollup = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup"))
            .with_context(|| format!("cannot read the memory of process {pid}"))?;
        let field = |name: &str| {
            rollup
                .lines()
                .find_map(|line| line.strip_prefix(name))
                .and_then(|rest| rest.split_whitespace().next()?.parse::<u64>().ok())
                .unwrap_or(0)
        };
        Ok(ProcessMemory {
            rss_kib: field("Rss:"),
            pss_kib: field("Pss:"),
        })
    }

    pub(crate) fn max(self, other: Self) -> Self {
        ProcessMemory {
            rss_kib: self.rss_kib.max(other.rss_kib),
            pss_kib: self.pss_kib.max(other.pss_kib),
        }
    }
}

/// CPU time (user + system) a process has used, in clock ticks.
pub(crate) fn cpu_ticks(pid: u32) -> Result<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("cannot read the CPU time of process {pid}"))?;
    // The fields after the command name (which may hold spaces) in parentheses.
    let after_name = stat.rsplit_once(')').map(|(_, rest)| rest).unwrap_or("");
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let field = |index: usize| fields.get(index).and_then(|f| f.parse::<u64>().ok());
    // utime and stime are fields 14 and 15 of the line, 12 and 13 here.
    match (field(11), field(12)) {
        (Some(user), Some(system)) => Ok(user + system),
        _ => bail!("cannot parse /proc/{pid}/stat"),
    }
}

/// Wait until process `pid` has been (almost) idle for 300 ms — at most
/// 2 ticks of CPU — or `limit` has passed: work it was handed is done.
pub(crate) async fn settled_cpu(pid: u32, limit: Duration) -> Result<Duration> {
    let started = std::time::Instant::now();
    let mut before = cpu_ticks(pid)?;
    while started.elapsed() < limit {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let now = cpu_ticks(pid)?;
        if now.saturating_sub(before) <= 2 {
            break;
        }
        before = now;
    }
    Ok(started.elapsed())
}

/// Raise this process's open-file limit to its hard limit (servers started
/// afterwards inherit it) and return it.
pub(crate) fn raise_fd_limit() -> Result<u64> {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let mut limit = getrlimit(Resource::Nofile);
    limit.current = limit.maximum;
    setrlimit(Resource::Nofile, limit).context("cannot raise the open-file limit")?;
    Ok(limit.current.unwrap_or(u64::MAX))
}

/// The run with the median throughput.
pub(crate) fn median_by_throughput(runs: &[WrkResult]) -> WrkResult {
    let mut sorted = runs.to_vec();
    sorted.sort_by(|a, b| a.requests_per_second.total_cmp(&b.requests_per_second));
    sorted[sorted.len() / 2]
}

/// Pin this process (and the threads it starts from now on) to `core`, so
/// the load it generates does not compete with the server under test.
pub(crate) fn pin_to_core(core: usize) -> Result<()> {
    let mut cpus = rustix::thread::CpuSet::new();
    cpus.set(core);
    rustix::thread::sched_setaffinity(None, &cpus).context("cannot pin the benchmark client")?;
    Ok(())
}

/// How `alternate` drives the servers: wrk's settings, from the command line.
#[derive(clap::Args, Clone, Debug)]
pub(crate) struct Load {
    /// Rounds; each round measures every server once.
    #[arg(long, default_value_t = 3)]
    pub(crate) rounds: u32,
    /// Seconds per measurement.
    #[arg(long, default_value_t = 5)]
    pub(crate) seconds: u32,
    /// Concurrent connections.
    #[arg(long, default_value_t = 64)]
    pub(crate) connections: u32,
    /// The core wrk is pinned to.
    #[arg(skip = 1usize)]
    pub(crate) core: usize,
}

impl Default for Load {
    fn default() -> Self {
        Load {
            rounds: 3,
            seconds: 5,
            connections: 64,
            core: 1,
        }
    }
}

/// Warm each server up, then measure `path` on each in turn, `rounds`
/// times, printing every run; return each server's median run.
pub(crate) fn alternate(
    servers: &[(&str, &str)],
    path: &str,
    load: &Load,
) -> Result<Vec<WrkResult>> {
    alternate_with(servers, path, load, |url, seconds| {
        wrk(load.core, url, load.connections, seconds)
    })
}

/// [`alternate`], each run made by `run(url, seconds)` (e.g. a wrk script).
pub(crate) fn alternate_with(
    servers: &[(&str, &str)],
    path: &str,
    load: &Load,
    run: impl Fn(&str, u32) -> Result<WrkResult>,
) -> Result<Vec<WrkResult>> {
    for (_, url) in servers {
        run(&format!("{url}{path}"), 1)?;
    }
    let mut runs: Vec<Vec<WrkResult>> = vec![Vec::new(); servers.len()];
    for round in 1..=load.rounds {
        for ((name, url), runs) in servers.iter().zip(&mut runs) {
            let result = run(&format!("{url}{path}"), load.seconds)?;
            println!(
                "  round {round} {name:>8}: {:>9.0} req/s  p50 {:>6.2} ms  p99 {:>6.2} ms  non-2xx {}",
                result.requests_per_second, result.p50_ms, result.p99_ms, result.errors
            );
            runs.push(result);
        }
    }
    let medians: Vec<WrkResult> = runs.iter().map(|runs| median_by_throughput(runs)).collect();
    for ((name, _), median) in servers.iter().zip(&medians) {
        println!(
            "  median {name:>8}: {:>9.0} req/s  p50 {:>6.2} ms  p99 {:>6.2} ms  ({:.3}x {})",
            median.requests_per_second,
            median.p50_ms,
            median.p99_ms,
            median.requests_per_second / medians[0].requests_per_second,
            servers[0].0
        );
    }
    Ok(medians)
}

/// A Redis server for the run, pinned to core 1, killed at the end.
pub(crate) struct Redis {
    child: Child,
    pub(crate) port: u16,
}

impl Redis {
    pub(crate) fn start() -> Result<Redis> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let child = Command::new("taskset")
            .args(["-c", "1", "redis-server", "--port", &port.to_string()])
            .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("cannot start redis-server (apt-get install redis-server)")?;
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Ok(Redis { child, port });
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        anyhow::bail!("redis-server did not start")
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `GET path` on a new connection: the body of a 200.
pub(crate) fn get(address: &str, path: &str) -> Result<String> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(address)?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n"
    )?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let (head, body) = response.split_once("\r\n\r\n").context("no head")?;
    anyhow::ensure!(head.starts_with("HTTP/1.1 200"), "{head}");
    Ok(body.to_owned())
}

/// `component` with a custom section `name` appended (a valid component,
/// with bytes of its own).
pub(crate) fn with_custom_section(component: &[u8], name: &str) -> Vec<u8> {
    let mut payload = leb128(name.len());
    payload.extend_from_slice(name.as_bytes());
    let mut bytes = component.to_vec();
    bytes.push(0);
    bytes.extend(leb128(payload.len()));
    bytes.extend(payload);
    bytes
}

fn leb128(mut value: usize) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let byte = (value & 0x7f) as u8;
        value >>= 7;
        if value == 0 {
            out.push(byte);
            return out;
        }
        out.push(byte | 0x80);
    }
}

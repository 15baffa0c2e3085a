//! A Python hello: `examples/python-hello` (the Tornado-shaped SDK, built
//! with componentize-py) served by squall, beside Tornado itself serving the
//! same handler natively (CPython, one process), in one run. Prints the
//! component's size and build time, the time to a first answer, memory per
//! request parked in a fresh instance, and throughput fresh and with reuse.
//! Tornado comes from PyPI into `target/bench-tornado` on first use.

use crate::tools::{self, ProcessMemory};
use anyhow::{Context, Result, bail};
use clap::Args;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

#[derive(Args, Clone, Default)]
pub(crate) struct PythonArgs {
    #[command(flatten)]
    load: tools::Load,
    /// Requests parked at once to measure memory per fresh instance.
    #[arg(long, default_value_t = 100)]
    parked: usize,
}

const SERVER_CORE: usize = 0;
const TORNADO: &str = "tornado==6.5.2";
const MEMORY: &str = "memory = \"64MiB\"";
const REUSE: &str = "reuse = { requests = 100000, idle = \"10s\" }";
const SHARED: &str = "reuse = { requests = 1000000, concurrent = 16, idle = \"10s\" }";

/// Tornado serving what examples/python-hello serves at `/` and `/nap`.
const TORNADO_APP: &str = r#"
import asyncio
import tornado.httpserver, tornado.netutil, tornado.web

class MainHandler(tornado.web.RequestHandler):
    async def get(self):
        self.write("Hello, world")

class NapHandler(tornado.web.RequestHandler):
    async def get(self):
        await asyncio.sleep(float(self.get_argument("s", "0.05")))
        self.write("slept True")

async def main():
    app = tornado.web.Application([(r"/", MainHandler), (r"/nap", NapHandler)])
    sockets = tornado.netutil.bind_sockets(0, "127.0.0.1")
    tornado.httpserver.HTTPServer(app).add_sockets(sockets)
    print("listening on http://127.0.0.1:%d" % sockets[0].getsockname()[1], flush=True)
    await asyncio.Event().wait()

asyncio.run(main())
"#;

pub(crate) fn run(args: &PythonArgs) -> Result<()> {
    let squall = tools::squall_binary()?;
    let python = tornado_python()?;
    let (component, built_in) = build_from_scratch(&squall)?;
    let size = std::fs::metadata(&component)?.len();
    println!(
        "examples/python-hello: component {:.1} MiB, built in {:.1} s (componentize-py, from scratch)",
        size as f64 / (1 << 20) as f64,
        built_in.as_secs_f64()
    );
    let app_dir = tempfile::tempdir()?;
    let script = app_dir.path().join("tornado_hello.py");
    std::fs::write(&script, TORNADO_APP)?;
    let script_arg = script.to_string_lossy().into_owned();
    let wasm = component.to_string_lossy().into_owned();
    // One compile cache for every server of the run, so a restart finds it.
    let cache = app_dir.path().join("cache").to_string_lossy().into_owned();
    let manifest = |reuse: &str| {
        format!(
            "[server]\ncache_dir = {cache:?}\n[app.hello]\nsource = {wasm:?}\n{MEMORY}\n{reuse}\n"
        )
    };

    // Time to a first answer: process start to the first 200.
    let started = Instant::now();
    let tornado = tools::start_pinned(SERVER_CORE, &python, &[&script_arg], "warn")?;
    first_answer(&tornado.url)?;
    let tornado_first = started.elapsed();
    // The first start compiles the new component; the second finds it in
    // the compile cache.
    let mut squall_first = Vec::new();
    let mut fresh = None;
    for _ in 0..2 {
        drop(fresh.take());
        let started = Instant::now();
        let server = tools::serve_manifest_logging(&squall, SERVER_CORE, &manifest(""), "warn")?;
        first_answer(&server.url)?;
        squall_first.push(started.elapsed().as_secs_f64() * 1000.0);
        fresh = Some(server);
    }
    let fresh = fresh.context("a server")?;
    println!(
        "time to a first answer (process start to first 200): squall {:.0} ms compiling the \
         component, {:.0} ms from the compile cache; tornado {:.0} ms",
        squall_first[0],
        squall_first[1],
        tornado_first.as_secs_f64() * 1000.0
    );

    // Memory per request parked on a 10 s timer, one instance each.
    let squall_kib = parked_kib(&fresh, args.parked)?;
    let tornado_kib = parked_kib(&tornado, args.parked)?;
    println!(
        "memory per parked request ({} at once, PSS): squall fresh instance {:.0} KiB, tornado {:.1} KiB",
        args.parked, squall_kib, tornado_kib
    );

    let reusing = tools::serve_manifest_logging(&squall, SERVER_CORE, &manifest(REUSE), "warn")?;
    let sharing = tools::serve_manifest_logging(&squall, SERVER_CORE, &manifest(SHARED), "warn")?;
    let bare = build_bare(app_dir.path())?.to_string_lossy().into_owned();
    let bare_manifest = format!(
        "[server]\ncache_dir = {cache:?}\n[app.bare]\nsource = {bare:?}\n{MEMORY}\n{SHARED}\n"
    );
    let bare = tools::serve_manifest_logging(&squall, SERVER_CORE, &bare_manifest, "warn")?;
    println!(
        "hello throughput, servers pinned to core {SERVER_CORE}, wrk -t1 -c{} -d{}s on core {} \
         (squall with RUST_LOG=warn: no line per request, as tornado writes none)",
        args.load.connections, args.load.seconds, args.load.core
    );
    let servers = [
        ("tornado", tornado.url.as_str()),
        ("fresh", fresh.url.as_str()),
        ("reuse", reusing.url.as_str()),
        ("shared", sharing.url.as_str()),
        ("bare", bare.url.as_str()),
    ];
    let medians = tools::alternate(&servers, "/", &args.load)?;
    for (index, what) in [
        (1, "a fresh instance per request"),
        (2, "reuse, one request at a time per instance"),
        (3, "reuse, 16 requests sharing an instance"),
    ] {
        println!(
            "throughput ratio squall ({what})/tornado: {:.2}",
            medians[index].requests_per_second / medians[0].requests_per_second
        );
    }
    println!(
        "throughput ratio squall bare bindings (no SDK, shared)/tornado: {:.2}; \
         the SDK keeps {:.2} of the bare bindings' throughput",
        medians[4].requests_per_second / medians[0].requests_per_second,
        medians[3].requests_per_second / medians[4].requests_per_second
    );
    Ok(())
}

/// tests/bench/python-bare (a hello over the generated bindings, no SDK),
/// built with the componentize-py `squall build` used.
fn build_bare(out: &Path) -> Result<PathBuf> {
    let component = out.join("bare.wasm");
    let repo = tools::repo();
    let mut componentize = Command::new(squall::testing::componentize_py()?);
    componentize
        .arg("-d")
        .arg(repo.join("wit"))
        .args(["-w", "app", "componentize", "app", "-p"])
        .arg(repo.join("tests/bench/python-bare"))
        .arg("-o")
        .arg(&component)
        .current_dir(out);
    run_checked(&mut componentize)?;
    Ok(component)
}

/// A Python with Tornado: `target/bench-tornado`, made on first use.
fn tornado_python() -> Result<PathBuf> {
    let venv = tools::repo().join("target/bench-tornado");
    let python = venv.join("bin/python3");
    if !python.is_file() {
        run_checked(Command::new("python3").arg("-m").arg("venv").arg(&venv))?;
        run_checked(Command::new(venv.join("bin/pip")).args(["install", "--quiet", TORNADO]))?;
    }
    Ok(python)
}

fn run_checked(command: &mut Command) -> Result<()> {
    let status = command
        .status()
        .with_context(|| format!("cannot run {command:?}"))?;
    if !status.success() {
        bail!("{command:?} failed");
    }
    Ok(())
}

/// `squall build` of a fresh copy of examples/python-hello: the component
/// and how long the build took.
fn build_from_scratch(squall: &Path) -> Result<(PathBuf, Duration)> {
    let copy = tools::repo().join("target/bench-python-hello");
    let _ = std::fs::remove_dir_all(&copy);
    std::fs::create_dir_all(&copy)?;
    for file in ["app.py", "squall.toml"] {
        std::fs::copy(
            tools::repo().join("examples/python-hello").join(file),
            copy.join(file),
        )?;
    }
    let started = Instant::now();
    let output = Command::new(squall)
        .arg("build")
        .arg(&copy)
        .output()
        .context("cannot run squall build")?;
    let took = started.elapsed();
    if !output.status.success() {
        bail!(
            "squall build python-hello failed:\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok((
        PathBuf::from(String::from_utf8_lossy(&output.stdout).trim()),
        took,
    ))
}

fn first_answer(url: &str) -> Result<()> {
    let address = url.trim_start_matches("http://");
    let answer = tools::get(address, "/")?;
    if !answer.contains("Hello, world") {
        bail!("unexpected first answer from {url}: {answer}");
    }
    Ok(())
}

/// Park `count` requests on `/nap?s=10`; the PSS they add, per request.
fn parked_kib(server: &tools::Running, count: usize) -> Result<f64> {
    use std::io::{Read, Write};
    let address = server.url.trim_start_matches("http://").to_owned();
    for _ in 0..20 {
        first_answer(&server.url)?;
    }
    let idle = ProcessMemory::of(server.pid())?;
    let mut streams = Vec::with_capacity(count);
    for _ in 0..count {
        let mut stream = std::net::TcpStream::connect(&address)?;
        stream.write_all(b"GET /nap?s=10 HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n")?;
        streams.push(stream);
    }
    // Sample while they are parked (they answer after 10 s).
    let mut peak = idle;
    let until = Instant::now() + Duration::from_secs(8);
    while Instant::now() < until {
        peak = peak.max(ProcessMemory::of(server.pid())?);
        std::thread::sleep(Duration::from_millis(250));
    }
    for mut stream in streams {
        let mut answer = String::new();
        stream.read_to_string(&mut answer)?;
        if !answer.ends_with("slept True") {
            bail!(
                "a parked request failed: {}",
                answer.lines().next().unwrap_or_default()
            );
        }
    }
    Ok(peak.pss_kib.saturating_sub(idle.pss_kib) as f64 / count as f64)
}

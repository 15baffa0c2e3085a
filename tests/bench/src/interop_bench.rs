//! The same standard wasi:http hello served by Squall and by `wasmtime
//! serve` 48.0.8, against native hyper, in one run. Needs the `wasmtime`
//! CLI: `cargo install wasmtime-cli --version 48.0.8 --locked` (or set
//! `WASMTIME` to its path).

use crate::instance_bench;
use crate::tools::{self, Announce};
use anyhow::{Context, Result, bail};
use clap::Args;
use std::path::{Path, PathBuf};
use std::process::Command;

#[derive(Args, Clone, Default)]
pub(crate) struct InteropArgs {
    #[command(flatten)]
    load: tools::Load,
}

const SERVER_CORE: usize = 0;

pub(crate) fn run(args: &InteropArgs) -> Result<()> {
    let wasmtime = wasmtime_cli()?;
    let squall = tools::squall_binary()?;
    let p2 = tools::component(&squall, "tests/guests/wasi-p2")?;
    let p3 = standard_hello(&squall)?;
    println!(
        "standard wasi:http hello, servers pinned to core {SERVER_CORE}, wrk -t1 -c{} -d{}s on core {}",
        args.load.connections, args.load.seconds, args.load.core
    );
    let p3_flags = ["-Scli", "-Sp3", "-Wcomponent-model-async"];
    let p3_fresh = [
        "-Scli",
        "-Sp3",
        "-Wcomponent-model-async",
        "--max-instance-reuse-count",
        "1",
        "--max-instance-concurrent-reuse-count",
        "1",
    ];
    // What, which component, wasmtime serve's flags, squall's reuse line.
    let comparisons: [(&str, &Path, &[&str], Option<&str>); 5] = [
        (
            "WASI 0.2 proxy (tests/guests/wasi-p2; a fresh instance per request in both)",
            &p2,
            &["-Scli"],
            None,
        ),
        (
            "WASI 0.3 service (examples/hello built --wasi-http; a fresh instance per request in both)",
            &p3,
            &p3_fresh,
            None,
        ),
        (
            "WASI 0.3 service, wasmtime serve with its default instance reuse (128 requests per \
             instance, 16 at once) against squall's fresh instance per request",
            &p3,
            &p3_flags,
            None,
        ),
        (
            "WASI 0.3 service, both reusing instances (wasmtime serve's default; squall \
             `reuse = { requests = 128 }`, one request at a time per instance)",
            &p3,
            &p3_flags,
            Some("reuse = { requests = 128, idle = \"10s\" }"),
        ),
        (
            "WASI 0.3 service, both sharing instances between requests in flight \
             (wasmtime serve's default; squall `reuse = { requests = 128, concurrent = 16 }`)",
            &p3,
            &p3_flags,
            Some("reuse = { requests = 128, concurrent = 16, idle = \"10s\" }"),
        ),
    ];
    for (what, component, flags, reuse) in comparisons {
        compare(args, &squall, &wasmtime, what, component, flags, reuse)?;
    }
    Ok(())
}

/// Native, squall and `wasmtime serve` (with `wasmtime_flags`) serving
/// `component`, alternately; squall with the manifest line `squall_reuse`
/// if given, else a fresh instance per request.
fn compare(
    args: &InteropArgs,
    squall: &Path,
    wasmtime: &Path,
    what: &str,
    component: &Path,
    wasmtime_flags: &[&str],
    squall_reuse: Option<&str>,
) -> Result<()> {
    println!("\n{what}:");
    let own_binary = std::env::current_exe()?;
    let native = tools::start_pinned(SERVER_CORE, &own_binary, &["native-server"], "warn")?;
    let wasm = component.to_string_lossy().into_owned();
    let squall_server = tools::serve_manifest_logging(
        squall,
        SERVER_CORE,
        &format!(
            "[app.hello]\nsource = {wasm:?}\n{}\n",
            squall_reuse.unwrap_or_default()
        ),
        "warn",
    )?;
    let mut serve_args = vec!["serve"];
    serve_args.extend_from_slice(wasmtime_flags);
    serve_args.extend_from_slice(&["--addr", "127.0.0.1:0", &wasm]);
    let wasmtime_server = tools::start_pinned_announcing(
        SERVER_CORE,
        wasmtime,
        &serve_args,
        "warn",
        Announce::Stderr("Serving HTTP on "),
    )?;
    let servers = [
        ("native", native.url.as_str()),
        ("squall", squall_server.url.as_str()),
        ("wasmtime", wasmtime_server.url.as_str()),
    ];
    let medians = tools::alternate(&servers, "/", &args.load)?;
    println!(
        "  throughput ratio squall/wasmtime-serve: {:.2}",
        medians[1].requests_per_second / medians[2].requests_per_second
    );
    // Only where both give each request a fresh instance: the floor is
    // squall's fresh request.
    let both_fresh = squall_reuse.is_none()
        && (wasmtime_flags == ["-Scli"] || wasmtime_flags.contains(&"--max-instance-reuse-count"));
    if both_fresh {
        // The servers are idle now: the in-process floor runs on their core.
        tools::pin_to_core(SERVER_CORE)?;
        let in_process = instance_bench::in_process_get(component, "", 1)?;
        instance_bench::print_floor(
            "a fresh instance per request",
            "wasmtime serve",
            medians[2].time_per_request(),
            medians[0].time_per_request(),
            in_process,
        );
    }
    Ok(())
}

/// `examples/hello` built as a standard component, in its own target dir.
fn standard_hello(squall: &Path) -> Result<PathBuf> {
    let output = Command::new(squall)
        .args(["build", "--wasi-http"])
        .arg(tools::repo().join("examples/hello"))
        .env("CARGO_TARGET_DIR", tools::repo().join("target/guests-std"))
        .output()
        .context("cannot run squall build")?;
    if !output.status.success() {
        bail!(
            "squall build --wasi-http examples/hello failed:\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(PathBuf::from(
        String::from_utf8_lossy(&output.stdout).trim(),
    ))
}

/// The `wasmtime` CLI to compare with: `$WASMTIME`, else the one on PATH.
fn wasmtime_cli() -> Result<PathBuf> {
    let path =
        std::env::var_os("WASMTIME").map_or_else(|| PathBuf::from("wasmtime"), PathBuf::from);
    let output = Command::new(&path).arg("--version").output().with_context(|| {
        format!(
            "cannot run {}: install it with `cargo install wasmtime-cli --version 48.0.8 --locked` \
             (or set WASMTIME to its path)",
            path.display()
        )
    })?;
    let version = String::from_utf8_lossy(&output.stdout);
    if !version.contains("48.0.8") {
        bail!(
            "{} is {}; the comparison wants wasmtime 48.0.8",
            path.display(),
            version.trim()
        );
    }
    Ok(path)
}

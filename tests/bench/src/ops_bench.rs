//! Operations: how fast the host starts with 20 apps, with an empty compile
//! cache and a warm one (against the native hello server's start, same
//! run), and an app swapped under load: failed requests, and the time from
//! the new component being put in place to the new version answering.

use crate::tools;
use anyhow::{Context, Result, bail};
use clap::Args;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[derive(Args, Default)]
pub(crate) struct OpsArgs {
    #[command(flatten)]
    load: tools::Load,
}

const SERVER_CORE: usize = 0;
const APPS: usize = 20;

pub(crate) fn run(args: &OpsArgs) -> Result<()> {
    let squall = tools::squall_binary()?;
    let hello = std::fs::read(tools::hello_component(&squall)?)?;
    let dir = tempfile::tempdir()?;

    // 20 distinct components (hello with a custom section naming each), so
    // that a cold start compiles 20 times, as 20 tenants' apps would.
    let mut manifest = String::from("[server]\ncache_dir = \"cache\"\n");
    for app in 0..APPS {
        let wasm = dir.path().join(format!("app{app}.wasm"));
        std::fs::write(
            &wasm,
            tools::with_custom_section(&hello, &format!("tenant-{app}")),
        )?;
        manifest.push_str(&format!(
            "\n[app.app{app}]\nsource = \"app{app}.wasm\"\nroutes = [\"/app{app}\"]\nstrip_prefix = true\n"
        ));
    }
    let manifest_path = dir.path().join("squall.toml");
    std::fs::write(&manifest_path, manifest)?;

    let own_binary = std::env::current_exe()?;
    let native = time_to_first_response(&own_binary, &["native-server"], "/")?;
    let manifest_arg = manifest_path.to_string_lossy().into_owned();
    let serve = ["serve", manifest_arg.as_str()];
    let last_app = format!("/app{}/hello/you", APPS - 1);
    let cold = time_to_first_response(&squall, &serve, &last_app)?;
    let warm = time_to_first_response(&squall, &serve, &last_app)?;
    println!("start to first response, {APPS} apps, server pinned to core {SERVER_CORE}:");
    println!("  native hello (1 app, no wasm)  {:>8.1} ms", ms(native));
    println!("  squall, compile cache empty    {:>8.1} ms", ms(cold));
    println!("  squall, compile cache warm     {:>8.1} ms", ms(warm));
    println!(
        "warm start ratio squall/native: {:.2}; cold/warm: {:.1}",
        ms(warm) / ms(native),
        ms(cold) / ms(warm)
    );

    swap_under_load(&squall, &args.load)
}

/// Serve `versioned` v1 with `--watch`, load it with wrk, put v2 in place
/// halfway, and count what failed.
fn swap_under_load(squall: &Path, load: &tools::Load) -> Result<()> {
    let dir = tempfile::tempdir()?;
    let app = dir.path().join("app.wasm");
    let v1 = versioned(squall, 1)?;
    let v2 = versioned(squall, 2)?;
    std::fs::copy(&v1, &app)?;
    let manifest = dir.path().join("squall.toml");
    std::fs::write(
        &manifest,
        "[app.versioned]\nsource = \"app.wasm\"\nroutes = [\"/\"]\n",
    )?;
    let manifest_arg = manifest.to_string_lossy().into_owned();
    let server = tools::start_pinned(
        SERVER_CORE,
        squall,
        &["serve", &manifest_arg, "--watch", "--listen", "127.0.0.1:0"],
        "warn",
    )?;
    let address = server.url.trim_start_matches("http://").to_owned();
    let steady = tools::wrk(load.core, &server.url, load.connections, 5)?;

    let seconds = 10;
    let wrk = {
        let url = server.url.clone();
        let (core, connections) = (load.core, load.connections);
        std::thread::spawn(move || tools::wrk(core, &url, connections, seconds))
    };
    std::thread::sleep(Duration::from_secs(3));
    let staging = dir.path().join("app.staging");
    std::fs::copy(&v2, &staging)?;
    let replaced = Instant::now();
    std::fs::rename(&staging, &app)?;
    let switched = loop {
        if tools::get(&address, "/").unwrap_or_default() == "v2" {
            break replaced.elapsed();
        }
        if replaced.elapsed() > Duration::from_secs(60) {
            bail!("the new version never answered");
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let during = wrk
        .join()
        .map_err(|_| anyhow::anyhow!("the wrk thread panicked"))??;
    println!(
        "swap under load (wrk -t1 -c{} -d{seconds}s, v2 put in place at 3 s):",
        load.connections
    );
    println!(
        "  failed requests: {} (non-2xx or socket errors); steady run: {}",
        during.errors, steady.errors
    );
    println!(
        "  new version answering {:.0} ms after the file was replaced (300 ms of it the watcher's quiet period)",
        ms(switched)
    );
    println!(
        "  throughput over the swap run vs steady: {:.0} vs {:.0} req/s, ratio {:.2}",
        during.requests_per_second,
        steady.requests_per_second,
        during.requests_per_second / steady.requests_per_second
    );
    Ok(())
}

/// The versioned test guest built to answer `v{version}`.
fn versioned(squall: &Path, version: u32) -> Result<std::path::PathBuf> {
    let output = Command::new(squall)
        .arg("build")
        .arg(tools::repo().join("tests/guests/versioned"))
        .env("CARGO_TARGET_DIR", tools::repo().join("target/guests"))
        .env("SQUALL_TEST_VERSION", version.to_string())
        .stderr(Stdio::inherit())
        .output()
        .context("cannot run squall build")?;
    if !output.status.success() {
        bail!("squall build versioned failed");
    }
    let built = std::path::PathBuf::from(String::from_utf8_lossy(&output.stdout).trim());
    let copy = built.with_file_name(format!("versioned-v{version}.wasm"));
    std::fs::copy(&built, &copy)?;
    Ok(copy)
}

/// Start `program ARGS --listen 127.0.0.1:0` pinned to the server core and
/// time it until `path` answers 200; then stop it.
fn time_to_first_response(program: &Path, args: &[&str], path: &str) -> Result<Duration> {
    let started = Instant::now();
    let mut child = Command::new("taskset")
        .arg("-c")
        .arg(SERVER_CORE.to_string())
        .arg(program)
        .args(args)
        .args(["--listen", "127.0.0.1:0"])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .context("cannot start the server")?;
    let stdout = child.stdout.take().context("stdout piped")?;
    let mut lines = BufReader::new(stdout).lines();
    let address = loop {
        let line = lines
            .next()
            .context("the server exited before listening")??;
        if let Some(rest) = line.split("listening on ").nth(1) {
            let url = rest.split_whitespace().next().context("a URL")?;
            break url
                .trim_start_matches("http://")
                .trim_end_matches('/')
                .to_owned();
        }
    };
    let answered = loop {
        if tools::get(&address, path).is_ok() {
            break started.elapsed();
        }
        if started.elapsed() > Duration::from_secs(120) {
            bail!("{path} never answered");
        }
        std::thread::sleep(Duration::from_millis(1));
    };
    let _ = child.kill();
    let _ = child.wait();
    Ok(answered)
}

fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

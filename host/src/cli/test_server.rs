//! `squall test-server APP` (hidden): what the `squall-test` kit runs for
//! each `TestServer`. The kit links no host (a user's first `cargo test`
//! would compile wasmtime for minutes); it runs this binary instead.
//!
//! The kit writes one JSON line on stdin (config values, secrets, and the
//! components an earlier server of the same test binary built); this serves
//! the app on free loopback ports with its state in a temporary directory,
//! answers one JSON line on stdout (the addresses, what it built), and
//! stops when stdin closes: a test binary that ends, however it ends,
//! leaves no server behind.

use crate::testing::{TestServer, TestSettings, built_so_far, use_built};
use anyhow::{Context, Result};
use clap::Args;
use serde::{Deserialize, Serialize};
use std::io::{BufRead, Read, Write};
use std::net::SocketAddr;
use std::path::PathBuf;

/// Serve an app for the squall-test kit (not for people).
#[derive(Debug, Args)]
pub(super) struct TestServerArgs {
    /// A guest crate directory, a Python app, a .wasm component, or a squall.toml.
    app: PathBuf,
}

/// The kit's line: what the test gives the apps, and what is already built.
#[derive(Deserialize)]
struct Request {
    #[serde(default)]
    config: Vec<(String, String)>,
    #[serde(default)]
    secrets: Vec<(String, String)>,
    #[serde(default)]
    built: Vec<(PathBuf, PathBuf)>,
}

/// The answer once listening.
#[derive(Serialize)]
struct Ready {
    address: SocketAddr,
    tcp: Vec<(String, SocketAddr)>,
    built: Vec<(PathBuf, PathBuf)>,
}

/// The kit's line is small; more is not a kit.
const MAX_REQUEST_BYTES: u64 = 1 << 20;

pub(super) fn run(args: TestServerArgs) -> Result<()> {
    let stdin = std::io::stdin();
    let mut line = String::new();
    stdin
        .lock()
        .take(MAX_REQUEST_BYTES)
        .read_line(&mut line)
        .context("cannot read the test kit's settings")?;
    let request: Request =
        serde_json::from_str(&line).context("the test kit's settings are not valid")?;
    let mut settings = TestSettings::default();
    for (key, value) in &request.config {
        settings = settings.config(key, value);
    }
    for (key, value) in &request.secrets {
        settings = settings.secret(key, value);
    }
    for (source, component) in request.built {
        use_built(source, component);
    }
    let server = TestServer::start_with(&args.app, &settings)?;
    let ready = Ready {
        address: server.address(),
        tcp: server.tcp_addresses().to_vec(),
        built: built_so_far(),
    };
    let mut stdout = std::io::stdout().lock();
    serde_json::to_writer(&mut stdout, &ready)?;
    stdout.write_all(b"\n")?;
    stdout.flush()?;
    // Until the kit closes stdin (or ends): anything it writes is ignored.
    std::io::copy(&mut stdin.lock(), &mut std::io::sink())?;
    drop(server);
    Ok(())
}

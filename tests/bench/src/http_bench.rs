//! Hello world over HTTP: native hyper vs `squall serve`, same run, alternating.

use crate::tools;
use anyhow::Result;
use clap::Args;

#[derive(Args)]
pub(crate) struct HttpArgs {
    #[command(flatten)]
    load: tools::Load,
    /// RUST_LOG for squall: `info` (its default) writes a line per
    /// request, `warn` none.
    #[arg(long, default_value = "info")]
    squall_log: String,
}

impl Default for HttpArgs {
    fn default() -> Self {
        HttpArgs {
            load: tools::Load::default(),
            squall_log: "info".to_owned(),
        }
    }
}

const SERVER_CORE: usize = 0;

pub(crate) fn run(args: &HttpArgs) -> Result<()> {
    let squall = tools::squall_binary()?;
    let hello = tools::hello_component(&squall)?;
    let own_binary = std::env::current_exe()?;
    let native = tools::start_pinned(SERVER_CORE, &own_binary, &["native-server"], "warn")?;
    let hello_arg = hello.to_string_lossy().into_owned();
    let squall_server = tools::start_pinned(
        SERVER_CORE,
        &squall,
        &["serve", &hello_arg, "--listen", "127.0.0.1:0"],
        &args.squall_log,
    )?;
    println!(
        "hello world, server pinned to core {SERVER_CORE}, wrk -t1 -c{} -d{}s pinned to core {}",
        args.load.connections, args.load.seconds, args.load.core
    );
    println!(
        "squall runs with RUST_LOG={} ({}), a fresh instance per request",
        args.squall_log,
        if args.squall_log == "warn" {
            "no per-request log line"
        } else {
            "a log line per request, to a file: the default"
        }
    );

    // The same component with opt-in instance reuse.
    let reusing = tools::serve_manifest(
        &squall,
        SERVER_CORE,
        &format!(
            "[app.hello]\nsource = {hello_arg:?}\nreuse = {{ requests = 100000, idle = \"10s\" }}\n"
        ),
    )?;

    // And with requests sharing instances (wrk's connections on one).
    let sharing = tools::serve_manifest(
        &squall,
        SERVER_CORE,
        &format!(
            "[app.hello]\nsource = {hello_arg:?}\nreuse = {{ requests = 1000000, concurrent = 100 }}\n"
        ),
    )?;

    let servers = [
        ("native", native.url.as_str()),
        ("squall", squall_server.url.as_str()),
        ("reuse", reusing.url.as_str()),
        ("shared", sharing.url.as_str()),
    ];
    let medians = tools::alternate(&servers, "/", &args.load)?;
    let ratio = medians[1].requests_per_second / medians[0].requests_per_second;
    let reuse_ratio = medians[2].requests_per_second / medians[0].requests_per_second;
    let shared_ratio = medians[3].requests_per_second / medians[0].requests_per_second;
    println!("throughput ratio squall/native: {ratio:.2}");
    println!("throughput ratio squall with reuse/native: {reuse_ratio:.2}");
    println!(
        "throughput ratio squall with reuse, requests sharing instances (concurrent = 100)/native: {shared_ratio:.2}"
    );
    Ok(())
}

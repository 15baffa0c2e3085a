//! Hello world over HTTP: native hyper vs `squall serve`, same run, alternating.

use crate::{instance_bench, tools};
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
/// The app lines of the two ways of reusing instances measured.
const REUSE: &str = "reuse = { requests = 100000, idle = \"10s\" }";
const SHARED: &str = "reuse = { requests = 1000000, concurrent = 100 }";

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
        &format!("[app.hello]\nsource = {hello_arg:?}\n{REUSE}\n"),
    )?;

    // And with requests sharing instances (wrk's connections on one).
    let sharing = tools::serve_manifest(
        &squall,
        SERVER_CORE,
        &format!("[app.hello]\nsource = {hello_arg:?}\n{SHARED}\n"),
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
    // What bounds each, measured now that the servers are idle, on their
    // core: squall's own work per request in process, on top of native's;
    // requests sharing instances sent as many at once as wrk keeps open.
    tools::pin_to_core(SERVER_CORE)?;
    let native_request = medians[0].time_per_request();
    for (how, app_lines, at_once) in [
        ("a fresh instance per request", "", 1),
        ("reuse, one request at a time", REUSE, 1),
        (
            "reuse, requests sharing instances",
            SHARED,
            args.load.connections,
        ),
    ] {
        let in_process = instance_bench::in_process_get(&hello, app_lines, at_once)?;
        instance_bench::print_floor(how, "native", native_request, native_request, in_process);
    }
    Ok(())
}

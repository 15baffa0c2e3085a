//! Fanout throughput: each request fetches the same upstream three times at
//! once and answers a JSON summary. `squall serve examples/fanout` against
//! a native hyper proxy doing the same work, same run, alternating.

use crate::tools;
use anyhow::Result;
use clap::Args;

#[derive(Args, Clone)]
pub(crate) struct FanoutArgs {
    #[command(flatten)]
    load: tools::Load,
    /// Upstream fetches per request.
    #[arg(long, default_value_t = 3)]
    fetches: usize,
}

impl Default for FanoutArgs {
    fn default() -> Self {
        FanoutArgs {
            load: tools::Load::default(),
            fetches: 3,
        }
    }
}

pub(crate) fn run(args: &FanoutArgs) -> Result<()> {
    let squall = tools::squall_binary()?;
    let fanout = tools::component(&squall, "examples/fanout")?;
    let own_binary = std::env::current_exe()?;
    // The upstream shares core 1 with wrk; the servers under test get core 0.
    let upstream = tools::start_pinned(1, &own_binary, &["native-server"], "warn")?;
    let native = tools::start_pinned(0, &own_binary, &["native-fanout"], "warn")?;
    let manifest = format!(
        "[app.fanout]\nsource = {:?}\noutbound = [\"http://127.0.0.1:*\"]\n",
        fanout.display().to_string()
    );
    let squall_server = tools::serve_manifest(&squall, 0, &manifest)?;
    let query: Vec<String> = (0..args.fetches)
        .map(|_| format!("url={}/", upstream.url))
        .collect();
    let path = format!("/fanout?{}", query.join("&"));
    println!(
        "fanout of {} fetches to a local upstream per request; servers on core 0, upstream and wrk -t1 -c{} -d{}s on core 1",
        args.fetches, args.load.connections, args.load.seconds
    );
    let servers = [
        ("native", native.url.as_str()),
        ("squall", squall_server.url.as_str()),
    ];
    let medians = tools::alternate(&servers, &path, &args.load)?;
    println!(
        "fanout throughput ratio squall/native: {:.2}",
        medians[1].requests_per_second / medians[0].requests_per_second
    );
    Ok(())
}

//! The key-value store through a guest vs the same store from native code:
//! `GET /kv/{key}` and `PUT /kv/{key}` (100 bytes, acknowledged once
//! durable) served by the state test guest under `squall serve`, and by a
//! native hyper server calling the same embedded store
//! (`squall::testing::KvStore`), and by the same guest with its store on
//! Redis (started for the run), alternating, same run.

use crate::tools;
use anyhow::{Context, Result, bail};
use clap::Args;

#[derive(Args, Default)]
pub(crate) struct KvArgs {
    #[command(flatten)]
    load: tools::Load,
}

const SERVER_CORE: usize = 0;
/// Keys written before the reads, 100 bytes each.
const KEYS: u32 = 1000;

pub(crate) fn run(args: &KvArgs) -> Result<()> {
    let squall = tools::squall_binary()?;
    let guest = tools::component(&squall, "tests/guests/state")?;
    let data = tempfile::tempdir()?;
    let native_dir = data.path().join("native");
    std::fs::create_dir_all(&native_dir)?;
    let own_binary = std::env::current_exe()?;
    let native_dir_arg = native_dir.to_string_lossy().into_owned();
    let native = tools::start_pinned(
        SERVER_CORE,
        &own_binary,
        &["native-kv", "--data-dir", &native_dir_arg],
        "warn",
    )?;
    let manifest = format!(
        "[server]\ndata_dir = {:?}\n\n[app.state]\nsource = {:?}\nkv = true\n",
        data.path().join("squall").to_string_lossy(),
        guest.to_string_lossy()
    );
    let squall_server = tools::serve_manifest(&squall, SERVER_CORE, &manifest)?;
    // The same guest with its store on Redis (pinned beside the load).
    let redis = tools::Redis::start()?;
    let on_redis = tools::serve_manifest(
        &squall,
        SERVER_CORE,
        &format!(
            "[server.backend]\nkind = \"redis\"\nurl = \"redis://127.0.0.1:{}\"\n\n[app.state]\nsource = {:?}\nkv = true\n",
            redis.port,
            guest.to_string_lossy()
        ),
    )?;
    let servers = [
        ("native", native.url.as_str()),
        ("squall", squall_server.url.as_str()),
        ("redis", on_redis.url.as_str()),
    ];
    for (name, url) in servers {
        fill(url).with_context(|| format!("cannot fill the {name} store"))?;
    }
    println!(
        "key-value store, server pinned to core {SERVER_CORE}, wrk -t1 -c{} -d{}s pinned to core {}; {KEYS} keys of 100 bytes",
        args.load.connections, args.load.seconds, args.load.core
    );

    println!("GET /kv/key00421 (a read in a snapshot)");
    let reads = tools::alternate(&servers, "/kv/key00421", &args.load)?;
    println!(
        "get ratio squall/native: throughput {:.2}, p99 {:.2}; squall on Redis/embedded: throughput {:.2}",
        reads[1].requests_per_second / reads[0].requests_per_second,
        reads[1].p99_ms / reads[0].p99_ms,
        reads[2].requests_per_second / reads[1].requests_per_second
    );

    println!("PUT /kv/bench (100 bytes, acknowledged once durable)");
    let script = data.path().join("put.lua");
    std::fs::write(
        &script,
        format!("wrk.method = \"PUT\"\nwrk.body = \"{}\"\n", "v".repeat(100)),
    )?;
    let load = &args.load;
    let writes = tools::alternate_with(&servers, "/kv/bench", load, |url, seconds| {
        tools::wrk_script(load.core, url, load.connections, seconds, &script)
    })?;
    println!(
        "set ratio squall/native: throughput {:.2}, p99 {:.2}; squall on Redis/embedded: throughput {:.2}",
        writes[1].requests_per_second / writes[0].requests_per_second,
        writes[1].p99_ms / writes[0].p99_ms,
        writes[2].requests_per_second / writes[1].requests_per_second
    );
    Ok(())
}

/// Write the keys the reads use.
fn fill(url: &str) -> Result<()> {
    let status = std::process::Command::new("curl")
        .args(["-sS", "-o", "/dev/null", "-w", "%{http_code}", "-X", "POST"])
        .arg(format!("{url}/fill?prefix=key&count={KEYS}&size=100"))
        .output()
        .context("cannot run curl")?;
    let code = String::from_utf8_lossy(&status.stdout);
    if code != "200" {
        bail!("filling answered {code}");
    }
    Ok(())
}

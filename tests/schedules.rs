//! Schedules (`[[app.NAME.schedule]]`) against the real binary: ticks run
//! in fresh instances on their period, never overlap themselves, follow a
//! manifest change, show in `/metrics`; a schedule without a handler is
//! refused at load; a hostile schedule (spinning, failing) is stopped by
//! its app's limits while a neighbour's keeps its rhythm and its requests
//! answer; and hosts sharing Redis run each tick once, one of them killed
//! mid-way. The guest counts its runs in its store and logs them: the tests
//! wait for those lines, never for time to pass.
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

mod support;

use std::path::PathBuf;
use support::redis::RedisServer;
use support::{
    Server, admin_url, component, get_text, guest_count, manifest, refused_manifest, until,
};

fn ticks() -> PathBuf {
    component("tests/guests/ticks")
}

fn schedule(app: &str, name: &str, when: &str) -> String {
    format!("[[app.{app}.schedule]]\nname = \"{name}\"\n{when}\n")
}

#[tokio::test(flavor = "multi_thread")]
async fn a_schedule_ticks_on_its_period_and_never_overlaps_itself() {
    let schedules =
        schedule("ticks", "beat", "every = \"1s\"") + &schedule("ticks", "slow", "every = \"1s\"");
    let text = format!(
        "[server]\nadmin_listen = \"127.0.0.1:0\"\n{}",
        manifest("ticks", &ticks(), &format!("kv = true\n{schedules}"))
    );
    let server = Server::with_manifest(&text);
    assert!(
        server
            .banner
            .contains("schedule \"beat\" runs every 1s; next at "),
        "{}",
        server.banner
    );
    server.logged("beats 3").await;
    // `slow` takes 3 s: the ticks in between are skipped, never run beside it.
    server.logged("slow run 2 done").await;
    server
        .logged("schedule tick skipped: its last run is still going")
        .await;
    assert_eq!(guest_count(&server, "", "overlaps").await, 0);
    assert!(guest_count(&server, "", "beats").await >= 3);
    let admin = admin_url(&server);
    let metrics = get_text(format!("{admin}/metrics")).await;
    for outcome in ["ok", "skipped"] {
        let series = format!(
            "squall_schedule_ticks_total{{app=\"ticks\",schedule=\"slow\",outcome=\"{outcome}\"}}"
        );
        assert!(metrics.contains(&series), "no {series} in:\n{metrics}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_schedule_follows_a_change_of_its_manifest() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("squall.toml");
    let with_payload = |payload: &str| {
        manifest(
            "ticks",
            &ticks(),
            &format!(
                "kv = true\n{}payload = \"{payload}\"\n",
                schedule("ticks", "beat", "every = \"1s\"")
            ),
        )
    };
    std::fs::write(&path, with_payload("first")).unwrap();
    let data = dir.path().join("data");
    let server =
        Server::with_manifest_file(&path, &["--watch", "--data-dir", data.to_str().unwrap()]);
    server.logged("first 1").await;
    std::fs::write(&path, with_payload("second")).unwrap();
    // The next tick runs the new version, with its payload.
    server.logged("second 1").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_hostile_schedule_is_stopped_while_a_neighbours_keeps_its_rhythm() {
    let wasm = ticks();
    let hostile = format!(
        "kv = true\nroutes = [\"/hostile\"]\nstrip_prefix = true\ncpu_time = \"100ms\"\n{}{}",
        schedule("hostile", "spin", "every = \"1s\""),
        schedule("hostile", "fail", "cron = \"* * * * * *\"")
    );
    let neighbour = format!(
        "kv = true\nroutes = [\"/neighbour\"]\nstrip_prefix = true\n{}payload = \"neighbour\"\n",
        schedule("neighbour", "beat", "every = \"1s\"")
    );
    let text = format!(
        "[app.hostile]\nsource = {source:?}\n{hostile}\n[app.neighbour]\nsource = {source:?}\n{neighbour}\n",
        source = wasm.display().to_string()
    );
    let server = Server::with_manifest(&text);
    server
        .logged_times("ran guest code for longer than its cpu_time limit", 2)
        .await;
    server
        .logged_times("schedule handler failed: deliberate failure", 2)
        .await;
    server
        .logged_times("schedule run: the handler returned an error", 2)
        .await;
    server.logged("neighbour 3").await;
    assert!(guest_count(&server, "/neighbour", "neighbour").await >= 3);
    // The hostile app's requests are not stuck behind its schedules either.
    assert_eq!(guest_count(&server, "/hostile", "beats").await, 0);
}

#[test]
fn a_schedule_without_a_handler_is_refused_at_load_naming_it() {
    let text = manifest(
        "ticks",
        &ticks(),
        &schedule("ticks", "nightly", "cron = \"0 0 3 * * *\""),
    );
    let refused = refused_manifest(&text);
    assert!(
        refused.contains("schedule \"nightly\" has no handler")
            && refused.contains("Router::on_schedule(\"nightly\""),
        "{refused}"
    );
}

#[test]
fn a_schedule_out_of_bounds_is_refused_naming_the_key() {
    let text = manifest(
        "ticks",
        &ticks(),
        &schedule("ticks", "beat", "every = \"10ms\""),
    );
    let refused = refused_manifest(&text);
    assert!(refused.contains("every must be between 1s"), "{refused}");
    let standard = manifest(
        "hello",
        &support::standard_component("examples/hello"),
        &schedule("hello", "beat", "every = \"1s\""),
    );
    let refused = refused_manifest(&standard);
    assert!(
        refused.contains("schedules need a squall-sdk app"),
        "{refused}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hosts_sharing_redis_run_each_tick_once_while_one_is_killed() {
    let redis = RedisServer::start();
    let text = format!(
        "[server.backend]\nkind = \"redis\"\nurl = {:?}\n\n{}",
        redis.url(),
        manifest(
            "ticks",
            &ticks(),
            &format!(
                "kv = true\n{}",
                schedule("ticks", "stamp", "every = \"1s\"")
            ),
        )
    );
    let a = Server::with_manifest(&text);
    let b = Server::with_manifest(&text);
    let stamped =
        |server: &Server, stamps: u32| server.logs().contains(&format!("stamp {stamps} at"));
    until(
        async || stamped(&a, 4) || stamped(&b, 4),
        || format!("four ticks were not run:\n{}\n{}", a.logs(), b.logs()),
    )
    .await;
    // Killed mid-way, without draining: B goes on alone.
    let pid = rustix::process::Pid::from_raw(a.pid() as i32).unwrap();
    rustix::process::kill_process(pid, rustix::process::Signal::KILL).unwrap();
    until(
        async || stamped(&b, 12),
        || format!("B did not run on alone:\n{}", b.logs()),
    )
    .await;
    assert_eq!(guest_count(&b, "", "duplicates").await, 0, "{}", b.logs());
    drop(a);
}

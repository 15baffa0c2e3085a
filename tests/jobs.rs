//! Delayed jobs (`jobs::after`, `jobs::at`, `jobs::cancel`) against the
//! real binary: a job runs once due and a cancelled one never; a failing
//! job is retried with its attempt number, then dropped; a job due while
//! the host was down runs when it is back; a tenant flooding jobs meets
//! its limits while a neighbour's schedule keeps its rhythm; and hosts
//! sharing Redis run each attempt once, one of them killed mid-way. The
//! guest (tests/guests/ticks) counts runs in its store and logs them: the
//! tests wait for those lines, never for time to pass.
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

mod support;

use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use support::redis::RedisServer;
use support::{
    Server, admin_url, client, component, get_text, guest_count, manifest, post_text, until,
    until_within,
};

fn ticks() -> PathBuf {
    component("tests/guests/ticks")
}

fn now_ms() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_job_runs_once_due_and_a_cancelled_one_never() {
    let text = format!(
        "[server]\nadmin_listen = \"127.0.0.1:0\"\n{}",
        manifest("ticks", &ticks(), "kv = true\njobs = true\n")
    );
    let server = Server::with_manifest(&text);
    let (status, id) = post_text(&server, "/jobs/note?delay_ms=200", "first").await;
    assert_eq!(status, 200, "{id}");
    assert_eq!(id.len(), 32, "{id}");
    server.logged("note first ran (1 runs) attempt 1").await;

    // Cancelled before it is due: it never runs. The next job, due after
    // it, runs; the cancelled one would have been taken first.
    let (_, cancelled) = post_text(&server, "/jobs/note?delay_ms=1000", "cancelled").await;
    let (_, _) = post_text(&server, "/jobs/note?delay_ms=1500", "last").await;
    let url = server.url(&format!("/jobs/{cancelled}"));
    let answer = client().delete(&url).send().await.unwrap();
    assert_eq!(answer.text().await.unwrap(), "true");
    let again = client().delete(&url).send().await.unwrap();
    assert_eq!(again.text().await.unwrap(), "false");
    // Not an id the host gives: no job, whatever it names.
    let forged = server.url("/jobs/..%2F..%2Fother");
    let answer = client().delete(forged).send().await.unwrap();
    assert_eq!(answer.text().await.unwrap(), "false");
    server.logged("note last ran (2 runs)").await;
    assert!(
        !server.logs().contains("note cancelled"),
        "{}",
        server.logs()
    );
    assert_eq!(guest_count(&server, "", "job-runs").await, 2);

    // `at` a time past runs now; a name without a handler is refused.
    let past = now_ms() - 60_000;
    let (status, _) = post_text(&server, &format!("/jobs/note?at={past}"), "past").await;
    assert_eq!(status, 200);
    server.logged("note past ran").await;
    let (status, _) = post_text(&server, "/jobs/nobody", "").await;
    assert_eq!(status, 500);
    server
        .logged("no job handler is named \"nobody\": add Router::on_job")
        .await;

    // Each run is removed once it ends: the host's line comes after.
    server.logged_times("job run", 3).await;
    let metrics = get_text(format!("{}/metrics", admin_url(&server))).await;
    for series in [
        "squall_job_runs_total{app=\"ticks\",job=\"note\",outcome=\"ok\"} 3",
        "squall_jobs_kept_total{app=\"ticks\"} 4",
        "squall_jobs_pending{app=\"ticks\"} 0",
    ] {
        assert!(metrics.contains(series), "{series} in:\n{metrics}");
    }
}

#[test]
fn job_limits_out_of_bounds_are_refused_naming_the_key() {
    for (setting, refusal) in [
        (
            "jobs_max_payload = \"17MiB\"",
            "jobs_max_payload: 17825792 is over the host's ceiling",
        ),
        (
            "jobs_max_attempts = 0",
            "jobs_max_attempts: must be from 1 to 100",
        ),
        (
            "jobs_max_pending = 0",
            "jobs_max_pending: must be from 1 to 1000000",
        ),
    ] {
        let text = manifest("ticks", &ticks(), &format!("jobs = true\n{setting}\n"));
        let refused = support::refused_manifest(&text);
        assert!(refused.contains(refusal), "{setting}: {refused}");
    }
    let standard = manifest(
        "hello",
        &support::standard_component("examples/hello"),
        "jobs = true\n",
    );
    let refused = support::refused_manifest(&standard);
    assert!(refused.contains("jobs need a squall-sdk app"), "{refused}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failing_job_is_retried_with_its_attempt_then_dropped() {
    let server = Server::with_manifest(&manifest(
        "ticks",
        &ticks(),
        "kv = true\njobs = true\njobs_max_attempts = 3\n",
    ));
    let (status, _) = post_text(&server, "/jobs/flaky", "").await;
    assert_eq!(status, 200);
    let (status, _) = post_text(&server, "/jobs/doomed", "").await;
    assert_eq!(status, 200);
    // Fails twice, then succeeds on its third attempt.
    server.logged("flaky attempt 3").await;
    server.logged("job handler failed: not yet").await;
    until(
        async || guest_count(&server, "", "flaky-done").await == 1,
        || format!("flaky never succeeded:\n{}", server.logs()),
    )
    .await;
    // Fails on every attempt: dropped after the third.
    server.logged("doomed attempt 3").await;
    server
        .logged("dropped after 3 attempts (jobs_max_attempts)")
        .await;
    assert!(!server.logs().contains("doomed attempt 4"));
    assert!(!server.logs().contains("flaky attempt 4"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_job_due_while_the_host_was_down_runs_when_it_is_back() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("squall.toml");
    std::fs::write(
        &file,
        manifest("ticks", &ticks(), "kv = true\njobs = true\n"),
    )
    .unwrap();
    let data = dir.path().join("data");
    let flags = ["--data-dir", data.to_str().unwrap()];
    let mut first = Server::with_manifest_file(&file, &flags);
    let due = now_ms() + 1_500;
    let (status, _) = post_text(&first, &format!("/jobs/note?at={due}"), "restart").await;
    assert_eq!(status, 200);
    first.terminate();
    assert!(first.wait_exit(Duration::from_secs(30)).is_some());
    assert!(!first.logs().contains("note restart ran"));
    // Down past its due time (the clock is the signal here).
    while now_ms() <= due {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let second = Server::with_manifest_file(&file, &flags);
    second.logged("note restart ran (1 runs) attempt 1").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tenant_flooding_jobs_meets_its_limits_while_a_neighbours_schedule_keeps_its_rhythm() {
    let wasm = ticks();
    let hostile = "kv = true\njobs = true\nroutes = [\"/hostile\"]\nstrip_prefix = true\n\
                   cpu_time = \"100ms\"\njobs_max_pending = 40\njobs_max_payload = \"1KiB\"\n\
                   jobs_max_attempts = 1\n";
    let neighbour = "kv = true\nroutes = [\"/neighbour\"]\nstrip_prefix = true\n\
                     [[app.neighbour.schedule]]\nname = \"beat\"\nevery = \"1s\"\n\
                     payload = \"neighbour\"\n";
    let text = format!(
        "[app.hostile]\nsource = {source:?}\n{hostile}\n[app.neighbour]\nsource = {source:?}\n{neighbour}\n",
        source = wasm.display().to_string()
    );
    let server = Server::with_manifest(&text);
    // 100 spinning jobs asked for: 40 kept, then a typed refusal.
    let (status, flooded) =
        post_text(&server, "/hostile/flood/spin?count=100&delay_ms=500", "").await;
    assert_eq!(status, 200);
    assert_eq!(
        flooded,
        "40 jobs quota: the app has 40 jobs pending (jobs_max_pending)"
    );
    let (status, _) = post_text(&server, "/hostile/jobs/note", &"x".repeat(1025)).await;
    assert_eq!(status, 413);
    let (status, _) = post_text(&server, "/hostile/jobs/note?delay_ms=40000000000", "").await;
    assert_eq!(status, 500);
    server
        .logged("a job may be due at most 366 days ahead")
        .await;
    // They run, a few at a time, each stopped by its cpu_time; the
    // neighbour's schedule keeps ticking meanwhile.
    server
        .logged_times("ran guest code for longer than its cpu_time limit", 4)
        .await;
    server.logged("neighbour 3").await;
    assert!(guest_count(&server, "/neighbour", "neighbour").await >= 3);
    assert_eq!(guest_count(&server, "/hostile", "job-runs").await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hosts_sharing_redis_run_each_job_attempt_once_while_one_is_killed() {
    const JOBS: u64 = 200;
    let redis = RedisServer::start();
    let text = format!(
        "[server.backend]\nkind = \"redis\"\nurl = {:?}\n\n{}",
        redis.url(),
        manifest(
            "ticks",
            &ticks(),
            // Room for a loaded machine: a run cut by its timeout would
            // be retried, and dropped after too many, and never counted.
            "kv = true\njobs = true\ntimeout = \"5s\"\njobs_max_attempts = 10\n"
        )
    );
    let a = Server::with_manifest(&text);
    let b = Server::with_manifest(&text);
    // Due over four seconds from now, kept through both hosts.
    let start = now_ms() + 500;
    for n in 0..JOBS {
        let at = start + u128::from(n) * 20;
        let host = if n % 2 == 0 { &a } else { &b };
        let (status, id) = post_text(host, &format!("/jobs/note?at={at}"), &n.to_string()).await;
        assert_eq!(status, 200, "{id}");
    }
    until(
        async || guest_count(&b, "", "job-runs").await >= 40,
        || format!("jobs did not start:\n{}\n{}", a.logs(), b.logs()),
    )
    .await;
    // Killed mid-way, without draining: B runs the rest, and what A held
    // once its leases lapse.
    let pid = rustix::process::Pid::from_raw(a.pid() as i32).unwrap();
    rustix::process::kill_process(pid, rustix::process::Signal::KILL).unwrap();
    // A's leases lapse after its 5 s timeout and a 10 s margin.
    until_within(
        Duration::from_secs(90),
        async || guest_count(&b, "", "distinct-jobs").await == JOBS as i64,
        || format!("not every job ran:\n{}", b.logs()),
    )
    .await;
    assert_eq!(
        guest_count(&b, "", "job-duplicates").await,
        0,
        "{}",
        b.logs()
    );
    // Jobs the killed host held, run again once their lease lapsed.
    let again = guest_count(&b, "", "redelivered").await;
    eprintln!("jobs run again: {again}");
    drop(a);
}

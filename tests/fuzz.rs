//! The capability fuzzer (tests/guests/fuzz): seed after seed, its guest
//! calls every import of the `squall:app` world, and `wasi:keyvalue`,
//! `wasi:config` and `wasi:sockets`, with adversarial arguments, against the real binary on
//! the embedded store and on Redis. Throughout, a neighbour app answers
//! every request, the host never panics, every call comes back with an
//! answer (a request ends otherwise only when its guest ran out of its own
//! memory), and the host's memory stays under a bound this test states.
//!
//! CI runs a short slice (20 s on each store); `SQUALL_FUZZ_SECONDS=300
//! cargo test --test fuzz -- --nocapture --test-threads 1` runs longer and
//! prints what it saw: requests and calls made, outcomes by kind, the
//! host's peak memory.
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

mod support;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};
use support::redis::RedisServer;
use support::upstream::Upstream;
use support::{Server, client, component, hello_wasm, repo};

/// What the host may use at most, all told: its own baseline, the fuzz
/// app's instances (at most 8 of 64 MiB of guest memory), and the bytes its
/// calls may hold at once (`max_call_bytes`, 128 MiB). Before calls were
/// bounded, three store reads alone grew it by 2.8 GiB.
const PEAK_RSS_MIB: u64 = 1024;
/// Fuzz requests in flight at once, and calls each makes.
const AT_ONCE: usize = 4;
const CALLS: u64 = 200;

fn seconds() -> u64 {
    std::env::var("SQUALL_FUZZ_SECONDS")
        .ok()
        .and_then(|seconds| seconds.parse().ok())
        .unwrap_or(20)
}

fn serve(backend: &str, upstream: &Upstream) -> Server {
    let port = upstream.base.rsplit(':').next().unwrap();
    Server::with_manifest(&format!(
        "{backend}\n\
         [app.fuzz]\nsource = {fuzz:?}\nkv = true\njobs = true\npubsub = [\"fuzz.*\"]\n\
         outbound = [\"http://127.0.0.1:{port}\"]\ntcp_outbound = [\"127.0.0.1:{port}\"]\n\
         memory = \"64MiB\"\nmax_instances = 8\ntimeout = \"20s\"\n\
         [[app.fuzz.static]]\nprefix = \"/static\"\ndir = {static_dir:?}\n\
         [[app.fuzz.consumer]]\nqueue = \"fuzz-q\"\nretry_delay = \"1s\"\n\
         [app.fuzz.config]\ngreeting = \"hello\"\n\n\
         [app.hello]\nsource = {hello:?}\nroutes = [\"/hello\"]\n",
        fuzz = component("tests/guests/fuzz").display().to_string(),
        static_dir = repo().join("tests/guests/web/static").display().to_string(),
        hello = hello_wasm().display().to_string(),
    ))
}

/// The host's resident memory now, in MiB.
fn rss_mib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|kib| kib.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .unwrap()
        / 1024
}

/// Fuzz `server` for the test's time; the outcomes seen, by import.
async fn fuzz(server: &Server, upstream: &Upstream) {
    let stop = Arc::new(AtomicBool::new(false));
    let neighbour_answers = Arc::new(AtomicU64::new(0));
    let neighbour = tokio::spawn({
        let (url, stop, answers) = (
            server.url("/hello/neighbour"),
            stop.clone(),
            neighbour_answers.clone(),
        );
        async move {
            let http = client();
            while !stop.load(Ordering::Relaxed) {
                let answer = http.get(&url).send().await.unwrap();
                assert_eq!(answer.status(), 200, "the neighbour was refused");
                answers.fetch_add(1, Ordering::Relaxed);
            }
        }
    });
    let peak = Arc::new(AtomicU64::new(0));
    let watcher = tokio::spawn({
        let (pid, stop, peak) = (server.pid(), stop.clone(), peak.clone());
        async move {
            while !stop.load(Ordering::Relaxed) {
                peak.fetch_max(rss_mib(pid), Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    });
    let upstream = upstream.base.trim_start_matches("http://").to_owned();
    let deadline = Instant::now() + Duration::from_secs(seconds());
    let (mut outcomes, mut refused, mut seed) = (BTreeMap::new(), 0u64, 0u64);
    let http = client();
    while Instant::now() < deadline {
        let round = (0..AT_ONCE).map(|_| {
            seed += 1;
            let url = server.url(&format!(
                "/?seed={seed}&calls={CALLS}&at_once=8&upstream={upstream}"
            ));
            let http = http.clone();
            async move {
                let answer = http.get(url).send().await.unwrap();
                (answer.status().as_u16(), answer.text().await.unwrap())
            }
        });
        for (status, body) in futures::future::join_all(round).await {
            if status != 200 {
                refused += 1;
                continue;
            }
            for line in body.lines() {
                let (kind, count) = line.rsplit_once(' ').unwrap();
                *outcomes.entry(kind.to_owned()).or_insert(0u64) += count.parse::<u64>().unwrap();
            }
        }
        let peak_now = peak.load(Ordering::Relaxed);
        assert!(
            peak_now < PEAK_RSS_MIB,
            "the host's memory reached {peak_now} MiB"
        );
    }
    stop.store(true, Ordering::Relaxed);
    neighbour.await.unwrap();
    watcher.await.unwrap();
    let logs = server.logs();
    assert!(!logs.contains("panicked"), "the host panicked:\n{logs}");
    // A request that did not answer 200 ran its guest out of its own memory.
    let out_of_memory = logs
        .matches("the guest asked for more memory than its memory limit")
        .count() as u64;
    assert!(
        refused <= out_of_memory,
        "{refused} requests failed, {out_of_memory} for their guest's memory:\n{logs}"
    );
    let calls: u64 = outcomes.values().sum();
    eprintln!(
        "fuzzed {seed} requests, {calls} calls, {} kinds of outcome; {refused} requests \
         out of guest memory; peak RSS {} MiB; neighbour answered {} times",
        outcomes.len(),
        peak.load(Ordering::Relaxed),
        neighbour_answers.load(Ordering::Relaxed)
    );
    for (kind, count) in &outcomes {
        eprintln!("  {kind} {count}");
    }
    assert!(calls > 0, "no call was made");
    assert!(neighbour_answers.load(Ordering::Relaxed) > 0);
    // Typed answers, not just `ok`: the limits were met.
    for met in [
        "kv.get-many too-large",
        "kv.set too-large",
        "pubsub.publish denied",
    ] {
        assert!(
            outcomes.contains_key(met) || seeds_too_few(seed),
            "never saw {met}: {outcomes:?}"
        );
    }
}

/// Whether so few seeds ran that a rare outcome may not have come up.
fn seeds_too_few(seeds: u64) -> bool {
    seeds < 40
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_import_answers_adversarial_calls_on_the_embedded_store() {
    let upstream = Upstream::start().await;
    let server = serve("", &upstream);
    fuzz(&server, &upstream).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_import_answers_adversarial_calls_on_redis() {
    let redis = RedisServer::start();
    let upstream = Upstream::start().await;
    let backend = format!(
        "[server.backend]\nkind = \"redis\"\nurl = {:?}\n",
        redis.url()
    );
    let server = serve(&backend, &upstream);
    fuzz(&server, &upstream).await;
}

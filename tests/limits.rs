//! A guest that breaks the rules is stopped with a clear status, and the
//! host goes on serving.

#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

mod support;

use std::time::{Duration, Instant};
use support::{Server, client, manifest, misbehave_wasm};

#[tokio::test]
async fn a_spinning_guest_is_stopped_by_the_request_timeout() {
    let server = Server::with_manifest(&manifest("spin", &misbehave_wasm(), "timeout = \"1s\""));
    let http = client();
    let started = Instant::now();
    let response = http.get(server.url("/spin")).send().await.unwrap();
    assert_eq!(response.status(), 504);
    let elapsed = started.elapsed();
    assert!(
        elapsed >= Duration::from_millis(900),
        "stopped after {elapsed:?}"
    );
    assert!(
        elapsed < Duration::from_secs(5),
        "stopped after {elapsed:?}"
    );

    let next = http.get(server.url("/ok")).send().await.unwrap();
    assert_eq!(next.status(), 200);
}

#[tokio::test]
async fn a_spinning_guest_is_stopped_by_its_cpu_budget() {
    let server = Server::with_manifest(&manifest(
        "spin",
        &misbehave_wasm(),
        "timeout = \"60s\"\ncpu_time = \"300ms\"",
    ));
    let http = client();
    let started = Instant::now();
    let response = http.get(server.url("/spin")).send().await.unwrap();
    assert_eq!(response.status(), 504);
    assert!(started.elapsed() < Duration::from_secs(10));
    server.logged("cpu_time limit").await;
}

#[tokio::test]
async fn a_guest_burning_cpu_between_short_waits_is_stopped_by_its_cpu_budget() {
    // Waiting is not charged, but the ticks that pass while the guest runs
    // are, however short its runs.
    let server = Server::with_manifest(&manifest(
        "fill",
        &misbehave_wasm(),
        "timeout = \"60s\"\ncpu_time = \"300ms\"\nmemory = \"64MiB\"",
    ));
    let http = client();
    let started = Instant::now();
    let response = http
        .get(server.url("/fill-between-waits"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 504);
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "stopped after {:?}",
        started.elapsed()
    );
    server.logged("cpu_time limit").await;
    let next = http.get(server.url("/ok")).send().await.unwrap();
    assert_eq!(next.status(), 200);
}

#[tokio::test]
async fn a_spinning_guest_does_not_stall_other_requests() {
    let server = Server::with_manifest(&manifest("spin", &misbehave_wasm(), "timeout = \"3s\""));
    let http = client();
    let spinners: Vec<_> = (0..4)
        .map(|_| tokio::spawn(http.get(server.url("/spin")).send()))
        .collect();
    server.logged_times("spinning", 4).await;
    let ok = http.get(server.url("/ok")).send().await.unwrap();
    assert_eq!(ok.status(), 200);
    // Answered while every spinner still spins (each ends at its timeout):
    // not queued behind them.
    assert!(
        spinners.iter().all(|spinner| !spinner.is_finished()),
        "a quick request waited for spinning guests to end"
    );
    for spinner in spinners {
        assert_eq!(spinner.await.unwrap().unwrap().status(), 504);
    }
}

#[tokio::test]
async fn a_guest_over_its_memory_limit_gets_500() {
    let server = Server::with_manifest(&manifest("alloc", &misbehave_wasm(), "memory = \"16MiB\""));
    let http = client();
    let response = http.get(server.url("/alloc")).send().await.unwrap();
    assert_eq!(response.status(), 500);
    let next = http.get(server.url("/ok")).send().await.unwrap();
    assert_eq!(next.status(), 200);
}

#[tokio::test]
async fn an_invalid_status_from_the_guest_is_a_500() {
    let server = Server::with_manifest(&manifest("bad", &misbehave_wasm(), ""));
    let response = client()
        .get(server.url("/bad-status"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 500);
    server.logged("informational").await;
}

#[tokio::test]
async fn a_header_the_guest_cannot_send_is_a_500_with_a_log_line_naming_it() {
    let server = Server::with_manifest(&manifest("bad", &misbehave_wasm(), ""));
    let http = client();
    let response = http.get(server.url("/bad-location")).send().await.unwrap();
    assert_eq!(response.status(), 500);
    assert!(response.headers().get("set-cookie").is_none());
    assert!(response.headers().get("location").is_none());
    server.logged("header `location`").await;
    let next = http.get(server.url("/ok")).send().await.unwrap();
    assert_eq!(next.status(), 200);
}

#[tokio::test]
async fn a_chunked_body_over_the_limit_is_refused_with_413() {
    let server =
        Server::with_manifest(&manifest("count", &misbehave_wasm(), "max_body = \"1MiB\""));
    let http = client();
    let small = http
        .post(server.url("/count"))
        .body(vec![1u8; 1000])
        .send()
        .await
        .unwrap();
    assert_eq!(small.text().await.unwrap(), "1000");

    // No content-length: the limit is enforced as the bytes arrive.
    let chunks =
        futures::stream::iter((0..4).map(|_| Ok::<_, std::io::Error>(vec![7u8; 512 << 10])));
    let response = http
        .post(server.url("/count"))
        .body(reqwest::Body::wrap_stream(chunks))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 413);
}

#[tokio::test]
async fn a_guest_that_dies_mid_stream_breaks_the_response() {
    let server = Server::with_manifest(&manifest("stream", &misbehave_wasm(), ""));
    let response = client()
        .get(server.url("/stream-then-panic"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    // The client must not mistake the cut-off body for a complete one.
    assert!(response.bytes().await.is_err());
}

#[tokio::test]
async fn request_headers_reach_the_guest() {
    let server = Server::with_manifest(&manifest("headers", &misbehave_wasm(), ""));
    let body = client()
        .get(server.url("/headers"))
        .header("x-squall-test", "yes")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(body.contains("x-squall-test: yes"), "{body}");
}

#[tokio::test]
async fn a_capability_refusal_tells_clients_the_status_and_the_log_the_detail() {
    let state = support::component("tests/guests/state");
    // No `kv` grant: the guest's `?` on the store's refusal.
    let server = Server::start(&state);
    let refused = client().get(server.url("/kv/x")).send().await.unwrap();
    assert_eq!(refused.status(), 500);
    assert_eq!(refused.text().await.unwrap(), "Internal Server Error\n");
    server.logged("kv is not granted").await;

    // `--dev`: the detail reaches the client too, for local work.
    let dev = Server::start_flags(&state, &["--dev"]);
    assert!(dev.banner.contains("development mode"), "{}", dev.banner);
    let detailed = client().get(dev.url("/kv/x")).send().await.unwrap();
    assert_eq!(detailed.status(), 500);
    let text = detailed.text().await.unwrap();
    assert!(text.contains("kv is not granted"), "{text}");
}

#[test]
fn a_cookie_secret_too_short_stops_the_start_naming_its_key() {
    let refused = support::refused_manifest(&format!(
        "{}[app.short.config]\ncookie_secret = \"change me\"\n",
        manifest("short", &misbehave_wasm(), "")
    ));
    assert!(
        refused.contains("cookie_secret") && refused.contains("at least 16 bytes"),
        "{refused}"
    );
    assert!(
        !refused.contains("change me"),
        "a secret is never printed: {refused}"
    );
}

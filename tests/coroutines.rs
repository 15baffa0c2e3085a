//! Guests awaiting the network: concurrent fetches against real upstream
//! servers on loopback, typed errors, streaming both ways, SSE, and
//! cancellation when the client goes away.
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

mod support;

use serde_json::Value;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;
use support::upstream::Upstream;
use support::{Server, client, component, manifest, repo};

/// The coroutines test guest, allowed to fetch from loopback over HTTP and HTTPS.
fn coroutines(settings: &str) -> Server {
    let outbound = "outbound = [\"http://127.0.0.1:*\", \"https://127.0.0.1:*\"]";
    Server::with_manifest(&manifest(
        "coroutines",
        &component("tests/guests/coroutines"),
        &format!("{outbound}\n{settings}"),
    ))
}

async fn get_json(url: String) -> Value {
    let text = client()
        .get(url)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    serde_json::from_str(&text).unwrap_or_else(|err| panic!("{err}: {text}"))
}

fn fetch_url(server: &Server, target: &str, extra: &str) -> String {
    server.url(&format!("/fetch?url={target}{extra}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn fanout_fetches_three_upstreams_at_once() {
    // Each of the three answers only once all three are in flight at once:
    // fetched one after another, the first would wait alone and get 504.
    let upstream = Upstream::start().await;
    let server = Server::start(&repo().join("examples/fanout"));
    let query: Vec<String> = (0..3)
        .map(|i| format!("url={}", upstream.url(&format!("/together/3?{i}"))))
        .collect();
    let results = get_json(server.url(&format!("/fanout?{}", query.join("&")))).await;
    let results = results.as_array().unwrap();
    assert_eq!(results.len(), 3);
    for result in results {
        assert_eq!(result["status"], 200, "{result}");
        assert_eq!(result["bytes"], 2, "{result}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn fanout_names_the_error_of_a_url_outside_the_allow_list() {
    let upstream = Upstream::start().await;
    let server = Server::start(&repo().join("examples/fanout"));
    let results = get_json(server.url(&format!(
        "/fanout?url={}&url=http://example.com/&url=http://127.0.0.1:1/",
        upstream.url("/hello")
    )))
    .await;
    assert_eq!(results[0]["status"], 200, "{results}");
    assert_eq!(results[1]["error"], "denied", "{results}");
    assert_eq!(results[2]["error"], "connect", "{results}");
    server.logged("fetch denied").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn pooled_connections_are_reused_across_requests_and_instances() {
    let upstream = Upstream::start().await;
    let server = coroutines("");
    for _ in 0..10 {
        let result = get_json(fetch_url(&server, &upstream.url("/hello"), "")).await;
        assert_eq!(result["body"], "hello", "{result}");
    }
    assert_eq!(upstream.requests(), 10);
    assert!(
        upstream.connections() < upstream.requests(),
        "{} connections for {} requests",
        upstream.connections(),
        upstream.requests()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn fetch_failures_are_typed_errors_not_traps() {
    let upstream = Upstream::start().await;
    let server = coroutines("fetch_max_body = \"1MiB\"");

    let timeout = get_json(fetch_url(
        &server,
        &upstream.url("/delay/3000"),
        "&timeout_ms=200",
    ))
    .await;
    assert_eq!(timeout["error"], "timeout", "{timeout}");

    let tls_target = upstream.url("/hello").replace("http://", "https://");
    let tls = get_json(fetch_url(&server, &tls_target, "")).await;
    assert_eq!(tls["error"], "tls", "{tls}");

    let declared = get_json(fetch_url(&server, &upstream.url("/bytes/2000000"), "")).await;
    assert_eq!(declared["error"], "too-large", "{declared}");

    // Without a content-length the head arrives, then the body is cut off
    // and the guest learns why.
    let streamed = get_json(fetch_url(&server, &upstream.url("/chunked/2000000"), "")).await;
    assert_eq!(streamed["status"], 200, "{streamed}");
    assert_eq!(streamed["error"], "too-large", "{streamed}");

    let within = get_json(fetch_url(&server, &upstream.url("/chunked/500000"), "")).await;
    assert_eq!(within["bytes"], 500000, "{within}");

    let invalid = get_json(fetch_url(&server, "ftp://127.0.0.1/", "")).await;
    assert_eq!(invalid["error"], "invalid-request", "{invalid}");

    // Every failure above was an answer, not a trap.
    assert!(
        !server.logs().contains("the guest failed"),
        "{}",
        server.logs()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn redirects_are_followed_only_when_asked_and_only_where_allowed() {
    let upstream = Upstream::start().await;
    let server = coroutines("");
    let to_hello = upstream.url(&format!("/redirect/302?{}", upstream.url("/hello")));

    let not_followed = get_json(fetch_url(&server, &to_hello, "")).await;
    assert_eq!(not_followed["status"], 302, "{not_followed}");

    let followed = get_json(fetch_url(&server, &to_hello, "&redirects=2")).await;
    assert_eq!(followed["status"], 200, "{followed}");
    assert_eq!(followed["body"], "hello", "{followed}");

    let away = upstream.url("/redirect/307?http://example.com/");
    let denied = get_json(fetch_url(&server, &away, "&redirects=2")).await;
    assert_eq!(denied["error"], "denied", "{denied}");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_sdk_timeout_drops_a_slow_fetch() {
    let upstream = Upstream::start().await;
    let server = coroutines("");
    let result =
        get_json(server.url(&format!("/race?url={}&ms=150", upstream.url("/delay/5000")))).await;
    // The upstream answers after 5 s: "elapsed" comes from the SDK's timeout.
    assert_eq!(result["error"], "elapsed", "{result}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_request_body_streams_on_to_an_upstream() {
    let upstream = Upstream::start().await;
    let server = coroutines("");
    let payload: Vec<u8> = (0..1_000_000u32).map(|i| (i % 253) as u8).collect();
    let response = client()
        .post(server.url(&format!("/forward?url={}", upstream.url("/echo"))))
        .body(payload.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(response.bytes().await.unwrap() == payload);
}

#[test]
fn the_first_sse_event_arrives_while_the_handler_is_still_running() {
    let server = Server::start(&repo().join("examples/sse-clock"));
    let mut socket = TcpStream::connect(server.address()).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    // Without `?count` the clock never ends: an event that arrives at all
    // arrived while its handler was still running.
    write!(socket, "GET /clock HTTP/1.1\r\nHost: test\r\n\r\n").unwrap();
    let first = read_until(&mut socket, "data: ", "\n\n");
    assert!(first.contains("text/event-stream"), "{first}");
    assert!(first.contains("event: tick"), "{first}");
    // The handler goes on: the next tick follows on the same response.
    let second = read_until(&mut socket, "id: 1", "\n\n");
    assert!(second.contains("id: 1"), "{second}");
}

/// Read from `socket` until `marker` has been seen and then `end`.
fn read_until(socket: &mut TcpStream, marker: &str, end: &str) -> String {
    let mut text = String::new();
    let mut byte = [0u8; 1];
    loop {
        socket.read_exact(&mut byte).unwrap();
        text.push(byte[0] as char);
        if let Some(at) = text.find(marker)
            && text[at..].contains(end)
        {
            return text;
        }
    }
}

/// Deterministic test data and its FNV-1a 64 hash, as the guest computes it.
fn pattern(offset: u64, length: usize) -> Vec<u8> {
    (0..length as u64)
        .map(|i| ((offset + i).wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect()
}

fn fnv1a(mut hash: u64, bytes: &[u8]) -> u64 {
    for &byte in bytes {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash
}

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const UPLOAD: usize = 200 << 20;
const CHUNK: usize = 1 << 20;

fn upload_stream() -> reqwest::Body {
    let chunks =
        (0..UPLOAD / CHUNK).map(|i| Ok::<_, std::io::Error>(pattern((i * CHUNK) as u64, CHUNK)));
    reqwest::Body::wrap_stream(futures::stream::iter(chunks))
}

fn expected_hash() -> u64 {
    (0..UPLOAD / CHUNK).fold(FNV_OFFSET, |hash, i| {
        fnv1a(hash, &pattern((i * CHUNK) as u64, CHUNK))
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn a_200_mib_upload_is_hashed_as_it_streams() {
    let server = coroutines("max_body = \"300MiB\"");
    let answer = client()
        .post(server.url("/hash"))
        .body(upload_stream())
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(answer, format!("{UPLOAD} {:016x}", expected_hash()));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_200_mib_upload_is_echoed_byte_for_byte() {
    let server = Server::with_manifest(&manifest(
        "hello",
        &support::hello_wasm(),
        "max_body = \"300MiB\"\ntimeout = \"120s\"",
    ));
    let mut response = client()
        .post(server.url("/echo"))
        .body(upload_stream())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let (mut length, mut hash) = (0usize, FNV_OFFSET);
    while let Some(chunk) = response.chunk().await.unwrap() {
        length += chunk.len();
        hash = fnv1a(hash, &chunk);
    }
    assert_eq!(length, UPLOAD);
    assert_eq!(hash, expected_hash());
}

#[test]
fn a_client_that_goes_away_cancels_the_guest() {
    let server = coroutines("");
    let mut socket = TcpStream::connect(server.address()).unwrap();
    write!(socket, "GET /sleep/10000 HTTP/1.1\r\nHost: test\r\n\r\n").unwrap();
    // Once the request has reached the guest's timer, hang up.
    server.expect_log("napping for 10000 ms");
    drop(socket);
    server.expect_log("cancelled: the client went away");
}

#[tokio::test]
async fn the_deadline_answers_504_while_the_guest_awaits_the_host() {
    let server = coroutines("timeout = \"500ms\"");
    let response = client()
        .get(server.url("/sleep/5000"))
        .send()
        .await
        .unwrap();
    // The guest sleeps 5 s: a 504 is the 500 ms deadline's.
    assert_eq!(response.status(), 504);
}

#[tokio::test(flavor = "multi_thread")]
async fn work_spawned_by_a_handler_runs_after_the_response_within_the_limits() {
    let upstream = Upstream::start().await;
    let server = coroutines("timeout = \"5s\"\ncpu_time = \"300ms\"\nmax_concurrency = 1");
    let slow = upstream.url("/delay/1500");
    for (path, what, answer) in [
        ("/after", "squall", "answered"),
        ("/after-streamed", "squall streamed", "answered, streamed"),
    ] {
        let response = client()
            .get(server.url(&format!("{path}?url={slow}")))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(response.text().await.unwrap(), answer);
        // The client had all of its answer while the work still waited on
        // an upstream that takes 1.5 s.
        let fetched = format!("{what} fetched after the response: 200");
        assert!(!server.logs().contains(&fetched), "{}", server.logs());
        // The work holds its instance: with max_concurrency = 1 the app is
        // busy until it is done.
        let busy = client().get(server.url("/sleep/0")).send().await.unwrap();
        assert_eq!(busy.status(), 503);
        assert!(
            server.wait_for_log(&fetched, Duration::from_secs(10)),
            "{}",
            server.logs()
        );
        server
            .logged(&format!("{what} work after the response"))
            .await;
        served_again(&server).await;
    }
    assert_eq!(upstream.requests(), 2);

    // Work that never ends is stopped by the request's cpu_time; the app
    // serves again once its instance is freed.
    let response = client()
        .get(server.url("/after-spin"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.text().await.unwrap(), "answered");
    server.logged("spinning after the response").await;
    assert!(
        server.wait_for_log(
            "work after the response ended: the request ran guest code for longer than its cpu_time limit",
            Duration::from_secs(10)
        ),
        "{}",
        server.logs()
    );
    served_again(&server).await;
}

/// Wait until the app (at `max_concurrency = 1`) answers again: its one
/// instance was freed.
async fn served_again(server: &Server) {
    for _ in 0..100 {
        if client()
            .get(server.url("/sleep/0"))
            .send()
            .await
            .unwrap()
            .status()
            == 200
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the app never served again: {}", server.logs());
}

//! Standard wasi:http in both directions: components built for `wasmtime
//! serve` or Spin served by Squall unchanged, and squall-sdk apps built as
//! standard components.
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

mod support;

use std::time::{Duration, Instant};
use support::upstream::Upstream;
use support::{Server, client, component, standard_component};

/// Serve `wasm` allowed to reach `allowed` only.
fn serve(wasm: &std::path::Path, allowed: &str) -> Server {
    Server::with_manifest(&format!(
        "[app.standard]\nsource = {:?}\noutbound = [{allowed:?}]\n",
        wasm.display().to_string()
    ))
}

async fn get(server: &Server, path: &str) -> (u16, String) {
    let response = client().get(server.url(path)).send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.text().await.unwrap())
}

/// The routes both standard test guests share.
async fn standard_routes(krate: &str, greeting: &str, kind: &str) {
    let upstream = Upstream::start().await;
    let server = serve(&component(krate), &upstream.base);
    server.logged(kind).await;

    assert_eq!(get(&server, "/").await, (200, greeting.to_owned()));

    // A streamed body arrives whole, chunk after chunk.
    let started = Instant::now();
    let mut response = client().get(server.url("/stream")).send().await.unwrap();
    let mut received = String::new();
    while let Some(chunk) = response.chunk().await.unwrap() {
        received.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert_eq!(received, "chunk 0\nchunk 1\nchunk 2\nchunk 3\nchunk 4\n");
    assert!(started.elapsed() < Duration::from_secs(5));

    let echo = client()
        .post(server.url("/echo"))
        .body("round trip")
        .send()
        .await
        .unwrap();
    assert_eq!(echo.text().await.unwrap(), "round trip");

    // Outbound through Squall's allow-list and pooled client.
    let allowed = get(&server, &format!("/fetch?url={}", upstream.url("/hello"))).await;
    assert_eq!(allowed, (200, "200 hello".to_owned()));
    let denied = get(&server, "/fetch?url=http://127.0.0.1:1/").await;
    assert_eq!(denied.0, 502);
    assert!(denied.1.contains("HttpRequestDenied"), "{denied:?}");
    server.logged("fetch denied").await;

    assert_eq!(get(&server, "/missing").await.0, 404);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_wasi_0_2_proxy_component_is_served_unchanged() {
    standard_routes(
        "tests/guests/wasi-p2",
        "Hello from WASI 0.2!",
        "standard wasi:http 0.2 proxy component",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_wasi_0_3_service_component_is_served_unchanged() {
    standard_routes(
        "tests/guests/wasi-p3",
        "Hello from WASI 0.3!",
        "standard wasi:http 0.3 service component",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_hello_example_built_as_a_standard_component_answers_its_routes() {
    let server = serve(&standard_component("examples/hello"), "http://127.0.0.1:1");
    server
        .logged("standard wasi:http 0.3 service component")
        .await;
    assert_eq!(get(&server, "/").await, (200, "Hello, world!".to_owned()));
    assert_eq!(
        get(&server, "/hello/standard").await,
        (200, "Hello, standard!".to_owned())
    );
    let json = client()
        .get(server.url("/json?a=1&b=x"))
        .send()
        .await
        .unwrap();
    assert_eq!(json.headers()["content-type"], "application/json");
    assert_eq!(json.text().await.unwrap(), r#"{"a":"1","b":"x"}"#);
    let upload: Vec<u8> = (0..300_000u32).map(|i| (i % 241) as u8).collect();
    let echo = client()
        .post(server.url("/echo"))
        .body(upload.clone())
        .send()
        .await
        .unwrap();
    assert!(echo.bytes().await.unwrap() == upload);
    assert_eq!(
        get(&server, "/sleep/50").await,
        (200, "slept 50ms".to_owned())
    );
    assert_eq!(get(&server, "/panic").await.0, 500);
    assert_eq!(get(&server, "/nowhere").await.0, 404);
}

#[tokio::test(flavor = "multi_thread")]
async fn squall_only_capabilities_fail_clearly_on_a_standard_build() {
    let server = serve(
        &standard_component("tests/guests/sockets"),
        "http://127.0.0.1:1",
    );
    let response = client()
        .post(server.url("/publish/news"))
        .body("hi")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 403);
    let message = response.text().await.unwrap();
    assert!(
        message.contains("pubsub is a Squall capability"),
        "{message}"
    );
}

/// A standard component answers `/after?url=`, then logs and fetches `url`:
/// the client gets its answer while the work still runs, and the work
/// reaches its upstream.
async fn work_after_the_response(krate: &str, what: &str) -> Server {
    let upstream = Upstream::start().await;
    let server = Server::with_manifest(&format!(
        "[app.standard]\nsource = {:?}\noutbound = [{:?}]\ntimeout = \"5s\"\ncpu_time = \"300ms\"\n",
        component(krate).display().to_string(),
        upstream.base
    ));
    let slow = upstream.url("/delay/1500");
    let (status, body) = get(&server, &format!("/after?url={slow}")).await;
    assert_eq!((status, body.as_str()), (200, "answered"));
    let fetched = format!("{what} fetched after the response: 200");
    assert!(!server.logs().contains(&fetched), "{}", server.logs());
    assert!(
        server.wait_for_log(&fetched, Duration::from_secs(10)),
        "{}",
        server.logs()
    );
    server
        .logged(&format!("{what} work after the response"))
        .await;
    assert_eq!(upstream.requests(), 1);
    server
}

#[tokio::test(flavor = "multi_thread")]
async fn a_wasi_0_3_component_finishes_its_work_after_the_response_within_its_limits() {
    let server = work_after_the_response("tests/guests/wasi-p3", "p3").await;
    // Work that never ends is stopped by cpu_time, and the app serves on.
    assert_eq!(
        get(&server, "/after-spin").await,
        (200, "answered".to_owned())
    );
    server.logged("p3 spinning after the response").await;
    assert!(
        server.wait_for_log("cpu_time limit", Duration::from_secs(10)),
        "{}",
        server.logs()
    );
    assert_eq!(get(&server, "/").await.0, 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_wasi_0_2_component_finishes_its_work_after_setting_its_response() {
    work_after_the_response("tests/guests/wasi-p2", "p2").await;
}

/// Serve `krate`'s component under `/` with no grants.
fn serve_outside(krate: &str) -> Server {
    Server::with_manifest(&format!(
        "[app.outside]\nsource = {:?}\ntimeout = \"5s\"\n",
        component(krate).display().to_string()
    ))
}

#[tokio::test(flavor = "multi_thread")]
async fn a_spin_sdk_app_is_served_as_spin_serves_it() {
    let server = serve_outside("tests/guests/spin-hello");
    server
        .logged("standard wasi:http 0.3 service component")
        .await;

    let hello = client().get(server.url("/")).send().await.unwrap();
    assert_eq!(hello.status(), 200);
    assert_eq!(hello.text().await.unwrap(), "Hello from Spin!");

    let json = client().get(server.url("/json")).send().await.unwrap();
    assert_eq!(json.headers()["content-type"], "application/json");
    let json: serde_json::Value = serde_json::from_str(&json.text().await.unwrap()).unwrap();
    assert_eq!(json["greeting"], "hello");
    assert_eq!(json["path"], "/json");

    assert_eq!(get(&server, "/created").await, (201, "created".to_owned()));
    let teapot = client().get(server.url("/teapot")).send().await.unwrap();
    assert_eq!(teapot.status(), 418);
    assert_eq!(teapot.headers()["x-spin"], "yes");
    assert_eq!(teapot.text().await.unwrap(), "short and stout");
    assert_eq!(
        get(&server, "/nowhere").await,
        (404, "not found".to_owned())
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_wstd_server_streams_and_a_failing_body_ends_broken() {
    let server = serve_outside("tests/guests/wstd-server");
    server
        .logged("standard wasi:http 0.2 proxy component")
        .await;

    let hello = client().get(server.url("/")).send().await.unwrap();
    assert_eq!(hello.status(), 200);
    assert_eq!(hello.headers()["x-served-by"], "wstd");
    assert_eq!(hello.headers()["content-type"], "text/plain");
    assert_eq!(hello.text().await.unwrap(), "Hello from wstd!");

    let headers = client()
        .get(server.url("/headers"))
        .header("x-greeting", "hi there")
        .send()
        .await
        .unwrap();
    assert_eq!(headers.text().await.unwrap(), "x-greeting: hi there");

    let mut streamed = client().get(server.url("/stream")).send().await.unwrap();
    let mut received = String::new();
    while let Some(chunk) = streamed.chunk().await.unwrap() {
        received.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert_eq!(received, "part 0\npart 1\npart 2\npart 3\n");

    // The first part arrives, then the body breaks: never a clean end.
    let mut failing = client().get(server.url("/fail-body")).send().await.unwrap();
    assert_eq!(failing.status(), 200);
    let mut received = Vec::new();
    let outcome = loop {
        match failing.chunk().await {
            Ok(Some(chunk)) => received.extend_from_slice(&chunk),
            Ok(None) => break Ok(()),
            Err(err) => break Err(err),
        }
    };
    assert!(outcome.is_err(), "a clean end after {received:?}");
    assert!(received.starts_with(b"first part; "), "{received:?}");
    // wstd traps on a body error (its macro unwraps `respond`). When that
    // comes before the head is out the client gets a 500, else a broken
    // body: never a clean answer.
    let response = client()
        .get(server.url("/fail-body-at-once"))
        .send()
        .await
        .expect("an answer: a 500, or a head whose body breaks");
    let status = response.status().as_u16();
    let body = response.bytes().await;
    assert!(status == 500 || body.is_err(), "{status} {body:?}");

    assert_eq!(get(&server, "/fail").await.0, 500);
    assert_eq!(get(&server, "/nowhere").await.0, 404);
}

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
    server.expect_log(kind);

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
    server.expect_log("fetch denied");

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
    server.expect_log("standard wasi:http 0.3 service component");
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

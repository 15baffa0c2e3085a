//! `squall serve examples/hello`, visited like a user would.

#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};
use support::{Server, client, hello_wasm};

fn hello() -> Server {
    Server::start(&hello_wasm())
}

#[tokio::test]
async fn every_route_answers_as_documented() {
    let server = hello();
    let http = client();

    let root = http.get(server.url("/")).send().await.unwrap();
    assert_eq!(root.status(), 200);
    assert_eq!(root.text().await.unwrap(), "Hello, world!");

    let named = http.get(server.url("/hello/squall")).send().await.unwrap();
    assert_eq!(named.status(), 200);
    assert_eq!(named.text().await.unwrap(), "Hello, squall!");

    let json = http.get(server.url("/json?a=1&b=x")).send().await.unwrap();
    assert_eq!(json.status(), 200);
    assert_eq!(json.headers()["content-type"], "application/json");
    assert_eq!(json.text().await.unwrap(), r#"{"a":"1","b":"x"}"#);

    let echo = http
        .post(server.url("/echo"))
        .body("bytes \0 and \u{1F300}")
        .send()
        .await
        .unwrap();
    assert_eq!(echo.status(), 200);
    assert_eq!(echo.text().await.unwrap(), "bytes \0 and \u{1F300}");

    let slept = http.get(server.url("/sleep/50")).send().await.unwrap();
    assert_eq!(slept.status(), 200);
    assert_eq!(slept.text().await.unwrap(), "slept 50ms");

    let missing = http.get(server.url("/no/such/page")).send().await.unwrap();
    assert_eq!(missing.status(), 404);

    let wrong_method = http.delete(server.url("/")).send().await.unwrap();
    assert_eq!(wrong_method.status(), 405);
    assert_eq!(wrong_method.headers()["allow"], "GET");
}

#[tokio::test]
async fn a_panicking_handler_gets_500_and_the_next_request_is_served() {
    let server = hello();
    let http = client();
    let panicked = http.get(server.url("/panic")).send().await.unwrap();
    assert_eq!(panicked.status(), 500);
    let body = panicked.text().await.unwrap();
    assert!(
        !body.contains("panic"),
        "the body reveals nothing: {body:?}"
    );

    let next = http.get(server.url("/")).send().await.unwrap();
    assert_eq!(next.status(), 200);
    assert_eq!(next.text().await.unwrap(), "Hello, world!");

    // The guest's panic message reaches the log with the request's id.
    server.logged("this handler panics on purpose").await;
    server.logged("status=500").await;
}

#[test]
fn http1_keep_alive_serves_several_requests_on_one_connection() {
    let server = hello();
    let mut socket = TcpStream::connect(server.address()).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    for name in ["one", "two", "three"] {
        write!(socket, "GET /hello/{name} HTTP/1.1\r\nHost: test\r\n\r\n").unwrap();
        let response = read_http1_response(&mut socket);
        assert!(response.starts_with("HTTP/1.1 200 OK"), "{response}");
        assert!(response.ends_with(&format!("Hello, {name}!")), "{response}");
    }
}

/// Reads one response whose body has a content-length.
fn read_http1_response(socket: &mut TcpStream) -> String {
    let mut received = Vec::new();
    let mut byte = [0u8; 1];
    while !received.ends_with(b"\r\n\r\n") {
        socket.read_exact(&mut byte).unwrap();
        received.push(byte[0]);
    }
    let head = String::from_utf8(received.clone()).unwrap();
    let length: usize = head
        .lines()
        .find_map(|line| line.strip_prefix("content-length: "))
        .expect("a content-length")
        .trim()
        .parse()
        .unwrap();
    let mut body = vec![0u8; length];
    socket.read_exact(&mut body).unwrap();
    received.extend_from_slice(&body);
    String::from_utf8(received).unwrap()
}

#[tokio::test]
async fn http2_with_prior_knowledge() {
    let server = hello();
    let http = reqwest::Client::builder()
        .http2_prior_knowledge()
        .build()
        .unwrap();
    let response = http.get(server.url("/hello/h2")).send().await.unwrap();
    assert_eq!(response.version(), reqwest::Version::HTTP_2);
    assert_eq!(response.text().await.unwrap(), "Hello, h2!");

    let upload: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    let echo = http
        .post(server.url("/echo"))
        .body(upload.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(echo.version(), reqwest::Version::HTTP_2);
    assert_eq!(echo.bytes().await.unwrap(), upload);
}

#[tokio::test]
async fn a_5_mib_body_echoes_back_byte_for_byte() {
    let server = hello();
    let upload: Vec<u8> = (0..5u32 << 20)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    let echo = client()
        .post(server.url("/echo"))
        .body(upload.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(echo.status(), 200);
    let echoed = echo.bytes().await.unwrap();
    assert_eq!(echoed.len(), upload.len());
    assert!(echoed == upload, "the echo differs from the upload");
}

#[tokio::test]
async fn an_11_mib_body_is_refused_with_413() {
    let server = hello();
    let http = client();
    let declared = http
        .post(server.url("/echo"))
        .body(vec![7u8; 11 << 20])
        .send()
        .await
        .unwrap();
    assert_eq!(declared.status(), 413);

    let next = http.get(server.url("/")).send().await.unwrap();
    assert_eq!(next.status(), 200);
}

#[tokio::test]
async fn two_hundred_concurrent_sleeps_overlap() {
    let server = hello();
    let http = client();
    let started = Instant::now();
    let requests = (0..200).map(|_| {
        let http = http.clone();
        let url = server.url("/sleep/500");
        async move {
            let response = http.get(url).send().await.unwrap();
            assert_eq!(response.status(), 200);
            assert_eq!(response.text().await.unwrap(), "slept 500ms");
        }
    });
    futures::future::join_all(requests).await;
    let elapsed = started.elapsed();
    // Serially this would take 100 s; overlapped, about one sleep.
    assert!(
        elapsed < Duration::from_secs(10),
        "200 sleeps of 500 ms took {elapsed:?}"
    );
}

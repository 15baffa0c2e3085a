//! Hostile clients and hostile guests meet clear limits, and a
//! well-behaved neighbour keeps being served while they do. Real binary,
//! real sockets: raw TCP where a client library would refuse to misbehave.
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};
use support::{Server, client, hello_wasm, manifest, misbehave_wasm};

fn hello_server(server_settings: &str) -> Server {
    Server::with_manifest(&format!(
        "[server]\n{server_settings}\n{}",
        manifest("hello", &hello_wasm(), "")
    ))
}

/// What the server sends back on `stream` until it closes (or 10 s pass).
fn read_all(stream: &mut TcpStream) -> String {
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    String::from_utf8_lossy(&answer).into_owned()
}

/// Read from `stream` until what was read ends with `end` (or 10 s pass).
fn read_until(stream: &mut TcpStream, end: &str) -> String {
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut answer = Vec::new();
    let mut buffer = [0u8; 4096];
    while !answer.ends_with(end.as_bytes()) {
        match stream.read(&mut buffer) {
            Ok(0) | Err(_) => break,
            Ok(read) => answer.extend_from_slice(&buffer[..read]),
        }
    }
    String::from_utf8_lossy(&answer).into_owned()
}

/// The neighbour: a plain request that must succeed.
async fn neighbour_ok(server: &Server) {
    let response = client()
        .get(server.url("/hello/neighbour"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await.unwrap(), "Hello, neighbour!");
}

#[tokio::test]
async fn slowloris_headers_are_cut_at_the_header_read_timeout() {
    let server = hello_server("header_read_timeout = \"1s\"");
    let mut slow = TcpStream::connect(server.address()).unwrap();
    slow.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        .unwrap();
    let started = Instant::now();
    neighbour_ok(&server).await;
    let answer = read_all(&mut slow);
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(900) && waited < Duration::from_secs(5),
        "cut after {waited:?}: {answer:?}"
    );
    assert!(!answer.contains("200 OK"), "{answer}");
}

#[tokio::test]
async fn too_many_or_too_large_headers_get_431() {
    let server = hello_server("max_header_bytes = \"8KiB\"\nmax_headers = 20");
    let mut many = TcpStream::connect(server.address()).unwrap();
    let mut request = String::from("GET / HTTP/1.1\r\nHost: x\r\n");
    for i in 0..50 {
        request.push_str(&format!("X-H{i}: {i}\r\n"));
    }
    request.push_str("\r\n");
    many.write_all(request.as_bytes()).unwrap();
    let answer = read_all(&mut many);
    assert!(answer.starts_with("HTTP/1.1 431"), "{answer}");

    let mut large = TcpStream::connect(server.address()).unwrap();
    let big = "a".repeat(16 << 10);
    large
        .write_all(format!("GET / HTTP/1.1\r\nHost: x\r\nX-Big: {big}\r\n\r\n").as_bytes())
        .unwrap();
    let answer = read_all(&mut large);
    assert!(answer.starts_with("HTTP/1.1 431"), "{answer}");
    neighbour_ok(&server).await;
}

#[tokio::test]
async fn idle_connections_are_closed() {
    let server = hello_server("idle_timeout = \"1s\"\nheader_read_timeout = \"30s\"");
    let mut idle = TcpStream::connect(server.address()).unwrap();
    idle.write_all(b"GET /hello/a HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let started = Instant::now();
    let answer = read_all(&mut idle);
    assert!(answer.contains("Hello, a!"), "{answer}");
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(900) && waited < Duration::from_secs(5),
        "an idle keep-alive connection closed after {waited:?}"
    );
}

#[tokio::test]
async fn at_max_connections_new_clients_wait_their_turn() {
    let server = hello_server("max_connections = 2");
    let first = TcpStream::connect(server.address()).unwrap();
    let second = TcpStream::connect(server.address()).unwrap();
    let http = client();
    let waiting = tokio::spawn(http.get(server.url("/hello/third")).send());
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        !waiting.is_finished(),
        "a third connection is not served yet"
    );
    server.expect_log("connection limit reached (max_connections = 2)");
    drop(first);
    drop(second);
    let response = waiting.await.unwrap().unwrap();
    assert_eq!(response.status(), 200, "served once a place is free");
}

#[tokio::test]
async fn expect_100_continue_is_answered_when_the_guest_reads() {
    let server =
        Server::with_manifest(&manifest("count", &misbehave_wasm(), "max_body = \"1KiB\""));
    let mut stream = TcpStream::connect(server.address()).unwrap();
    stream
        .write_all(
            b"POST /count HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n",
        )
        .unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut interim = [0u8; 25];
    stream.read_exact(&mut interim).unwrap();
    assert_eq!(&interim, b"HTTP/1.1 100 Continue\r\n\r\n");
    stream.write_all(b"hello").unwrap();
    let answer = read_until(&mut stream, "\r\n\r\n5");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");

    // Too large by its length: refused without a 100.
    let mut refused = TcpStream::connect(server.address()).unwrap();
    refused
        .write_all(
            b"POST /count HTTP/1.1\r\nHost: x\r\nContent-Length: 4096\r\nExpect: 100-continue\r\n\r\n",
        )
        .unwrap();
    let answer = read_until(&mut refused, "Payload Too Large\n");
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
}

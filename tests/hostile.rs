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

#[tokio::test]
async fn slowloris_headers_are_cut_at_the_header_read_timeout() {
    let server = hello_server("header_read_timeout = \"1s\"");
    let mut slow = TcpStream::connect(server.address()).unwrap();
    slow.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        .unwrap();
    let started = Instant::now();
    support::neighbour_answers(&server).await;
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
    support::neighbour_answers(&server).await;
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

/// An HTTP/2 client of `server` (with a receive window of `window`) that
/// sends one request, then only PINGs, for as long as the server keeps the
/// connection; how many PINGs it sent. It must be closed: a minute is the
/// test's own guard.
async fn ping_until_closed(server: &Server, window: u32) -> u32 {
    let socket = tokio::net::TcpStream::connect(server.address())
        .await
        .unwrap();
    let (mut h2, mut connection) = h2::client::Builder::new()
        .initial_window_size(window)
        .handshake::<_, bytes::Bytes>(socket)
        .await
        .unwrap();
    let mut ping_pong = connection.ping_pong().unwrap();
    let (ended_tx, mut ended) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let _ = connection.await;
        let _ = ended_tx.send(());
    });
    let request = http::Request::get(server.url("/hello/pinger"))
        .body(())
        .unwrap();
    let (answer, _) = h2.send_request(request, true).unwrap();
    // Kept, unread, to the end.
    let answer = answer.await.unwrap();
    assert_eq!(answer.status(), 200);
    let guard = tokio::time::sleep(Duration::from_secs(60));
    tokio::pin!(guard);
    let (mut pings, mut pinging) = (0u32, true);
    loop {
        tokio::select! {
            // Over only when the connection is: a GOAWAY alone ends the
            // pings, not a connection with an answer still open on it.
            _ = &mut ended => return pings,
            () = &mut guard => panic!("still open after {pings} pings"),
            pong = ping_pong.ping(h2::Ping::opaque()), if pinging => {
                pinging = pong.is_ok();
                pings += u32::from(pinging);
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

#[tokio::test]
async fn an_http2_client_that_only_pings_is_closed_when_idle() {
    let server = hello_server("idle_timeout = \"1s\"");
    let pings = ping_until_closed(&server, 65_535).await;
    assert!(pings > 0, "the client pinged before the close");
    support::neighbour_answers(&server).await;
}

#[tokio::test]
async fn an_http2_client_that_stops_reading_an_answer_and_pings_is_dropped() {
    let server = hello_server("idle_timeout = \"1s\"");
    // A window of 0: the server may send the answer's head, never its body.
    ping_until_closed(&server, 0).await;
    server.logged("dropping idle connection").await;
    support::neighbour_answers(&server).await;
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
    server
        .logged("connection limit reached (max_connections = 2)")
        .await;
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

    // A handler that answers before it reads (a streaming echo): the 100
    // still comes first, then the answer with the body sent after it.
    let hello = hello_server("");
    let mut echo = TcpStream::connect(hello.address()).unwrap();
    echo.write_all(
        b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n",
    )
    .unwrap();
    echo.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut interim = [0u8; 25];
    echo.read_exact(&mut interim).unwrap();
    assert_eq!(&interim, b"HTTP/1.1 100 Continue\r\n\r\n");
    echo.write_all(b"hello").unwrap();
    let answer = read_until(&mut echo, "hello\r\n0\r\n\r\n");
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

// ---- WebSockets under pressure -------------------------------------------

use futures::{SinkExt, StreamExt};
use tokio_tungstenite::connect_async;
use tokio_tungstenite::tungstenite::Message;

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// The sockets test guest: hibernate at `/echo` and `/count`, live under
/// `/live`, with `extra` settings on both routes.
fn sockets(app_settings: &str, extra: &str) -> Server {
    Server::with_manifest(&format!(
        "[app.sockets]\nsource = {:?}\npubsub = [\"news\"]\n{app_settings}\n\
         [[app.sockets.websocket]]\nroutes = [\"/live\"]\nmode = \"live\"\n{extra}\n\
         [[app.sockets.websocket]]\nroutes = [\"/echo\", \"/count\"]\n{extra}\n",
        support::component("tests/guests/sockets")
            .display()
            .to_string()
    ))
}

async fn connect(server: &Server, path: &str) -> Socket {
    connect_async(format!("ws://{}{path}", server.address()))
        .await
        .unwrap()
        .0
}

/// The next message that is not a ping or pong, within 10 s.
async fn next(socket: &mut Socket) -> Message {
    loop {
        let message = tokio::time::timeout(Duration::from_secs(10), socket.next())
            .await
            .expect("a message within 10 s")
            .expect("the socket is open")
            .expect("a valid message");
        if !matches!(message, Message::Ping(_) | Message::Pong(_)) {
            return message;
        }
    }
}

#[tokio::test]
async fn large_messages_reach_the_client_up_to_the_limit() {
    let server = sockets("", "max_message = \"8KiB\"");
    let mut socket = connect(&server, "/echo").await;
    socket.send(Message::text("big:300000")).await.unwrap();
    let Message::Text(text) = next(&mut socket).await else {
        panic!("a text message")
    };
    assert_eq!(text.len(), 300_000);
    socket.send(Message::text("too-big")).await.unwrap();
    assert_eq!(next(&mut socket).await, Message::text("Err(TooLarge)"));
    socket.send(Message::text("still open")).await.unwrap();
    assert_eq!(next(&mut socket).await, Message::text("still open"));
}

#[tokio::test]
async fn a_large_publish_reaches_every_subscriber() {
    let server = sockets("", "");
    let mut subscribers = Vec::new();
    for _ in 0..3 {
        subscribers.push(connect(&server, "/count").await);
    }
    let payload = "p".repeat(200_000);
    let published = client()
        .post(server.url("/publish/news"))
        .body(payload.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(published.status(), 200);
    for socket in &mut subscribers {
        assert_eq!(next(socket).await, Message::text(payload.clone()));
    }
}

#[tokio::test]
async fn what_is_sent_before_a_close_arrives_before_it() {
    let server = sockets("", "");
    for round in 0..20 {
        let mut socket = connect(&server, "/echo").await;
        socket.send(Message::text("send-then-close")).await.unwrap();
        for i in 0..10 {
            let got = tokio::time::timeout(Duration::from_secs(10), socket.next()).await;
            let Ok(Some(Ok(message))) = got else {
                panic!("round {round}, message {i}: {got:?}\n{}", server.logs());
            };
            assert_eq!(message, Message::text(i.to_string()));
        }
        let Message::Close(Some(frame)) = next(&mut socket).await else {
            panic!("a close frame")
        };
        assert_eq!(u16::from(frame.code), 4001);
    }
}

#[tokio::test]
async fn a_long_handler_does_not_drop_a_client_that_answers_pings() {
    let server = sockets("", "ping_interval = \"300ms\"\nping_timeout = \"300ms\"");
    let mut socket = connect(&server, "/echo").await;
    socket.send(Message::text("wait:2000")).await.unwrap();
    socket.send(Message::text("after")).await.unwrap();
    // Reading answers the server's pings (tungstenite replies by itself).
    assert_eq!(next(&mut socket).await, Message::text("waited"));
    assert_eq!(next(&mut socket).await, Message::text("after"));
}

#[tokio::test]
async fn a_stuck_live_handler_ends_its_connection_and_frees_its_instance() {
    let server = sockets("timeout = \"1s\"\nmax_instances = 1", "");
    let mut stuck = connect(&server, "/live/echo").await;
    stuck.send(Message::text("wait:60000")).await.unwrap();
    let started = Instant::now();
    let Message::Close(Some(frame)) = next(&mut stuck).await else {
        panic!("a close frame")
    };
    assert_eq!(u16::from(frame.code), 1011);
    assert!(started.elapsed() < Duration::from_secs(5));
    // Its only instance is free again: at once, or a moment after the close
    // frame (the store is dropped after the frame is sent).
    let freed = Instant::now();
    let mut next_socket = loop {
        match connect_async(format!("ws://{}/live/echo", server.address())).await {
            Ok((socket, _)) => break socket,
            Err(refused) if freed.elapsed() < Duration::from_secs(5) => {
                assert!(refused.to_string().contains("503"), "{refused}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(refused) => panic!("the instance was not freed: {refused}"),
        }
    };
    next_socket.send(Message::text("hi")).await.unwrap();
    assert_eq!(next(&mut next_socket).await, Message::text("hi"));
}

#[tokio::test]
async fn an_idle_connection_can_be_bounded() {
    let server = sockets("", "idle_timeout = \"500ms\"");
    let mut socket = connect(&server, "/echo").await;
    let started = Instant::now();
    let Message::Close(Some(frame)) = next(&mut socket).await else {
        panic!("a close frame")
    };
    assert_eq!(u16::from(frame.code), 1001);
    assert!(started.elapsed() >= Duration::from_millis(400));
}

// ---- Deadlines while streaming ------------------------------------------

/// Read a streamed body to its end: what arrived, and whether it broke.
async fn read_streamed(response: reqwest::Response) -> (Vec<u8>, bool) {
    let mut body = response.bytes_stream();
    let mut received = Vec::new();
    while let Some(chunk) = body.next().await {
        match chunk {
            Ok(chunk) => received.extend_from_slice(&chunk),
            Err(_) => return (received, true),
        }
    }
    (received, false)
}

#[tokio::test]
async fn a_wasi_02_body_never_finished_is_cut_at_the_deadline() {
    let wasm = support::component("tests/guests/wasi-p2");
    let server = Server::with_manifest(&manifest("p2", &wasm, "timeout = \"1s\""));
    let started = Instant::now();
    let response = client().get(server.url("/hang")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let (received, broken) = read_streamed(response).await;
    assert_eq!(received, b"started ");
    assert!(
        broken,
        "a body the component never finished is visibly broken"
    );
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn the_deadline_holds_while_a_client_does_not_read() {
    for (wasm, answers) in [
        (misbehave_wasm(), "/ok"),
        (support::component("tests/guests/wasi-p2"), "/"),
    ] {
        deadline_holds_for_a_client_that_does_not_read(&wasm, answers).await;
    }
}

/// `answers`: a path the component answers 200 at once.
async fn deadline_holds_for_a_client_that_does_not_read(wasm: &std::path::Path, answers: &str) {
    let server = Server::with_manifest(&manifest(
        "app",
        wasm,
        "timeout = \"1s\"\nmax_instances = 1",
    ));
    // A client that asks for an endless body and never reads it.
    let mut lazy = TcpStream::connect(server.address()).unwrap();
    lazy.write_all(b"GET /endless HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    // Its instance is freed at the 1 s deadline: the only one serves again
    // (503 while it is held).
    support::until(
        async || {
            let status = client()
                .get(server.url(answers))
                .send()
                .await
                .unwrap()
                .status();
            assert!(
                status == 200 || status == 503,
                "{status}: {:?}",
                server.logs()
            );
            status == 200
        },
        || format!("never freed: {:?}", server.logs()),
    )
    .await;
    drop(lazy);
}

#[tokio::test]
async fn a_streamed_fetch_body_that_breaks_is_not_sent_as_complete() {
    let upstream = support::upstream::Upstream::start().await;
    let server = Server::with_manifest(&manifest(
        "coroutines",
        &support::component("tests/guests/coroutines"),
        "outbound = [\"http://127.0.0.1:*\"]",
    ));
    let url = upstream.url("/sink");
    let response = client()
        .get(server.url(&format!("/forward-broken?url={url}")))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 500, "the guest trapped");
    let started = Instant::now();
    while upstream.sunk().is_empty() && started.elapsed() < Duration::from_secs(5) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let sunk = upstream.sunk();
    assert_eq!(sunk.len(), 1, "the upstream saw the request start");
    assert!(
        sunk[0].is_err(),
        "the upstream took a cut-off body as complete: {sunk:?}"
    );
}

#[tokio::test]
async fn an_answer_aliasing_one_buffer_many_times_is_not_copied_many_times() {
    // 64 header values that all point at one 8 MiB buffer: 512 MiB if the
    // host copied each; it copies no more than the guest's 16 MiB.
    let alias = support::component("tests/guests/alias");
    let server = Server::with_manifest(&format!(
        "{}\n[app.alias]\nsource = {:?}\nhosts = [\"alias.test\"]\nmemory = \"16MiB\"\n",
        manifest("hello", &hello_wasm(), "hosts = [\"hello.test\"]"),
        alias.display().to_string()
    ));
    let http = client();
    let before = support::peak_kib(server.pid());
    let aliased = http
        .get(server.url("/headers/64/8"))
        .header("host", "alias.test")
        .send()
        .await
        .unwrap();
    assert_eq!(aliased.status(), 500);
    let grown = support::peak_kib(server.pid()).saturating_sub(before);
    assert!(grown < 64 << 10, "the host's peak grew by {grown} KiB");
    let hello = http
        .get(server.url("/hello/neighbour"))
        .header("host", "hello.test")
        .send()
        .await
        .unwrap();
    assert_eq!(hello.text().await.unwrap(), "Hello, neighbour!");
    server.logged("too much data is being copied").await;
}

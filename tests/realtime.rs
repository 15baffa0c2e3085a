//! WebSockets, pub/sub and long polling through the real host, with real
//! clients (tokio-tungstenite, and a raw socket for what it refuses to send).
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

mod support;

use futures::{SinkExt, StreamExt};
use std::time::{Duration, Instant};
use support::raw_ws::RawSocket;
use support::{Server, Socket, client, component, next_text, repo};
use tokio_tungstenite::connect_async;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

/// The sockets test guest: hibernate mode at `/`, live mode under `/live`.
fn sockets(extra: &str) -> Server {
    Server::with_manifest(&format!(
        "[app.sockets]\nsource = {:?}\npubsub = [\"news\"]\n\n\
         [[app.sockets.websocket]]\nroutes = [\"/live\"]\nmode = \"live\"\n{extra}\n\
         [[app.sockets.websocket]]\nroutes = [\"/echo\", \"/count\", \"/reject\", \"/protocol\"]\nmode = \"hibernate\"\n{extra}\n",
        component("tests/guests/sockets").display().to_string()
    ))
}

async fn connect(server: &Server, path: &str) -> Socket {
    let url = format!("ws://{}{path}", server.address());
    connect_async(url).await.unwrap().0
}

#[tokio::test(flavor = "multi_thread")]
async fn echo_in_both_modes_in_order() {
    let server = sockets("");
    for path in ["/echo", "/live/echo"] {
        let mut socket = connect(&server, path).await;
        socket.send(Message::text("hello")).await.unwrap();
        assert_eq!(next_text(&mut socket).await, "hello");
        socket.send(Message::binary(vec![1u8, 2, 3])).await.unwrap();
        let reply = socket.next().await.unwrap().unwrap();
        assert_eq!(reply, Message::binary(vec![1u8, 2, 3]));
        // Events of one connection are handled one at a time, in order.
        socket.send(Message::text("slow")).await.unwrap();
        socket.send(Message::text("fast")).await.unwrap();
        assert_eq!(next_text(&mut socket).await, "slow done", "{path}");
        assert_eq!(next_text(&mut socket).await, "fast", "{path}");
        socket.close(None).await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_burst_of_queued_messages_arrives_whole_and_in_order() {
    // Frames queued together go out in batches with one flush each; none
    // is lost or reordered, and the socket reads the client's next message.
    let server = sockets("");
    for path in ["/echo", "/live/echo"] {
        let mut socket = connect(&server, path).await;
        socket.send(Message::text("burst:100")).await.unwrap();
        for n in 0..100 {
            assert_eq!(next_text(&mut socket).await, n.to_string(), "{path}");
        }
        socket.send(Message::text("after")).await.unwrap();
        assert_eq!(next_text(&mut socket).await, "after", "{path}");
        socket.close(None).await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn hibernate_keeps_state_between_events_and_live_keeps_memory() {
    let server = sockets("");
    let mut hibernating = connect(&server, "/count").await;
    for n in 1..=3 {
        hibernating.send(Message::text("tick")).await.unwrap();
        // A fresh instance per event: guest memory starts over, the host-kept state does not.
        assert_eq!(
            next_text(&mut hibernating).await,
            format!("state={n} instance=1")
        );
    }
    let mut live = connect(&server, "/live/count").await;
    for n in 1..=3 {
        live.send(Message::text("tick")).await.unwrap();
        assert_eq!(
            next_text(&mut live).await,
            format!("state={n} instance={n}")
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_state_that_no_longer_decodes_is_an_error_not_a_fresh_start() {
    let server = sockets("");
    let mut socket = connect(&server, "/count").await;
    socket.send(Message::text("tick")).await.unwrap();
    assert_eq!(next_text(&mut socket).await, "state=1 instance=1");
    socket.send(Message::text("garble")).await.unwrap();
    socket.send(Message::text("tick")).await.unwrap();
    let answer = next_text(&mut socket).await;
    assert!(
        answer.starts_with("state error: the connection's state is not a u64"),
        "{answer}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn broadcast_reaches_every_subscribed_socket_without_the_guest() {
    let server = Server::start(&repo().join("examples/chat"));
    let mut sockets = Vec::new();
    for _ in 0..5 {
        sockets.push(connect(&server, "/chatsocket").await);
    }
    sockets[0]
        .send(Message::text(r#"{"body": "hello everyone"}"#))
        .await
        .unwrap();
    for socket in &mut sockets {
        let message: serde_json::Value = serde_json::from_str(&next_text(socket).await).unwrap();
        assert_eq!(message["body"], "hello everyone");
        assert_eq!(message["id"], 1);
    }
    // A long-poll post reaches the sockets too.
    let posted = client()
        .post(server.url("/a/message/new"))
        .form(&[("body", "from http")])
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let posted: serde_json::Value = serde_json::from_str(&posted).unwrap();
    assert_eq!(posted["id"], 2);
    for socket in &mut sockets {
        let message: serde_json::Value = serde_json::from_str(&next_text(socket).await).unwrap();
        assert_eq!(message["body"], "from http");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn websocket_routes_declared_in_the_router_alone_are_served() {
    // No manifest at all: the host learns /echo (and the others) from the
    // app when it loads it, in the default mode (hibernate).
    let server = Server::start(&component("tests/guests/sockets"));
    let mut socket = connect(&server, "/echo").await;
    socket.send(Message::text("hello")).await.unwrap();
    assert_eq!(next_text(&mut socket).await, "hello");
    let mut live = connect(&server, "/live/echo").await;
    live.send(Message::text("again")).await.unwrap();
    assert_eq!(next_text(&mut live).await, "again");
    // A path no route declares is not upgraded.
    let refused = connect_async(format!("ws://{}/nowhere", server.address())).await;
    assert!(refused.is_err());
}

#[test]
fn a_malformed_route_pattern_is_refused_at_load() {
    let wasm = component("tests/guests/bad-route");
    let output = support::squall()
        .arg("serve")
        .arg(&wasm)
        .args(["--listen", "127.0.0.1:0"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("malformed routes")
            && stderr.contains("\"/items/{id\"")
            && stderr.contains("unclosed"),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_chat_history_survives_a_restart() {
    let data = tempfile::tempdir().unwrap();
    let chat = repo().join("examples/chat");
    let server = Server::start_in(&chat, data.path());
    for body in ["first", "second"] {
        let posted = client()
            .post(server.url("/a/message/new"))
            .form(&[("body", body)])
            .send()
            .await
            .unwrap();
        assert_eq!(posted.status(), 200);
    }
    drop(server);
    let server = Server::start_in(&chat, data.path());
    // A page opened after the restart gets the history, by poll and by socket.
    let updates = client()
        .post(server.url("/a/message/updates"))
        .form(&[("cursor", "0")])
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let updates: serde_json::Value = serde_json::from_str(&updates).unwrap();
    assert_eq!(updates["messages"][0]["body"], "first", "{updates}");
    assert_eq!(updates["messages"][1]["id"], 2, "{updates}");
    let mut socket = connect(&server, "/chatsocket").await;
    let first: serde_json::Value = serde_json::from_str(&next_text(&mut socket).await).unwrap();
    assert_eq!(first["body"], "first");
    // New messages go on from where the history stopped.
    let posted = client()
        .post(server.url("/a/message/new"))
        .form(&[("body", "third")])
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let posted: serde_json::Value = serde_json::from_str(&posted).unwrap();
    assert_eq!(posted["id"], 3);
}

#[tokio::test(flavor = "multi_thread")]
async fn long_poll_waiters_wake_on_publish() {
    let server = Server::start(&repo().join("examples/chat"));
    let http = client();
    let waiter = {
        let http = http.clone();
        let url = server.url("/a/message/updates");
        tokio::spawn(async move {
            let started = Instant::now();
            let text = http
                .post(url)
                .form(&[("cursor", "0")])
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap();
            (started.elapsed(), text)
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    http.post(server.url("/a/message/new"))
        .form(&[("body", "wake up")])
        .send()
        .await
        .unwrap();
    let (waited, text) = waiter.await.unwrap();
    let updates: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(updates["messages"][0]["body"], "wake up", "{updates}");
    assert_eq!(updates["messages"][0]["id"], 1, "{updates}");
    assert!(
        waited >= Duration::from_millis(250) && waited < Duration::from_secs(5),
        "{waited:?}"
    );

    // With the cursor past it, the next poll waits for something newer.
    let later = {
        let http = http.clone();
        let url = server.url("/a/message/updates");
        tokio::spawn(async move {
            http.post(url)
                .form(&[("cursor", "1")])
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap()
        })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!later.is_finished());
    http.post(server.url("/a/message/new"))
        .form(&[("body", "second")])
        .send()
        .await
        .unwrap();
    let updates: serde_json::Value = serde_json::from_str(&later.await.unwrap()).unwrap();
    assert_eq!(
        updates["messages"].as_array().unwrap().len(),
        1,
        "{updates}"
    );
    assert_eq!(updates["messages"][0]["body"], "second");
}

#[test]
fn a_long_poll_is_cancelled_when_its_client_goes_away() {
    use std::io::Write;
    let server = Server::start(&repo().join("examples/chat"));
    let mut socket = std::net::TcpStream::connect(server.address()).unwrap();
    let body = "cursor=0";
    write!(
        socket,
        "POST /a/message/updates HTTP/1.1\r\nHost: test\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    drop(socket);
    server.expect_log("cancelled: the client went away");
}

#[tokio::test(flavor = "multi_thread")]
async fn pubsub_topics_must_be_granted() {
    let server = sockets("");
    let http = client();
    let granted = http
        .post(server.url("/publish/news"))
        .body("hi")
        .send()
        .await
        .unwrap();
    assert_eq!(granted.status(), 200);
    assert_eq!(granted.text().await.unwrap(), "1");
    let denied = http
        .post(server.url("/publish/secret"))
        .body("hi")
        .send()
        .await
        .unwrap();
    assert_eq!(denied.status(), 403);
    assert!(
        denied
            .text()
            .await
            .unwrap()
            .contains("not in this app's pubsub list")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_socket_subscribed_to_a_topic_gets_what_http_publishes() {
    let server = sockets("");
    let mut socket = connect(&server, "/count").await;
    // `/count` subscribes to `news` on open.
    let published = client()
        .post(server.url("/publish/news"))
        .body("extra, extra")
        .send()
        .await
        .unwrap();
    assert_eq!(published.status(), 200);
    assert_eq!(next_text(&mut socket).await, "extra, extra");
}

#[test]
fn each_close_code() {
    let server = sockets("max_message = \"1KiB\"");
    let address = server.address();

    // Too big: 1009.
    let (mut socket, head) = RawSocket::handshake(&address, "/echo", &[]);
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    socket.send(0x1, &[b'a'; 2000], true);
    assert_eq!(socket.read_close().and_then(|f| f.close_code()), Some(1009));

    // Invalid UTF-8 in a text message: 1007.
    let (mut socket, _) = RawSocket::handshake(&address, "/echo", &[]);
    socket.send(0x1, &[0xff, 0xfe, 0xfd], true);
    assert_eq!(socket.read_close().and_then(|f| f.close_code()), Some(1007));

    // An unmasked client frame breaks the protocol: 1002.
    let (mut socket, _) = RawSocket::handshake(&address, "/echo", &[]);
    socket.send(0x1, b"hello", false);
    assert_eq!(socket.read_close().and_then(|f| f.close_code()), Some(1002));

    // The guest closes with its own code.
    let (mut socket, _) = RawSocket::handshake(&address, "/echo", &[]);
    socket.send(0x1, b"close", true);
    let close = socket.read_close().unwrap();
    assert_eq!(close.close_code(), Some(4000));
    assert_eq!(&close.payload[2..], b"bye");

    // A client that does not read while the guest floods it is closed
    // (1008), not buffered for: by the time it reads, the close frame may
    // not fit behind the data it left unread, so the socket may just end.
    let (mut socket, _) = RawSocket::handshake(&address, "/echo", &[]);
    socket.send(0x1, b"flood", true);
    server.expect_log("send queue full");
    let close = socket.read_close();
    assert!(
        close.as_ref().is_none_or(|f| f.close_code() == Some(1008)),
        "{close:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn cross_origin_upgrades_are_refused_unless_allowed() {
    let server = sockets("origins = [\"http://trusted.example\"]");
    let address = server.address();
    let upgrade = |origin: String| {
        let address = address.clone();
        async move {
            let mut request = format!("ws://{address}/echo")
                .into_client_request()
                .unwrap();
            request
                .headers_mut()
                .insert("origin", origin.parse().unwrap());
            connect_async(request).await
        }
    };
    let refused = upgrade("http://evil.example".into()).await;
    match refused {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 403)
        }
        other => panic!("a cross-origin upgrade was not refused: {other:?}"),
    }
    assert!(
        upgrade(format!("http://{address}")).await.is_ok(),
        "same origin"
    );
    assert!(
        upgrade("http://trusted.example".into()).await.is_ok(),
        "allowed origin"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_guest_can_refuse_an_upgrade_and_pick_a_subprotocol() {
    let server = sockets("");
    match connect_async(format!("ws://{}/reject", server.address())).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 403);
            let body = response.body().clone().unwrap_or_default();
            assert_eq!(String::from_utf8_lossy(&body).trim(), "not you");
        }
        other => panic!("the upgrade was not refused: {other:?}"),
    }
    let mut request = format!("ws://{}/protocol", server.address())
        .into_client_request()
        .unwrap();
    request.headers_mut().insert(
        "sec-websocket-protocol",
        "chat.v1, chat.v2".parse().unwrap(),
    );
    let (_socket, response) = connect_async(request).await.unwrap();
    assert_eq!(response.headers()["sec-websocket-protocol"], "chat.v2");
}

#[test]
fn pings_keep_live_clients_and_drop_silent_ones() {
    let server = sockets("ping_interval = \"200ms\"\nping_timeout = \"300ms\"");
    let (mut silent, _) = RawSocket::handshake(&server.address(), "/echo", &[]);
    // It is pinged, never answers, and is closed as gone away.
    let first = silent.read().unwrap();
    assert_eq!(first.opcode, 0x9, "a ping");
    let close = silent.read_close().unwrap();
    assert_eq!(close.close_code(), Some(CloseCode::Away.into()));

    // A client that answers (tungstenite pongs by itself) stays open.
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let mut socket = connect(&server, "/echo").await;
        // Three pings answered (each past the 300 ms ping timeout of the
        // one before) and the socket is still open.
        let three_pings = async {
            let mut pings = 0;
            while pings < 3 {
                match socket.next().await {
                    Some(Ok(Message::Ping(_))) => pings += 1,
                    Some(Ok(_)) => {}
                    other => panic!("the socket ended after {pings} pings: {other:?}"),
                }
            }
        };
        tokio::time::timeout(Duration::from_secs(30), three_pings)
            .await
            .expect("three pings");
        socket.send(Message::text("still here")).await.unwrap();
        assert_eq!(next_text(&mut socket).await, "still here");
    });
}

#[tokio::test(flavor = "multi_thread")]
async fn shutdown_closes_sockets_as_going_away() {
    let mut server = sockets("");
    let mut socket = connect(&server, "/echo").await;
    server.terminate();
    let close = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match socket.next().await {
                Some(Ok(Message::Close(frame))) => return frame,
                Some(Ok(_)) => continue,
                _ => return None,
            }
        }
    })
    .await
    .unwrap();
    assert_eq!(close.map(|f| f.code), Some(CloseCode::Away));
    let status = server.wait_exit(Duration::from_secs(15)).unwrap();
    assert!(status.success());
}

#[tokio::test(flavor = "multi_thread")]
async fn work_a_message_handler_spawns_goes_on_after_it_returns() {
    let server = sockets("");
    for path in ["/echo", "/live/echo"] {
        let mut socket = connect(&server, path).await;
        socket.send(Message::text("later")).await.unwrap();
        assert_eq!(next_text(&mut socket).await, "handler returned", "{path}");
        // The next event is not held up by the spawned work.
        socket.send(Message::text("next")).await.unwrap();
        assert_eq!(next_text(&mut socket).await, "next", "{path}");
        assert_eq!(
            next_text(&mut socket).await,
            "sent after the handler returned",
            "{path}"
        );
        socket.close(None).await.unwrap();
    }
}

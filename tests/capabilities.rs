//! Each capability through the in-process harness: real components in the
//! real runtime with the real capabilities, no TCP server in between (the
//! end-to-end tests in the other files start the binary instead).

mod support;

use serde_json::Value;
use squall::testing::{Harness, SocketMessage};
use std::path::Path;
use std::time::{Duration, Instant};
use support::component;
use support::upstream::Upstream;

fn harness(name: &str, krate: &str, settings: &str) -> Harness {
    let wasm = component(krate);
    Harness::from_manifest(&support::manifest(name, &wasm, settings), Path::new("."))
        .expect("the app loads")
}

fn json(response: &http::Response<bytes::Bytes>) -> Value {
    serde_json::from_slice(response.body()).expect("a JSON body")
}

#[tokio::test]
async fn time_sleeps_on_the_host() {
    let app = harness("coroutines", "tests/guests/coroutines", "");
    let started = Instant::now();
    let response = app.get("/sleep/150").await.expect("answered");
    assert_eq!(response.status(), 200);
    assert_eq!(response.body(), "slept 150ms");
    assert!(started.elapsed() >= Duration::from_millis(150));
}

#[tokio::test]
async fn http_client_fetches_what_the_allow_list_allows() {
    let upstream = Upstream::start().await;
    let app = harness(
        "coroutines",
        "tests/guests/coroutines",
        "outbound = [\"http://127.0.0.1:*\"]",
    );
    let url = upstream.url("/hello");
    let response = app
        .get(&format!("/fetch?url={url}"))
        .await
        .expect("answered");
    let outcome = json(&response);
    assert_eq!(outcome["status"], 200, "{outcome}");
    assert_eq!(outcome["body"], "hello");

    let denied = harness("coroutines", "tests/guests/coroutines", "");
    let outcome = json(
        &denied
            .get(&format!("/fetch?url={url}"))
            .await
            .expect("answered"),
    );
    assert_eq!(outcome["error"], "denied", "{outcome}");
}

#[tokio::test]
async fn http_client_limits_fetched_bodies() {
    let upstream = Upstream::start().await;
    let app = harness(
        "coroutines",
        "tests/guests/coroutines",
        "outbound = [\"http://127.0.0.1:*\"]\nfetch_max_body = \"1KiB\"",
    );
    for path in ["/bytes/4096", "/chunked/4096"] {
        let url = upstream.url(path);
        let outcome = json(
            &app.get(&format!("/fetch?url={url}"))
                .await
                .expect("answered"),
        );
        assert_eq!(outcome["error"], "too-large", "{path}: {outcome}");
    }
}

#[tokio::test]
async fn pubsub_publishes_and_wakes_a_long_poll() {
    let app = harness("sockets", "tests/guests/sockets", "pubsub = [\"news\"]");
    let app = std::sync::Arc::new(app);
    let waiter = {
        let app = app.clone();
        tokio::spawn(async move {
            let request = http::Request::post("/wait/news?ms=5000")
                .body(http_body_util::Empty::<bytes::Bytes>::new())
                .expect("request");
            app.request(request).await
        })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    let request = http::Request::post("/publish/news")
        .body(http_body_util::Full::new(bytes::Bytes::from("extra")))
        .expect("request");
    let published = app.request(request).await.expect("published");
    assert_eq!(published.body(), "1");
    let woken = waiter.await.expect("joined").expect("answered");
    assert_eq!(json(&woken), serde_json::json!([[1, "extra"]]));
}

#[tokio::test]
async fn pubsub_refuses_topics_not_granted() {
    let app = harness("sockets", "tests/guests/sockets", "pubsub = [\"news\"]");
    let request = http::Request::post("/publish/secrets")
        .body(http_body_util::Full::new(bytes::Bytes::from("x")))
        .expect("request");
    let refused = app.request(request).await.expect("answered");
    assert_eq!(refused.status(), 403);
    assert!(
        String::from_utf8_lossy(refused.body()).contains("not in this app's pubsub list"),
        "{refused:?}"
    );
}

const SOCKET_ROUTES: &str = "pubsub = [\"news\"]
[[app.sockets.websocket]]
routes = [\"/echo\", \"/count\", \"/reject\"]
[[app.sockets.websocket]]
routes = [\"/live\"]
mode = \"live\"";

#[tokio::test]
async fn websocket_send_reaches_the_client_queue() {
    let app = harness("sockets", "tests/guests/sockets", SOCKET_ROUTES);
    let mut socket = app.websocket("/echo").await.expect("accepted");
    socket.send_text("hello").await.expect("handled");
    socket.send_binary(&[1, 2, 3]).await.expect("handled");
    assert_eq!(
        socket.recv().await,
        Some(SocketMessage::Text("hello".into()))
    );
    assert_eq!(
        socket.recv().await,
        Some(SocketMessage::Binary(vec![1, 2, 3]))
    );
    socket.send_text("close").await.expect("handled");
    assert_eq!(socket.close_requested().await, (4000, "bye".to_owned()));
    socket.close(1000, "").await;
    assert_eq!(app.open_connections(), 0);
}

#[tokio::test]
async fn websocket_state_survives_hibernation_and_live_memory_persists() {
    let app = harness("sockets", "tests/guests/sockets", SOCKET_ROUTES);
    let mut hibernating = app.websocket("/count").await.expect("accepted");
    let mut live = app.websocket("/live/count").await.expect("accepted");
    for n in 1..=3 {
        hibernating.send_text("x").await.expect("handled");
        live.send_text("x").await.expect("handled");
        assert_eq!(
            hibernating.recv().await,
            Some(SocketMessage::Text(format!("state={n} instance=1")))
        );
        assert_eq!(
            live.recv().await,
            Some(SocketMessage::Text(format!("state={n} instance={n}")))
        );
    }
}

#[tokio::test]
async fn websocket_subscriptions_are_fed_by_the_broker() {
    let app = harness("sockets", "tests/guests/sockets", SOCKET_ROUTES);
    let mut socket = app.websocket("/count").await.expect("accepted");
    let request = http::Request::post("/publish/news")
        .body(http_body_util::Full::new(bytes::Bytes::from("breaking")))
        .expect("request");
    app.request(request).await.expect("published");
    assert_eq!(
        socket.recv().await,
        Some(SocketMessage::Text("breaking".into()))
    );
}

#[tokio::test]
async fn websocket_rejections_reach_the_caller() {
    let app = harness("sockets", "tests/guests/sockets", SOCKET_ROUTES);
    let refused = app.websocket("/reject").await.err().expect("rejected");
    assert!(refused.to_string().contains("403"), "{refused}");
    assert_eq!(app.open_connections(), 0);
}

#[tokio::test]
async fn in_process_sockets_count_against_the_apps_connections() {
    let settings = format!("max_connections = 1\n{SOCKET_ROUTES}");
    let app = harness("sockets", "tests/guests/sockets", &settings);
    let first = app.websocket("/count").await.expect("accepted");
    let refused = app.websocket("/count").await.err().expect("at the limit");
    assert!(refused.to_string().contains("503"), "{refused}");
    assert_eq!(
        app.limit_hits("sockets", "max_connections").expect("hits"),
        1
    );
    drop(first);
    app.websocket("/count")
        .await
        .expect("its place is free again");
}

#[tokio::test]
async fn outgoing_wasi_http_goes_through_the_allow_list() {
    let upstream = Upstream::start().await;
    let wasm = component("tests/guests/wasi-p2");
    let allowed = Harness::from_manifest(
        &support::manifest("p2", &wasm, "outbound = [\"http://127.0.0.1:*\"]"),
        Path::new("."),
    )
    .expect("loads");
    let url = upstream.url("/hello");
    let response = allowed
        .get(&format!("/fetch?url={url}"))
        .await
        .expect("answered");
    assert_eq!(response.body(), "200 hello");

    let denied =
        Harness::from_manifest(&support::manifest("p2", &wasm, ""), Path::new(".")).expect("loads");
    let response = denied
        .get(&format!("/fetch?url={url}"))
        .await
        .expect("answered");
    assert_eq!(response.status(), 502);
    assert!(
        String::from_utf8_lossy(response.body()).contains("HttpRequestDenied"),
        "{response:?}"
    );
}

#[tokio::test]
async fn limits_hold_in_process_too() {
    let wasm = component("tests/guests/misbehave");
    let app = Harness::from_manifest(
        &support::manifest(
            "misbehave",
            &wasm,
            "cpu_time = \"100ms\"\nmemory = \"16MiB\"\nmax_body = \"1KiB\"",
        ),
        Path::new("."),
    )
    .expect("loads");
    assert_eq!(app.get("/ok").await.expect("answered").status(), 200);
    assert_eq!(app.get("/spin").await.expect("answered").status(), 504);
    assert_eq!(app.get("/alloc").await.expect("answered").status(), 500);
    assert_eq!(
        app.get("/bad-status").await.expect("answered").status(),
        500
    );
    let big = http::Request::post("/count")
        .body(http_body_util::Full::new(bytes::Bytes::from(vec![
            0u8;
            4096
        ])))
        .expect("request");
    assert_eq!(app.request(big).await.expect("answered").status(), 413);
    assert!(
        app.get("/stream-then-panic").await.is_err(),
        "a body that breaks off is an error, not a clean end"
    );
    assert_eq!(
        app.get("/nothing-here").await.expect("answered").status(),
        404
    );
}

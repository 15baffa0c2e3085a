//! The SDK outside a host, as an app's `cargo test` runs it: each
//! capability fails with its typed error (or works, for the clock and
//! timers) and none aborts the test binary.

use futures::executor::block_on;
use squall_sdk::kv::KvError;
use squall_sdk::pubsub::PubSubError;
use squall_sdk::tcp::ConnectError;
use squall_sdk::{Instant, Method, Request, Router, config, http, kv, pubsub, sleep, tcp, timeout};
use std::time::Duration;

#[test]
fn the_store_is_unavailable_and_says_what_to_use() {
    let error = block_on(kv::get("visits")).expect_err("no host, no store");
    match error {
        KvError::Unavailable(why) => {
            assert!(
                why.contains("kv::get called outside a Squall host"),
                "{why}"
            );
            assert!(why.contains("squall-test"), "{why}");
        }
        other => panic!("expected Unavailable, got {other:?}"),
    }
    assert!(matches!(
        block_on(kv::increment("n", 1)),
        Err(KvError::Unavailable(_))
    ));
    assert!(matches!(
        block_on(kv::set("k", b"v")),
        Err(KvError::Unavailable(_))
    ));
}

#[test]
fn fetch_and_tcp_are_refused_naming_the_call() {
    let error = block_on(http::get("https://example.com/").send()).expect_err("no host");
    assert!(
        error
            .to_string()
            .contains("http::fetch called outside a Squall host"),
        "{error}"
    );
    match block_on(tcp::connect("127.0.0.1", 6379)) {
        Err(ConnectError::Denied(why)) => assert!(why.contains("tcp::connect"), "{why}"),
        Err(other) => panic!("expected Denied, got {other:?}"),
        Ok(_) => panic!("a native test has no host to connect through"),
    }
}

#[test]
fn pubsub_is_unavailable() {
    assert!(matches!(
        pubsub::publish("news", b"hi"),
        Err(PubSubError::Unavailable)
    ));
    let waited = block_on(pubsub::wait("news", None, Duration::from_millis(1)));
    assert!(matches!(waited, Err(PubSubError::Unavailable)));
}

#[test]
fn the_clock_and_timers_work_natively() {
    let started = Instant::now();
    block_on(sleep(Duration::from_millis(20)));
    assert!(started.elapsed() >= Duration::from_millis(20));
    let timed_out = block_on(timeout(
        Duration::from_millis(5),
        sleep(Duration::from_secs(60)),
    ));
    assert!(timed_out.is_err(), "the shorter timer wins");
}

#[test]
fn config_values_come_from_the_test_request() {
    let router = Router::new().get("/", |_req: Request| async move {
        config::get("greeting").unwrap_or_else(|| "hello".into())
    });
    let plain = block_on(router.handle(Request::new(Method::GET, "/")));
    assert_eq!(plain.body(), Some(&b"hello"[..]));
    let configured = Request::new(Method::GET, "/").with_config("greeting", "ahoy");
    let response = block_on(router.handle(configured));
    assert_eq!(response.body(), Some(&b"ahoy"[..]));
}

//! Instance reuse (`reuse` in an app's table): an instance that served a
//! request well serves the next ones; one that failed or ran out of time
//! never does; each request keeps its own limits.
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

mod support;

use std::time::Duration;
use support::reuse::{get, serve, served};
use support::{Server, client, misbehave_wasm};

#[tokio::test(flavor = "multi_thread")]
async fn without_reuse_every_request_gets_a_fresh_instance() {
    let server = serve("");
    for _ in 0..3 {
        assert_eq!(served(&server).await, "1");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_reused_instance_keeps_its_memory_until_it_has_served_its_share() {
    let server = serve("reuse = { requests = 3 }");
    let mut seen = Vec::new();
    for _ in 0..7 {
        seen.push(served(&server).await);
    }
    assert_eq!(seen, ["1", "2", "3", "1", "2", "3", "1"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_instance_that_failed_or_ran_out_of_time_is_never_reused() {
    let server = serve(
        "reuse = { requests = 1000 }\ntimeout = \"400ms\"\ncpu_time = \"200ms\"\nmemory = \"32MiB\"",
    );
    assert_eq!(served(&server).await, "1");
    let mut next = 2;
    for (path, status) in [
        ("/panic", 500),
        ("/sleep/2000", 504),
        ("/spin", 504),
        ("/alloc", 500),
        ("/stream-then-panic", 200),
    ] {
        // The instance serves on, counting...
        assert_eq!(served(&server).await, next.to_string(), "before {path}");
        next = 2;
        // ...until a request breaks it.
        let response = client().get(server.url(path)).send().await.unwrap();
        assert_eq!(response.status().as_u16(), status, "{path}");
        let _ = response.bytes().await;
        // The next request gets a fresh instance, not the broken one...
        assert_eq!(served(&server).await, "1", "after {path}");
        // ...and the neighbour never noticed.
        assert_eq!(
            get(&server, "/hello/you").await,
            (200, "Hello, you!".to_owned())
        );
    }
    // A request that hit a limit had its own budget: the next one has its own too.
    let (status, _) = get(&server, "/sleep/100").await;
    assert_eq!(status, 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_idle_instance_is_dropped_after_its_idle_time() {
    let server = serve("reuse = { requests = 1000, idle = \"200ms\" }");
    assert_eq!(served(&server).await, "1");
    assert_eq!(served(&server).await, "2");
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(served(&server).await, "1");
}

#[test]
fn a_reuse_table_with_nothing_to_reuse_is_refused() {
    let stderr = support::refused_manifest(&format!(
        "[app.app]\nsource = {:?}\nreuse = {{ requests = 0 }}\n",
        misbehave_wasm().display().to_string()
    ));
    assert!(stderr.contains("app.app.reuse"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread")]
async fn standard_components_are_reused_too_and_a_broken_one_is_not() {
    for krate in ["tests/guests/wasi-p2", "tests/guests/wasi-p3"] {
        let server = Server::with_manifest(&format!(
            "[app.standard]\nsource = {:?}\nreuse = {{ requests = 1000, instances = 1 }}\ntimeout = \"400ms\"\n",
            support::component(krate).display().to_string()
        ));
        // A standard component's instance is handed back once its body has
        // been read to the end, a moment after the client has it: the next
        // request may be quicker and get a fresh one. Over ten, some reuse.
        let mut most = 0;
        for _ in 0..10 {
            let count: u32 = served(&server).await.parse().unwrap();
            most = most.max(count);
            assert_eq!(get(&server, "/").await.0, 200);
        }
        assert!(
            most >= 3,
            "{krate}: at most {most} requests on one instance"
        );
        if krate.ends_with("p2") {
            // The one idle instance (given time to be handed back) takes a
            // request that leaves its body unfinished: it ends at the
            // deadline, and that instance goes with it.
            tokio::time::sleep(Duration::from_millis(300)).await;
            let hung = client().get(server.url("/hang")).send().await.unwrap();
            assert!(hung.bytes().await.is_err(), "{krate}: a broken body");
            assert_eq!(served(&server).await, "1", "{krate}");
        }
    }
}

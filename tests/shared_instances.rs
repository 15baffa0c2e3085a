//! Instances shared by requests in flight (`reuse.concurrent`): a request
//! that waits does not hold an instance of its own; a failure stops the
//! instance and every request in flight on it is answered at once (a 503,
//! or its own 504 past its timeout); other instances and apps never notice.
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

mod support;

use std::time::Duration;
use support::reuse::{get, serve, served};
use support::{Server, client, misbehave_wasm};

/// `path` requested in the background; wait until the server has it.
async fn in_flight(server: &Server, path: &str) -> tokio::task::JoinHandle<(u16, String)> {
    let url = server.url(path);
    let request = tokio::spawn(async move {
        let response = client().get(url).send().await.unwrap();
        (response.status().as_u16(), response.text().await.unwrap())
    });
    tokio::time::sleep(Duration::from_millis(150)).await;
    request
}

#[tokio::test(flavor = "multi_thread")]
async fn a_waiting_request_shares_its_instance_with_the_next_ones() {
    let server = serve("reuse = { concurrent = 4 }");
    assert_eq!(served(&server).await, "1");
    let sleeping = in_flight(&server, "/sleep/1500").await;
    // The same instance serves on while the first request waits on it.
    assert_eq!(served(&server).await, "2");
    assert_eq!(served(&server).await, "3");
    assert_eq!(sleeping.await.unwrap(), (200, "slept".to_owned()));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_full_instance_sends_the_next_request_to_another() {
    let server = serve("reuse = { concurrent = 2 }");
    let first = in_flight(&server, "/sleep/1000").await;
    let second = in_flight(&server, "/sleep/1000").await;
    // Two in flight fill the first instance: a fresh one counts from 1.
    assert_eq!(served(&server).await, "1");
    assert_eq!(first.await.unwrap().0, 200);
    assert_eq!(second.await.unwrap().0, 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_instance_serves_its_share_of_requests_then_a_fresh_one_follows() {
    let server = serve("reuse = { concurrent = 4, requests = 3 }");
    let mut seen = Vec::new();
    for _ in 0..7 {
        seen.push(served(&server).await);
    }
    assert_eq!(seen, ["1", "2", "3", "1", "2", "3", "1"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_request_that_breaks_its_instance_stops_it_and_its_neighbours_are_told() {
    let server = serve(
        "reuse = { concurrent = 8 }\ntimeout = \"600ms\"\ncpu_time = \"200ms\"\nmemory = \"32MiB\"",
    );
    // A request past its timeout is known: it gets its 504. A trap, or a
    // limit raised inside the store, cannot be traced to one request of
    // those in flight: each is told its instance stopped.
    for (path, status) in [
        ("/panic", 503),
        ("/sleep/5000", 504),
        ("/spin", 503),
        ("/alloc", 503),
    ] {
        // Two neighbours wait on the instance (each within the timeout).
        let neighbours = [
            in_flight(&server, "/sleep/450").await,
            in_flight(&server, "/sleep/450").await,
        ];
        let (got, body) = get(&server, path).await;
        assert_eq!(got, status, "{path}: {body}");
        for neighbour in neighbours {
            let (got, body) = neighbour.await.unwrap();
            // Answered either way, never lost: done before the instance
            // stopped, or told it stopped.
            assert!(
                got == 200 || got == 503,
                "{path}: neighbour got {got} {body}"
            );
        }
        // The next request gets a fresh instance, and the other app never
        // noticed.
        assert_eq!(served(&server).await, "1", "after {path}");
        assert_eq!(
            get(&server, "/hello/you").await,
            (200, "Hello, you!".to_owned())
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn neighbours_on_a_broken_instance_get_a_503_at_once() {
    let server = serve("reuse = { concurrent = 8 }\ntimeout = \"10s\"");
    let neighbour = in_flight(&server, "/sleep/8000").await;
    let started = std::time::Instant::now();
    assert_eq!(get(&server, "/panic").await.0, 503);
    let (status, body) = neighbour.await.unwrap();
    assert_eq!(status, 503, "{body}");
    assert_eq!(body, "Service Unavailable\n");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "the neighbour waited {:?} for its answer",
        started.elapsed()
    );
    server.logged("the guest failed").await;
    server.logged("other requests in flight").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_streamed_body_past_its_timeout_is_cut_and_the_instance_serves_on() {
    let server = serve("reuse = { concurrent = 4 }\ntimeout = \"500ms\"");
    an_endless_body_is_cut_and_the_instance_serves_on(&server).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_instance_held_by_a_blocking_call_is_stopped_past_the_timeout() {
    let server = serve("reuse = { concurrent = 4 }\ntimeout = \"500ms\"");
    let started = std::time::Instant::now();
    let (status, _) = get(&server, "/block/20000").await;
    assert_eq!(status, 504);
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "answered after {:?}",
        started.elapsed()
    );
    server
        .logged("gave no answer within the request's timeout")
        .await;
    assert_eq!(served(&server).await, "1");
    assert_eq!(
        get(&server, "/hello/you").await,
        (200, "Hello, you!".to_owned())
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_instance_held_by_requests_whose_clients_left_is_stopped_too() {
    // One instance at most: held, it would keep the app from serving.
    let server = serve("reuse = { concurrent = 2 }\ntimeout = \"500ms\"\nmax_instances = 1");
    for _ in 0..2 {
        let gone = client()
            .get(server.url("/block/20000"))
            .timeout(Duration::from_millis(200))
            .send()
            .await;
        assert!(gone.is_err(), "the client gave up first");
    }
    server.logged("cannot end it: it is stopped").await;
    assert_eq!(served(&server).await, "1");
}

#[test]
fn concurrent_reuse_is_refused_out_of_range_and_for_wasi_02_components() {
    let stderr = support::refused_manifest(&format!(
        "[app.app]\nsource = {:?}\nreuse = {{ concurrent = 0 }}\n",
        misbehave_wasm().display().to_string()
    ));
    assert!(stderr.contains("concurrent must be from 1"), "{stderr}");
    let stderr = support::refused_manifest(&format!(
        "[app.standard]\nsource = {:?}\nreuse = {{ concurrent = 4 }}\n",
        support::component("tests/guests/wasi-p2")
            .display()
            .to_string()
    ));
    assert!(stderr.contains("needs a squall-sdk app"), "{stderr}");
}

/// The WASI 0.3 test component as `app` with `settings`, beside the hello
/// app.
fn serve_wasi_03(settings: &str) -> Server {
    Server::with_manifest(&format!(
        "[app.app]\nsource = {:?}\nroutes = [\"/\"]\n{settings}\n\n[app.hello]\nsource = {:?}\nroutes = [\"/hello\"]\n",
        support::component("tests/guests/wasi-p3")
            .display()
            .to_string(),
        support::hello_wasm().display().to_string(),
    ))
}

#[tokio::test(flavor = "multi_thread")]
async fn a_wasi_03_component_shares_its_instance_between_requests_in_flight() {
    let server = serve_wasi_03("reuse = { concurrent = 4 }");
    assert_eq!(served(&server).await, "1");
    let sleeping = in_flight(&server, "/sleep/1500").await;
    // The same instance answers while the first request waits on it.
    assert_eq!(served(&server).await, "2");
    assert_eq!(served(&server).await, "3");
    assert_eq!(sleeping.await.unwrap(), (200, "slept".to_owned()));
    let (status, body) = get(&server, "/stream").await;
    assert_eq!(status, 200);
    assert_eq!(body.lines().count(), 5, "{body}");
    assert_eq!(served(&server).await, "4");
    // An error the handler returns fails its own request; the instance
    // serves on.
    let (status, _) = get(&server, "/sleep/not-a-number").await;
    assert_eq!(status, 500);
    assert_eq!(served(&server).await, "5");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_instance_whose_guest_holds_back_gets_no_new_requests() {
    let server = serve_wasi_03("reuse = { concurrent = 4 }");
    assert_eq!(served(&server).await, "1");
    let holding = in_flight(&server, "/hold/1500").await;
    // Its instance holds back: the next requests go to a fresh one.
    assert_eq!(served(&server).await, "1");
    assert_eq!(served(&server).await, "2");
    assert_eq!(holding.await.unwrap(), (200, "held".to_owned()));
    // Taking calls again, the first instance is back in the pool, first in
    // line (the second would say 3).
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(served(&server).await, "2");
}

#[tokio::test(flavor = "multi_thread")]
async fn with_no_other_instance_to_start_a_request_waits_inside_one_that_holds_back() {
    let server = serve_wasi_03("reuse = { concurrent = 4 }\nmax_instances = 1");
    assert_eq!(served(&server).await, "1");
    let holding = in_flight(&server, "/hold/1000").await;
    // Served by the one instance once it takes calls again, not refused.
    assert_eq!(get(&server, "/served").await, (200, "2".to_owned()));
    assert_eq!(holding.await.unwrap(), (200, "held".to_owned()));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_wasi_03_request_that_breaks_its_instance_stops_it_and_its_neighbours_are_told() {
    let server =
        serve_wasi_03("reuse = { concurrent = 8 }\ntimeout = \"600ms\"\ncpu_time = \"200ms\"");
    for (path, statuses) in [
        // A trap stops the instance (503 to every request on it); a
        // neighbour that had not reached it yet is served by a fresh one.
        ("/panic", &[500, 503][..]),
        ("/sleep/5000", &[504]),
        ("/spin", &[503]),
    ] {
        assert_eq!(served(&server).await, "1", "before {path}");
        let neighbours = [
            in_flight(&server, "/sleep/450").await,
            in_flight(&server, "/sleep/450").await,
        ];
        let (got, body) = get(&server, path).await;
        assert!(statuses.contains(&got), "{path}: {got} {body}");
        for neighbour in neighbours {
            let (got, body) = neighbour.await.unwrap();
            assert!(
                got == 200 || got == 503,
                "{path}: neighbour got {got} {body}"
            );
        }
        assert_eq!(
            get(&server, "/hello/you").await,
            (200, "Hello, you!".to_owned())
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_wasi_03_body_past_its_timeout_is_cut_and_the_instance_serves_on() {
    let server = serve_wasi_03("reuse = { concurrent = 4 }\ntimeout = \"500ms\"");
    an_endless_body_is_cut_and_the_instance_serves_on(&server).await;
}

/// `/endless` on `server` (timeout 500 ms), read slowly: the timeout cuts
/// the body, and the same instance serves the next request.
async fn an_endless_body_is_cut_and_the_instance_serves_on(server: &Server) {
    assert_eq!(served(server).await, "1");
    let mut endless = client().get(server.url("/endless")).send().await.unwrap();
    assert_eq!(endless.status().as_u16(), 200);
    let cut = async {
        loop {
            match endless.chunk().await {
                Ok(Some(_)) => tokio::time::sleep(Duration::from_millis(20)).await,
                Ok(None) => return false,
                Err(_) => return true,
            }
        }
    };
    assert!(
        tokio::time::timeout(Duration::from_secs(10), cut)
            .await
            .unwrap(),
        "the body ended cleanly"
    );
    server
        .logged("the request's timeout cut its streamed body")
        .await;
    // The instance was not stopped for it.
    assert_eq!(served(server).await, "2");
}

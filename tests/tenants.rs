//! Many tenants in one host, through the real binary: requests find their
//! app by host and path, and a hostile tenant that hits every limit it has
//! never costs a well-behaved neighbour a request.
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

mod support;

use futures::StreamExt;
use std::io::{Read, Write};
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use support::upstream::Upstream;
use support::{Server, client, component, hello_wasm};
use tokio_tungstenite::connect_async;
use tokio_tungstenite::tungstenite::Message;

fn hostile_wasm() -> String {
    component("examples/hostile").display().to_string()
}

fn hello() -> String {
    hello_wasm().display().to_string()
}

/// A client that sends these names to the server under test, so the
/// request carries them as `Host` (HTTP/1.1) or `:authority` (HTTP/2).
fn named_client(server: &Server, names: &[&str], http2: bool) -> reqwest::Client {
    let address: SocketAddr = server.address().parse().unwrap();
    let mut builder = reqwest::Client::builder().timeout(Duration::from_secs(30));
    for name in names {
        builder = builder.resolve(name, address);
    }
    if http2 {
        builder = builder.http2_prior_knowledge();
    }
    builder.build().unwrap()
}

/// The app the server's log says served `path` (each test path is unique).
fn served_by(server: &Server, path: &str) -> String {
    let needle = format!("path=\"{path}\" ");
    server.expect_log(&needle);
    let logs = server.logs();
    let line = logs.lines().find(|line| line.contains(&needle)).unwrap();
    let app = line.split("app=").nth(1).unwrap();
    app.split(['}', ' '])
        .next()
        .unwrap()
        .trim_matches('"')
        .to_owned()
}

fn port(server: &Server) -> u16 {
    server
        .address()
        .rsplit(':')
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

#[tokio::test]
async fn requests_find_their_app_by_host_then_path() {
    let wasm = hello();
    let server = Server::with_manifest(&format!(
        "[app.exact]\nsource = {wasm:?}\nhosts = [\"hello.test\"]\n\
         [app.wild]\nsource = {wasm:?}\nhosts = [\"*.test\"]\n\
         [app.api]\nsource = {wasm:?}\nroutes = [\"/api\"]\nstrip_prefix = true\n\
         [app.root]\nsource = {wasm:?}\n"
    ));
    let port = port(&server);
    let http = named_client(&server, &["hello.test", "other.test", "HELLO.TEST"], false);
    let get = |url: String| {
        let http = http.clone();
        async move { http.get(url).send().await.unwrap().text().await.unwrap() }
    };

    assert_eq!(
        get(format!("http://hello.test:{port}/hello/a1")).await,
        "Hello, a1!"
    );
    assert_eq!(served_by(&server, "/hello/a1"), "exact");
    get(format!("http://other.test:{port}/hello/a2")).await;
    assert_eq!(served_by(&server, "/hello/a2"), "wild");
    get(format!("http://HELLO.TEST:{port}/hello/a3")).await;
    assert_eq!(
        served_by(&server, "/hello/a3"),
        "exact",
        "hosts ignore case"
    );
    get(server.url("/hello/a4")).await;
    assert_eq!(served_by(&server, "/hello/a4"), "root");
    assert_eq!(
        get(server.url("/api/hello/a5")).await,
        "Hello, a5!",
        "the prefix is stripped"
    );
    assert_eq!(served_by(&server, "/hello/a5"), "api");

    // HTTP/1.0 without a Host header: only apps that claim no host.
    let mut raw = std::net::TcpStream::connect(server.address()).unwrap();
    raw.write_all(b"GET /hello/a6 HTTP/1.0\r\n\r\n").unwrap();
    let mut answer = String::new();
    raw.read_to_string(&mut answer).unwrap();
    assert!(answer.ends_with("Hello, a6!"), "{answer}");
    assert_eq!(served_by(&server, "/hello/a6"), "root");

    // HTTP/2: the host comes from `:authority`.
    let h2 = named_client(&server, &["other.test"], true);
    let response = h2
        .get(format!("http://other.test:{port}/hello/a7"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.version(), reqwest::Version::HTTP_2);
    assert_eq!(served_by(&server, "/hello/a7"), "wild");
}

#[tokio::test]
async fn a_request_no_app_claims_gets_the_hosts_404() {
    let server = Server::with_manifest(&format!(
        "[app.only]\nsource = {:?}\nhosts = [\"only.test\"]\n",
        hello()
    ));
    let response = client().get(server.url("/hello/x")).send().await.unwrap();
    assert_eq!(response.status(), 404);
    assert_eq!(response.text().await.unwrap(), "Not Found\n");
    server.logged("no app serves this host and path").await;
}

#[test]
fn overlapping_claims_are_refused_naming_both_apps() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = dir.path().join("squall.toml");
    let wasm = hello();
    std::fs::write(
        &manifest,
        format!(
            "[app.first]\nsource = {wasm:?}\nhosts = [\"a.test\"]\n\
             [app.second]\nsource = {wasm:?}\nhosts = [\"A.test\"]\n"
        ),
    )
    .unwrap();
    let output = support::squall()
        .arg("serve")
        .arg(&manifest)
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("apps \"first\" and \"second\" both claim host \"a.test\""),
        "{stderr}"
    );
}

/// A tenant and a neighbour on one small pool.
fn neighbours(pool: u32, hostile: &str, neighbour: &str) -> Server {
    Server::with_manifest(&format!(
        "[server]\nmax_instances = {pool}\n\
         [app.hostile]\nsource = {:?}\nroutes = [\"/bad\"]\nstrip_prefix = true\n{hostile}\n\
         [app.neighbour]\nsource = {:?}\nroutes = [\"/good\"]\nstrip_prefix = true\n{neighbour}\n",
        hostile_wasm(),
        hello()
    ))
}

/// `count` requests to the neighbour while the hostile tenant does its
/// worst: every one must succeed.
async fn neighbour_keeps_working(server: &Server, count: usize) {
    let http = client();
    let requests: Vec<_> = (0..count)
        .map(|i| {
            let http = http.clone();
            let url = server.url(&format!("/good/sleep/{}", 50 + i % 50));
            tokio::spawn(async move { http.get(url).send().await.map(|r| r.status()) })
        })
        .collect();
    for request in requests {
        let status = request.await.unwrap().unwrap();
        assert_eq!(status, 200, "the neighbour was refused");
    }
}

#[tokio::test]
async fn a_tenant_parking_more_than_the_pool_leaves_its_neighbours_floor() {
    let server = neighbours(
        20,
        "max_instances = 20\nreserved_instances = 0\ntimeout = \"30s\"",
        "reserved_instances = 6",
    );
    let http = client();
    let parked: Vec<_> = (0..40)
        .map(|_| {
            let http = http.clone();
            let url = server.url("/bad/park/3000");
            tokio::spawn(async move { http.get(url).send().await.unwrap() })
        })
        .collect();
    // The 14 that fit beside the neighbour's floor are parked.
    server.logged_times("parking for 3000 ms", 14).await;
    neighbour_keeps_working(&server, 6).await;
    let mut refused = 0;
    for request in parked {
        let response = request.await.unwrap();
        if response.status() == 503 {
            assert_eq!(response.headers()["retry-after"], "1");
            refused += 1;
        } else {
            assert_eq!(response.status(), 200);
        }
    }
    assert_eq!(
        refused, 26,
        "40 parked, 14 fit beside the neighbour's floor of 6"
    );
    server.logged("limit=max_instances").await;
}

#[tokio::test]
async fn by_default_a_tenant_gets_half_the_pool() {
    let server = neighbours(20, "timeout = \"30s\"", "");
    let http = client();
    let parked: Vec<_> = (0..20)
        .map(|_| {
            let http = http.clone();
            let url = server.url("/bad/park/2000");
            tokio::spawn(async move { http.get(url).send().await.unwrap().status() })
        })
        .collect();
    server.logged_times("parking for 2000 ms", 10).await;
    neighbour_keeps_working(&server, 10).await;
    let mut ok = 0;
    for request in parked {
        if request.await.unwrap() == 200 {
            ok += 1;
        }
    }
    assert_eq!(ok, 10, "half of a pool of 20");
}

#[tokio::test]
async fn max_concurrency_refuses_the_excess_at_once() {
    let server = neighbours(50, "max_concurrency = 3", "");
    let http = client();
    let parked: Vec<_> = (0..3)
        .map(|_| tokio::spawn(http.get(server.url("/bad/park/1500")).send()))
        .collect();
    server.logged_times("parking for 1500 ms", 3).await;
    // Refused, not queued: a queued request would be answered 200 once
    // the parked ones are done.
    let refused = http.get(server.url("/bad/park/10")).send().await.unwrap();
    assert_eq!(refused.status(), 503);
    neighbour_keeps_working(&server, 5).await;
    for request in parked {
        assert_eq!(request.await.unwrap().unwrap().status(), 200);
    }
    server.logged("limit=max_concurrency").await;
}

#[tokio::test]
async fn cpu_memory_panics_and_endless_bodies_stay_with_their_tenant() {
    let server = neighbours(
        50,
        "cpu_time = \"200ms\"\ntimeout = \"2s\"\nmemory = \"16MiB\"",
        "",
    );
    let http = client();
    let hostile = [
        "/bad/loop",
        "/bad/oom",
        "/bad/panic",
        "/bad/loop",
        "/bad/oom",
    ]
    .map(|path| tokio::spawn(http.get(server.url(path)).send()));
    let endless = {
        let http = http.clone();
        let url = server.url("/bad/big");
        tokio::spawn(async move {
            let response = http.get(url).send().await.unwrap();
            let mut body = response.bytes_stream();
            let mut received = 0usize;
            while let Some(chunk) = body.next().await {
                match chunk {
                    Ok(chunk) => received += chunk.len(),
                    Err(_) => return (received, true),
                }
            }
            (received, false)
        })
    };
    neighbour_keeps_working(&server, 20).await;
    let statuses: Vec<u16> = futures::future::join_all(hostile)
        .await
        .into_iter()
        .map(|r| r.unwrap().unwrap().status().as_u16())
        .collect();
    assert_eq!(statuses, vec![504, 500, 500, 504, 500]);
    let (received, broken) = endless.await.unwrap();
    assert!(broken, "an endless body is cut by the timeout, visibly");
    assert!(received > 0);
}

#[tokio::test]
async fn topics_fetches_and_logs_are_fenced() {
    let upstream = Upstream::start().await;
    let server = neighbours(
        50,
        "pubsub = [\"spam.*\"]\npubsub_topics = 50\noutbound = [\"http://127.0.0.1:*\"]\n\
         max_fetches_per_request = 4\nlog_per_request = \"8KiB\"",
        "",
    );
    let http = client();
    let topics = http
        .get(server.url("/bad/topics/100"))
        .send()
        .await
        .unwrap();
    let text = topics.text().await.unwrap();
    assert!(
        text.starts_with("published 50, then: pubsub limit:") && text.contains("pubsub_topics"),
        "{text}"
    );
    let url = upstream.url("/delay/200");
    let fetched = http
        .get(server.url(&format!("/bad/fetch/10?url={url}")))
        .send()
        .await
        .unwrap();
    assert_eq!(
        fetched.text().await.unwrap(),
        "4 fetched, 6 refused by a limit"
    );
    let chatter = http.get(server.url("/bad/log/64")).send().await.unwrap();
    assert_eq!(chatter.status(), 200);
    server.logged("limit=log_per_request").await;
    server.logged("limit=pubsub_topics").await;
    server.logged("limit=max_fetches").await;
    let logged = server
        .logs()
        .lines()
        .filter(|line| line.contains("squall::guest"))
        .count();
    assert!(
        logged <= 9,
        "{logged} lines of 1 KiB logged under an 8 KiB budget"
    );
    neighbour_keeps_working(&server, 10).await;
}

#[tokio::test]
async fn websockets_are_fenced_per_app() {
    let server = neighbours(
        50,
        "max_connections = 2\n[[app.hostile.websocket]]\nroutes = [\"/flood\"]\nsend_queue = 8",
        "",
    );
    let url = format!("ws://{}/bad/flood", server.address());
    let (mut first, _) = connect_async(&url).await.unwrap();
    let (_second, _) = connect_async(&url).await.unwrap();
    let third = connect_async(&url).await;
    match third {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 503);
        }
        other => panic!("a third socket got {other:?}"),
    }
    server.logged("limit=max_connections").await;
    // The flood: a client that does not read is closed, and the neighbour
    // does not notice.
    use futures::SinkExt;
    first.send(Message::text("go")).await.unwrap();
    neighbour_keeps_working(&server, 10).await;
    server.logged("send queue full").await;
}

#[tokio::test]
async fn a_tenant_over_its_cpu_share_is_slowed_not_its_neighbour() {
    let server = neighbours(
        50,
        "cpu_share = \"10%\"\ncpu_time = \"200ms\"\ntimeout = \"20s\"",
        "",
    );
    let http = client();
    let started = Instant::now();
    let spinners: Vec<_> = (0..2)
        .map(|_| tokio::spawn(http.get(server.url("/bad/loop")).send()))
        .collect();
    neighbour_keeps_working(&server, 20).await;
    for spinner in spinners {
        assert_eq!(spinner.await.unwrap().unwrap().status(), 504);
    }
    // 2 × 200 ms of CPU at a tenth of a core takes about 4 s of wall time.
    let took = started.elapsed();
    assert!(
        took >= Duration::from_secs(2),
        "the spinners took only {took:?}"
    );
}

#[tokio::test]
async fn topic_history_bytes_are_fenced() {
    let server = neighbours(
        50,
        "pubsub = [\"spam.*\"]\npubsub_history_bytes = \"40B\"",
        "",
    );
    let text = client()
        .get(server.url("/bad/topics/100"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        text.starts_with("published 40, then: pubsub limit:")
            && text.contains("pubsub_history_bytes"),
        "{text}"
    );
    server.logged("limit=pubsub_history_bytes").await;
    neighbour_keeps_working(&server, 5).await;
}

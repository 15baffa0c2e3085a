//! The key-value store and config values: through the in-process harness
//! for the semantics and limits, through the real binary for durability
//! (restarts, `kill -9`) and for secrets in the log. The store's tests run
//! on the embedded store and on a real Redis server.
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

mod support;

use bytes::Bytes;
use futures::future::join_all;
use http_body_util::Full;
use serde_json::Value;
use squall::testing::Harness;
use std::path::Path;
use std::time::Duration;
use support::redis::RedisServer;
use support::{Server, component};

/// The stores the key-value tests run against: the embedded one, and a
/// Redis server started for the test.
enum Store {
    Embedded,
    Redis(RedisServer),
}

fn stores() -> [Store; 2] {
    [Store::Embedded, Store::Redis(RedisServer::start())]
}

/// The state test guest as app `name` (and others, in `apps`), with its
/// store under `dir`.
fn harness(dir: &Path, apps: &[(&str, &str)]) -> Harness {
    harness_on(&Store::Embedded, dir, apps)
}

/// The same, on `store`.
fn harness_on(store: &Store, dir: &Path, apps: &[(&str, &str)]) -> Harness {
    let wasm = component("tests/guests/state");
    let mut text = format!("[server]\ndata_dir = {:?}\n", dir.display().to_string());
    if let Store::Redis(redis) = store {
        text.push_str(&format!(
            "[server.backend]\nkind = \"redis\"\nurl = {:?}\n",
            redis.url()
        ));
    }
    for (name, settings) in apps {
        text.push_str(&format!(
            "[app.{name}]\nsource = {:?}\nhosts = [\"{name}.test\"]\n{settings}\n",
            wasm.display().to_string()
        ));
    }
    Harness::from_manifest(&text, Path::new(".")).expect("the apps load")
}

async fn call(app: &Harness, method: &str, uri: &str, body: &str) -> (u16, String) {
    let request = http::Request::builder()
        .method(method)
        .uri(uri)
        .body(Full::new(Bytes::from(body.to_owned())))
        .expect("a request");
    let response = app.request(request).await.expect("answered");
    (
        response.status().as_u16(),
        String::from_utf8_lossy(response.body()).into_owned(),
    )
}

#[tokio::test]
async fn values_are_stored_read_listed_and_removed() {
    for store in stores() {
        let dir = tempfile::tempdir().expect("a directory");
        let app = harness_on(&store, dir.path(), &[("a", "kv = true")]);
        let at = |path: &str| format!("http://a.test{path}");
        assert_eq!(
            call(&app, "GET", &at("/kv/k"), "").await,
            (404, "absent".into())
        );
        assert_eq!(call(&app, "PUT", &at("/kv/k"), "value").await.0, 204);
        assert_eq!(
            call(&app, "GET", &at("/kv/k"), "").await,
            (200, "value".into())
        );
        assert_eq!(call(&app, "GET", &at("/exists/k"), "").await.1, "true");
        assert_eq!(call(&app, "DELETE", &at("/kv/k"), "").await.1, "true");
        assert_eq!(call(&app, "DELETE", &at("/kv/k"), "").await.1, "false");
        assert_eq!(call(&app, "GET", &at("/exists/k"), "").await.1, "false");
        assert_eq!(app.kv_usage("a").await.expect("usage"), (0, 0));
    }
}

#[tokio::test]
async fn a_value_with_a_ttl_expires() {
    for store in stores() {
        let dir = tempfile::tempdir().expect("a directory");
        let app = harness_on(&store, dir.path(), &[("a", "kv = true")]);
        // A ttl past ten years is refused, and nothing is written or counted.
        let forever = "http://a.test/kv/f?ttl_ms=100000000000000000";
        assert_eq!(call(&app, "PUT", forever, "x").await.0, 500);
        assert_eq!(call(&app, "GET", "http://a.test/kv/f", "").await.0, 404);
        assert_eq!(app.kv_usage("a").await.expect("usage"), (0, 0));
        let (status, _) = call(&app, "PUT", "http://a.test/kv/t?ttl_ms=150", "soon gone").await;
        assert_eq!(status, 204);
        assert_eq!(call(&app, "GET", "http://a.test/kv/t", "").await.0, 200);
        tokio::time::sleep(Duration::from_millis(250)).await;
        assert_eq!(call(&app, "GET", "http://a.test/kv/t", "").await.0, 404);
        let (status, _) = call(&app, "PUT", "http://a.test/kv/t?ttl_ms=0", "x").await;
        assert_eq!(status, 500, "a zero ttl is refused");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_keys_cost_a_listing_a_bounded_scan_and_are_swept_as_they_come() {
    for store in stores() {
        let dir = tempfile::tempdir().expect("a directory");
        let app = harness_on(&store, dir.path(), &[("a", "kv = true")]);
        let at = |path: &str| format!("http://a.test{path}");
        let fill = at("/fill?prefix=gone:&count=20000&ttl_ms=1");
        assert_eq!(call(&app, "POST", &fill, "").await, (200, "20000".into()));
        assert_eq!(call(&app, "PUT", &at("/kv/live"), "v").await.0, 204);
        while call(&app, "GET", &at("/kv/gone:19999"), "").await.0 != 404 {
            tokio::task::yield_now().await;
        }
        // Each page looks at a bounded number of entries: the first ends
        // early with a cursor, and paging on reaches the live key.
        let (mut cursor, mut pages, mut seen) = (None::<String>, 0, Vec::new());
        loop {
            let query = match &cursor {
                Some(cursor) => format!("/list?limit=1&cursor={cursor}"),
                None => "/list?limit=1".to_owned(),
            };
            let (status, body) = call(&app, "GET", &at(&query), "").await;
            assert_eq!(status, 200, "{body}");
            let page: Value = serde_json::from_str(&body).expect("json");
            pages += 1;
            seen.extend(page["keys"].as_array().expect("keys").clone());
            cursor = page["cursor"].as_str().map(str::to_owned);
            if cursor.is_none() || !seen.is_empty() {
                break;
            }
        }
        assert_eq!(seen, [Value::from("live")]);
        assert!(pages > 1, "the first page stopped early");
        // The sweep keeps up with what expires: 20,000 keys are counted
        // out well before a sweep of a fixed batch a second would be
        // (40 s at 500 a second); the minute is the test's guard.
        let started = std::time::Instant::now();
        while app.kv_usage("a").await.expect("usage").0 > 1 {
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "{:?}",
                app.kv_usage("a").await
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

#[tokio::test]
async fn two_hundred_concurrent_increments_give_exactly_two_hundred() {
    for store in stores() {
        let dir = tempfile::tempdir().expect("a directory");
        let app = harness_on(&store, dir.path(), &[("a", "kv = true")]);
        let answers =
            join_all((0..200).map(|_| call(&app, "POST", "http://a.test/incr/n", ""))).await;
        let mut values: Vec<i64> = answers
            .iter()
            .map(|(status, body)| {
                assert_eq!(*status, 200, "{body}");
                body.parse().expect("a number")
            })
            .collect();
        values.sort_unstable();
        assert_eq!(
            values,
            (1..=200).collect::<Vec<_>>(),
            "each increment saw its own value"
        );
        assert_eq!(call(&app, "GET", "http://a.test/kv/n", "").await.1, "200");
        let (status, _) = call(&app, "PUT", "http://a.test/kv/text", "abc").await;
        assert_eq!(status, 204);
        let (status, body) = call(&app, "POST", "http://a.test/incr/text", "").await;
        assert_eq!(status, 500, "incrementing text is refused: {body}");
        assert_eq!(body, "Internal Server Error\n", "the why is for the log");
    }
}

#[tokio::test]
async fn compare_and_swap_under_contention_loses_no_update() {
    for store in stores() {
        let dir = tempfile::tempdir().expect("a directory");
        let app = harness_on(&store, dir.path(), &[("a", "kv = true")]);
        assert_eq!(
            call(&app, "POST", "http://a.test/cas/c?new=1", "").await.1,
            "true"
        );
        assert_eq!(
            call(&app, "POST", "http://a.test/cas/c?new=2", "").await.1,
            "false"
        );
        assert_eq!(
            call(&app, "POST", "http://a.test/cas/c?expected=1", "")
                .await
                .1,
            "true",
            "a swap to nothing removes"
        );
        assert_eq!(call(&app, "GET", "http://a.test/kv/c", "").await.0, 404);

        let answers =
            join_all((0..50).map(|_| call(&app, "POST", "http://a.test/cas-incr/counter", "")))
                .await;
        let attempts: u64 = answers
            .iter()
            .map(|(status, body)| {
                assert_eq!(*status, 200, "{body}");
                body.parse::<u64>().expect("attempts")
            })
            .sum();
        assert_eq!(
            call(&app, "GET", "http://a.test/kv/counter", "").await.1,
            "50"
        );
        assert!(attempts >= 50, "{attempts} attempts");
    }
}

#[tokio::test]
async fn ten_thousand_keys_page_through_in_order() {
    for store in stores() {
        let dir = tempfile::tempdir().expect("a directory");
        let app = harness_on(&store, dir.path(), &[("a", "kv = true")]);
        let (status, body) = call(
            &app,
            "POST",
            "http://a.test/fill?prefix=item:&count=10000",
            "",
        )
        .await;
        assert_eq!((status, body.as_str()), (200, "10000"));
        call(&app, "PUT", "http://a.test/kv/other", "x").await;
        let mut seen = Vec::new();
        let mut cursor: Option<String> = None;
        let mut pages = 0;
        loop {
            let query = match &cursor {
                Some(cursor) => format!("&cursor={cursor}"),
                None => String::new(),
            };
            let (status, body) = call(
                &app,
                "GET",
                &format!("http://a.test/list?prefix=item:&limit=1000{query}"),
                "",
            )
            .await;
            assert_eq!(status, 200, "{body}");
            let page: Value = serde_json::from_str(&body).expect("json");
            let keys = page["keys"].as_array().expect("keys");
            assert!(keys.len() <= 1000);
            seen.extend(
                keys.iter()
                    .map(|key| key.as_str().expect("a key").to_owned()),
            );
            pages += 1;
            match page["cursor"].as_str() {
                Some(next) => cursor = Some(next.to_owned()),
                None => break,
            }
        }
        let expected: Vec<String> = (0..10_000).map(|n| format!("item:{n:05}")).collect();
        assert_eq!(seen, expected);
        assert!((10..=11).contains(&pages), "{pages} pages");
    }
}

#[tokio::test]
async fn apps_with_colliding_key_names_never_see_each_other() {
    for store in stores() {
        let dir = tempfile::tempdir().expect("a directory");
        let app = harness_on(
            &store,
            dir.path(),
            &[("a", "kv = true"), ("b", "kv = true"), ("c", "")],
        );
        call(&app, "PUT", "http://a.test/kv/user:1", "alice").await;
        call(&app, "PUT", "http://b.test/kv/user:1", "bob").await;
        // A key that spells the other app's name reaches nothing of it.
        call(&app, "PUT", "http://a.test/kv/b", "not b's").await;
        assert_eq!(
            call(&app, "GET", "http://a.test/kv/user:1", "").await.1,
            "alice"
        );
        assert_eq!(
            call(&app, "GET", "http://b.test/kv/user:1", "").await.1,
            "bob"
        );
        let (_, listed) = call(&app, "GET", "http://b.test/list", "").await;
        let listed: Value = serde_json::from_str(&listed).expect("json");
        assert_eq!(listed["keys"], serde_json::json!(["user:1"]));
        assert_eq!(
            call(&app, "DELETE", "http://b.test/kv/b", "").await.1,
            "false"
        );
        let (status, body) = call(&app, "GET", "http://c.test/kv/user:1", "").await;
        assert_eq!(status, 500);
        // The client is told the status; the grant it lacks is for the log.
        assert_eq!(body, "Internal Server Error\n");
        // On Redis, each app's keys sit under its own name (redis-cli sees them).
        if let Store::Redis(redis) = &store {
            let get = |key: &str| {
                let output = std::process::Command::new("redis-cli")
                    .args(["-p", &redis.port.to_string(), "GET", key])
                    .output()
                    .expect("redis-cli runs");
                String::from_utf8_lossy(&output.stdout).trim().to_owned()
            };
            assert_eq!(get("squall:kv:{1:a}:v:user:1"), "alice");
            assert_eq!(get("squall:kv:{1:b}:v:user:1"), "bob");
        }
    }
}

#[tokio::test]
async fn quotas_answer_clearly_while_a_neighbour_keeps_writing() {
    for store in stores() {
        let dir = tempfile::tempdir().expect("a directory");
        let app = harness_on(
            &store,
            dir.path(),
            &[
                (
                    "tight",
                    // In debug mode, so the client sees which limit it met.
                    "kv = true\nkv_max_keys = 5\nkv_max_bytes = \"4KiB\"\nkv_max_value = \"1KiB\"\nkv_max_key = 16\nconfig = { debug = \"true\" }",
                ),
                ("roomy", "kv = true"),
            ],
        );
        let (status, body) =
            call(&app, "POST", "http://tight.test/fill?prefix=k&count=6", "").await;
        assert_eq!(status, 507, "{body}");
        assert!(body.contains("kv_max_keys"), "{body}");
        assert_eq!(
            app.kv_usage("tight").await.expect("usage").0,
            0,
            "the batch wrote nothing"
        );
        let (status, body) =
            call(&app, "POST", "http://tight.test/fill?prefix=k&count=5", "").await;
        assert_eq!((status, body.as_str()), (200, "5"));
        let (status, body) = call(
            &app,
            "PUT",
            "http://tight.test/kv/k00000",
            &"x".repeat(2048),
        )
        .await;
        assert_eq!(status, 413, "{body}");
        assert!(body.contains("kv_max_value"), "{body}");
        for n in 0..4 {
            let (status, _) = call(
                &app,
                "PUT",
                &format!("http://tight.test/kv/k0000{n}"),
                &"x".repeat(1000),
            )
            .await;
            assert_eq!(status, 204);
        }
        let (status, body) = call(
            &app,
            "PUT",
            "http://tight.test/kv/k00004",
            &"x".repeat(1000),
        )
        .await;
        assert_eq!(status, 507, "{body}");
        assert!(body.contains("kv_max_bytes"), "{body}");
        let (status, _) = call(
            &app,
            "GET",
            &format!("http://tight.test/kv/{}", "k".repeat(17)),
            "",
        )
        .await;
        assert_eq!(status, 413, "an over-long key");
        assert!(app.limit_hits("tight", "kv_max_bytes").expect("counted") >= 2);
        assert!(app.limit_hits("tight", "kv_max_value").expect("counted") >= 2);
        // The neighbour is not affected.
        let (status, body) = call(
            &app,
            "POST",
            "http://roomy.test/fill?prefix=k&count=2000&size=100",
            "",
        )
        .await;
        assert_eq!((status, body.as_str()), (200, "2000"));
        assert_eq!(app.limit_hits("roomy", "kv_max_bytes").expect("counted"), 0);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_flooding_the_store_with_calls_is_held_back_while_a_neighbour_writes() {
    for store in stores() {
        let dir = tempfile::tempdir().expect("a directory");
        let app = harness_on(
            &store,
            dir.path(),
            &[("flood", "kv = true"), ("calm", "kv = true")],
        );
        let (flood, calm) = tokio::join!(
            call(&app, "POST", "http://flood.test/flood/200", ""),
            async {
                let mut answers = Vec::new();
                for n in 0..20 {
                    answers.push(
                        call(&app, "PUT", &format!("http://calm.test/kv/k{n}"), "v")
                            .await
                            .0,
                    );
                }
                answers
            }
        );
        assert_eq!(flood.0, 200, "{flood:?}");
        let refused: usize = flood.1.parse().expect("a count");
        // At most 16 are in flight at a time; a call that is answered while the
        // rest are being started frees its place, so a few more get through.
        assert!(
            refused >= 100,
            "only {refused} of 200 calls at once were refused"
        );
        assert!(calm.iter().all(|status| *status == 204), "{calm:?}");
        assert!(app.limit_hits("flood", "kv_max_value").expect("counted") >= 1);
    }
}

#[tokio::test]
async fn config_values_reach_the_guest_and_secrets_come_from_files() {
    let dir = tempfile::tempdir().expect("a directory");
    let secret = dir.path().join("token");
    std::fs::write(&secret, "file-secret\n").expect("write");
    let settings = format!(
        "[app.a.config]\nbase_url = \"https://sho.rt\"\npage_size = 20\ntoken = {{ file = {:?} }}\n",
        secret.display().to_string()
    );
    let app = harness(dir.path(), &[("a", &settings)]);
    assert_eq!(
        call(&app, "GET", "http://a.test/config/base_url", "").await,
        (200, "https://sho.rt".into())
    );
    assert_eq!(
        call(&app, "GET", "http://a.test/config/page_size", "")
            .await
            .1,
        "20"
    );
    assert_eq!(
        call(&app, "GET", "http://a.test/config/token", "").await.1,
        "file-secret"
    );
    assert_eq!(
        call(&app, "GET", "http://a.test/config/missing", "")
            .await
            .0,
        404
    );
}

/// Writers that record every write the server acknowledged, until stopped.
async fn write_until_killed(server: &Server, writers: usize, run_for: Duration) -> Vec<String> {
    let client = support::client();
    let stop = tokio::time::Instant::now() + run_for;
    let tasks = (0..writers).map(|writer| {
        let client = client.clone();
        let base = server.url("");
        async move {
            let mut acknowledged = Vec::new();
            for n in 0.. {
                if tokio::time::Instant::now() > stop {
                    break;
                }
                let key = format!("w{writer}-{n:06}");
                let sent = client
                    .put(format!("{base}/kv/{key}"))
                    .body(format!("value of {key}"))
                    .send()
                    .await;
                match sent {
                    Ok(response) if response.status() == 204 => acknowledged.push(key),
                    _ => break,
                }
            }
            acknowledged
        }
    });
    join_all(tasks).await.into_iter().flatten().collect()
}

fn state_manifest(data_dir: &Path) -> String {
    let wasm = component("tests/guests/state");
    format!(
        "[server]\ndata_dir = {:?}\n\n[app.state]\nsource = {:?}\nkv = true\n\n[app.state.config]\nplain = \"visible\"\ntoken = {{ env = \"SQUALL_TEST_TOKEN\" }}\n",
        data_dir.display().to_string(),
        wasm.display().to_string()
    )
}

fn serve(manifest: &Path) -> Server {
    let mut command = support::squall();
    command.env("SQUALL_TEST_TOKEN", "s3cr3t-t0ken-value");
    Server::start_with(command, manifest)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_acknowledged_write_survives_kill_9_and_a_restart() {
    let dir = tempfile::tempdir().expect("a directory");
    let manifest = dir.path().join("squall.toml");
    std::fs::write(&manifest, state_manifest(&dir.path().join("data"))).expect("write");

    let server = serve(&manifest);
    let kill = {
        let pid = server.pid();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(1500)).await;
            let pid = rustix::process::Pid::from_raw(pid as i32).expect("a pid");
            rustix::process::kill_process(pid, rustix::process::Signal::KILL).expect("SIGKILL");
        })
    };
    let acknowledged = write_until_killed(&server, 8, Duration::from_secs(30)).await;
    kill.await.expect("killed");
    drop(server);
    assert!(
        acknowledged.len() > 50,
        "only {} writes before the kill",
        acknowledged.len()
    );

    let server = serve(&manifest);
    let client = support::client();
    for key in &acknowledged {
        let response = client
            .get(server.url(&format!("/kv/{key}")))
            .send()
            .await
            .expect("answered");
        assert_eq!(response.status(), 200, "{key} was acknowledged and lost");
        assert_eq!(
            response.text().await.expect("body"),
            format!("value of {key}")
        );
    }
    // A clean stop keeps everything too.
    let response = client
        .put(server.url("/kv/after"))
        .body("restart")
        .send()
        .await
        .expect("answered");
    assert_eq!(response.status(), 204);
    server.terminate();
    drop(server);
    let server = serve(&manifest);
    let response = client
        .get(server.url("/kv/after"))
        .send()
        .await
        .expect("answered");
    assert_eq!(response.text().await.expect("body"), "restart");
}

#[tokio::test]
async fn secrets_reach_the_guest_but_never_the_log() {
    let dir = tempfile::tempdir().expect("a directory");
    let manifest = dir.path().join("squall.toml");
    std::fs::write(&manifest, state_manifest(&dir.path().join("data"))).expect("write");
    let server = serve(&manifest);
    let client = support::client();
    let token = client
        .get(server.url("/config/token"))
        .send()
        .await
        .expect("answered");
    assert_eq!(token.text().await.expect("body"), "s3cr3t-t0ken-value");
    let printed = client
        .get(server.url("/print-config/token"))
        .send()
        .await
        .expect("answered");
    assert_eq!(printed.status(), 200);
    let plain = client
        .get(server.url("/print-config/plain"))
        .send()
        .await
        .expect("answered");
    assert_eq!(plain.status(), 200);
    server.logged("the value is visible").await;
    server.logged("the value is [redacted]").await;
    assert!(
        !server.logs().contains("s3cr3t-t0ken-value"),
        "{}",
        server.logs()
    );

    // A secret that is not there stops the load, naming the key, not a value.
    let mut command = support::squall();
    let output = command
        .env_remove("SQUALL_TEST_TOKEN")
        .arg("serve")
        .arg(&manifest)
        .output()
        .expect("squall runs");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("app.state.config.token")
            && stderr.contains("SQUALL_TEST_TOKEN is not set"),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_shortener_creates_redirects_counts_and_pages() {
    let data = tempfile::tempdir().expect("a directory");
    let shortener = support::repo().join("examples/shortener");
    let server = Server::start_in(&shortener, data.path());
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("a client");
    let created = client
        .post(server.url("/links"))
        .header("content-type", "application/json")
        .body(r#"{"url": "https://example.com/a/long/path"}"#)
        .send()
        .await
        .expect("answered");
    assert_eq!(created.status(), 201);
    let location = created.headers()["location"]
        .to_str()
        .expect("text")
        .to_owned();
    let link: Value = serde_json::from_str(&created.text().await.expect("body")).expect("json");
    let code = link["code"].as_str().expect("a code").to_owned();
    // The short link starts with the manifest's base_url.
    assert_eq!(location, format!("http://127.0.0.1:8080/{code}"));
    assert_eq!(link["short_url"], location.as_str());

    for _ in 0..3 {
        let followed = client
            .get(server.url(&format!("/{code}")))
            .send()
            .await
            .expect("answered");
        assert_eq!(followed.status(), 302);
        assert_eq!(
            followed.headers()["location"],
            "https://example.com/a/long/path"
        );
    }
    let described = client
        .get(server.url(&format!("/links/{code}")))
        .send()
        .await
        .expect("answered");
    let described: Value =
        serde_json::from_str(&described.text().await.expect("body")).expect("json");
    assert_eq!(described["hits"], 3, "{described}");

    // A browser's form post is sent back to the page, which escapes what it shows.
    let form = client
        .post(server.url("/links"))
        .header("accept", "text/html")
        .form(&[("url", "https://example.com/?q=<script>")])
        .send()
        .await
        .expect("answered");
    assert_eq!(form.status(), 303);
    let page = client.get(server.url("/")).send().await.expect("answered");
    let page = page.text().await.expect("body");
    assert!(
        page.contains("q=&lt;script&gt;") && !page.contains("<script>"),
        "{page}"
    );

    for n in 0..43 {
        let created = client
            .post(server.url("/links"))
            .form(&[("url", format!("https://example.com/{n}"))])
            .send()
            .await
            .expect("answered");
        assert_eq!(created.status(), 201);
    }
    let mut seen = 0;
    let mut pages = 0;
    let mut cursor = String::new();
    loop {
        let listed = client
            .get(server.url(&format!("/links?cursor={cursor}")))
            .send()
            .await
            .expect("answered");
        let listed: Value =
            serde_json::from_str(&listed.text().await.expect("body")).expect("json");
        seen += listed["links"].as_array().expect("links").len();
        pages += 1;
        match listed["cursor"].as_str() {
            Some(next) => cursor = next.to_owned(),
            None => break,
        }
    }
    assert_eq!((seen, pages), (45, 3));

    let bad = client
        .post(server.url("/links"))
        .form(&[("url", "ftp://x")])
        .send()
        .await
        .expect("answered");
    assert_eq!(bad.status(), 400);
    let missing = client
        .get(server.url("/nope"))
        .send()
        .await
        .expect("answered");
    assert_eq!(missing.status(), 404);

    // Links and counts are still there after a restart.
    drop(server);
    let server = Server::start_in(&shortener, data.path());
    let followed = client
        .get(server.url(&format!("/{code}")))
        .send()
        .await
        .expect("answered");
    assert_eq!(followed.status(), 302);
    let described = client
        .get(server.url(&format!("/links/{code}")))
        .send()
        .await
        .expect("answered");
    let described: Value =
        serde_json::from_str(&described.text().await.expect("body")).expect("json");
    assert_eq!(described["hits"], 4, "{described}");
}

#[tokio::test]
async fn a_standard_component_uses_wasi_keyvalue_and_wasi_config() {
    let dir = tempfile::tempdir().expect("a directory");
    let wasm = component("tests/guests/wasi-kv");
    let state = component("tests/guests/state");
    let text = format!(
        "[server]\ndata_dir = {dir:?}\n\n[app.standard]\nsource = {wasm:?}\nhosts = [\"standard.test\"]\nkv = true\nkv_max_keys = 3000\n\n[app.standard.config]\ngreeting = \"hi\"\n\n[app.squall]\nsource = {state:?}\nhosts = [\"squall.test\"]\nkv = true\n\n[app.ungranted]\nsource = {wasm:?}\nhosts = [\"ungranted.test\"]\n",
        dir = dir.path().display().to_string(),
        wasm = wasm.display().to_string(),
        state = state.display().to_string(),
    );
    let app = Harness::from_manifest(&text, Path::new(".")).expect("the apps load");
    let at = |host: &str, path: &str| format!("http://{host}.test{path}");
    assert_eq!(
        call(&app, "PUT", &at("standard", "/kv/k"), "v").await,
        (200, "stored".into())
    );
    assert_eq!(
        call(&app, "GET", &at("standard", "/kv/k"), "").await,
        (200, "v".into())
    );
    for n in 1..=3 {
        assert_eq!(
            call(&app, "POST", &at("standard", "/incr/n"), "").await.1,
            n.to_string()
        );
    }
    assert_eq!(
        call(&app, "GET", &at("standard", "/config/greeting"), "").await,
        (200, "hi".into())
    );
    assert_eq!(
        call(&app, "GET", &at("standard", "/open/other"), "")
            .await
            .0,
        404
    );
    // Paging with the draft's u64 cursors, and batches.
    assert_eq!(
        call(&app, "POST", &at("standard", "/fill/2500"), "").await,
        (200, "2500".into())
    );
    assert_eq!(
        call(&app, "GET", &at("standard", "/count"), "").await.1,
        "2502 keys in 3 pages"
    );
    assert_eq!(
        call(&app, "GET", &at("standard", "/many"), "").await.1,
        "[true, false]"
    );
    // The same quota as squall apps.
    let (status, body) = call(&app, "POST", &at("standard", "/fill/3001"), "").await;
    assert_eq!(status, 500, "{body}");
    assert!(body.contains("kv_max_keys"), "{body}");
    assert_eq!(
        app.limit_hits("standard", "kv_max_bytes").expect("counted"),
        1
    );
    // Its own namespace, and no store without the grant.
    assert_eq!(call(&app, "GET", &at("squall", "/kv/k"), "").await.0, 404);
    assert_eq!(
        call(&app, "GET", &at("ungranted", "/kv/k"), "").await,
        (403, "access denied".into())
    );
}

/// The state guest served by the real binary with its store on `redis`.
fn serve_on_redis(redis_url: &str) -> Server {
    Server::with_manifest(&format!(
        "[server.backend]\nkind = \"redis\"\nurl = {redis_url:?}\n\n[app.a]\nsource = {:?}\nkv = true\ntimeout = \"10s\"\n",
        component("tests/guests/state").display().to_string()
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn losing_redis_makes_calls_unavailable_and_they_resume_when_it_returns() {
    let mut redis = RedisServer::start();
    let server = serve_on_redis(&redis.url());
    let http = support::client();
    let put = |value: &'static str| {
        let http = &http;
        let url = server.url("/kv/k");
        async move {
            let response = http.put(url).body(value).send().await.unwrap();
            (response.status().as_u16(), response.text().await.unwrap())
        }
    };
    assert_eq!(put("before").await.0, 204);

    redis.kill();
    let started = std::time::Instant::now();
    let (status, body) = put("while down").await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body, "Service Unavailable\n");
    // Answered within the store's own wait, not the request's 10 s timeout.
    assert!(
        started.elapsed() < Duration::from_secs(9),
        "{:?}",
        started.elapsed()
    );
    redis.restart();
    let mut back = false;
    for _ in 0..50 {
        if put("after").await.0 == 204 {
            back = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(back, "the store never came back: {}", server.logs());
    let value = http
        .get(server.url("/kv/k"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(value, "after");
}

#[test]
fn an_unreachable_redis_stops_the_start_with_a_clear_error() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .unwrap()
        .port();
    let stderr = support::refused_manifest(&format!(
        "[server.backend]\nkind = \"redis\"\nurl = \"redis://127.0.0.1:{closed}\"\n\n[app.a]\nsource = {:?}\nkv = true\n",
        component("tests/guests/state").display().to_string()
    ));
    assert!(stderr.contains("cannot reach Redis"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hosts_sharing_redis_count_one_counter_exactly() {
    let redis = RedisServer::start();
    let hosts = [serve_on_redis(&redis.url()), serve_on_redis(&redis.url())];
    let http = support::client();
    let increments = (0..200).map(|n| {
        let url = hosts[n % 2].url("/incr/shared");
        let http = &http;
        async move {
            let response = http.post(url).send().await.unwrap();
            assert_eq!(response.status(), 200);
            response.text().await.unwrap().parse::<i64>().unwrap()
        }
    });
    let mut seen = join_all(increments).await;
    seen.sort_unstable();
    assert_eq!(
        seen,
        (1..=200).collect::<Vec<_>>(),
        "each increment saw its own value"
    );
    for host in &hosts {
        let total = http
            .get(host.url("/kv/shared"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert_eq!(total, "200");
    }
}

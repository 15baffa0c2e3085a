//! Operating a running host: `squall serve --watch` applies a new component,
//! a changed manifest or edited crate sources without dropping a request or
//! a socket, refuses a broken version while the old one serves, and drains
//! a removed app. Real binary, real components, real clients.
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

mod support;

use futures::{SinkExt, StreamExt};
use reqwest::Method;
use std::io::{Read, Write};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use support::{
    Server, Socket, admin_url, client, hello_wasm, next_text, replace_file, squall, versioned_wasm,
};
use tokio_tungstenite::connect_async;
use tokio_tungstenite::tungstenite::Message;

/// A manifest serving `app.wasm` beside it as the app `versioned` (with
/// `keys` in its table), a live-mode route at `/live` (the router's
/// `/socket` is hibernate), and `extra` lines after.
fn versioned_manifest(keys: &str, extra: &str) -> String {
    format!(
        "[server]\ndrain_timeout = \"2s\"\n\n\
         [app.versioned]\nsource = \"app.wasm\"\nroutes = [\"/\"]\n{keys}\n\
         [[app.versioned.websocket]]\nroutes = [\"/live\"]\nmode = \"live\"\n{extra}"
    )
}

/// A directory holding `squall.toml` and the version-1 `app.wasm`, served
/// with `--watch`.
fn watched_versioned() -> (tempfile::TempDir, Server) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(versioned_wasm(1), dir.path().join("app.wasm")).unwrap();
    let manifest = dir.path().join("squall.toml");
    std::fs::write(&manifest, versioned_manifest("", "")).unwrap();
    let data = dir.path().join("data");
    let server = Server::with_manifest_file(
        &manifest,
        &["--watch", "--data-dir", data.to_str().unwrap()],
    );
    (dir, server)
}

async fn connect(server: &Server, path: &str) -> Socket {
    let url = format!("ws://{}{path}", server.address());
    connect_async(url).await.unwrap().0
}

/// Send `text` and return the reply, skipping pings.
async fn ask(socket: &mut Socket, text: &str) -> String {
    socket.send(Message::text(text)).await.unwrap();
    next_text(socket).await
}

/// The close code the server ends `socket` with, within `timeout`.
async fn close_code(socket: &mut Socket, timeout: Duration) -> Option<u16> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        match tokio::time::timeout_at(deadline, socket.next()).await {
            Ok(Some(Ok(Message::Close(frame)))) => return frame.map(|f| f.code.into()),
            Ok(Some(Ok(_))) => continue,
            _ => return None,
        }
    }
}

/// The body of `GET url`.
async fn text_of(http: &reqwest::Client, url: impl reqwest::IntoUrl) -> String {
    http.get(url).send().await.unwrap().text().await.unwrap()
}

/// GET `url` until it answers `body`, for up to a minute (a swap compiles
/// the new component first).
async fn wait_for_body(url: &str, body: &str) {
    let http = client();
    let started = Instant::now();
    loop {
        if let Ok(response) = http.get(url).send().await
            && response.text().await.unwrap_or_default() == body
        {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "{url} never answered {body:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_swap_under_load_fails_no_request_and_keeps_hibernating_sockets() {
    versioned_wasm(2);
    let (dir, server) = watched_versioned();
    let http = client();
    assert_eq!(text_of(&http, server.url("/")).await, "v1");
    let mut hibernating = connect(&server, "/socket").await;
    assert_eq!(ask(&mut hibernating, "hi").await, "v1 count=1");
    let mut live = connect(&server, "/live").await;
    assert_eq!(ask(&mut live, "hi").await, "v1 count=1");

    // Clients in a loop, and a slow request in flight across the swap.
    let stop = Arc::new(AtomicBool::new(false));
    let saw_v2 = Arc::new(AtomicBool::new(false));
    let mut clients = Vec::new();
    for _ in 0..8 {
        let (stop, url, http) = (stop.clone(), server.url("/"), http.clone());
        let saw_v2 = saw_v2.clone();
        clients.push(tokio::spawn(async move {
            let (mut failures, mut seen) = (Vec::new(), std::collections::BTreeSet::new());
            while !stop.load(Ordering::Relaxed) {
                match http.get(&url).send().await {
                    Ok(response) if response.status() == 200 => {
                        let version = response.text().await.unwrap_or_default();
                        if version == "v2" {
                            saw_v2.store(true, Ordering::Relaxed);
                        }
                        seen.insert(version);
                    }
                    Ok(response) => failures.push(response.status().to_string()),
                    Err(err) => failures.push(err.to_string()),
                }
            }
            (failures, seen)
        }));
    }
    let slow = tokio::spawn(http.get(server.url("/slow?ms=3000")).send());
    server.logged_times("slow request on v1", 1).await;

    replace_file(&versioned_wasm(2), &dir.path().join("app.wasm"));
    wait_for_body(&server.url("/"), "v2").await;
    server
        .logged_times("updated: new requests go to the new version", 1)
        .await;
    // The clients in the loop reach version 2 too before they stop.
    support::until(
        async || saw_v2.load(Ordering::Relaxed),
        || "no client reached v2".to_owned(),
    )
    .await;
    stop.store(true, Ordering::Relaxed);
    let mut seen = std::collections::BTreeSet::new();
    for client in clients {
        let (failures, versions) = client.await.unwrap();
        assert!(failures.is_empty(), "failed requests: {failures:?}");
        seen.extend(versions);
    }
    assert!(seen.contains("v1") && seen.contains("v2"), "{seen:?}");

    // The request that began on version 1 finished there.
    let slow = slow.await.unwrap().unwrap();
    assert_eq!(slow.status(), 200);
    assert_eq!(slow.text().await.unwrap(), "v1");

    // The hibernating socket stayed open; its next event ran version 2,
    // with the state version 1 left.
    assert_eq!(ask(&mut hibernating, "hi").await, "v2 count=2");

    // The live socket finishes on version 1, then is asked to reconnect
    // once the drain timeout (2 s here) is over.
    assert_eq!(ask(&mut live, "hi").await, "v1 count=2");
    assert_eq!(
        close_code(&mut live, Duration::from_secs(10)).await,
        Some(1012)
    );
    let mut again = connect(&server, "/live").await;
    assert_eq!(ask(&mut again, "hi").await, "v2 count=1");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_broken_version_is_refused_and_the_old_one_keeps_serving() {
    let (dir, server) = watched_versioned();
    let http = client();
    let app = dir.path().join("app.wasm");

    // Not a component at all.
    std::fs::write(dir.path().join("junk"), b"\0asm junk").unwrap();
    replace_file(&dir.path().join("junk"), &app);
    server
        .logged("new version refused; the old one keeps serving")
        .await;
    assert_eq!(text_of(&http, server.url("/")).await, "v1");

    // More memory than the pool's slots, which were sized at start.
    let manifest = dir.path().join("squall.toml");
    std::fs::write(&manifest, versioned_manifest("memory = \"1GiB\"", "")).unwrap();
    assert!(
        server.wait_for_log("sized when the server started", Duration::from_secs(30)),
        "{}",
        server.logs()
    );

    // A manifest that does not parse changes nothing.
    std::fs::write(&manifest, "[app.versioned\n").unwrap();
    server
        .logged("the manifest was refused; the apps keep serving")
        .await;
    assert_eq!(text_of(&http, server.url("/")).await, "v1");

    // A good version after all that is taken.
    std::fs::write(&manifest, versioned_manifest("", "")).unwrap();
    replace_file(&versioned_wasm(2), &app);
    wait_for_body(&server.url("/"), "v2").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn apps_added_to_the_manifest_are_served_and_removed_ones_drained() {
    let (dir, server) = watched_versioned();
    let http = client();
    let manifest = dir.path().join("squall.toml");
    let hello = format!(
        "\n[app.hello]\nsource = {:?}\nroutes = [\"/hello\"]\n",
        hello_wasm().display().to_string()
    );
    std::fs::write(&manifest, versioned_manifest("", &hello)).unwrap();
    wait_for_body(&server.url("/hello/you"), "Hello, you!").await;
    server.logged("added").await;

    // A socket and a slow request of the app about to go.
    let mut socket = connect(&server, "/socket").await;
    assert_eq!(ask(&mut socket, "hi").await, "v1 count=1");
    let slow = tokio::spawn(http.get(server.url("/slow?ms=1000")).send());
    tokio::time::sleep(Duration::from_millis(200)).await;
    let hello_only = format!(
        "[server]\ndrain_timeout = \"2s\"\n\n[app.hello]\nsource = {:?}\nroutes = [\"/hello\"]\n",
        hello_wasm().display().to_string()
    );
    std::fs::write(&manifest, hello_only).unwrap();
    server.logged("removed: draining").await;
    wait_for_body(&server.url("/hello/me"), "Hello, me!").await;
    assert_eq!(
        http.get(server.url("/")).send().await.unwrap().status(),
        404
    );
    // What was in flight finishes; the socket is told the app went away.
    let slow = slow.await.unwrap().unwrap();
    assert_eq!(slow.text().await.unwrap(), "v1");
    assert_eq!(
        close_code(&mut socket, Duration::from_secs(10)).await,
        Some(1001)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn editing_a_crates_source_rebuilds_and_reloads_it() {
    let dir = tempfile::tempdir().unwrap();
    let krate = dir.path().join("greeter");
    let created = squall()
        .args(["new", "--template", "http"])
        .arg(&krate)
        .output()
        .unwrap();
    assert!(
        created.status.success(),
        "{}",
        String::from_utf8_lossy(&created.stderr)
    );
    let server = Server::start_flags(&krate, &["--watch"]);
    wait_for_body(&server.url("/hello/you"), "Hello, you!").await;

    let source = krate.join("src/lib.rs");
    let code = std::fs::read_to_string(&source).unwrap();
    assert!(code.contains("Hello, "), "the template greets: {code}");
    std::fs::write(&source, code.replace("Hello, ", "Howdy, ")).unwrap();
    wait_for_body(&server.url("/hello/you"), "Howdy, you!").await;
    server.logged("updated").await;
}

/// A manifest serving hello with its compile cache in `dir/cache`.
fn cached_hello(dir: &Path) -> std::path::PathBuf {
    let manifest = dir.join("squall.toml");
    std::fs::write(
        &manifest,
        format!(
            "[server]\ncache_dir = \"cache\"\n\n[app.hello]\nsource = {:?}\n",
            hello_wasm().display().to_string()
        ),
    )
    .unwrap();
    manifest
}

fn compile(manifest: &Path) -> String {
    let output = squall().arg("compile").arg(manifest).output().unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_warm_cache_skips_compiling_and_a_corrupt_entry_is_compiled_again() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = cached_hello(dir.path());
    assert!(compile(&manifest).contains("app \"hello\" compiled"));
    assert!(compile(&manifest).contains("was cached already"));

    // A start after `squall compile` loads the compiled code.
    let server = Server::with_manifest_file(&manifest, &[]);
    server.logged("code=\"from the compile cache\"").await;
    assert!(!server.logs().contains("compiled and cached"));
    wait_for_body(&server.url("/hello/you"), "Hello, you!").await;
    drop(server);

    // Damage the entry: one byte flipped. It is refused, compiled again,
    // and served; the next start finds the rewritten entry.
    let entries: Vec<_> = std::fs::read_dir(dir.path().join("cache"))
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "cwasm"))
        .collect();
    assert_eq!(entries.len(), 1, "{entries:?}");
    let mut bytes = std::fs::read(&entries[0]).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    std::fs::write(&entries[0], &bytes).unwrap();
    let server = Server::with_manifest_file(&manifest, &[]);
    server.logged("refused, compiling again").await;
    server.logged("code=\"compiled and cached\"").await;
    wait_for_body(&server.url("/hello/you"), "Hello, you!").await;
    drop(server);

    // Truncated the same.
    std::fs::write(&entries[0], &bytes[..100]).unwrap();
    let server = Server::with_manifest_file(&manifest, &[]);
    server.logged("refused, compiling again").await;
    wait_for_body(&server.url("/hello/you"), "Hello, you!").await;
    drop(server);
    let server = Server::with_manifest_file(&manifest, &[]);
    server.logged("code=\"from the compile cache\"").await;
}

#[test]
fn a_cache_others_may_write_is_refused() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let manifest = cached_hello(dir.path());
    let cache = dir.path().join("cache");
    std::fs::create_dir(&cache).unwrap();
    std::fs::set_permissions(&cache, std::fs::Permissions::from_mode(0o777)).unwrap();
    let stderr = support::refused_start(&manifest);
    assert!(stderr.contains("may be written by other users"), "{stderr}");
}

const TOKEN: &str = "an-admin-token-for-tests";
/// Connections the admin listener serves at once (the host's
/// `ADMIN_MAX_CONNECTIONS`).
const ADMIN_MAX_CONNECTIONS: usize = 64;

/// An admin API call with the right token: its status and body.
async fn admin_call(
    http: &reqwest::Client,
    method: Method,
    url: String,
    body: Option<Vec<u8>>,
) -> (u16, String) {
    let mut request = http
        .request(method, url)
        .header("authorization", format!("Bearer {TOKEN}"));
    if let Some(body) = body {
        request = request.body(body);
    }
    let response = request.send().await.unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

#[tokio::test(flavor = "multi_thread")]
async fn the_admin_api_deploys_removes_and_reloads_behind_its_token() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(versioned_wasm(1), dir.path().join("app.wasm")).unwrap();
    std::fs::write(dir.path().join("token"), format!("{TOKEN}\n")).unwrap();
    let manifest = dir.path().join("squall.toml");
    let admin_keys = "admin_listen = \"127.0.0.1:0\"\nadmin_token_file = \"token\"\n";
    std::fs::write(
        &manifest,
        versioned_manifest("", "").replace("[server]\n", &format!("[server]\n{admin_keys}")),
    )
    .unwrap();
    let data = dir.path().join("data");
    let server = Server::with_manifest_file(&manifest, &["--data-dir", data.to_str().unwrap()]);
    let admin = admin_url(&server);
    let http = client();

    // Metrics are open, and move with traffic.
    for _ in 0..3 {
        http.get(server.url("/")).send().await.unwrap();
    }
    let metrics = http.get(format!("{admin}/metrics")).send().await.unwrap();
    assert_eq!(metrics.status(), 200);
    let metrics = metrics.text().await.unwrap();
    for needle in [
        "squall_requests_total{app=\"versioned\",status=\"2xx\"} 3",
        "squall_request_duration_seconds_bucket{app=\"versioned\"",
        "squall_instances{app=\"versioned\"} 0",
        "squall_limit_hits_total{app=\"versioned\",limit=\"max_instances\"} 0",
        "squall_connections_open",
    ] {
        assert!(metrics.contains(needle), "{needle} in:\n{metrics}");
    }

    // The API is not: no token, a wrong one, another scheme.
    for authorization in [
        None,
        Some("Bearer not-the-token-at-all"),
        Some(&*format!("Basic {TOKEN}")),
    ] {
        let mut request = http.get(format!("{admin}/apps"));
        if let Some(value) = authorization {
            request = request.header("authorization", value);
        }
        let refused = request.send().await.unwrap();
        assert_eq!(refused.status(), 401);
        assert_eq!(refused.text().await.unwrap(), "");
    }
    let (status, apps) = admin_call(&http, Method::GET, format!("{admin}/apps"), None).await;
    assert_eq!(status, 200);
    let apps: serde_json::Value = serde_json::from_str(&apps).unwrap();
    assert_eq!(apps[0]["name"], "versioned");
    assert_eq!(apps[0]["version"], 1);

    // Deploy an uploaded component: version 2 serves.
    let upload = std::fs::read(versioned_wasm(2)).unwrap();
    let apps = format!("{admin}/apps/versioned");
    let (status, deployed) = admin_call(&http, Method::PUT, apps.clone(), Some(upload)).await;
    assert_eq!(status, 200);
    assert!(
        deployed.contains("\"updated\":[\"versioned\"]"),
        "{deployed}"
    );
    wait_for_body(&server.url("/"), "v2").await;
    server
        .logged("admin: deploying an uploaded component")
        .await;

    // A broken upload is refused; version 2 keeps serving.
    let junk = b"\0asm not a component".to_vec();
    let (status, _) = admin_call(&http, Method::PUT, apps.clone(), Some(junk)).await;
    assert_eq!(status, 422);
    assert_eq!(text_of(&http, server.url("/")).await, "v2");

    // A reload of the unchanged manifest keeps the deployed version.
    let reload = format!("{admin}/reload");
    let (status, reloaded) = admin_call(&http, Method::POST, reload.clone(), None).await;
    assert_eq!(status, 200);
    assert!(!reloaded.contains("versioned"), "{reloaded}");
    assert_eq!(text_of(&http, server.url("/")).await, "v2");

    // A deploy and a removal at once are made one after the other: the
    // removal answers 200, the deploy 200 before it or 404 after it, and
    // the app is gone either way.
    let upload = std::fs::read(versioned_wasm(3)).unwrap();
    let (deployed, removed) = tokio::join!(
        admin_call(&http, Method::PUT, apps.clone(), Some(upload)),
        admin_call(&http, Method::DELETE, apps.clone(), None),
    );
    assert_eq!(removed.0, 200, "{removed:?}");
    assert!([200, 404].contains(&deployed.0), "{deployed:?}");
    let gone = http.get(server.url("/")).send().await.unwrap();
    assert_eq!(gone.status(), 404);

    // The removal stands through a reload of the unchanged manifest ...
    let (status, _) = admin_call(&http, Method::POST, reload.clone(), None).await;
    assert_eq!(status, 200);
    let gone = http.get(server.url("/")).send().await.unwrap();
    assert_eq!(gone.status(), 404);
    // ... until the manifest changes the app: then it serves as written.
    std::fs::write(
        &manifest,
        versioned_manifest("timeout = \"9s\"", "")
            .replace("[server]\n", &format!("[server]\n{admin_keys}")),
    )
    .unwrap();
    let (status, reloaded) = admin_call(&http, Method::POST, reload, None).await;
    assert_eq!(status, 200);
    assert!(reloaded.contains("\"added\":[\"versioned\"]"), "{reloaded}");
    assert_eq!(text_of(&http, server.url("/")).await, "v1");
    let swaps = if deployed.0 == 200 { 2 } else { 1 };
    let metrics = text_of(&http, format!("{admin}/metrics")).await;
    assert!(
        metrics.contains(&format!(
            "squall_app_swaps_total{{app=\"versioned\"}} {swaps}"
        )),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_admin_listener_cuts_slow_headers_and_holds_few_connections() {
    let server = Server::with_manifest(&format!(
        "[server]\nadmin_listen = \"127.0.0.1:0\"\nheader_read_timeout = \"2s\"\n\n{}",
        support::manifest("hello", &support::hello_wasm(), "")
    ));
    let admin = admin_url(&server);
    let address = admin.trim_start_matches("http://").to_owned();
    // As many unfinished heads as the listener holds connections.
    let mut slow: Vec<std::net::TcpStream> = (0..ADMIN_MAX_CONNECTIONS)
        .map(|_| {
            let mut stream = std::net::TcpStream::connect(&address).unwrap();
            stream
                .write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Slow: ")
                .unwrap();
            stream
        })
        .collect();
    // One more client waits for a place ...
    let waiting = tokio::spawn(client().get(format!("{admin}/metrics")).send());
    server.logged("admin connection limit reached").await;
    // ... while the apps are served as ever.
    support::neighbour_answers(&server).await;
    // Each unfinished head is cut at the header read timeout ...
    for stream in &mut slow {
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        let mut answer = Vec::new();
        let _ = stream.read_to_end(&mut answer);
        assert!(
            !String::from_utf8_lossy(&answer).contains("200 OK"),
            "{answer:?}"
        );
    }
    // ... and the waiting client is served.
    let metrics = waiting.await.unwrap().unwrap();
    assert_eq!(metrics.status(), 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn guest_log_lines_reach_the_log_at_their_level_within_the_budget() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(versioned_wasm(1), dir.path().join("app.wasm")).unwrap();
    let manifest = dir.path().join("squall.toml");
    std::fs::write(&manifest, versioned_manifest("log_per_request = 64", "")).unwrap();
    let data = dir.path().join("data");
    let server = Server::with_manifest_file(&manifest, &["--data-dir", data.to_str().unwrap()]);
    let http = client();

    assert_eq!(text_of(&http, server.url("/log")).await, "logged");
    server.logged("squall::guest: from the guest, v1").await;
    let line = server
        .logs()
        .lines()
        .find(|line| line.contains("from the guest"))
        .unwrap()
        .to_owned();
    assert!(
        line.contains("WARN") && line.contains("app=\"versioned\""),
        "{line}"
    );

    // A line larger than the request's budget is cut at it, and counted.
    assert_eq!(text_of(&http, server.url("/log?n=1000")).await, "logged");
    server.logged("guest output over 64 bytes").await;
    // The limit line is logged before the cut line itself: wait for both.
    server.logged(&"x".repeat(64)).await;
    let logs = server.logs();
    assert!(
        logs.contains(&"x".repeat(64)) && !logs.contains(&"x".repeat(65)),
        "{logs}"
    );
}

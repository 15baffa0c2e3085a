//! The `squall` command line: manifests, bad input, the crate builder,
//! scaffolding and graceful shutdown.

#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

mod support;

use std::path::Path;
use std::time::Duration;
use support::{Server, client, hello_wasm, repo, squall};

/// Run `squall serve` on a manifest that must be rejected; return stderr.
fn rejected(manifest_text: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let manifest = dir.path().join("squall.toml");
    std::fs::write(&manifest, manifest_text).unwrap();
    let output = squall()
        .arg("serve")
        .arg(&manifest)
        .args(["--listen", "127.0.0.1:0"])
        .output()
        .unwrap();
    assert!(!output.status.success(), "the manifest was accepted");
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn bad_manifests_are_rejected_naming_file_line_and_key() {
    let wasm = hello_wasm();
    let source = format!("source = {:?}", wasm.display().to_string());

    let unknown = rejected(&format!("[app.hello]\n{source}\nmemroy = \"64MiB\"\n"));
    assert!(unknown.contains("squall.toml:3:"), "{unknown}");
    assert!(unknown.contains("unknown field `memroy`"), "{unknown}");

    let bad_size = rejected(&format!("[app.hello]\n{source}\nmemory = \"lots\"\n"));
    assert!(bad_size.contains("squall.toml:3:"), "{bad_size}");
    assert!(bad_size.contains("app.hello.memory"), "{bad_size}");

    let bad_route = rejected(&format!("[app.hello]\n{source}\nroutes = [\"hello\"]\n"));
    assert!(bad_route.contains("app.hello.routes"), "{bad_route}");
    assert!(bad_route.contains("must be a path prefix"), "{bad_route}");

    let no_source = rejected("[app.hello]\nroutes = [\"/\"]\n");
    assert!(no_source.contains("missing field `source`"), "{no_source}");

    let syntax = rejected("[app.hello\nsource = 1\n");
    assert!(syntax.contains("squall.toml:1:"), "{syntax}");

    let missing = rejected("[app.hello]\nsource = \"does-not-exist.wasm\"\n");
    assert!(missing.contains("does not exist"), "{missing}");

    let no_apps = rejected("[server]\nlisten = \"127.0.0.1:0\"\n");
    assert!(no_apps.contains("declares no app"), "{no_apps}");
}

#[test]
fn a_file_that_is_not_a_component_is_rejected_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let bogus = dir.path().join("bogus.wasm");
    std::fs::write(&bogus, b"\0asm\x01\0\0\0").unwrap();
    let output = squall().arg("serve").arg(&bogus).output().unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("not a WebAssembly component"), "{stderr}");
}

#[tokio::test]
async fn serving_a_crate_directory_builds_it() {
    let server = Server::start(&repo().join("examples/hello"));
    let response = client()
        .get(server.url("/hello/crate"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.text().await.unwrap(), "Hello, crate!");
}

#[tokio::test]
async fn graceful_shutdown_finishes_the_request_in_flight() {
    let mut server = Server::start(&hello_wasm());
    let url = server.url("/sleep/1500");
    let in_flight = tokio::spawn(async move { client().get(url).send().await });
    // Let the request reach the guest, then ask squall to stop.
    tokio::time::sleep(Duration::from_millis(400)).await;
    server.terminate();

    let response = in_flight
        .await
        .unwrap()
        .expect("the in-flight request completes");
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await.unwrap(), "slept 1500ms");

    let status = server
        .wait_exit(Duration::from_secs(15))
        .expect("squall exits after draining");
    assert!(status.success(), "exit status {status:?}");
    // Nothing listens any more.
    assert!(std::net::TcpStream::connect(server.address()).is_err());
}

#[tokio::test]
async fn squall_new_scaffolds_a_crate_that_serves_as_is() {
    let dir = tempfile::tempdir().unwrap();
    let krate = dir.path().join("my-app");
    let output = squall().arg("new").arg(&krate).output().unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(krate.join("src/lib.rs").is_file());
    let manifest = std::fs::read_to_string(krate.join("squall.toml")).unwrap();
    assert!(
        manifest.contains("[app.my-app]") && manifest.contains("# kv = true"),
        "{manifest}"
    );
    // The store and compile cache a local `squall serve` writes stay out of git.
    let ignored = std::fs::read_to_string(krate.join(".gitignore")).unwrap();
    assert!(ignored.lines().any(|line| line == "/.squall/"), "{ignored}");
    // Typed bodies derive as anywhere (docs/tornado.md).
    let cargo = std::fs::read_to_string(krate.join("Cargo.toml")).unwrap();
    assert!(
        cargo.contains(r#"serde = { version = "1", features = ["derive"] }"#),
        "{cargo}"
    );

    let server = Server::start(&krate);
    let http = client();
    let root = http.get(server.url("/")).send().await.unwrap();
    assert_eq!(root.text().await.unwrap(), "Hello from Squall!");
    let named = http.get(server.url("/hello/you")).send().await.unwrap();
    assert_eq!(named.text().await.unwrap(), "Hello, you!");

    // A second `new` over the same path refuses to overwrite it.
    let again = squall().arg("new").arg(&krate).output().unwrap();
    assert!(!again.status.success());
}

#[tokio::test]
async fn limits_can_be_given_on_the_command_line() {
    let server = Server::start_flags(&hello_wasm(), &["--timeout", "300ms", "--memory", "32MiB"]);
    let started = std::time::Instant::now();
    let slow = client()
        .get(server.url("/sleep/5000"))
        .send()
        .await
        .unwrap();
    assert_eq!(slow.status(), 504);
    assert!(started.elapsed() < Duration::from_secs(4));
    let fast = client().get(server.url("/hello/you")).send().await.unwrap();
    assert_eq!(fast.status(), 200);

    let refused = squall()
        .args(["serve", "--timeout", "soon"])
        .arg(hello_wasm())
        .output()
        .unwrap();
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains("--timeout") && stderr.contains("soon"),
        "{stderr}"
    );
}

/// `squall new --template TEMPLATE` in a directory outside the checkout.
fn scaffold(dir: &Path, template: &str) -> std::path::PathBuf {
    let krate = dir.join(format!("my-{template}"));
    let output = squall()
        .args(["new", "--template", template])
        .arg(&krate)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let manifest = std::fs::read_to_string(krate.join("Cargo.toml")).unwrap();
    assert!(
        manifest.contains("squall-sdk = \"0.1\"") && !manifest.contains("path"),
        "no path in Cargo.toml: {manifest}"
    );
    // Its own tests pass with plain cargo: the handler's natively (through
    // the SDK patch), tests/served.rs against this squall (through the kit
    // and the SQUALL that .cargo/config.toml names).
    let config = std::fs::read_to_string(krate.join(".cargo/config.toml")).unwrap();
    assert!(config.contains("squall-test = { path"), "{config}");
    assert!(config.contains("SQUALL = "), "{config}");
    let tested = std::process::Command::new(env!("CARGO"))
        .arg("test")
        .current_dir(&krate)
        .env("CARGO_TARGET_DIR", repo().join("target/scaffolds"))
        .env_remove("SQUALL")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&tested.stdout);
    let stderr = String::from_utf8_lossy(&tested.stderr);
    assert!(
        tested.status.success(),
        "cargo test in the {template} scaffold:\n{stdout}\n{stderr}"
    );
    assert!(stderr.contains("tests/served.rs"), "{stderr}");
    assert!(
        !stdout.contains(" 0 passed"),
        "every suite has a test: {stdout}"
    );
    // Nothing but cargo's own lines: no build waiting on another (the kit
    // starts its servers one at a time), no warnings. (The suite's other
    // cargo runs may hold the package cache while this one resolves.)
    for noise in [
        "Blocking waiting for file lock on build directory",
        "Blocking waiting for file lock on artifact directory",
        "warning",
    ] {
        assert!(!stderr.contains(noise), "{noise} in:\n{stderr}");
    }
    krate
}

#[tokio::test]
async fn every_template_serves_and_passes_its_own_test_outside_the_checkout() {
    let dir = tempfile::tempdir().unwrap();
    let http = client();

    let websocket = Server::start(&scaffold(dir.path(), "websocket"));
    let page = http.get(websocket.url("/")).send().await.unwrap();
    assert_eq!(page.text().await.unwrap(), "Connect a WebSocket to /echo");
    let url = format!("ws://{}/echo", websocket.address());
    let (mut socket, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    use futures::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    socket.send(Message::text("ping?")).await.unwrap();
    let echoed = tokio::time::timeout(Duration::from_secs(10), socket.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(echoed, Message::text("ping?"));

    let chat = Server::start(&scaffold(dir.path(), "chat"));
    let posted = http
        .post(chat.url("/messages"))
        .body(r#"{"body": "hello room"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(posted.status(), 200);
    let last = http.get(chat.url("/last")).send().await.unwrap();
    assert_eq!(last.text().await.unwrap(), r#"{"body":"hello room"}"#);
    let updates = http
        .get(chat.url("/messages?after=0"))
        .send()
        .await
        .unwrap();
    assert!(updates.text().await.unwrap().contains("hello room"));

    let plain = Server::start(&scaffold(dir.path(), "http"));
    let named = http.get(plain.url("/hello/you")).send().await.unwrap();
    assert_eq!(named.text().await.unwrap(), "Hello, you!");
}

#[test]
fn build_explains_a_directory_without_a_crate() {
    let output = squall().arg("build").arg(Path::new("/")).output().unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("has no Cargo.toml"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread")]
async fn log_lines_can_be_json_one_object_per_line() {
    let server = Server::start_flags(&support::hello_wasm(), &["--log-format", "json"]);
    let answered = client().get(server.url("/hello/you")).send().await.unwrap();
    assert_eq!(answered.status(), 200);
    server.logged("\"message\":\"request\"").await;
    let logs = server.logs();
    let line = logs
        .lines()
        .find(|line| line.contains("\"message\":\"request\""))
        .unwrap();
    let entry: serde_json::Value = serde_json::from_str(line).unwrap();
    assert_eq!(entry["fields"]["status"], 200);
    assert_eq!(entry["fields"]["path"], "/hello/you");
    assert_eq!(entry["span"]["app"], "hello");
    assert_eq!(entry["level"], "INFO");
}

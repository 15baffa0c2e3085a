//! Python apps: `squall serve examples/python-hello`, an `app.py` built with
//! componentize-py and the Tornado-shaped SDK, visited like a user would.

#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

mod support;

use support::upstream::Upstream;
use support::{Server, client, component, manifest, neighbour_answers, refused_manifest, repo};

fn python_hello() -> Server {
    // Built once per test process; `serve DIR` then finds the build current.
    component("examples/python-hello");
    Server::start(&repo().join("examples/python-hello"))
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tornado_style_handler_answers_with_routes_arguments_and_json() {
    let server = python_hello();
    let http = client();

    let root = http.get(server.url("/")).send().await.unwrap();
    assert_eq!(root.status(), 200);
    assert_eq!(root.headers()["content-type"], "text/html; charset=UTF-8");
    assert_eq!(root.text().await.unwrap(), "Hello, world");

    let greet = http
        .get(server.url("/greet/ada%20l?greeting=Hi"))
        .send()
        .await
        .unwrap();
    assert_eq!(greet.text().await.unwrap(), "Hi, ada l!");

    let item = http.get(server.url("/items/1")).send().await.unwrap();
    assert_eq!(
        item.headers()["content-type"],
        "application/json; charset=UTF-8"
    );
    let item: serde_json::Value = serde_json::from_str(&item.text().await.unwrap()).unwrap();
    assert_eq!(item, serde_json::json!({"id": 1, "name": "kettle"}));

    let created = http
        .post(server.url("/items/5"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("name=spoon")
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    assert_eq!(
        created.text().await.unwrap(),
        r#"{"id": 5, "name": "spoon"}"#
    );

    let boundary = "squall-boundary";
    let multipart = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"name\"\r\n\r\nfork\r\n\
         --{boundary}\r\nContent-Disposition: form-data; name=\"f\"; filename=\"a.txt\"\r\n\
         Content-Type: text/plain\r\n\r\nfile body\r\n--{boundary}--\r\n"
    );
    let uploaded = http
        .post(server.url("/items/7"))
        .header(
            "content-type",
            format!("multipart/form-data; boundary={boundary}"),
        )
        .body(multipart)
        .send()
        .await
        .unwrap();
    assert_eq!(
        uploaded.text().await.unwrap(),
        r#"{"id": 7, "name": "fork"}"#
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn errors_redirects_and_cookies_behave_as_in_tornado() {
    let server = python_hello();
    let http = client();

    let missing = http.post(server.url("/items/5")).send().await.unwrap();
    assert_eq!(missing.status(), 400);
    assert!(
        missing
            .text()
            .await
            .unwrap()
            .contains("400: Missing argument name")
    );

    let absent = http.get(server.url("/items/2")).send().await.unwrap();
    assert_eq!(absent.status(), 404);
    // An HTTPError's log message goes to the log, not to the client.
    assert!(!absent.text().await.unwrap().contains("no item"));
    server.logged("404 /items/2: no item 2").await;

    let unrouted = http.get(server.url("/nowhere")).send().await.unwrap();
    assert_eq!(unrouted.status(), 404);

    let no_method = http.delete(server.url("/")).send().await.unwrap();
    assert_eq!(no_method.status(), 405);

    let home = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .get(server.url("/home"))
        .send()
        .await
        .unwrap();
    assert_eq!(home.status(), 302);
    assert_eq!(home.headers()["location"], "/greet/world");

    let first = http.get(server.url("/visits")).send().await.unwrap();
    assert_eq!(first.headers()["set-cookie"], "visits=1; HttpOnly; Path=/");
    assert_eq!(first.text().await.unwrap(), "visit 1");
    let again = http
        .get(server.url("/visits"))
        .header("cookie", "visits=1")
        .send()
        .await
        .unwrap();
    assert_eq!(again.text().await.unwrap(), "visit 2");

    let nap = http.get(server.url("/nap?s=0.05")).send().await.unwrap();
    assert_eq!(nap.text().await.unwrap(), "slept True");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_exception_is_a_500_with_its_traceback_in_the_log_and_not_in_the_response() {
    let server = python_hello();
    let http = client();
    let broken = http.get(server.url("/broken")).send().await.unwrap();
    assert_eq!(broken.status(), 500);
    let body = broken.text().await.unwrap();
    assert!(body.contains("500: Internal Server Error"), "{body}");
    assert!(
        !body.contains("secret") && !body.contains("Traceback"),
        "{body}"
    );
    // `logging` reaches the host's log at its level, the traceback too.
    server.logged("about to fail").await;
    server.logged("Uncaught exception GET /broken").await;
    server.logged("Traceback (most recent call last)").await;
    server.logged("ValueError: the secret is 42").await;
    // The next request is served as usual.
    let root = http.get(server.url("/")).send().await.unwrap();
    assert_eq!(root.text().await.unwrap(), "Hello, world");
}

#[test]
fn a_python_app_with_too_little_memory_is_refused_naming_the_setting() {
    let python = component("examples/python-hello");
    for memory in ["8MiB", "17MiB"] {
        let refusal = refused_manifest(&manifest(
            "python",
            &python,
            &format!("memory = {memory:?}"),
        ));
        assert!(
            refusal.contains("raise `memory` in the manifest"),
            "{memory}: {refusal}"
        );
    }
}

/// A hostile Python tenant beside the Rust hello app at `/hello`.
fn hostile_beside_hello() -> Server {
    let python = component("tests/guests/python-hostile");
    let rust = support::hello_wasm();
    let text = format!(
        "{}\n[app.rust]\nsource = {:?}\nroutes = [\"/hello\"]\n",
        manifest(
            "python",
            &python,
            "memory = \"64MiB\"\ntimeout = \"60s\"\ncpu_time = \"300ms\"\nlog_per_request = \"8KiB\""
        ),
        rust.display().to_string()
    );
    Server::with_manifest(&text)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_python_guest_that_allocates_without_end_meets_its_memory_limit() {
    let server = hostile_beside_hello();
    let (hog, ()) = tokio::join!(
        client().get(server.url("/hog")).send(),
        neighbour_answers(&server)
    );
    assert_eq!(hog.unwrap().status(), 500);
    let fine = client().get(server.url("/")).send().await.unwrap();
    assert_eq!(fine.text().await.unwrap(), "fine");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_spinning_python_guest_is_stopped_by_its_cpu_budget() {
    let server = hostile_beside_hello();
    let (spin, ()) = tokio::join!(
        client().get(server.url("/spin")).send(),
        neighbour_answers(&server)
    );
    assert_eq!(spin.unwrap().status(), 504);
    server.logged("cpu_time limit").await;
    neighbour_answers(&server).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_python_guest_flooding_its_log_is_cut_at_its_budget() {
    let server = hostile_beside_hello();
    let flood = client().get(server.url("/flood")).send().await.unwrap();
    assert_eq!(flood.text().await.unwrap(), "flooded");
    server.logged("limit=log_per_request").await;
    let lines = server.logs().matches("flood line").count();
    assert!(lines < 200, "{lines} flood lines reached the log");
    neighbour_answers(&server).await;
}

fn python_chat() -> Server {
    component("examples/python-chat");
    Server::start(&repo().join("examples/python-chat"))
}

/// The `_xsrf` cookie a page of the chat sets.
async fn xsrf_cookie(server: &Server) -> String {
    let page = client().get(server.url("/")).send().await.unwrap();
    let cookie = page.headers()["set-cookie"].to_str().unwrap().to_owned();
    let pair = cookie.split(';').next().unwrap().to_owned();
    assert!(page.text().await.unwrap().contains("Tornado Chat Demo"));
    pair
}

async fn post_form(server: &Server, path: &str, cookie: &str, fields: &str) -> reqwest::Response {
    let token = cookie.trim_start_matches("_xsrf=");
    client()
        .post(server.url(path))
        .header("cookie", cookie)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("_xsrf={}&{fields}", token.replace('|', "%7C")))
        .send()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_ported_chat_demo_long_polls_with_a_cursor_and_checks_xsrf() {
    let server = python_chat();
    let cookie = xsrf_cookie(&server).await;

    let forged = client()
        .post(server.url("/a/message/new"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("body=forged")
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 403);

    let posted = post_form(
        &server,
        "/a/message/new",
        &cookie,
        "body=hello+%3Cb%3Ex%3C%2Fb%3E",
    )
    .await;
    let first: serde_json::Value = serde_json::from_str(&posted.text().await.unwrap()).unwrap();
    assert_eq!(first["body"], "hello <b>x</b>");
    assert!(
        first["html"]
            .as_str()
            .unwrap()
            .contains("&lt;b&gt;x&lt;/b&gt;")
    );

    // A poll with the last id seen waits for the next message.
    let cursor = first["id"].as_str().unwrap().to_owned();
    let waiting = {
        let cookie = cookie.clone();
        let address = server.url("/a/message/updates");
        tokio::spawn(async move {
            let token = cookie.trim_start_matches("_xsrf=").replace('|', "%7C");
            client()
                .post(address)
                .header("cookie", cookie)
                .header("content-type", "application/x-www-form-urlencoded")
                .body(format!("_xsrf={token}&cursor={cursor}"))
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap()
        })
    };
    // Whether the poll is parked yet or not, the cursor finds what follows it.
    let second = post_form(&server, "/a/message/new", &cookie, "body=second").await;
    assert_eq!(second.status(), 200);
    let news: serde_json::Value = serde_json::from_str(&waiting.await.unwrap()).unwrap();
    let bodies: Vec<&str> = news["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|message| message["body"].as_str().unwrap())
        .collect();
    assert_eq!(bodies, ["second"]);

    // The page lists what was said, rendered by the Tornado-syntax templates.
    let page = client()
        .get(server.url("/"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        page.contains("hello &lt;b&gt;x&lt;/b&gt;") && page.contains(">second</div>"),
        "{page}"
    );
    assert!(page.contains("/static/chat.js?v="), "{page}");
}

#[tokio::test(flavor = "multi_thread")]
async fn chat_sockets_hear_each_other_and_the_long_poll_posts() {
    use futures::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;

    let server = python_chat();
    let url = format!("ws://{}/chatsocket", server.address());
    let mut alice = tokio_tungstenite::connect_async(&url).await.unwrap().0;
    let mut bob = tokio_tungstenite::connect_async(&url).await.unwrap().0;
    alice
        .send(Message::text(r#"{"body": "hi bob"}"#))
        .await
        .unwrap();
    for socket in [&mut alice, &mut bob] {
        let heard: serde_json::Value =
            serde_json::from_str(&support::next_text(socket).await).unwrap();
        assert_eq!(heard["body"], "hi bob");
        assert!(heard["html"].as_str().unwrap().contains("hi bob"));
    }
    let cookie = xsrf_cookie(&server).await;
    post_form(&server, "/a/message/new", &cookie, "body=from+the+form").await;
    let heard: serde_json::Value =
        serde_json::from_str(&support::next_text(&mut bob).await).unwrap();
    assert_eq!(heard["body"], "from the form");

    // A message that is not JSON is the app's bug: logged, the socket closed.
    alice.send(Message::text("not json")).await.unwrap();
    server.logged("Uncaught exception in on_message").await;
    let closed = loop {
        match alice.next().await {
            Some(Ok(Message::Close(frame))) => break frame,
            Some(Ok(_)) => continue,
            other => panic!("expected a close frame, got {other:?}"),
        }
    };
    assert_eq!(u16::from(closed.unwrap().code), 1011);
}

const SECRET: &str = "the first cookie secret, 32 bytes";

/// The Python web test guest at `/py`, the Rust one (`tests/guests/web`)
/// at `/cookies`, both signing with the same secret.
fn python_beside_rust() -> Server {
    let python = component("tests/guests/python-web");
    let rust = component("tests/guests/web");
    Server::with_manifest(&format!(
        "[app.py]\nsource = {python:?}\nroutes = [\"/py\"]\nmemory = \"64MiB\"\nkv = true\njobs = true\n\
         outbound = [\"http://127.0.0.1:*\"]\npubsub = [\"events\"]\n\
         [[app.py.schedule]]\nname = \"tally\"\nevery = \"1s\"\npayload = \"from the manifest\"\n\
         [[app.py.consumer]]\nqueue = \"py-work\"\nretry_delay = \"200ms\"\n\
         [app.py.config]\ncookie_secret = {SECRET:?}\ngreeting = \"hello from the manifest\"\n\
         [app.rust]\nsource = {rust:?}\nroutes = [\"/cookies\"]\n\
         [app.rust.config]\ncookie_secret = {SECRET:?}\n",
        python = python.display().to_string(),
        rust = rust.display().to_string(),
    ))
}

async fn text(server: &Server, path: &str) -> String {
    let response = client().get(server.url(path)).send().await.unwrap();
    response.text().await.unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn python_coroutines_await_fetches_timeouts_and_spawned_work() {
    let upstream = Upstream::start().await;
    let server = python_beside_rust();
    let hello = upstream.url("/hello");
    assert_eq!(
        text(&server, &format!("/py/fetch?url={hello}")).await,
        "200 5"
    );
    let missing = upstream.url("/nowhere");
    assert_eq!(
        text(&server, &format!("/py/strict?url={missing}")).await,
        "raised 404"
    );
    // Not granted by `outbound`: a typed error, never a trap.
    assert_eq!(
        text(&server, "/py/fetch?url=http://example.com/").await,
        "fetch failed: denied"
    );
    // Three fetches in flight at once: none answers until all three came.
    let together = upstream.url("/together/3");
    assert_eq!(
        text(&server, &format!("/py/fanout?url={together}&n=3")).await,
        "ok ok ok"
    );
    let slow = upstream.url("/delay/5000");
    assert_eq!(
        text(&server, &format!("/py/timeout?url={slow}&s=0.05")).await,
        "timed out"
    );
    assert_eq!(
        text(&server, &format!("/py/timeout?url={hello}&s=30")).await,
        "in time: hello"
    );
    let sink = upstream.url("/sink");
    assert_eq!(
        text(&server, &format!("/py/spawn?url={sink}")).await,
        "spawned"
    );
    support::until(
        async || !upstream.sunk().is_empty(),
        || "the spawned fetch never reached the upstream".to_owned(),
    )
    .await;
    assert_eq!(upstream.sunk(), [Ok("sent after the response".len())]);
}

#[tokio::test(flavor = "multi_thread")]
async fn python_apps_keep_state_read_config_and_share_signed_cookies_with_rust_apps() {
    let server = python_beside_rust();
    let http = client();
    for expected in ["1", "2"] {
        let count = http.post(server.url("/py/count")).send().await.unwrap();
        assert_eq!(count.text().await.unwrap(), expected);
    }
    let stored = http
        .put(server.url("/py/store/note"))
        .body("kept")
        .send()
        .await
        .unwrap();
    assert_eq!(stored.status(), 204);
    assert_eq!(text(&server, "/py/store/note").await, "kept");
    assert_eq!(
        text(&server, "/py/greeting").await,
        "hello from the manifest"
    );

    // Signed by Python, read by Rust.
    let login = http
        .get(server.url("/py/login?user=grace"))
        .send()
        .await
        .unwrap();
    let cookie = login.headers()["set-cookie"].to_str().unwrap();
    let pair = cookie.split(';').next().unwrap().to_owned();
    let read = http
        .get(server.url("/cookies/read"))
        .header("cookie", &pair)
        .send()
        .await
        .unwrap();
    assert_eq!(read.text().await.unwrap(), "grace");
    // Signed by Rust, read by Python.
    let set = http
        .get(server.url("/cookies/set?user=ada"))
        .send()
        .await
        .unwrap();
    let signed = set
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|value| {
            value
                .to_str()
                .unwrap()
                .split(';')
                .next()
                .unwrap()
                .to_owned()
        })
        .find(|pair| pair.starts_with("user="))
        .unwrap();
    let whoami = http
        .get(server.url("/py/whoami"))
        .header("cookie", &signed)
        .send()
        .await
        .unwrap();
    assert_eq!(whoami.text().await.unwrap(), "ada");
    let forged = signed.replace("|YWRh|", "|ZXZl|");
    let whoami = http
        .get(server.url("/py/whoami"))
        .header("cookie", &forged)
        .send()
        .await
        .unwrap();
    assert_eq!(whoami.text().await.unwrap(), "absent");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_python_schedule_ticks_with_its_payload_and_due_time() {
    let server = python_beside_rust();
    server
        .logged("python tick 2 (from the manifest, due True)")
        .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_python_job_runs_later_and_again_after_a_failure() {
    let server = python_beside_rust();
    let http = client();
    let kept = http
        .post(server.url("/py/remind?delay=0.2"))
        .body("see you")
        .send()
        .await
        .unwrap();
    assert_eq!(kept.status(), 200);
    assert_eq!(kept.text().await.unwrap().len(), 32);
    let cancelled = http
        .post(server.url("/py/remind?delay=60&cancel=1"))
        .send()
        .await
        .unwrap();
    assert_eq!(cancelled.text().await.unwrap(), "cancelled True");
    server.logged("Uncaught exception in job 'remind'").await;
    server.logged("python job remind attempt 2 (see you)").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_python_consumer_gets_its_queue_and_retries_a_message() {
    let server = python_beside_rust();
    for payload in ["once", "again"] {
        let sent = client()
            .post(server.url("/py/send"))
            .body(payload)
            .send()
            .await
            .unwrap();
        assert_eq!(sent.status(), 200);
    }
    server.logged("python work once attempt 1").await;
    server.logged("python work again attempt 2").await;
    assert!(!server.logs().contains("python work once attempt 2"));
}

#[tokio::test(flavor = "multi_thread")]
async fn as_many_python_instances_as_the_pool_has_slots_run_at_once() {
    // A CPython component holds 14 core instances: the pool must have room
    // for them in every slot, not only in Rust-sized ones.
    let python = component("tests/guests/python-hostile");
    let server = Server::with_manifest(&format!(
        "[server]\nmax_instances = 4\n{}",
        manifest("python", &python, "memory = \"64MiB\"\ntimeout = \"60s\"")
    ));
    let naps: Vec<_> = (0..4)
        .map(|_| tokio::spawn(client().get(server.url("/nap?s=20")).send()))
        .collect();
    // All four are in flight at once, each in its own instance.
    server.logged_times("napping for a while", 4).await;
    assert!(!server.logs().contains("status=503"), "{}", server.logs());
    for nap in naps {
        assert_eq!(nap.await.unwrap().unwrap().status(), 200);
    }
}

/// `squall new --lang python --template TEMPLATE`, its own tests run with
/// `squall test`.
fn python_scaffold(dir: &std::path::Path, template: &str) -> std::path::PathBuf {
    let app = dir.join(format!("my-{template}"));
    let output = support::squall()
        .args(["new", "--lang", "python", "--template", template])
        .arg(&app)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let tested = support::squall().arg("test").arg(&app).output().unwrap();
    assert!(
        tested.status.success(),
        "squall test in the {template} scaffold:\n{}",
        String::from_utf8_lossy(&tested.stderr)
    );
    app
}

#[tokio::test(flavor = "multi_thread")]
async fn every_python_template_serves_as_written_and_passes_its_own_test() {
    use futures::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;

    let dir = tempfile::tempdir().unwrap();
    let http_app = python_scaffold(dir.path(), "http");
    let manifest = std::fs::read_to_string(http_app.join("squall.toml")).unwrap();
    assert!(
        manifest.contains("[app.my-http]") && manifest.contains("# kv = true"),
        "{manifest}"
    );
    let requirements = std::fs::read_to_string(http_app.join("requirements.txt")).unwrap();
    assert!(requirements.contains("componentize-py=="), "{requirements}");
    let server = Server::start(&http_app);
    assert_eq!(text(&server, "/").await, "Hello from Squall!");
    assert_eq!(
        text(&server, "/hello/you").await,
        r#"{"greeting": "Hello, you!"}"#
    );

    let server = Server::start(&python_scaffold(dir.path(), "websocket"));
    let url = format!("ws://{}/echo", server.address());
    let mut socket = tokio_tungstenite::connect_async(&url).await.unwrap().0;
    for n in 1..=2 {
        socket.send(Message::text("hi")).await.unwrap();
        // The count lives in the host-kept state: each event is a fresh instance.
        assert_eq!(support::next_text(&mut socket).await, format!("#{n}: hi"));
    }

    let server = Server::start(&python_scaffold(dir.path(), "chat"));
    let url = format!("ws://{}/socket", server.address());
    let mut socket = tokio_tungstenite::connect_async(&url).await.unwrap().0;
    socket.send(Message::text("hello room")).await.unwrap();
    let heard = socket.next().await.unwrap().unwrap();
    assert_eq!(
        heard.into_text().unwrap().as_str(),
        r#"{"body": "hello room"}"#
    );
    let polled = text(&server, "/messages?after=0").await;
    assert_eq!(polled, r#"{"messages": [{"body": "hello room", "id": 1}]}"#);
}

/// A Python app in a directory of its own: `app.py` and `requirements`.
fn python_app_with(requirements: &str, app: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("requirements.txt"), requirements).unwrap();
    std::fs::write(dir.path().join("app.py"), app).unwrap();
    dir
}

#[tokio::test(flavor = "multi_thread")]
async fn pure_python_packages_are_bundled_and_native_extensions_refused_by_name() {
    let pure = python_app_with(
        "componentize-py==0.25.1\nsix==1.17.0\n",
        "import six\nfrom squall.web import Application, RequestHandler\n\n\
         class Main(RequestHandler):\n    def get(self):\n        self.write(six.ensure_str(b'six says hi'))\n\n\
         def make_app():\n    return Application([(r'/', Main)])\n",
    );
    let server = Server::with_manifest(&format!(
        "[app.pure]\nsource = {:?}\nroutes = [\"/\"]\nmemory = \"64MiB\"\n",
        pure.path().display().to_string()
    ));
    assert_eq!(text(&server, "/").await, "six says hi");
    // The build wrote nothing beside the app's sources (no .squall, no __pycache__).
    let mut left: Vec<String> = std::fs::read_dir(pure.path())
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    left.sort();
    assert_eq!(left, ["app.py", "requirements.txt"]);

    let native = python_app_with(
        "markupsafe==3.0.2\n",
        "from squall.web import Application\n\ndef make_app():\n    return Application([])\n",
    );
    let output = support::squall()
        .arg("build")
        .arg(native.path())
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("markupsafe") && stderr.contains("is a native extension"),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_multi_tenant_example_serves_its_python_tenant_beside_the_rust_ones() {
    component("examples/python-hello");
    let server = Server::start(&repo().join("examples/multi-tenant"));
    let http = client();
    let python = http
        .get(server.url("/greet/you"))
        .header("host", "python.localhost")
        .send()
        .await
        .unwrap();
    assert_eq!(python.text().await.unwrap(), "Hello, you!");
    let rust = http
        .get(server.url("/hello/you"))
        .header("host", "hello.localhost")
        .send()
        .await
        .unwrap();
    assert_eq!(rust.text().await.unwrap(), "Hello, you!");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_python_handler_streams_server_sent_events_with_flush() {
    use futures::StreamExt;

    let server = python_beside_rust();
    let response = client().get(server.url("/py/events")).send().await.unwrap();
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let mut body = response.bytes_stream();
    let mut seen = String::new();
    while !seen.contains("data: first\n\n") {
        let chunk = body.next().await.unwrap().unwrap();
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }
    // The handler is still running: the second event waits for this.
    let poked = client()
        .post(server.url("/py/poke"))
        .body("second")
        .send()
        .await
        .unwrap();
    assert_eq!(poked.status(), 200);
    while let Some(chunk) = body.next().await {
        seen.push_str(&String::from_utf8_lossy(&chunk.unwrap()));
    }
    assert_eq!(seen, "data: first\n\ndata: second\n\n");
}

#[test]
fn an_app_that_loops_when_built_is_stopped_and_its_directory_left_untouched() {
    let looping = python_app_with("", "while True:\n    pass\n");
    let before: Vec<_> = std::fs::read_dir(looping.path())
        .unwrap()
        .map(|entry| entry.unwrap().file_name())
        .collect();
    let output = support::squall()
        .arg("build")
        .arg(looping.path())
        .env("SQUALL_BUILD_TIMEOUT", "5")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("was stopped"), "{stderr}");
    let after: Vec<_> = std::fs::read_dir(looping.path())
        .unwrap()
        .map(|entry| entry.unwrap().file_name())
        .collect();
    assert_eq!(before, after, "the build wrote nothing into the app");
}

#[test]
fn a_requirement_that_is_a_url_or_an_option_is_refused_before_pip_runs() {
    for line in [
        "x @ https://example.com/x.whl",
        "--index-url http://example.com",
        "./local",
    ] {
        let app = python_app_with(
            line,
            "from squall.web import Application\nmake_app = lambda: Application([])\n",
        );
        let output = support::squall()
            .arg("build")
            .arg(app.path())
            .output()
            .unwrap();
        assert!(!output.status.success(), "{line}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            stderr.contains("is not a plain requirement"),
            "{line}: {stderr}"
        );
    }
}

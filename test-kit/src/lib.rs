//! Test a Squall app the way Tornado's `AsyncHTTPTestCase` tests a Tornado
//! app: build it, serve it on a real host on a free port, and talk to it
//! with real clients.
//!
//! ```no_run
//! use squall_test::TestServer;
//!
//! #[tokio::test]
//! async fn hello_greets() -> anyhow::Result<()> {
//!     let server = TestServer::start(env!("CARGO_MANIFEST_DIR"))?;
//!     let response = server.get("/hello/you").await?;
//!     assert_eq!(response.status, 200);
//!     assert_eq!(response.text(), "Hello, you!");
//!     Ok(())
//! }
//! ```
//!
//! The server is the `squall` binary, run as a child process (`SQUALL`,
//! which `squall new` writes into the crate's `.cargo/config.toml`; else the
//! `squall` beside the test binary, in squall's own workspace; else the one
//! on the `PATH`): the kit links no host, so it compiles in seconds, and a
//! server's log lines are the test's output, shown when it fails.
//!
//! Handlers can also be tested without a host: build a `squall_sdk::Request`
//! with its `with_header`, `with_cookie`, `with_json`, `with_form` and
//! `with_body` and pass it to `Router::handle`.

use anyhow::{Context, Result, bail};
use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message;

/// The `http` types [`TestServer::request`] takes (`http::Method`) and
/// responses carry (`http::HeaderMap`).
pub use http;
/// The HTTP client behind [`TestServer::request`]'s builder.
pub use reqwest;

/// How long a helper waits for an answer before failing the test.
const WAIT: Duration = Duration::from_secs(30);

/// How long a stopping server may drain before it is killed.
const STOP_WAIT: Duration = Duration::from_secs(10);

/// The server's last log lines kept for [`TestServer::log`].
const KEPT_LOG_LINES: usize = 10_000;

/// An app served by the real host (the `squall` binary, in a child
/// process) on `127.0.0.1` and a free port, with its state in a temporary
/// directory; stopped when dropped.
pub struct TestServer {
    address: SocketAddr,
    tcp: Vec<(String, SocketAddr)>,
    process: Child,
    /// Closing it stops the server.
    stdin: Option<ChildStdin>,
    log: Arc<ServerLog>,
    /// Disconnected once the server's stderr closes, which it does as it exits.
    stderr_closed: std::sync::mpsc::Receiver<()>,
    client: reqwest::Client,
}

/// A response, read whole.
#[derive(Debug, Clone)]
pub struct TestResponse {
    /// Its status code.
    pub status: u16,
    /// Its headers.
    pub headers: http::HeaderMap,
    /// Its body.
    pub body: Bytes,
}

impl TestResponse {
    /// The body as text (lossy).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body parsed as JSON.
    pub fn json<T: serde::de::DeserializeOwned>(&self) -> Result<T> {
        serde_json::from_slice(&self.body).context("the body is not the JSON expected")
    }

    /// A header's value as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name)?.to_str().ok()
    }
}

/// A [`TestServer`] to start, with config values and secrets of the
/// test's own: `TestServer::builder(dir).config("base_url", "http://x").start()?`.
#[derive(Clone)]
pub struct TestServerBuilder {
    app: PathBuf,
    settings: Settings,
}

impl std::fmt::Debug for TestServerBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let secrets: Vec<_> = self.settings.secrets.iter().map(|(key, _)| key).collect();
        f.debug_struct("TestServerBuilder")
            .field("app", &self.app)
            .field("config", &self.settings.config)
            .field("secrets", &secrets)
            .finish()
    }
}

/// What the kit tells `squall test-server`, one JSON line on its stdin.
#[derive(Clone, Default, serde::Serialize)]
struct Settings {
    config: Vec<(String, String)>,
    secrets: Vec<(String, String)>,
    /// Components an earlier server of this test binary built, by source.
    built: Vec<(PathBuf, PathBuf)>,
}

/// What `squall test-server` answers once listening.
#[derive(serde::Deserialize)]
struct Ready {
    address: SocketAddr,
    tcp: Vec<(String, SocketAddr)>,
    built: Vec<(PathBuf, PathBuf)>,
}

impl TestServerBuilder {
    /// Config value `key` for every app served, over the manifest's
    /// (`[app.NAME.config]`).
    pub fn config(mut self, key: &str, value: &str) -> Self {
        self.settings
            .config
            .push((key.to_owned(), value.to_owned()));
        self
    }

    /// Secret `key` (a `cookie_secret`, an API token) for every app
    /// served, over the manifest's, without an environment variable.
    pub fn secret(mut self, key: &str, value: &str) -> Self {
        self.settings
            .secrets
            .push((key.to_owned(), value.to_owned()));
        self
    }

    /// Serve this manifest instead of the app's own `squall.toml` (other
    /// grants or limits for a test); its sources are relative to it.
    pub fn manifest(mut self, manifest: impl AsRef<Path>) -> Self {
        self.app = manifest.as_ref().to_path_buf();
        self
    }

    /// Build (once per test binary) and serve it.
    pub fn start(mut self) -> Result<TestServer> {
        // One server starts at a time: the first builds, the next are given
        // what it built, and no two cargo builds queue on one lock.
        static BUILT: Mutex<Vec<(PathBuf, PathBuf)>> = Mutex::new(Vec::new());
        let mut built = BUILT.lock().unwrap_or_else(PoisonError::into_inner);
        self.settings.built = built.clone();
        let (server, ready) = spawn(&self.app, &self.settings)?;
        *built = ready.built;
        Ok(server)
    }
}

/// The `squall` to run: `SQUALL`, else the one beside the test binary
/// (squall's own workspace builds it there), else the `PATH`'s.
fn squall_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("SQUALL") {
        return path.into();
    }
    std::env::current_exe()
        .ok()
        .and_then(|test| {
            let profile_dir = test.parent()?.parent()?;
            Some(profile_dir.join(format!("squall{}", std::env::consts::EXE_SUFFIX)))
        })
        .filter(|beside| beside.is_file())
        .unwrap_or_else(|| PathBuf::from("squall"))
}

/// Run `squall test-server APP`, hand it `settings`, and wait until it
/// listens (after building, the first time) or fails.
fn spawn(app: &Path, settings: &Settings) -> Result<(TestServer, Ready)> {
    let squall = squall_binary();
    let mut process = Command::new(&squall)
        .arg("test-server")
        .arg(app)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| {
            format!(
                "cannot run {}: set SQUALL to the squall binary (`squall new` writes it \
                 into .cargo/config.toml) or put squall on the PATH",
                squall.display()
            )
        })?;
    let log = Arc::new(ServerLog::default());
    let (closed, stderr_closed) = std::sync::mpsc::channel();
    let following = process
        .stderr
        .take()
        .map(|stderr| log.clone().follow(stderr, closed));
    let mut stdin = process
        .stdin
        .take()
        .context("the server's stdin is piped")?;
    let mut line = serde_json::to_vec(settings)?;
    line.push(b'\n');
    stdin.write_all(&line)?;
    stdin.flush()?;
    let stdout = process
        .stdout
        .take()
        .context("the server's stdout is piped")?;
    let mut answer = String::new();
    let waiting = SlowStartNotice::after(Duration::from_secs(3), app);
    BufReader::new(stdout).read_line(&mut answer)?;
    drop(waiting);
    if answer.is_empty() {
        drop(stdin);
        let status = process.wait()?;
        if let Some(following) = following {
            let _ = following.join();
        }
        bail!(
            "squall could not serve {} ({status}):\n{}",
            app.display(),
            log.tail(20)
        );
    }
    let ready: Ready =
        serde_json::from_str(&answer).context("squall test-server answered something else")?;
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(WAIT)
        .build()?;
    let server = TestServer {
        address: ready.address,
        tcp: ready.tcp.clone(),
        process,
        stdin: Some(stdin),
        log,
        stderr_closed,
        client,
    };
    Ok((server, ready))
}

/// One line on the terminal if a server takes long to start (the app's
/// first build for wasm takes a minute), so a silent test is not taken for
/// a stuck one. Written to stderr itself: the test harness would hold back
/// a line printed with `eprintln!` until the test ends.
struct SlowStartNotice {
    started: std::sync::mpsc::Sender<()>,
}

impl SlowStartNotice {
    fn after(delay: Duration, app: &Path) -> SlowStartNotice {
        let (started, waiting) = std::sync::mpsc::channel::<()>();
        let app = app.display().to_string();
        std::thread::spawn(move || {
            if waiting.recv_timeout(delay) == Err(std::sync::mpsc::RecvTimeoutError::Timeout) {
                let _ = writeln!(
                    std::io::stderr(),
                    "squall-test: building and starting {app} (the first build takes a minute or two)"
                );
            }
        });
        SlowStartNotice { started }
    }
}

impl Drop for SlowStartNotice {
    fn drop(&mut self) {
        let _ = self.started.send(());
    }
}

/// The server's stderr: each line goes to the test's output (which the
/// test harness shows only when the test fails) and is kept for
/// [`TestServer::log`] and [`TestServer::wait_for_log`].
#[derive(Default)]
struct ServerLog {
    lines: Mutex<VecDeque<String>>,
    appended: tokio::sync::Notify,
}

impl ServerLog {
    /// Read `stderr` on a thread of its own until the server ends. (A
    /// thread spawned here writes to the calling test's captured output.)
    fn follow(
        self: Arc<Self>,
        stderr: std::process::ChildStderr,
        closed: std::sync::mpsc::Sender<()>,
    ) -> std::thread::JoinHandle<()> {
        std::thread::spawn(move || {
            // Dropped at the end: the server's stderr closed.
            let _closed = closed;
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                eprintln!("{line}");
                let mut lines = self.lines.lock().unwrap_or_else(PoisonError::into_inner);
                if lines.len() == KEPT_LOG_LINES {
                    lines.pop_front();
                }
                lines.push_back(line);
                drop(lines);
                self.appended.notify_waiters();
            }
        })
    }

    fn lines(&self) -> Vec<String> {
        let lines = self.lines.lock().unwrap_or_else(PoisonError::into_inner);
        lines.iter().cloned().collect()
    }

    fn tail(&self, count: usize) -> String {
        let lines = self.lines();
        lines[lines.len().saturating_sub(count)..].join("\n")
    }

    async fn wait_for(&self, needle: &str) -> Result<String> {
        let waiting = async {
            loop {
                let appended = self.appended.notified();
                tokio::pin!(appended);
                appended.as_mut().enable();
                if let Some(line) = self.lines().into_iter().find(|line| line.contains(needle)) {
                    return line;
                }
                appended.await;
            }
        };
        tokio::time::timeout(WAIT, waiting)
            .await
            .with_context(|| format!("the server logged no line with {needle:?} within 30 s"))
    }
}

impl TestServer {
    /// Build and serve `app` as `squall serve APP` does: a crate directory
    /// (with its `squall.toml`, if it has one), a Python app, a `.wasm`
    /// component, or a manifest. The build happens once per test binary,
    /// whatever the number of servers.
    pub fn start(app: impl AsRef<Path>) -> Result<TestServer> {
        TestServer::builder(app).start()
    }

    /// A server for `app` with settings of the test's own; see
    /// [`TestServerBuilder`].
    pub fn builder(app: impl AsRef<Path>) -> TestServerBuilder {
        TestServerBuilder {
            app: app.as_ref().to_path_buf(),
            settings: Settings::default(),
        }
    }

    /// The server's log lines so far (the last 10,000): request lines,
    /// what apps logged, and refusals with their detail.
    pub fn log(&self) -> Vec<String> {
        self.log.lines()
    }

    /// The first log line containing `needle`, waiting up to 30 s for it:
    /// a test's signal that something happened in the server.
    pub async fn wait_for_log(&self, needle: &str) -> Result<String> {
        self.log.wait_for(needle).await
    }

    /// The URL of `path` on the server.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.address)
    }

    /// A request to build further (headers, cookies, `.json(&value)`) and
    /// hand to [`TestServer::send`]; its own `.send()` gives reqwest's
    /// response instead. Redirects are not followed.
    pub fn request(&self, method: http::Method, path: &str) -> reqwest::RequestBuilder {
        self.client.request(method, self.url(path))
    }

    /// Send a request built with [`TestServer::request`] and read the
    /// whole response, as [`TestServer::get`] does.
    pub async fn send(&self, request: reqwest::RequestBuilder) -> Result<TestResponse> {
        read(request).await
    }

    /// `GET path`; redirects are not followed.
    pub async fn get(&self, path: &str) -> Result<TestResponse> {
        read(self.request(http::Method::GET, path)).await
    }

    /// `POST path` with `body`.
    pub async fn post(&self, path: &str, body: impl Into<reqwest::Body>) -> Result<TestResponse> {
        read(self.request(http::Method::POST, path).body(body)).await
    }

    /// `POST path` with a URL-encoded form.
    pub async fn post_form(&self, path: &str, fields: &[(&str, &str)]) -> Result<TestResponse> {
        let body = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(fields)
            .finish();
        read(
            self.request(http::Method::POST, path)
                .header("content-type", "application/x-www-form-urlencoded")
                .body(body),
        )
        .await
    }

    /// Connect to the app's TCP listener `name` (its `name` in the
    /// manifest), served on a free port.
    pub async fn tcp(&self, name: &str) -> Result<tokio::net::TcpStream> {
        let address = self
            .tcp
            .iter()
            .find(|(listener, _)| listener == name)
            .map(|(_, address)| *address)
            .with_context(|| format!("the app has no tcp listener named {name:?}"))?;
        Ok(
            tokio::time::timeout(WAIT, tokio::net::TcpStream::connect(address))
                .await
                .context("connecting took too long")??,
        )
    }

    /// Open a WebSocket on `path`.
    pub async fn websocket(&self, path: &str) -> Result<TestSocket> {
        let url = format!("ws://{}{path}", self.address);
        let (socket, _) = tokio::time::timeout(WAIT, tokio_tungstenite::connect_async(url))
            .await
            .context("the WebSocket handshake took too long")??;
        Ok(TestSocket { socket })
    }
}

impl Drop for TestServer {
    /// Close its stdin: it drains and stops (killed if it takes too long).
    fn drop(&mut self) {
        drop(self.stdin.take());
        let waited = self.stderr_closed.recv_timeout(STOP_WAIT);
        if waited == Err(std::sync::mpsc::RecvTimeoutError::Timeout) {
            let _ = self.process.kill();
        }
        let _ = self.process.wait();
    }
}

async fn read(request: reqwest::RequestBuilder) -> Result<TestResponse> {
    let response = request.send().await?;
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = response.bytes().await?;
    Ok(TestResponse {
        status,
        headers,
        body,
    })
}

/// An open WebSocket to the server.
pub struct TestSocket {
    socket: tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
}

impl TestSocket {
    /// Send a text message.
    pub async fn send_text(&mut self, text: &str) -> Result<()> {
        Ok(self.socket.send(Message::text(text)).await?)
    }

    /// The next text message (pings skipped); an error if the socket
    /// closes or nothing comes within 30 s.
    pub async fn recv_text(&mut self) -> Result<String> {
        loop {
            let next = tokio::time::timeout(WAIT, self.socket.next())
                .await
                .context("no message within 30 s")?
                .context("the socket closed")??;
            match next {
                Message::Text(text) => return Ok(text.to_string()),
                Message::Ping(_) | Message::Pong(_) => continue,
                other => anyhow::bail!("expected text, got {other:?}"),
            }
        }
    }
}

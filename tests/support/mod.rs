//! Shared by the integration tests: build the guests once, start the real
//! `squall` binary on a loopback port, and talk to it.
#![allow(dead_code, unreachable_pub)]

pub mod browser;
pub mod raw_ws;
pub mod redis;
pub mod reuse;
pub mod upstream;

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// The repository root.
/// Wait until `holds` says so, asking again every 20 ms and yielding to
/// the test's runtime meanwhile; fail the test with `why_not` after 20 s.
pub async fn until(holds: impl AsyncFnMut() -> bool, why_not: impl FnOnce() -> String) {
    until_within(Duration::from_secs(20), holds, why_not).await;
}

/// [`until`], failing after `limit`: for what waits on a lease or a
/// timeout to lapse first.
pub async fn until_within(
    limit: Duration,
    mut holds: impl AsyncFnMut() -> bool,
    why_not: impl FnOnce() -> String,
) {
    let deadline = Instant::now() + limit;
    while !holds().await {
        assert!(Instant::now() < deadline, "{}", why_not());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the host crate sits in the repository")
        .to_path_buf()
}

/// Guests build into their own target directory, shared by every test.
pub fn guest_target_dir() -> PathBuf {
    repo().join("target/guests")
}

/// The `squall` binary under test, with the environment tests share.
pub fn squall() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_squall"));
    command
        .env("CARGO_TARGET_DIR", guest_target_dir())
        // Python apps build in squall's cache: the tests' own, in target/.
        .env("XDG_CACHE_HOME", repo().join("target/test-cache"))
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1");
    command
}

/// Build a guest crate (relative to the repository) with `squall build`,
/// once per test process, and return its component.
pub fn component(krate: &str) -> PathBuf {
    build_once(krate, false)
}

/// Build a squall-sdk crate as a standard wasi:http component
/// (`squall build --wasi-http`), in a target directory of its own so the
/// two flavours do not rebuild each other.
pub fn standard_component(krate: &str) -> PathBuf {
    build_once(krate, true)
}

fn build_once(krate: &str, wasi_http: bool) -> PathBuf {
    static BUILT: OnceLock<Mutex<Vec<(String, bool, PathBuf)>>> = OnceLock::new();
    let built = BUILT.get_or_init(Default::default);
    let mut built = built.lock().unwrap_or_else(|poison| poison.into_inner());
    if let Some((_, _, path)) = built
        .iter()
        .find(|(name, std, _)| name == krate && *std == wasi_http)
    {
        return path.clone();
    }
    let mut command = squall();
    command.arg("build");
    if wasi_http {
        command
            .arg("--wasi-http")
            .env("CARGO_TARGET_DIR", repo().join("target/guests-std"));
    }
    let output = command
        .arg(repo().join(krate))
        .stderr(Stdio::inherit())
        .output()
        .expect("squall build runs");
    assert!(output.status.success(), "squall build {krate} failed");
    let path = PathBuf::from(String::from_utf8_lossy(&output.stdout).trim());
    assert!(path.is_file(), "squall build printed {path:?}");
    built.push((krate.to_owned(), wasi_http, path.clone()));
    path
}

/// The `versioned` test guest built to answer `v{version}`, copied to a
/// path of its own (builds share one target directory, so only the last
/// crate is rebuilt for each version).
pub fn versioned_wasm(version: u32) -> PathBuf {
    static BUILT: OnceLock<Mutex<Vec<u32>>> = OnceLock::new();
    let built = BUILT.get_or_init(Default::default);
    let mut built = built.lock().unwrap_or_else(|poison| poison.into_inner());
    let copy = guest_target_dir().join(format!("versioned-v{version}.wasm"));
    if built.contains(&version) {
        return copy;
    }
    let output = squall()
        .arg("build")
        .arg(repo().join("tests/guests/versioned"))
        .env("SQUALL_TEST_VERSION", version.to_string())
        .stderr(Stdio::inherit())
        .output()
        .expect("squall build runs");
    assert!(output.status.success(), "squall build versioned failed");
    let path = PathBuf::from(String::from_utf8_lossy(&output.stdout).trim());
    std::fs::copy(&path, &copy).expect("copy the build");
    built.push(version);
    copy
}

/// Put `from` at `to` in one step, as a deploy script (or an editor) does:
/// a watcher never sees half a file.
pub fn replace_file(from: &Path, to: &Path) {
    let staging = to.with_extension("staging");
    std::fs::copy(from, &staging).expect("copy");
    std::fs::rename(&staging, to).expect("rename into place");
}

pub fn hello_wasm() -> PathBuf {
    component("examples/hello")
}

pub fn misbehave_wasm() -> PathBuf {
    component("tests/guests/misbehave")
}

/// A running `squall serve`, killed when dropped.
pub struct Server {
    child: Child,
    pub base: String,
    /// What it printed before it listened (what it serves, the admin address).
    pub banner: String,
    logs: Arc<Mutex<String>>,
    _dir: Option<tempfile::TempDir>,
}

impl Server {
    /// `squall serve ARG --listen 127.0.0.1:0`, its durable state in a
    /// directory of its own.
    pub fn start(arg: &Path) -> Server {
        Server::start_flags(arg, &[])
    }

    /// `squall serve FLAGS... ARG --listen 127.0.0.1:0`.
    pub fn start_flags(arg: &Path, flags: &[&str]) -> Server {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut command = squall();
        command.arg("serve").args(flags);
        command.arg("--data-dir").arg(dir.path().join("data"));
        Server::spawn(command, arg, Some(dir))
    }

    /// `squall serve ARG --listen 127.0.0.1:0` keeping its state in
    /// `data_dir` (to serve again from the same state).
    pub fn start_in(arg: &Path, data_dir: &Path) -> Server {
        let mut command = squall();
        command.arg("serve").arg("--data-dir").arg(data_dir);
        Server::spawn(command, arg, None)
    }

    /// `squall serve ARG --listen 127.0.0.1:0` run by `command` (for its
    /// environment), with the data directory the manifest names.
    pub fn start_with(mut command: Command, arg: &Path) -> Server {
        command.arg("serve");
        Server::spawn(command, arg, None)
    }

    /// `squall serve FLAGS... MANIFEST` for the manifest at `manifest`.
    pub fn with_manifest_file(manifest: &Path, flags: &[&str]) -> Server {
        let mut command = squall();
        command.arg("serve").args(flags);
        Server::spawn(command, manifest, None)
    }

    /// Serve a manifest with `text` as its contents.
    pub fn with_manifest(text: &str) -> Server {
        let dir = tempfile::tempdir().expect("temp dir");
        let manifest = dir.path().join("squall.toml");
        std::fs::write(&manifest, text).expect("write manifest");
        let mut command = squall();
        command
            .arg("serve")
            .arg("--data-dir")
            .arg(dir.path().join("data"));
        Server::spawn(command, &manifest, Some(dir))
    }

    fn spawn(mut command: Command, arg: &Path, dir: Option<tempfile::TempDir>) -> Server {
        let mut child = command
            .arg(arg)
            .args(["--listen", "127.0.0.1:0"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("squall serve starts");
        let logs = Arc::new(Mutex::new(String::new()));
        collect(child.stderr.take().expect("stderr piped"), logs.clone());
        let mut stdout = BufReader::new(child.stdout.take().expect("stdout piped"));
        let mut line = String::new();
        let mut banner = String::new();
        let base = loop {
            banner.push_str(&line);
            line.clear();
            let read = stdout.read_line(&mut line).expect("read squall's stdout");
            if read == 0 {
                let _ = child.wait();
                panic!(
                    "squall serve exited before listening:\n{}",
                    logs.lock().map(|l| l.clone()).unwrap_or_default()
                );
            }
            if let Some(rest) = line.trim().strip_prefix("squall: listening on ") {
                let url = rest.split_whitespace().next().expect("a URL");
                break url.trim_end_matches('/').to_owned();
            }
        };
        // Keep draining stdout so the server never blocks on it.
        std::thread::spawn(move || std::io::copy(&mut stdout, &mut std::io::sink()));
        Server {
            child,
            base,
            banner,
            logs,
            _dir: dir,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Where the TCP listener named `listener` accepts, as the banner said.
    pub fn tcp_address(&self, listener: &str) -> std::net::SocketAddr {
        let tail = format!("(listener {listener:?})");
        self.banner
            .lines()
            .filter(|line| line.ends_with(&tail))
            .find_map(|line| line.split(" accepts tcp on ").nth(1)?.split(' ').next())
            .unwrap_or_else(|| panic!("no tcp listener {listener:?} in:\n{}", self.banner))
            .parse()
            .expect("an address")
    }

    /// `host:port`.
    pub fn address(&self) -> String {
        self.base.trim_start_matches("http://").to_owned()
    }

    /// Everything the server logged so far.
    pub fn logs(&self) -> String {
        self.logs.lock().map(|l| l.clone()).unwrap_or_default()
    }

    /// Wait until the log contains `needle`, for up to `timeout`.
    pub fn wait_for_log(&self, needle: &str, timeout: Duration) -> bool {
        let start = Instant::now();
        while start.elapsed() < timeout {
            if self.logs().contains(needle) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }

    /// Wait until the log shows `needle` at least `times` times, yielding to
    /// the test's runtime meanwhile (its own requests go on); fail the test
    /// if it has not after 20 s.
    pub async fn logged_times(&self, needle: &str, times: usize) {
        until(
            async || self.logs().matches(needle).count() >= times,
            || {
                let logs = self.logs();
                let seen = logs.matches(needle).count();
                format!("the log showed {needle:?} {seen} times, not {times}:\n{logs}")
            },
        )
        .await;
    }

    /// Like [`Server::expect_log`], yielding to the test's runtime while
    /// it waits (for async tests: their own tasks go on meanwhile).
    pub async fn logged(&self, needle: &str) {
        self.logged_times(needle, 1).await;
    }

    /// Fail the test unless the log shows `needle` within a few seconds.
    pub fn expect_log(&self, needle: &str) {
        assert!(
            self.wait_for_log(needle, Duration::from_secs(10)),
            "the log never showed {needle:?}:\n{}",
            self.logs()
        );
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Send SIGTERM, as an operator's `kill` would.
    pub fn terminate(&self) {
        let pid = rustix::process::Pid::from_raw(self.pid() as i32).expect("a valid pid");
        rustix::process::kill_process(pid, rustix::process::Signal::TERM).expect("SIGTERM sent");
    }

    /// Wait for the process to exit, up to `timeout`.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let start = Instant::now();
        while start.elapsed() < timeout {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn collect(mut from: impl Read + Send + 'static, into: Arc<Mutex<String>>) {
    std::thread::spawn(move || {
        let mut buffer = [0u8; 8192];
        while let Ok(read) = from.read(&mut buffer) {
            if read == 0 {
                break;
            }
            if let Ok(mut logs) = into.lock() {
                logs.push_str(&String::from_utf8_lossy(&buffer[..read]));
            }
        }
    });
}

/// `squall serve MANIFEST` must refuse to start: its stderr, which says why.
pub fn refused_start(manifest: &Path) -> String {
    let output = squall()
        .arg("serve")
        .arg(manifest)
        .args(["--listen", "127.0.0.1:0"])
        .output()
        .expect("squall serve runs");
    assert!(!output.status.success(), "squall serve started");
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// [`refused_start`] for a manifest written with `text` in a temporary directory.
pub fn refused_manifest(text: &str) -> String {
    let dir = tempfile::tempdir().expect("temp dir");
    let manifest = dir.path().join("squall.toml");
    std::fs::write(&manifest, text).expect("write manifest");
    refused_start(&manifest)
}

/// A manifest serving one app from `wasm` at `/` with extra `settings` lines.
pub fn manifest(name: &str, wasm: &Path, settings: &str) -> String {
    format!(
        "[app.{name}]\nsource = {source:?}\nroutes = [\"/\"]\n{settings}\n",
        source = wasm.display().to_string()
    )
}

/// An HTTP/1.1 client that keeps connections alive.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .expect("client")
}

/// A WebSocket client connection.
pub type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// The next data message as text, skipping pings, within 10 s.
pub async fn next_text(socket: &mut Socket) -> String {
    use futures::StreamExt;
    use tokio_tungstenite::tungstenite::Message;
    loop {
        let message = tokio::time::timeout(Duration::from_secs(10), socket.next())
            .await
            .expect("a message within 10 s")
            .expect("the socket is open")
            .expect("a well-formed frame");
        match message {
            Message::Text(text) => return text.to_string(),
            Message::Ping(_) | Message::Pong(_) => continue,
            other => panic!("unexpected {other:?}"),
        }
    }
}

/// The most memory the process `pid` has held, in KiB.
pub fn peak_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("the status");
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|kib| kib.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("a VmHWM line")
}

/// The hello app, mounted at `/hello` (or `/`) beside a hostile one, still
/// answers as ever.
pub async fn neighbour_answers(server: &Server) {
    let hello = client()
        .get(server.url("/hello/neighbour"))
        .send()
        .await
        .expect("the neighbour answers");
    assert_eq!(hello.status(), 200);
    assert_eq!(hello.text().await.expect("its body"), "Hello, neighbour!");
}

/// The admin listener's base URL, from what the server printed.
pub fn admin_url(server: &Server) -> String {
    let line = server
        .banner
        .lines()
        .find_map(|line| line.strip_prefix("squall: admin on "))
        .unwrap_or_else(|| panic!("no admin line in {}", server.banner));
    line.split_whitespace()
        .next()
        .expect("an address after the admin line")
        .trim_end_matches('/')
        .to_owned()
}

/// The body of `GET url`, as text.
pub async fn get_text(url: impl reqwest::IntoUrl) -> String {
    let response = client().get(url).send().await.expect("the server answers");
    response.text().await.expect("a text body")
}

/// A count the test guests keep in their store: `GET {prefix}/count/{key}`.
pub async fn guest_count(server: &Server, prefix: &str, key: &str) -> i64 {
    let url = server.url(&format!("{prefix}/count/{key}"));
    let answer = client().get(url).send().await.expect("the count answers");
    assert_eq!(answer.status(), 200);
    let text = answer.text().await.expect("its body");
    text.parse().expect("a number")
}

/// `POST path` with `body`: the status and the body of the answer.
pub async fn post_text(server: &Server, path: &str, body: &str) -> (u16, String) {
    let answer = client()
        .post(server.url(path))
        .body(body.to_owned())
        .send()
        .await
        .expect("an answer");
    let status = answer.status().as_u16();
    (status, answer.text().await.expect("its body"))
}

//! Headless Chromium driven over the DevTools protocol (a few commands over
//! a WebSocket: open a page, evaluate JavaScript in it).

use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::Message;

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Where Debian's package puts it.
pub const CHROMIUM: &str = "/usr/bin/chromium";

/// A running headless Chromium, killed on drop.
pub struct Browser {
    child: Child,
    socket: Socket,
    next_id: u64,
    _profile: tempfile::TempDir,
}

/// One open page (a target with its own session).
#[derive(Debug, Clone)]
pub struct Page {
    session: String,
}

impl Browser {
    pub async fn launch() -> Browser {
        let profile = tempfile::tempdir().expect("a profile directory");
        // The flags this machine needs: no sandbox as root, and no
        // background traffic to hosts the closed network refuses.
        let mut child = Command::new(CHROMIUM)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--disable-dev-shm-usage",
                "--remote-debugging-port=0",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg("about:blank")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|err| {
                panic!("cannot start {CHROMIUM} ({err}): apt-get install chromium")
            });
        let stderr = child.stderr.take().expect("stderr piped");
        let mut lines = BufReader::new(stderr).lines();
        let url = loop {
            let line = lines
                .next()
                .expect("chromium exited before listening")
                .expect("read chromium's stderr");
            if let Some(at) = line.find("ws://") {
                break line[at..].trim().to_owned();
            }
        };
        std::thread::spawn(move || for _ in lines {});
        let (socket, _) = tokio_tungstenite::connect_async(url)
            .await
            .expect("connect to DevTools");
        Browser {
            child,
            socket,
            next_id: 1,
            _profile: profile,
        }
    }

    /// Send a DevTools command and wait for its result.
    async fn command(&mut self, session: Option<&str>, method: &str, params: Value) -> Value {
        self.try_command(session, method, params)
            .await
            .unwrap_or_else(|error| panic!("DevTools {method} failed: {error}"))
    }

    /// Like `command`, but an error DevTools answers with is an `Err`.
    async fn try_command(
        &mut self,
        session: Option<&str>,
        method: &str,
        params: Value,
    ) -> Result<Value, Value> {
        let id = self.next_id;
        self.next_id += 1;
        let mut message = json!({ "id": id, "method": method, "params": params });
        if let Some(session) = session {
            message["sessionId"] = json!(session);
        }
        self.socket
            .send(Message::text(message.to_string()))
            .await
            .expect("send to DevTools");
        loop {
            let reply = tokio::time::timeout(Duration::from_secs(30), self.socket.next())
                .await
                .expect("DevTools answers")
                .expect("DevTools is connected")
                .expect("a DevTools message");
            let Message::Text(text) = reply else { continue };
            let reply: Value = serde_json::from_str(&text).expect("DevTools JSON");
            if reply["id"] == json!(id) {
                if let Some(error) = reply.get("error") {
                    return Err(error.clone());
                }
                return Ok(reply["result"].clone());
            }
        }
    }

    /// Open `url` in a new page.
    pub async fn open(&mut self, url: &str) -> Page {
        let target = self
            .command(None, "Target.createTarget", json!({ "url": url }))
            .await;
        let attached = self
            .command(
                None,
                "Target.attachToTarget",
                json!({ "targetId": target["targetId"], "flatten": true }),
            )
            .await;
        Page {
            session: attached["sessionId"]
                .as_str()
                .expect("a session id")
                .to_owned(),
        }
    }

    /// Evaluate `expression` in `page` (promises awaited) and return its value.
    pub async fn eval(&mut self, page: &Page, expression: &str) -> Value {
        self.try_eval(page, expression)
            .await
            .unwrap_or_else(|exception| panic!("{expression} threw: {exception}"))
    }

    /// Run `script`, which may navigate `page` away (a click, a submit): a
    /// page that navigates before DevTools answers did what was asked.
    pub async fn act(&mut self, page: &Page, script: &str) {
        match self.try_eval(page, script).await {
            Ok(_) => {}
            Err(error) if error.to_string().contains("navigated") => {}
            Err(error) => panic!("{script} threw: {error}"),
        }
    }

    /// Like `eval`, but a thrown exception is an `Err`, and so is a page
    /// that navigated away while the expression ran.
    async fn try_eval(&mut self, page: &Page, expression: &str) -> Result<Value, Value> {
        let result = self
            .try_command(
                Some(&page.session),
                "Runtime.evaluate",
                json!({ "expression": expression, "awaitPromise": true, "returnByValue": true }),
            )
            .await?;
        match result.get("exceptionDetails") {
            Some(exception) => Err(exception.clone()),
            None => Ok(result["result"]["value"].clone()),
        }
    }

    /// Wait until `condition` (a JavaScript boolean expression) holds in `page`.
    pub async fn wait_for(&mut self, page: &Page, condition: &str, timeout: Duration) {
        let start = Instant::now();
        while start.elapsed() < timeout {
            // The page may still be loading or navigating: an exception, or
            // a context gone with the page it belonged to, means "not yet".
            let holds = self.try_eval(page, &format!("Boolean({condition})")).await;
            if holds == Ok(json!(true)) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("timed out waiting for `{condition}`");
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

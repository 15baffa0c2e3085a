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
//! Handlers can also be tested without a host: build a `squall_sdk::Request`
//! with its `with_header`, `with_cookie`, `with_json`, `with_form` and
//! `with_body` and pass it to `Router::handle`. For capabilities without
//! TCP, `squall::testing::Harness` loads apps in-process.

use anyhow::{Context, Result};
use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message;

/// The `http` types [`TestServer::request`] takes (`http::Method`) and
/// responses carry (`http::HeaderMap`).
pub use http;
/// The HTTP client behind [`TestServer::request`]'s builder.
pub use reqwest;

/// How long a helper waits for an answer before failing the test.
const WAIT: Duration = Duration::from_secs(30);

/// An app served by the real host in this process, on `127.0.0.1` and a
/// free port, with its state in a temporary directory; stopped when dropped.
pub struct TestServer {
    server: squall::testing::TestServer,
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
#[derive(Debug, Clone)]
pub struct TestServerBuilder {
    app: PathBuf,
    settings: squall::testing::TestSettings,
}

impl TestServerBuilder {
    /// Config value `key` for every app served, over the manifest's
    /// (`[app.NAME.config]`).
    pub fn config(mut self, key: &str, value: &str) -> Self {
        self.settings = self.settings.config(key, value);
        self
    }

    /// Secret `key` (a `cookie_secret`, an API token) for every app
    /// served, over the manifest's, without an environment variable.
    pub fn secret(mut self, key: &str, value: &str) -> Self {
        self.settings = self.settings.secret(key, value);
        self
    }

    /// Serve this manifest instead of the app's own `squall.toml` (other
    /// grants or limits for a test); its sources are relative to it.
    pub fn manifest(mut self, manifest: impl AsRef<Path>) -> Self {
        self.app = manifest.as_ref().to_path_buf();
        self
    }

    /// Build (once per test binary) and serve it.
    pub fn start(self) -> Result<TestServer> {
        let server = squall::testing::TestServer::start_with(&self.app, &self.settings)?;
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(WAIT)
            .build()?;
        Ok(TestServer { server, client })
    }
}

impl TestServer {
    /// Build and serve `app` as `squall serve APP` does: a crate directory
    /// (with its `squall.toml`, if it has one), a `.wasm` component, or a
    /// manifest. The build happens once per test binary, whatever the
    /// number of servers.
    pub fn start(app: impl AsRef<Path>) -> Result<TestServer> {
        TestServer::builder(app).start()
    }

    /// A server for `app` with settings of the test's own; see
    /// [`TestServerBuilder`].
    pub fn builder(app: impl AsRef<Path>) -> TestServerBuilder {
        TestServerBuilder {
            app: app.as_ref().to_path_buf(),
            settings: squall::testing::TestSettings::default(),
        }
    }

    /// The URL of `path` on the server.
    pub fn url(&self, path: &str) -> String {
        self.server.url(path)
    }

    /// A request to build further (headers, body) and `send`.
    pub fn request(&self, method: http::Method, path: &str) -> reqwest::RequestBuilder {
        self.client.request(method, self.url(path))
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
            .server
            .tcp_address(name)
            .with_context(|| format!("the app has no tcp listener named {name:?}"))?;
        Ok(
            tokio::time::timeout(WAIT, tokio::net::TcpStream::connect(address))
                .await
                .context("connecting took too long")??,
        )
    }

    /// Open a WebSocket on `path`.
    pub async fn websocket(&self, path: &str) -> Result<TestSocket> {
        let url = format!("ws://{}{path}", self.server.address());
        let (socket, _) = tokio::time::timeout(WAIT, tokio_tungstenite::connect_async(url))
            .await
            .context("the WebSocket handshake took too long")??;
        Ok(TestSocket { socket })
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

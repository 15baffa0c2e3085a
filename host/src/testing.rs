//! An in-process harness: load apps into the real runtime with the real
//! capabilities, and drive requests and WebSocket events through the real
//! executors without a TCP server (as Spin's `factors-test` and wasmtime's
//! `tests/all` do). Tests of capabilities use it; end-to-end behaviour
//! (hyper, sockets, signals, the command line) is tested against the real
//! binary instead. Benchmarks use it to time a bare instance.
//!
//! ```no_run
//! # async fn example() -> anyhow::Result<()> {
//! use squall::testing::Harness;
//! let harness = Harness::component("target/wasm32-wasip2/release/hello.wasm".as_ref())?;
//! let response = harness.get("/hello/you").await?;
//! assert_eq!(response.body(), "Hello, you!");
//! # Ok(()) }
//! ```

use crate::app::{AppHandle, AppRef};
use crate::bindings::types as wit;
use crate::bindings::websocket_types::WsMessage;
use crate::body::inbound;
use crate::cargo_build::component_for;
use crate::config::Manifest;
use crate::deploy::Deployment;
use crate::dispatch::{Events, describe};
use crate::hub::{Connection, Outbox};
use crate::kv::embedded::Embedded;
use crate::kv::{KvBackend, Quota, Write};
use crate::limit_log::Limit;
use crate::server::{open_websocket, route, websocket_route};
use anyhow::{Context, Result};
use bytes::Bytes;
use http_body_util::BodyExt;
use std::path::Path;
use std::sync::Arc;
use tokio_tungstenite::tungstenite::Message as Frame;

/// Apps loaded in-process, ready to take requests and WebSocket events.
pub struct Harness {
    deployment: Deployment,
}

impl Harness {
    /// The apps of manifest `text` (sources resolve against `base`; a crate
    /// directory is built first, as `squall serve` does).
    pub fn from_manifest(text: &str, base: &Path) -> Result<Harness> {
        Harness::new(&Manifest::parse(text, "squall.toml", base)?)
    }

    /// One app served at `/` with default limits, from a `.wasm` component
    /// or a crate directory (as `squall serve PATH`).
    pub fn component(path: &Path) -> Result<Harness> {
        Harness::new(&Manifest::single("app", path.to_path_buf()))
    }

    fn new(manifest: &Manifest) -> Result<Harness> {
        let deployment = Deployment::load(manifest, &|app| component_for(&app.source))?;
        Ok(Harness { deployment })
    }

    /// Route `request` to its app and run it as the server would, then read
    /// the whole response body. An error if the body breaks off.
    pub async fn request<B>(&self, request: http::Request<B>) -> Result<http::Response<Bytes>>
    where
        B: http_body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let apps = self.deployment.router().load_full();
        let response = route(&apps, request.map(inbound)).await;
        let (parts, body) = response.into_parts();
        let body = body
            .collect()
            .await
            .map_err(|err| anyhow::anyhow!("the response body broke off: {err}"))?;
        Ok(http::Response::from_parts(parts, body.to_bytes()))
    }

    /// `GET path`, without a body.
    pub async fn get(&self, path: &str) -> Result<http::Response<Bytes>> {
        let request = http::Request::get(path).body(http_body_util::Empty::<Bytes>::new())?;
        self.request(request).await
    }

    /// Instantiate the squall-sdk app serving `path`, call its `handle`
    /// with a bodiless `GET path`, and return the status: the cost of a
    /// fresh instance without HTTP, for benchmarks (no executor: no limits
    /// but the store's, no log line).
    pub async fn call_once(&self, path: &str) -> Result<u16> {
        let app = self.app_for(path)?.current();
        let (mut store, guest) = app.instantiate().await.map_err(anyhow::Error::from)?;
        let request = wit::Request {
            method: wit::Method::Get,
            path: path.to_owned(),
            query: String::new(),
            authority: None,
            headers: Vec::new(),
            body: wit::Body::Empty,
        };
        let status = store
            .run_concurrent(async move |accessor| -> wasmtime::Result<u16> {
                let response = guest
                    .squall_app_handler()
                    .call_handle(accessor, request)
                    .await?;
                crate::runtime::guest_tasks_done(accessor).await;
                Ok(response.status)
            })
            .await
            .and_then(|status| status)
            .map_err(anyhow::Error::from)?;
        Ok(status)
    }

    /// Open a WebSocket on `path` (it must be one of its app's WebSocket
    /// routes): the guest's `on-open` runs, and an error says why if it
    /// refuses.
    pub async fn websocket(&self, path: &str) -> Result<TestSocket> {
        let handle = self.app_for(path)?;
        let app = &handle.current();
        let route = websocket_route(app, path)
            .with_context(|| format!("{path} is not a WebSocket route of its app"))?;
        let (parts, ()) = http::Request::get(path).body(())?.into_parts();
        // As the server opens one: its place, the hub, the guest's on-open.
        let opened = open_websocket(handle.clone(), app, route, &parts)
            .await
            .map_err(|refused| {
                anyhow::anyhow!("the upgrade was refused with status {}", refused.status())
            })?;
        let connection = opened.connection.hand_over();
        let outbox = connection
            .take_outbox()
            .context("a new connection has its outbox")?;
        Ok(TestSocket {
            events: opened.events,
            connection,
            outbox,
            _admitted: opened.admitted,
        })
    }

    fn app_for(&self, path: &str) -> Result<Arc<AppHandle>> {
        self.deployment
            .router()
            .load()
            .find(None, path)
            .map(|found| found.app.clone())
            .with_context(|| format!("no app serves {path}"))
    }

    /// How many WebSocket connections are open.
    pub fn open_connections(&self) -> usize {
        self.deployment.hub().len()
    }

    /// How many times the app `app` hit the limit its manifest sets with
    /// `key` (`max_instances`, `max_concurrency`, `max_connections`,
    /// `pubsub_topics`, `pubsub_history_bytes`, `max_fetches`,
    /// `log_per_request`; `kv_max_bytes` for the key-value quota,
    /// `kv_max_value` for the size of a key or value).
    pub fn limit_hits(&self, app: &str, key: &str) -> Result<u64> {
        let limit =
            Limit::from_key(key).with_context(|| format!("{key} is not a counted limit"))?;
        Ok(self.app_named(app)?.hits().count(limit))
    }

    /// What the app `app` holds now.
    pub fn usage(&self, app: &str) -> Result<AppUsage> {
        let (instances, topics, topic_bytes) = self.app_named(app)?.usage();
        Ok(AppUsage {
            instances,
            topics,
            topic_bytes,
        })
    }

    /// The keys and bytes (keys and values) the app `app`'s key-value store
    /// holds.
    pub async fn kv_usage(&self, app: &str) -> Result<(u64, u64)> {
        self.app_named(app)?
            .kv_usage()
            .await
            .with_context(|| format!("app {app:?} is not granted kv"))?
    }

    fn app_named(&self, name: &str) -> Result<AppRef> {
        self.deployment
            .apps()
            .into_iter()
            .find(|app| app.name() == name)
            .with_context(|| format!("no app is named {name:?}"))
    }
}

/// What an app holds at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppUsage {
    /// Instances of the pool.
    pub instances: u32,
    /// Pub/sub topics.
    pub topics: u32,
    /// Bytes its topics' histories keep.
    pub topic_bytes: u64,
}

/// An app served for real, in this process: hyper on a free loopback port,
/// the same loading, limits and capabilities as `squall serve`, until the
/// value is dropped. What a test kit runs real clients against.
///
/// ```no_run
/// # fn example() -> anyhow::Result<()> {
/// let server = squall::testing::TestServer::start("examples/hello".as_ref())?;
/// let url = server.url("/hello/you"); // http://127.0.0.1:PORT/hello/you
/// # let _ = url;
/// # Ok(()) }
/// ```
pub struct TestServer {
    address: std::net::SocketAddr,
    /// Its apps' TCP listeners, by name, on free ports.
    tcp: Vec<(String, std::net::SocketAddr)>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
    /// The data directory, removed with the server.
    _data: tempfile::TempDir,
}

/// Config values and secrets a test gives every app it serves, over what
/// the manifest says (a secret is never shown, as the manifest's own).
#[derive(Clone, Default)]
pub struct TestSettings {
    values: Vec<(String, String, bool)>,
}

impl std::fmt::Debug for TestSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map()
            .entries(self.values.iter().map(|(key, value, secret)| {
                (key, if *secret { "<secret>" } else { value.as_str() })
            }))
            .finish()
    }
}

impl TestSettings {
    /// Config value `key` (`[app.NAME.config]`).
    pub fn config(mut self, key: &str, value: &str) -> Self {
        self.values.push((key.to_owned(), value.to_owned(), false));
        self
    }

    /// Secret `key`, as a manifest's `{ env = ... }` would give it.
    pub fn secret(mut self, key: &str, value: &str) -> Self {
        self.values.push((key.to_owned(), value.to_owned(), true));
        self
    }
}

/// componentize-py as `squall build` finds it (`SQUALL_COMPONENTIZE_PY`,
/// the `PATH`, or squall's own virtualenv, made if missing): for a
/// benchmark's own Python components.
pub fn componentize_py() -> Result<std::ffi::OsString> {
    crate::python_build::componentize_py()
}

/// The components built in this process, by source.
type BuiltComponents = std::collections::BTreeMap<std::path::PathBuf, std::path::PathBuf>;

fn built_components() -> std::sync::MutexGuard<'static, BuiltComponents> {
    static BUILT: std::sync::Mutex<BuiltComponents> =
        std::sync::Mutex::new(std::collections::BTreeMap::new());
    BUILT
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// [`component_for`], once per source in this process: the servers of a
/// test binary share one build instead of queueing on cargo's lock.
fn built_once(source: &Path) -> Result<std::path::PathBuf> {
    let mut built = built_components();
    if let Some(component) = built.get(source) {
        return Ok(component.clone());
    }
    let component = component_for(source)?;
    built.insert(source.to_path_buf(), component.clone());
    Ok(component)
}

/// What this process built, as (source, component) pairs: another process
/// serving the same sources is given them with [`use_built`].
pub(crate) fn built_so_far() -> Vec<(std::path::PathBuf, std::path::PathBuf)> {
    built_components()
        .iter()
        .map(|(source, component)| (source.clone(), component.clone()))
        .collect()
}

/// Serve `component` for `source` without building it (another process
/// of the same test binary built it); ignored if the file is gone.
pub(crate) fn use_built(source: std::path::PathBuf, component: std::path::PathBuf) {
    if component.is_file() {
        built_components().insert(source, component);
    }
}

impl TestServer {
    /// Serve `app` as `squall serve APP` would (a crate directory, built
    /// first; a `.wasm` component; or a `squall.toml`), with its durable
    /// state in a fresh temporary directory.
    pub fn start(app: &Path) -> Result<TestServer> {
        TestServer::start_with(app, &TestSettings::default())
    }

    /// [`TestServer::start`], every app given `settings` over its manifest.
    pub fn start_with(app: &Path, settings: &TestSettings) -> Result<TestServer> {
        let given: Vec<String> = settings
            .values
            .iter()
            .map(|(key, ..)| key.clone())
            .collect();
        let mut manifest = Manifest::for_app_given(app, &given)?;
        for app in &mut manifest.apps {
            for (key, value, secret) in &settings.values {
                app.settings = app.settings.with(key, value, *secret);
            }
        }
        let data = tempfile::tempdir()?;
        manifest.server.data_dir = data.path().to_path_buf();
        manifest.server.listen = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
        // The apps' TCP listeners on free ports too, found by name.
        for app in &mut manifest.apps {
            for listener in &mut app.tcp {
                listener.listen.set_port(0);
            }
        }
        let (ready, started) = std::sync::mpsc::channel();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let served = (|| -> Result<_> {
                let deployment = Deployment::load(&manifest, &|app| built_once(&app.source))?;
                let runtime = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .enable_all()
                    .build()?;
                let (listener, tcp) = runtime.block_on(async {
                    let listener = crate::server::bind(manifest.server.listen)?;
                    let tcp = crate::server::bind_tcp(&deployment.handles())?;
                    anyhow::Ok((listener, tcp))
                })?;
                Ok((deployment, runtime, listener, tcp))
            })();
            let (deployment, runtime, listener, tcp) = match served {
                Ok(served) => served,
                Err(err) => {
                    let _ = ready.send(Err(err));
                    return;
                }
            };
            let addresses = (|| {
                let tcp_addresses = tcp
                    .iter()
                    .map(|listen| Ok((listen.name(), listen.local_addr()?)))
                    .collect::<std::io::Result<Vec<_>>>()?;
                Ok((listener.local_addr()?, tcp_addresses))
            })();
            let _ = ready.send(addresses);
            let listeners = crate::server::Listeners {
                http: listener,
                https: None,
                tcp,
            };
            let (_scheduler, _job_runner) = runtime.block_on(async {
                (
                    deployment.schedules().start(),
                    deployment.job_runner().start(),
                )
            });
            runtime.block_on(crate::server::serve(
                listeners,
                deployment.router().clone(),
                deployment.hub().clone(),
                &manifest.server,
                async {
                    let _ = stopped.await;
                },
            ));
            drop(runtime);
            drop(deployment);
        });
        let (address, tcp) = started
            .recv()
            .map_err(|_| anyhow::anyhow!("the server thread ended before listening"))??;
        Ok(TestServer {
            address,
            tcp,
            stop: Some(stop),
            thread: Some(thread),
            _data: data,
        })
    }

    /// `host:port` it listens on.
    pub fn address(&self) -> std::net::SocketAddr {
        self.address
    }

    /// The URL of `path` on it (`http://127.0.0.1:PORT/path`).
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.address)
    }

    /// Every TCP listener's name and address.
    pub fn tcp_addresses(&self) -> &[(String, std::net::SocketAddr)] {
        &self.tcp
    }

    /// Where the TCP listener `name` (its `name` in the manifest, else its
    /// address there) accepts: the manifest's address with a free port.
    pub fn tcp_address(&self, name: &str) -> Option<std::net::SocketAddr> {
        self.tcp
            .iter()
            .find(|(listener, _)| listener == name)
            .map(|(_, address)| *address)
    }
}

impl Drop for TestServer {
    /// Stop it as SIGTERM would: drain, then close.
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The embedded key-value store on its own, as apps use it (one writer
/// committing durably, quotas counted): the native baseline of the `kv`
/// benchmark runs the same operations on it.
pub struct KvStore {
    backend: Arc<Embedded>,
}

/// The limits the baseline writes under: the defaults' order of size.
const BASELINE_QUOTA: Quota = Quota {
    max_keys: 1_000_000,
    max_bytes: 1 << 30,
};

impl KvStore {
    /// Open (or create) the store file at `path`.
    pub fn open(path: &Path) -> Result<KvStore> {
        Ok(KvStore {
            backend: Embedded::open(path)?,
        })
    }

    /// The value of `key` in `namespace`.
    pub async fn get(&self, namespace: &str, key: &str) -> Result<Option<Vec<u8>>> {
        let mut values = self
            .backend
            .get_many(namespace, vec![key.to_owned()], u64::MAX)
            .await?;
        Ok(values.pop().flatten())
    }

    /// Store `value` at `key` in `namespace`, durably.
    pub async fn set(&self, namespace: &str, key: &str, value: Vec<u8>) -> Result<()> {
        let write = Write::Set {
            key: key.to_owned(),
            value,
            ttl: None,
        };
        self.backend
            .apply(namespace, vec![write], BASELINE_QUOTA)
            .await?;
        Ok(())
    }
}

/// A message the host queued for a WebSocket client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SocketMessage {
    /// A text message.
    Text(String),
    /// A binary message.
    Binary(Vec<u8>),
}

/// A WebSocket opened in-process: events go to the guest as the socket task
/// would deliver them, and what the guest (or the broker) sends is queued
/// here instead of on a socket.
pub struct TestSocket {
    events: Events,
    connection: Arc<Connection>,
    outbox: Outbox,
    /// Its place under the app's `max_connections`, as a socket task holds.
    _admitted: tokio::sync::OwnedSemaphorePermit,
}

impl TestSocket {
    /// The connection's id, as the guest sees it.
    pub fn id(&self) -> u64 {
        self.connection.id()
    }

    /// Deliver a text message and wait for the guest's `on-message`.
    pub async fn send_text(&self, text: &str) -> Result<()> {
        self.deliver(WsMessage::Text(text.to_owned())).await
    }

    /// Deliver a binary message and wait for the guest's `on-message`.
    pub async fn send_binary(&self, bytes: &[u8]) -> Result<()> {
        self.deliver(WsMessage::Binary(bytes.to_vec())).await
    }

    async fn deliver(&self, message: WsMessage) -> Result<()> {
        self.events
            .clone()
            .message(describe(&self.connection), message)
            .await
            .map_err(|failure| anyhow::anyhow!("on-message failed: {failure}"))
    }

    /// The next message queued for the client, waiting for it.
    pub async fn recv(&mut self) -> Option<SocketMessage> {
        loop {
            match self.outbox.recv().await {
                Frame::Text(text) => return Some(SocketMessage::Text(text.to_string())),
                Frame::Binary(bytes) => return Some(SocketMessage::Binary(bytes.to_vec())),
                _ => continue,
            }
        }
    }

    /// The close the guest asked for (code and reason), waiting for it.
    /// (`&mut`: one waiter at a time, as the connection allows.)
    pub async fn close_requested(&mut self) -> (u16, String) {
        let frame = self.connection.close_requested().await;
        (frame.code.into(), frame.reason.to_string())
    }

    /// Close the connection: the guest's `on-close` runs with `code`.
    pub async fn close(self, code: u16, reason: &str) {
        self.events.app().hub().disconnect(&self.connection);
        self.events
            .close(&self.connection, code, reason.to_owned())
            .await;
    }
}

//! One `[app.NAME]` table: where the app is reached, what it may reach, and
//! the limits that fence it from its neighbours.

use super::schedule_tables::ScheduleConfig;
use super::settings::{RawSetting, Settings};
use super::tcp_tables::TcpListenerConfig;
use super::values;
use crate::policy::{OutboundPolicy, TcpPolicy, TopicPolicy};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

/// One `[app.NAME]` table, validated, with every default filled in.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct AppConfig {
    /// Its name: letters, digits, `-` and `_`.
    pub(crate) name: String,
    /// A guest crate directory or a `.wasm` component, resolved against the manifest's directory.
    pub(crate) source: PathBuf,
    /// Host names this app serves (`*.example.com` for subdomains); empty: any.
    pub(crate) hosts: Vec<String>,
    /// Path prefixes this app serves.
    pub(crate) routes: Vec<String>,
    /// Whether the app sees paths without the route prefix it was reached by.
    pub(crate) strip_prefix: bool,
    /// Its limits.
    pub(crate) limits: Limits,
    /// Where outbound requests may go.
    pub(crate) outbound: OutboundPolicy,
    /// The pub/sub topics it may use.
    pub(crate) pubsub: TopicPolicy,
    /// Messages each of its topics keeps for late readers.
    pub(crate) pubsub_history: usize,
    /// Routes that accept WebSocket upgrades, and how.
    pub(crate) websockets: Vec<WebSocketRoute>,
    /// TCP listeners whose connections it serves.
    pub(crate) tcp: Vec<TcpListenerConfig>,
    /// When the host runs its `on-schedule` with no request asking.
    pub(crate) schedules: Vec<ScheduleConfig>,
    /// The queues it reads, and how.
    pub(crate) consumers: Vec<super::ConsumerConfig>,
    /// Where it may open TCP connections.
    pub(crate) tcp_outbound: TcpPolicy,
    /// Whether it may use its key-value store.
    pub(crate) kv: bool,
    /// Whether it may keep jobs to run later.
    pub(crate) jobs: bool,
    /// Its configuration values and secrets.
    pub(crate) settings: Settings,
    /// Directories the host serves as static files, by URL prefix.
    pub(crate) static_dirs: Vec<StaticDir>,
    /// Whether the host compresses its responses for clients that accept it.
    pub(crate) compress: bool,
    /// Whether an instance serves more than one request, and how.
    pub(crate) reuse: Option<Reuse>,
}

/// `reuse = { requests = 1000, idle = "10s", instances = 16 }`: an
/// instance that served a request well serves the app's next ones, one
/// after another (or, with `concurrent`, several at once). Guest memory and statics carry over between requests of
/// the app (never across apps); each request keeps its own `timeout`,
/// `cpu_time` and log budget, and an instance that fails or runs out of
/// time is dropped, never reused.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Reuse {
    /// Requests one instance serves before it is dropped.
    #[serde(default = "default_reuse_requests")]
    pub(crate) requests: u32,
    /// How long an instance waits for another request before it is dropped.
    #[serde(default = "default_reuse_idle", deserialize_with = "values::duration")]
    pub(crate) idle: Duration,
    /// Instances kept waiting at most (each holds its place in the pool).
    #[serde(default = "default_reuse_instances")]
    pub(crate) instances: u32,
    /// Requests one instance serves at once (squall-sdk apps and WASI 0.3
    /// components): more than 1 shares an instance between requests in
    /// flight, so a parked request (a long poll) holds no instance of its
    /// own.
    #[serde(default = "default_reuse_concurrent")]
    pub(crate) concurrent: u32,
}

/// Most requests one instance may serve at once.
pub(crate) const MAX_REUSE_CONCURRENT: u32 = 10_000;

fn default_reuse_concurrent() -> u32 {
    1
}

fn default_reuse_requests() -> u32 {
    1000
}

fn default_reuse_idle() -> Duration {
    Duration::from_secs(10)
}

fn default_reuse_instances() -> u32 {
    16
}

/// One `[[app.NAME.static]]` table: files under `dir` served by the host
/// at `prefix` (as the app sees its paths), without an instance.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct StaticDir {
    /// The URL path prefix, `/static` say.
    #[serde(deserialize_with = "values::route")]
    pub(crate) prefix: String,
    /// The directory, relative to the manifest.
    pub(crate) dir: PathBuf,
}

/// Per-app limits; each has a default.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Limits {
    /// Linear memory of one instance, in bytes.
    pub(crate) memory: u64,
    /// Wall-clock time for one request, including time spent awaiting the host.
    pub(crate) timeout: Duration,
    /// Time one request may spend running guest code.
    pub(crate) cpu_time: Duration,
    /// Largest request body accepted, in bytes (`413` beyond).
    pub(crate) max_body: u64,
    /// Largest response body a `fetch` may deliver, in bytes.
    pub(crate) fetch_max_body: u64,
    /// Instances the app may hold at once (its ceiling in the pool).
    pub(crate) max_instances: u32,
    /// Instances kept for the app whatever its neighbours do (its floor).
    pub(crate) reserved_instances: u32,
    /// HTTP requests in flight at once (`503` beyond).
    pub(crate) max_concurrency: u32,
    /// Open WebSocket connections (`503` for the upgrade beyond).
    pub(crate) max_connections: u32,
    /// Pub/sub topics the app may have at once.
    pub(crate) pubsub_topics: u32,
    /// Bytes the histories of all its topics may keep.
    pub(crate) pubsub_history_bytes: u64,
    /// Outbound requests in flight at once, for the whole app.
    pub(crate) max_fetches: u32,
    /// Outbound requests in flight at once, for one request or event.
    pub(crate) max_fetches_per_request: u32,
    /// Bytes of guest output (stdout and stderr) logged per request.
    pub(crate) log_per_request: u64,
    /// The most CPU its guests may use together, in percent of one core;
    /// `None`: no cap beyond `cpu_time` per request.
    pub(crate) cpu_share: Option<u32>,
    /// Outbound TCP connections open at once, for the whole app.
    pub(crate) tcp_outbound_connections: u32,
    /// How long an outbound TCP connect may take.
    pub(crate) tcp_connect_timeout: Duration,
    /// Keys its key-value store may hold.
    pub(crate) kv_max_keys: u64,
    /// Bytes (keys and values) its key-value store may hold.
    pub(crate) kv_max_bytes: u64,
    /// Longest key, in bytes.
    pub(crate) kv_max_key: u64,
    /// Largest value, in bytes.
    pub(crate) kv_max_value: u64,
    /// Bytes the host holds at once for the app's calls in flight (values
    /// read or written, messages taken by long polls), within the host's.
    pub(crate) max_call_bytes: u64,
    /// Jobs kept and not yet done, running ones included.
    pub(crate) jobs_max_pending: u64,
    /// Largest job payload, in bytes.
    pub(crate) jobs_max_payload: u64,
    /// Runs of one job before it is dropped (1: never retried).
    pub(crate) jobs_max_attempts: u32,
    /// Messages one of its queues holds (its dead letters as many more).
    pub(crate) queue_max_messages: u64,
    /// Largest message payload, in bytes.
    pub(crate) queue_max_payload: u64,
}

/// The most a manifest may set `jobs_max_payload` to: the host reads a
/// kept job whole, under this bound whatever the limits were then.
pub(crate) const JOBS_PAYLOAD_CEILING: u64 = 16 << 20;
/// The most a manifest may set `jobs_max_pending` or `queue_max_messages` to.
pub(crate) const KEPT_CEILING: u64 = 1_000_000;
/// The most a manifest may set `jobs_max_attempts` to.
pub(crate) const JOBS_ATTEMPTS_CEILING: u32 = 100;

impl Limits {
    /// The defaults of an app alone in a pool of `pool` instances.
    pub(crate) fn alone(pool: u32) -> Limits {
        Limits {
            memory: 64 << 20,
            timeout: Duration::from_secs(30),
            cpu_time: Duration::from_secs(10),
            max_body: 10 << 20,
            fetch_max_body: 64 << 20,
            max_instances: pool,
            reserved_instances: 0,
            max_concurrency: pool,
            max_connections: 1000,
            pubsub_topics: 1000,
            pubsub_history_bytes: 16 << 20,
            max_fetches: 256,
            max_fetches_per_request: 32,
            log_per_request: 64 << 10,
            cpu_share: None,
            tcp_outbound_connections: 64,
            tcp_connect_timeout: Duration::from_secs(10),
            kv_max_keys: 100_000,
            kv_max_bytes: 64 << 20,
            kv_max_key: 512,
            kv_max_value: 1 << 20,
            max_call_bytes: 128 << 20,
            jobs_max_pending: 10_000,
            jobs_max_payload: 64 << 10,
            jobs_max_attempts: 3,
            queue_max_messages: 10_000,
            queue_max_payload: 64 << 10,
        }
    }
}

/// One `[[app.NAME.websocket]]` table.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct WebSocketRoute {
    /// Path prefixes whose upgrade requests become WebSocket connections.
    #[serde(deserialize_with = "values::routes")]
    pub(crate) routes: Vec<String>,
    /// How the route runs its guest.
    #[serde(default)]
    pub(crate) mode: WebSocketMode,
    /// Origins allowed besides the request's own (Tornado's `check_origin`).
    #[serde(default)]
    pub(crate) origins: Vec<String>,
    /// Largest message accepted from a client (close 1009 beyond).
    #[serde(default = "default_max_message", deserialize_with = "values::size")]
    pub(crate) max_message: u64,
    /// How often the host pings an idle client.
    #[serde(
        default = "default_ping_interval",
        deserialize_with = "values::duration"
    )]
    pub(crate) ping_interval: Duration,
    /// How long a ping may go unanswered before the connection is closed.
    #[serde(
        default = "default_ping_timeout",
        deserialize_with = "values::duration"
    )]
    pub(crate) ping_timeout: Duration,
    /// Messages queued for a client before a slow reader is closed.
    #[serde(default = "default_send_queue")]
    pub(crate) send_queue: usize,
    /// Bytes queued for a client before a slow reader is closed (at least
    /// one message of the largest size, 1 MiB).
    #[serde(default = "default_send_buffer", deserialize_with = "values::size")]
    pub(crate) send_buffer: u64,
    /// How long one write to the client may take before it is given up as
    /// gone.
    #[serde(
        default = "default_write_timeout",
        deserialize_with = "values::duration"
    )]
    pub(crate) write_timeout: Duration,
    /// Close a connection that sends no message for this long (1001); none
    /// by default.
    #[serde(default, deserialize_with = "values::optional_duration")]
    pub(crate) idle_timeout: Option<Duration>,
}

impl WebSocketRoute {
    /// A route the app declared itself (`Router::websocket`) at `prefix`,
    /// with every default.
    pub(crate) fn declared(prefix: String) -> WebSocketRoute {
        WebSocketRoute {
            routes: vec![prefix],
            mode: WebSocketMode::default(),
            origins: Vec::new(),
            max_message: default_max_message(),
            ping_interval: default_ping_interval(),
            ping_timeout: default_ping_timeout(),
            send_queue: default_send_queue(),
            send_buffer: default_send_buffer(),
            write_timeout: default_write_timeout(),
            idle_timeout: None,
        }
    }
}

/// How a WebSocket route runs its guest.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum WebSocketMode {
    /// One instance per connection for its whole life: state lives in
    /// guest memory, like a Tornado `WebSocketHandler` object.
    Live,
    /// An instance per event only; an idle connection costs no instance.
    #[default]
    Hibernate,
}

fn default_max_message() -> u64 {
    64 << 10
}

fn default_ping_interval() -> Duration {
    Duration::from_secs(30)
}

fn default_ping_timeout() -> Duration {
    Duration::from_secs(10)
}

fn default_send_queue() -> usize {
    256
}

fn default_send_buffer() -> u64 {
    4 << 20
}

fn default_write_timeout() -> Duration {
    Duration::from_secs(30)
}

/// Messages a topic keeps unless the manifest says otherwise.
pub(crate) const DEFAULT_PUBSUB_HISTORY: usize = 100;

/// An `[app.NAME]` table as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawApp {
    source: PathBuf,
    #[serde(default, deserialize_with = "values::hosts")]
    hosts: Vec<String>,
    #[serde(default = "default_routes", deserialize_with = "values::routes")]
    pub(super) routes: Vec<String>,
    #[serde(default)]
    strip_prefix: bool,
    #[serde(default, deserialize_with = "values::optional_size")]
    memory: Option<u64>,
    #[serde(default, deserialize_with = "values::optional_duration")]
    timeout: Option<Duration>,
    #[serde(default, deserialize_with = "values::optional_duration")]
    cpu_time: Option<Duration>,
    #[serde(default, deserialize_with = "values::optional_size")]
    max_body: Option<u64>,
    #[serde(default, deserialize_with = "values::optional_size")]
    fetch_max_body: Option<u64>,
    #[serde(default)]
    pub(super) max_instances: Option<u32>,
    #[serde(default)]
    pub(super) reserved_instances: Option<u32>,
    #[serde(default)]
    max_concurrency: Option<u32>,
    #[serde(default)]
    max_connections: Option<u32>,
    #[serde(default)]
    pubsub_topics: Option<u32>,
    #[serde(default, deserialize_with = "values::optional_size")]
    pubsub_history_bytes: Option<u64>,
    #[serde(default)]
    max_fetches: Option<u32>,
    #[serde(default)]
    max_fetches_per_request: Option<u32>,
    #[serde(default, deserialize_with = "values::optional_size")]
    log_per_request: Option<u64>,
    #[serde(default, deserialize_with = "values::optional_percent")]
    cpu_share: Option<u32>,
    #[serde(default, deserialize_with = "values::outbound")]
    outbound: OutboundPolicy,
    #[serde(default, deserialize_with = "values::topics")]
    pubsub: TopicPolicy,
    #[serde(default)]
    pubsub_history: Option<usize>,
    #[serde(default)]
    websocket: Vec<WebSocketRoute>,
    #[serde(default)]
    tcp: Vec<TcpListenerConfig>,
    #[serde(default, deserialize_with = "super::schedule_tables::schedules")]
    schedule: Vec<ScheduleConfig>,
    #[serde(default, deserialize_with = "super::consumer_tables::consumers")]
    consumer: Vec<super::ConsumerConfig>,
    #[serde(default, deserialize_with = "values::tcp_outbound")]
    tcp_outbound: TcpPolicy,
    #[serde(default)]
    tcp_outbound_connections: Option<u32>,
    #[serde(default, deserialize_with = "values::optional_duration")]
    tcp_connect_timeout: Option<Duration>,
    #[serde(default)]
    kv: bool,
    #[serde(default)]
    kv_max_keys: Option<u64>,
    #[serde(default, deserialize_with = "values::optional_size")]
    kv_max_bytes: Option<u64>,
    #[serde(default, deserialize_with = "values::optional_size")]
    kv_max_key: Option<u64>,
    #[serde(default, deserialize_with = "values::optional_size")]
    kv_max_value: Option<u64>,
    #[serde(default, deserialize_with = "values::optional_size")]
    max_call_bytes: Option<u64>,
    #[serde(default)]
    jobs: bool,
    #[serde(default)]
    jobs_max_pending: Option<u64>,
    #[serde(default, deserialize_with = "values::optional_size")]
    jobs_max_payload: Option<u64>,
    #[serde(default)]
    jobs_max_attempts: Option<u32>,
    #[serde(default)]
    queue_max_messages: Option<u64>,
    #[serde(default, deserialize_with = "values::optional_size")]
    queue_max_payload: Option<u64>,
    #[serde(default)]
    pub(super) config: BTreeMap<String, RawSetting>,
    #[serde(default, rename = "static")]
    static_dirs: Vec<StaticDir>,
    #[serde(default = "default_compress")]
    compress: bool,
    #[serde(default)]
    reuse: Option<Reuse>,
}

fn default_compress() -> bool {
    true
}

pub(super) fn default_routes() -> Vec<String> {
    vec!["/".to_owned()]
}

/// How the pool is shared when the manifest does not say: alone, an app may
/// use the whole pool; among others, at most half of it, and a quarter of
/// the pool is kept in equal floors for the apps that set none.
#[derive(Debug, Clone, Copy)]
pub(super) struct PoolDefaults {
    pub(super) max_instances: u32,
    pub(super) reserved_instances: u32,
}

impl PoolDefaults {
    /// The defaults for `apps` apps in a pool of `pool`, `reserved` of it
    /// reserved explicitly by `explicit` of them.
    pub(super) fn new(pool: u32, apps: u32, explicit: u32, reserved: u32) -> Self {
        if apps <= 1 {
            return PoolDefaults {
                max_instances: pool,
                reserved_instances: 0,
            };
        }
        let unset = (apps - explicit).max(1);
        let quarter = pool / 4 / apps;
        let left = pool.saturating_sub(reserved) / unset;
        PoolDefaults {
            max_instances: (pool / 2).max(1),
            reserved_instances: quarter.min(left),
        }
    }
}

impl RawApp {
    /// The app `name`, its paths resolved against `base` and its defaults
    /// filled in.
    pub(super) fn resolve(
        self,
        name: String,
        base: &std::path::Path,
        pool: u32,
        defaults: PoolDefaults,
        settings: Settings,
    ) -> AppConfig {
        let mut limits = Limits::alone(pool);
        limits.max_instances = self.max_instances.unwrap_or(defaults.max_instances);
        limits.reserved_instances = self
            .reserved_instances
            .unwrap_or(defaults.reserved_instances.min(limits.max_instances));
        let or = |value: Option<u32>, default: u32| value.unwrap_or(default);
        let limits = Limits {
            memory: self.memory.unwrap_or(limits.memory),
            timeout: self.timeout.unwrap_or(limits.timeout),
            cpu_time: self.cpu_time.unwrap_or(limits.cpu_time),
            max_body: self.max_body.unwrap_or(limits.max_body),
            fetch_max_body: self.fetch_max_body.unwrap_or(limits.fetch_max_body),
            // Requests sharing instances: as many in flight as the
            // instances can hold.
            max_concurrency: or(
                self.max_concurrency,
                limits.max_instances.saturating_mul(
                    self.reuse
                        .as_ref()
                        .map_or(1, |reuse| reuse.concurrent.max(1)),
                ),
            ),
            max_connections: or(self.max_connections, limits.max_connections),
            pubsub_topics: or(self.pubsub_topics, limits.pubsub_topics),
            pubsub_history_bytes: self
                .pubsub_history_bytes
                .unwrap_or(limits.pubsub_history_bytes),
            max_fetches: or(self.max_fetches, limits.max_fetches),
            max_fetches_per_request: or(
                self.max_fetches_per_request,
                limits.max_fetches_per_request,
            ),
            log_per_request: self.log_per_request.unwrap_or(limits.log_per_request),
            cpu_share: self.cpu_share,
            tcp_outbound_connections: or(
                self.tcp_outbound_connections,
                limits.tcp_outbound_connections,
            ),
            tcp_connect_timeout: self
                .tcp_connect_timeout
                .unwrap_or(limits.tcp_connect_timeout),
            kv_max_keys: self.kv_max_keys.unwrap_or(limits.kv_max_keys),
            kv_max_bytes: self.kv_max_bytes.unwrap_or(limits.kv_max_bytes),
            kv_max_key: self.kv_max_key.unwrap_or(limits.kv_max_key),
            kv_max_value: self.kv_max_value.unwrap_or(limits.kv_max_value),
            max_call_bytes: self.max_call_bytes.unwrap_or(limits.max_call_bytes),
            jobs_max_pending: self.jobs_max_pending.unwrap_or(limits.jobs_max_pending),
            jobs_max_payload: self.jobs_max_payload.unwrap_or(limits.jobs_max_payload),
            jobs_max_attempts: or(self.jobs_max_attempts, limits.jobs_max_attempts),
            queue_max_messages: self.queue_max_messages.unwrap_or(limits.queue_max_messages),
            queue_max_payload: self.queue_max_payload.unwrap_or(limits.queue_max_payload),
            ..limits
        };
        AppConfig {
            source: base.join(&self.source),
            hosts: self.hosts,
            routes: self.routes,
            strip_prefix: self.strip_prefix,
            limits,
            outbound: self.outbound,
            pubsub: self.pubsub,
            pubsub_history: self.pubsub_history.unwrap_or(DEFAULT_PUBSUB_HISTORY).max(1),
            websockets: self.websocket,
            tcp: self.tcp,
            schedules: self.schedule,
            consumers: self.consumer,
            tcp_outbound: self.tcp_outbound,
            kv: self.kv,
            jobs: self.jobs,
            settings,
            static_dirs: self
                .static_dirs
                .into_iter()
                .map(|dir| StaticDir {
                    dir: base.join(&dir.dir),
                    ..dir
                })
                .collect(),
            compress: self.compress,
            reuse: self.reuse,
            name,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::PoolDefaults;

    #[test]
    fn alone_an_app_may_use_the_whole_pool() {
        let defaults = PoolDefaults::new(1000, 1, 0, 0);
        assert_eq!(defaults.max_instances, 1000);
        assert_eq!(defaults.reserved_instances, 0);
    }

    #[test]
    fn among_others_an_app_gets_half_the_pool_and_a_floor() {
        let defaults = PoolDefaults::new(1000, 4, 0, 0);
        assert_eq!(defaults.max_instances, 500);
        assert_eq!(defaults.reserved_instances, 62);
        assert!(defaults.reserved_instances * 4 <= 1000 / 4);
    }

    #[test]
    fn default_floors_fit_beside_explicit_ones() {
        let defaults = PoolDefaults::new(100, 3, 1, 95);
        assert!(defaults.reserved_instances * 2 + 95 <= 100);
    }
}

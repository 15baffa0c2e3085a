//! The `[server]` table: what the whole host listens on and holds.

use super::values;
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// The `[server]` table.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct ServerConfig {
    /// Address to listen on.
    pub(crate) listen: SocketAddr,
    /// Most instances alive at once, over all apps (the pooling allocator's size).
    pub(crate) max_instances: u32,
    /// How long a graceful shutdown waits for in-flight requests.
    #[serde(deserialize_with = "values::duration")]
    pub(crate) drain_timeout: Duration,
    /// Open client connections (WebSockets included); beyond, new ones
    /// wait in the listen backlog.
    pub(crate) max_connections: u32,
    /// Time a client has to send a request's headers (HTTP/1.1; an idle
    /// keep-alive connection waits for its next request's headers too).
    #[serde(deserialize_with = "values::duration")]
    pub(crate) header_read_timeout: Duration,
    /// A connection on which no byte moves for this long is closed once
    /// what is in flight is done.
    #[serde(deserialize_with = "values::duration")]
    pub(crate) idle_timeout: Duration,
    /// Largest request head (request line and headers; HTTP/2's header
    /// list): `431` beyond.
    #[serde(deserialize_with = "values::size")]
    pub(crate) max_header_bytes: u64,
    /// Most request headers (HTTP/1.1): `431` beyond.
    pub(crate) max_headers: usize,
    /// Concurrent streams per HTTP/2 connection.
    pub(crate) max_streams: u32,
    /// Where durable state (the key-value store) is kept, relative to the
    /// manifest's directory.
    pub(crate) data_dir: PathBuf,
    /// Where compiled components are kept between starts, relative to the
    /// manifest's directory; it must be writable by this user alone.
    pub(crate) cache_dir: PathBuf,
    /// Where the admin listener (`/metrics`, the admin API) listens; none:
    /// no admin listener.
    pub(crate) admin_listen: Option<SocketAddr>,
    /// The environment variable holding the admin API's bearer token.
    pub(crate) admin_token_env: Option<String>,
    /// The file holding the admin API's bearer token, relative to the
    /// manifest's directory.
    pub(crate) admin_token_file: Option<PathBuf>,
    /// Where HTTPS is served; none: no HTTPS listener.
    pub(crate) https_listen: Option<SocketAddr>,
    /// Whether the plain HTTP listener answers every request with a
    /// redirect (308) to HTTPS.
    pub(crate) https_redirect: bool,
    /// The HTTPS listener's certificates, each for the host names it lists
    /// (chosen by SNI).
    pub(crate) certificates: Vec<CertificateConfig>,
    /// Where the apps' key-value stores live.
    pub(crate) backend: BackendConfig,
    /// Bytes the host holds at once for all apps' calls in flight (values
    /// read or written, messages taken by long polls).
    #[serde(deserialize_with = "values::size")]
    pub(crate) max_call_bytes: u64,
}

/// `[server.backend]`: the embedded store (the default), or Redis shared
/// by several hosts.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, tag = "kind", rename_all = "lowercase")]
pub(crate) enum BackendConfig {
    /// redb under `data_dir`.
    #[default]
    Embedded,
    /// A Redis server: `url = "redis://host:6379"` (`rediss://` for TLS,
    /// a password as `redis://:PASSWORD@host`).
    Redis { url: String },
}

/// One `[[server.certificates]]` entry.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CertificateConfig {
    /// The names it serves (`api.example.com`, `*.example.com`); none: the
    /// one for clients that name no host or a host no entry lists.
    #[serde(default)]
    pub(crate) hosts: Vec<String>,
    /// Its PEM certificate chain, relative to the manifest's directory.
    pub(crate) cert: PathBuf,
    /// Its PEM private key, relative to the manifest's directory.
    pub(crate) key: PathBuf,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            max_instances: 1000,
            drain_timeout: Duration::from_secs(10),
            max_connections: 10_000,
            header_read_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(75),
            max_header_bytes: 32 << 10,
            max_headers: 100,
            max_streams: 100,
            data_dir: PathBuf::from(".squall/data"),
            cache_dir: PathBuf::from(".squall/cache"),
            admin_listen: None,
            admin_token_env: None,
            admin_token_file: None,
            https_listen: None,
            https_redirect: false,
            certificates: Vec::new(),
            backend: BackendConfig::Embedded,
            max_call_bytes: 1 << 30,
        }
    }
}

//! One `[[app.NAME.tcp]]` table: a TCP listener whose connections the app
//! serves, an instance per connection.

use super::values;
use serde::Deserialize;
use std::net::SocketAddr;
use std::time::Duration;

/// A listener and the limits on its connections.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct TcpListenerConfig {
    /// The address to accept connections on (`127.0.0.1:7000`).
    pub(crate) listen: SocketAddr,
    /// What the guest sees as the connection's listener; its address if
    /// none.
    #[serde(default)]
    pub(crate) name: Option<String>,
    /// Connections open at once; one beyond is closed as soon as it is
    /// accepted.
    #[serde(default = "default_max_connections")]
    pub(crate) max_connections: u32,
    /// Close a connection when no byte has moved either way for this long.
    #[serde(
        default = "default_idle_timeout",
        deserialize_with = "values::duration"
    )]
    pub(crate) idle_timeout: Duration,
    /// CPU time a connection's guest may use over the connection's whole
    /// life (live mode; in hibernate mode the app's `cpu_time` applies to
    /// each event); the app's `cpu_time` if not given.
    #[serde(default, deserialize_with = "values::optional_duration")]
    pub(crate) cpu_time: Option<Duration>,
    /// How the listener runs its guest.
    #[serde(default)]
    pub(crate) mode: TcpMode,
    /// Hibernate mode: the longest line a client may send (closed beyond).
    #[serde(default = "default_max_frame", deserialize_with = "values::size")]
    pub(crate) max_frame: u64,
    /// Hibernate mode: bytes queued for a client before a slow reader is
    /// closed.
    #[serde(default = "default_send_buffer", deserialize_with = "values::size")]
    pub(crate) send_buffer: u64,
}

/// How a TCP listener runs its guest.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum TcpMode {
    /// An instance per connection for its whole life, reading and writing
    /// the connection as streams (`on-connection`).
    #[default]
    Live,
    /// The host reads lines and keeps the connection; a fresh instance per
    /// event (`on-open`, `on-frame`, `on-close`); an idle connection costs
    /// no instance.
    Hibernate,
}

impl TcpListenerConfig {
    /// The listener's name as the guest sees it.
    pub(crate) fn display_name(&self) -> String {
        self.name.clone().unwrap_or_else(|| self.listen.to_string())
    }
}

fn default_max_connections() -> u32 {
    1000
}

fn default_max_frame() -> u64 {
    64 << 10
}

fn default_send_buffer() -> u64 {
    1 << 20
}

fn default_idle_timeout() -> Duration {
    Duration::from_secs(300)
}

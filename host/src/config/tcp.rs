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
    /// life; the app's `cpu_time` if not given.
    #[serde(default, deserialize_with = "values::optional_duration")]
    pub(crate) cpu_time: Option<Duration>,
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

fn default_idle_timeout() -> Duration {
    Duration::from_secs(300)
}

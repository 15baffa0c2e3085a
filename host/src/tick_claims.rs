//! Which host runs a schedule's tick. Alone (the embedded backend), this
//! one. With `[server.backend] kind = "redis"`, the host that claims the
//! tick first: one key per schedule holds the last tick claimed, and a
//! script moves it forward only to a later tick, atomically. A tick is
//! named by its due time, the same on every host (schedules tick on a
//! grid from the epoch), so exactly one host runs each.
//!
//! A lease per tick, not a stream with consumer groups: a tick is not a
//! message someone sent but a time every host knows, and a lost tick (its
//! host died mid-run) is not retried, since the next one comes anyway.
//! Redis keeps one small key per schedule, whatever the number of ticks.

use crate::config::BackendConfig;
use crate::redis_connection::LazyConnection;

/// How long a schedule's key outlives its last claim: long past any clock
/// skew between hosts, short enough that a removed schedule's key goes.
const CLAIM_KEPT_MS: u64 = 10 * 60 * 1000;

/// Move the schedule's last claimed tick to ARGV[1] if it is later: 1 if
/// this call moved it (the tick is ours), 0 if another host got there.
const CLAIM: &str = r"
local last = tonumber(redis.call('GET', KEYS[1]) or '-1')
if tonumber(ARGV[1]) > last then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0
";

/// Who may run a tick: this host alone, or the first of the hosts sharing
/// Redis to claim it.
pub(crate) struct TickClaims {
    shared: Option<SharedClaims>,
}

struct SharedClaims {
    connection: LazyConnection,
    script: redis::Script,
}

impl TickClaims {
    /// The claims the server's backend makes possible.
    pub(crate) fn for_backend(backend: &BackendConfig) -> anyhow::Result<TickClaims> {
        let shared = match backend {
            BackendConfig::Embedded => None,
            BackendConfig::Redis { url } => Some(SharedClaims {
                connection: LazyConnection::new(redis::Client::open(url.as_str())?),
                script: redis::Script::new(CLAIM),
            }),
        };
        Ok(TickClaims { shared })
    }

    /// Whether this host runs the tick of `app`'s `schedule` due at
    /// `due_ms`; an error if Redis cannot say (the tick is then skipped:
    /// better a missed tick than one run twice).
    pub(crate) async fn claim(
        &self,
        app: &str,
        schedule: &str,
        due_ms: i64,
    ) -> Result<bool, String> {
        let Some(SharedClaims { connection, script }) = &self.shared else {
            return Ok(true);
        };
        let mut connection = connection.get().await?;
        // App and schedule names hold no ':', so the key is unambiguous.
        let claimed: i64 = script
            .key(format!("squall:tick:{app}:{schedule}"))
            .arg(due_ms)
            .arg(CLAIM_KEPT_MS)
            .invoke_async(&mut connection)
            .await
            .map_err(|err| err.to_string())?;
        Ok(claimed == 1)
    }
}

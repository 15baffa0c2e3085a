//! Per-app counts of limits hit, and a log line for them that a flood
//! cannot turn into a flood of lines: at most one line per limit per second,
//! saying how many hits it stands for.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// The limits a tenant can run into, each counted on its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Limit {
    /// No instance slot within the app's share of the pool.
    Instances,
    /// `max_concurrency`: requests in flight.
    Concurrency,
    /// `max_connections`: open WebSockets, or a TCP listener's connections.
    Connections,
    /// `pubsub_topics`: topics the app owns.
    Topics,
    /// `pubsub_history_bytes`: bytes its topics keep.
    TopicBytes,
    /// `max_fetches` / `max_fetches_per_request`: outbound requests in flight.
    Fetches,
    /// `log_per_request`: guest output.
    LogBytes,
    /// `kv_max_keys` / `kv_max_bytes`: what its key-value store holds.
    KvQuota,
    /// `kv_max_key` / `kv_max_value`: the size of one key or value.
    KvSize,
    /// `tcp_outbound_connections`: outbound TCP connections open.
    TcpOutbound,
    /// `max_call_bytes`: what the host holds for its calls in flight, or
    /// what one call may return.
    CallBytes,
    /// `jobs_max_pending` / `jobs_max_payload`: the jobs it keeps.
    Jobs,
}

impl Limit {
    const ALL: [Limit; 12] = [
        Limit::Instances,
        Limit::Concurrency,
        Limit::Connections,
        Limit::Topics,
        Limit::TopicBytes,
        Limit::Fetches,
        Limit::LogBytes,
        Limit::KvQuota,
        Limit::KvSize,
        Limit::TcpOutbound,
        Limit::CallBytes,
        Limit::Jobs,
    ];

    /// The manifest key that sets it.
    pub(crate) fn key(self) -> &'static str {
        match self {
            Limit::Instances => "max_instances",
            Limit::Concurrency => "max_concurrency",
            Limit::Connections => "max_connections",
            Limit::Topics => "pubsub_topics",
            Limit::TopicBytes => "pubsub_history_bytes",
            Limit::Fetches => "max_fetches",
            Limit::LogBytes => "log_per_request",
            Limit::KvQuota => "kv_max_bytes",
            Limit::KvSize => "kv_max_value",
            Limit::TcpOutbound => "tcp_outbound_connections",
            Limit::CallBytes => "max_call_bytes",
            Limit::Jobs => "jobs_max_pending",
        }
    }

    /// The limit a manifest key sets.
    pub(crate) fn from_key(key: &str) -> Option<Limit> {
        Limit::ALL.into_iter().find(|limit| limit.key() == key)
    }

    fn index(self) -> usize {
        Limit::ALL
            .iter()
            .position(|limit| *limit == self)
            .unwrap_or_default()
    }
}

/// Least time between two log lines about the same thing.
const LOG_EVERY: Duration = Duration::from_secs(1);

/// Lines about one thing, at most one a second: each occurrence is
/// counted, and a line when due says how many it stands for.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub(crate) struct Throttle {
    last_line: Option<Instant>,
    unlogged: u64,
}

impl Throttle {
    /// Count one occurrence; if a line is due, how many it stands for.
    pub(crate) fn due(&mut self) -> Option<u64> {
        self.unlogged += 1;
        let now = Instant::now();
        if self
            .last_line
            .is_some_and(|last| now.duration_since(last) < LOG_EVERY)
        {
            return None;
        }
        self.last_line = Some(now);
        Some(std::mem::take(&mut self.unlogged))
    }

    /// Count one occurrence of `message` and log it as a warning if due.
    pub(crate) fn warn(&mut self, message: &str) {
        if let Some(times) = self.due() {
            tracing::warn!(times, "{message}");
        }
    }
}

/// The limit hits of one app.
#[derive(Debug)]
pub(crate) struct LimitHits {
    app: String,
    counts: [AtomicU64; Limit::ALL.len()],
    /// Per limit, its log lines.
    logged: Mutex<[Throttle; Limit::ALL.len()]>,
}

impl LimitHits {
    /// No hits yet, for the app `app`.
    pub(crate) fn new(app: &str) -> Self {
        LimitHits {
            app: app.to_owned(),
            counts: Default::default(),
            logged: Mutex::new([Throttle::default(); Limit::ALL.len()]),
        }
    }

    /// Hits so far of every limit, by its manifest key.
    pub(crate) fn all(&self) -> Vec<(&'static str, u64)> {
        Limit::ALL
            .iter()
            .map(|limit| (limit.key(), self.count(*limit)))
            .collect()
    }

    /// Count a hit of `limit`, and log it unless it was logged less than a
    /// second ago (the next line then says how many hits it stands for).
    pub(crate) fn hit(&self, limit: Limit, detail: &str) {
        let index = limit.index();
        let count = self.counts[index].fetch_add(1, Ordering::Relaxed) + 1;
        let due = self.logged.lock().unwrap_or_else(|p| p.into_inner())[index].due();
        let Some(since_last) = due else {
            return;
        };
        tracing::warn!(
            app = %self.app,
            limit = %limit.key(),
            hits = since_last,
            total = count,
            "limit reached: {detail}"
        );
    }

    /// How many times `limit` was hit.
    pub(crate) fn count(&self, limit: Limit) -> u64 {
        self.counts[limit.index()].load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_hit_counts_and_limits_count_apart() {
        let hits = LimitHits::new("app");
        for _ in 0..1000 {
            hits.hit(Limit::Instances, "pool full");
        }
        hits.hit(Limit::Topics, "too many topics");
        assert_eq!(hits.count(Limit::Instances), 1000);
        assert_eq!(hits.count(Limit::Topics), 1);
        assert_eq!(hits.count(Limit::Fetches), 0);
    }

    #[test]
    fn a_flood_is_logged_once_per_second() {
        let hits = LimitHits::new("app");
        hits.hit(Limit::Concurrency, "busy");
        let first = hits.logged.lock().expect("lock")[Limit::Concurrency.index()];
        for _ in 0..100 {
            hits.hit(Limit::Concurrency, "busy");
        }
        let after = hits.logged.lock().expect("lock")[Limit::Concurrency.index()];
        assert_eq!(
            first.last_line, after.last_line,
            "no new line within the second"
        );
        assert_eq!(
            after.unlogged, 100,
            "the next line says how many it stands for"
        );
    }

    #[test]
    fn each_limit_names_its_key() {
        for limit in Limit::ALL {
            assert!(!limit.key().is_empty());
            assert_eq!(Limit::ALL[limit.index()], limit);
        }
    }
}

//! What the host counts for the admin listener's `/metrics`: one
//! Prometheus recorder for the process (the `metrics` crate's), and a
//! function per thing counted, so that names and labels live in one place.
//! Until the recorder is installed (no admin listener), counting is a no-op.
//!
//! What the host holds at a moment (instances, requests in flight, open
//! WebSockets, limit hits) is read from the apps when `/metrics` is asked
//! for ([`snapshot`]), not counted here.

use metrics::{counter, gauge, histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

/// Request latency buckets, in seconds: 1 ms to 30 s.
const LATENCY_BUCKETS: [f64; 14] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// How often recorded histogram samples are folded into their buckets.
const UPKEEP_EVERY: Duration = Duration::from_secs(5);

/// The process's recorder, installed the first time it is asked for.
pub(crate) fn recorder() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new();
            let builder = match builder.set_buckets_for_metric(
                Matcher::Full("squall_request_duration_seconds".into()),
                &LATENCY_BUCKETS,
            ) {
                Ok(builder) => builder,
                // Only an empty bucket list is refused.
                Err(_) => PrometheusBuilder::new(),
            };
            let recorder = builder.build_recorder();
            let handle = recorder.handle();
            if metrics::set_global_recorder(recorder).is_err() {
                tracing::warn!("a metrics recorder was installed already; /metrics stays empty");
            }
            // Histogram samples pile up until upkeep folds them into their
            // buckets: done on a timer, not only when something scrapes.
            let upkeep = handle.clone();
            let started = std::thread::Builder::new()
                .name("metrics-upkeep".into())
                .spawn(move || {
                    loop {
                        std::thread::sleep(UPKEEP_EVERY);
                        upkeep.run_upkeep();
                    }
                });
            if let Err(err) = started {
                tracing::warn!("cannot start the metrics upkeep: {err}");
            }
            handle
        })
        .clone()
}

/// A request answered with `status` after `elapsed`.
pub(crate) fn request(app: &Arc<str>, status: u16, elapsed: Duration) {
    let class = match status {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
    };
    counter!("squall_requests_total", "app" => app.clone(), "status" => class).increment(1);
    histogram!("squall_request_duration_seconds", "app" => app.clone()).record(elapsed);
}

/// A guest that failed (`trap`, `timeout`, `cpu_time`, `memory`, ...).
pub(crate) fn guest_failure(app: &Arc<str>, kind: &'static str) {
    counter!("squall_guest_failures_total", "app" => app.clone(), "kind" => kind).increment(1);
}

/// A schedule's tick that ended with `outcome` (`ok`, `failed`, or
/// `skipped`: its last run was still going).
pub(crate) fn schedule_tick(app: &Arc<str>, schedule: &str, outcome: &'static str) {
    counter!(
        "squall_schedule_ticks_total",
        "app" => app.clone(),
        "schedule" => schedule.to_owned(),
        "outcome" => outcome
    )
    .increment(1);
}

/// Messages an app sent to its `queue`.
pub(crate) fn queue_sent(app: &Arc<str>, queue: &str, messages: u64) {
    counter!("squall_queue_sent_total", "app" => app.clone(), "queue" => queue.to_owned())
        .increment(messages);
}

/// Messages of a `queue` whose delivery ended with `outcome` (`acked`;
/// `retry`: it runs again later; `dead`: a dead letter now; `dropped`:
/// its dead letters were full).
pub(crate) fn queue_delivered(app: &Arc<str>, queue: &str, outcome: &'static str, messages: u64) {
    counter!(
        "squall_queue_messages_total",
        "app" => app.clone(),
        "queue" => queue.to_owned(),
        "outcome" => outcome
    )
    .increment(messages);
}

/// What a `queue` holds now: messages waiting or in delivery, and dead letters.
pub(crate) fn queue_depth(app: &Arc<str>, queue: &str, messages: u64, dead: u64) {
    gauge!("squall_queue_depth", "app" => app.clone(), "queue" => queue.to_owned())
        .set(messages as f64);
    gauge!("squall_queue_dead_letters", "app" => app.clone(), "queue" => queue.to_owned())
        .set(dead as f64);
}

/// A job kept by an app, to run later.
pub(crate) fn job_kept(app: &Arc<str>) {
    counter!("squall_jobs_kept_total", "app" => app.clone()).increment(1);
}

/// The jobs an app keeps now, running ones included.
pub(crate) fn jobs_pending(app: &Arc<str>, pending: u64) {
    gauge!("squall_jobs_pending", "app" => app.clone()).set(pending as f64);
}

/// A job's run that ended with `outcome` (`ok`; `retry`: it failed and
/// runs again later; `dropped`: it failed on its last attempt).
pub(crate) fn job_run(app: &Arc<str>, job: &str, outcome: &'static str) {
    counter!(
        "squall_job_runs_total",
        "app" => app.clone(),
        "job" => job.to_owned(),
        "outcome" => outcome
    )
    .increment(1);
}

/// A fetch that ended with `result` (`ok`, `denied`, `limit`, `timeout`, ...).
pub(crate) fn fetch(app: &Arc<str>, result: &'static str) {
    counter!("squall_fetches_total", "app" => app.clone(), "result" => result).increment(1);
}

/// A message published.
pub(crate) fn publish(app: &Arc<str>) {
    counter!("squall_publishes_total", "app" => app.clone()).increment(1);
}

/// A key-value call, `read` or `write`.
pub(crate) fn kv(app: &Arc<str>, kind: &'static str) {
    counter!("squall_kv_operations_total", "app" => app.clone(), "kind" => kind).increment(1);
}

/// A WebSocket accepted.
pub(crate) fn websocket_opened(app: &Arc<str>) {
    counter!("squall_websockets_opened_total", "app" => app.clone()).increment(1);
}

/// A client connection accepted (`1`) or closed (`-1`).
pub(crate) fn connections(change: f64) {
    gauge!("squall_connections_open").increment(change);
}

/// An accept that failed.
pub(crate) fn accept_error() {
    counter!("squall_accept_errors_total").increment(1);
}

/// A component compiled (`compiled`) or loaded from the compile cache
/// (`cached`).
pub(crate) fn component_loaded(how: &'static str) {
    counter!("squall_components_loaded_total", "code" => how).increment(1);
}

/// An app's version swapped in.
pub(crate) fn swap(app: &Arc<str>) {
    counter!("squall_app_swaps_total", "app" => app.clone()).increment(1);
}

/// The bytes the host holds for calls in flight now, all apps together
/// (`max_call_bytes`), just before rendering.
pub(crate) fn call_bytes_held(bytes: u64) {
    gauge!("squall_call_bytes_held").set(bytes as f64);
}

/// What one app holds now.
pub(crate) struct AppSnapshot<'a> {
    pub(crate) app: &'a Arc<str>,
    pub(crate) instances: u32,
    /// Of those, waiting for a request (`reuse`).
    pub(crate) idle_instances: u32,
    pub(crate) requests: u32,
    pub(crate) websockets: u32,
    /// Hits so far, by the manifest key of the limit.
    pub(crate) limit_hits: Vec<(&'static str, u64)>,
}

/// Record what `app` holds now, just before rendering.
pub(crate) fn snapshot(app: &AppSnapshot<'_>) {
    let name = app.app;
    gauge!("squall_instances", "app" => name.clone()).set(app.instances);
    gauge!("squall_instances_idle", "app" => name.clone()).set(app.idle_instances);
    gauge!("squall_requests_in_flight", "app" => name.clone()).set(app.requests);
    gauge!("squall_websockets_open", "app" => name.clone()).set(app.websockets);
    for (limit, hits) in &app.limit_hits {
        counter!("squall_limit_hits_total", "app" => name.clone(), "limit" => *limit)
            .absolute(*hits);
    }
}

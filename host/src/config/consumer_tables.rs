//! The `[[app.NAME.consumer]]` tables: the queues an app reads, and how
//! (`tornado.queues` with its workers, Cloudflare Queues' consumers). A
//! queue exists because a consumer names it: an app sends only to its
//! own consumers' queues, so its queues are as few as its tables. Every
//! bound is checked here, at load.

use super::values;
use serde::{Deserialize, Deserializer};
use std::time::Duration;

/// Consumers (so queues) one app may have.
pub(crate) const MAX_CONSUMERS: usize = 16;
/// The largest batch a consumer may take.
pub(crate) const MAX_BATCH: u32 = 100;
/// Most retries of one message.
pub(crate) const MAX_RETRIES: u32 = 100;
/// Most batches of one consumer in flight on a host.
pub(crate) const MAX_CONCURRENCY: u32 = 16;
/// Shortest wait before a retry: a message failing at once is not
/// delivered again in a tight loop.
const MIN_RETRY_DELAY: Duration = Duration::from_millis(100);
/// Longest wait before a retry.
const MAX_RETRY_DELAY: Duration = Duration::from_secs(24 * 3600);

/// One consumer, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ConsumerConfig {
    /// The queue it reads: 1 to 64 letters, digits, '-', '_' or '.'.
    pub(crate) queue: String,
    /// Messages handed to one run, at most.
    pub(crate) batch: u32,
    /// Runs after the first before a message is a dead letter.
    pub(crate) max_retries: u32,
    /// The wait before a message that failed runs again.
    pub(crate) retry_delay: Duration,
    /// Batches in flight at once on one host.
    pub(crate) concurrency: u32,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConsumer {
    queue: String,
    #[serde(default)]
    batch: Option<u32>,
    #[serde(default)]
    max_retries: Option<u32>,
    #[serde(default, deserialize_with = "values::optional_duration")]
    retry_delay: Option<Duration>,
    #[serde(default)]
    concurrency: Option<u32>,
}

/// Whether `name` is a queue name: 1 to 64 letters, digits, '-', '_', '.'.
pub(crate) fn is_queue_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || b"-_.".contains(&byte))
}

impl RawConsumer {
    fn validate(self) -> Result<ConsumerConfig, String> {
        let queue = self.queue;
        if !is_queue_name(&queue) {
            return Err(format!(
                "consumer queue {queue:?}: 1 to 64 letters, digits, '-', '_' or '.'"
            ));
        }
        let batch = self.batch.unwrap_or(10);
        if !(1..=MAX_BATCH).contains(&batch) {
            return Err(format!(
                "consumer {queue:?}: batch must be from 1 to {MAX_BATCH}"
            ));
        }
        let max_retries = self.max_retries.unwrap_or(3);
        if max_retries > MAX_RETRIES {
            return Err(format!(
                "consumer {queue:?}: max_retries must be at most {MAX_RETRIES}"
            ));
        }
        let retry_delay = self.retry_delay.unwrap_or(Duration::from_secs(5));
        if !(MIN_RETRY_DELAY..=MAX_RETRY_DELAY).contains(&retry_delay) {
            return Err(format!(
                "consumer {queue:?}: retry_delay must be from 100ms to 24h"
            ));
        }
        let concurrency = self.concurrency.unwrap_or(1);
        if !(1..=MAX_CONCURRENCY).contains(&concurrency) {
            return Err(format!(
                "consumer {queue:?}: concurrency must be from 1 to {MAX_CONCURRENCY}"
            ));
        }
        Ok(ConsumerConfig {
            queue,
            batch,
            max_retries,
            retry_delay,
            concurrency,
        })
    }
}

/// The `consumer` array of an app table, each validated, queues unique,
/// at most [`MAX_CONSUMERS`].
pub(super) fn consumers<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Vec<ConsumerConfig>, D::Error> {
    use serde::de::Error;
    let raw = Vec::<RawConsumer>::deserialize(deserializer)?;
    if raw.len() > MAX_CONSUMERS {
        return Err(D::Error::custom(format!(
            "{} consumers: an app may have at most {MAX_CONSUMERS}",
            raw.len()
        )));
    }
    let mut consumers: Vec<ConsumerConfig> = Vec::with_capacity(raw.len());
    for consumer in raw {
        let consumer = consumer.validate().map_err(D::Error::custom)?;
        if consumers.iter().any(|known| known.queue == consumer.queue) {
            return Err(D::Error::custom(format!(
                "two consumers read the queue {:?}",
                consumer.queue
            )));
        }
        consumers.push(consumer);
    }
    Ok(consumers)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(table: &str) -> Result<Vec<ConsumerConfig>, String> {
        #[derive(Deserialize)]
        struct Tables {
            #[serde(deserialize_with = "consumers")]
            consumer: Vec<ConsumerConfig>,
        }
        toml::from_str::<Tables>(table)
            .map(|tables| tables.consumer)
            .map_err(|err| err.to_string())
    }

    #[test]
    fn a_consumer_has_defaults_and_bounds() {
        let consumers = parse("[[consumer]]\nqueue = \"emails\"\n").expect("parsed");
        assert_eq!(
            consumers,
            [ConsumerConfig {
                queue: "emails".into(),
                batch: 10,
                max_retries: 3,
                retry_delay: Duration::from_secs(5),
                concurrency: 1,
            }]
        );
        for (table, refusal) in [
            ("queue = \"a b\"", "1 to 64 letters"),
            ("queue = \"q\"\nbatch = 0", "batch must be from 1 to 100"),
            ("queue = \"q\"\nbatch = 101", "batch must be from 1 to 100"),
            (
                "queue = \"q\"\nmax_retries = 101",
                "max_retries must be at most 100",
            ),
            (
                "queue = \"q\"\nretry_delay = \"25h\"",
                "retry_delay must be from 100ms to 24h",
            ),
            (
                "queue = \"q\"\nretry_delay = \"10ms\"",
                "retry_delay must be from 100ms to 24h",
            ),
            (
                "queue = \"q\"\nconcurrency = 17",
                "concurrency must be from 1 to 16",
            ),
        ] {
            let refused = parse(&format!("[[consumer]]\n{table}\n")).expect_err(table);
            assert!(refused.contains(refusal), "{table}: {refused}");
        }
        let twice = parse("[[consumer]]\nqueue = \"q\"\n[[consumer]]\nqueue = \"q\"\n");
        assert!(twice.expect_err("refused").contains("two consumers read"));
    }
}

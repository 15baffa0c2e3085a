//! Pub/sub across hosts, on Redis (`[server.backend] kind = "redis"`).
//!
//! Each topic is a Redis stream, `squall:ps:{LEN:APP}:TOPIC`, whose entries
//! carry the message's id and payload. A publish is one Lua script: the
//! topic's next id from a counter beside the stream, and the entry added
//! (the stream trimmed to the topic's history). Ids are therefore
//! monotonic per topic whichever host publishes, and the history is
//! shared, so a long poll's cursor works on any host.
//!
//! Every host follows the streams of the topics it knows (with waiters,
//! subscribers or history) with one blocking `XREAD`, and hands what it
//! reads to its own broker, which builds each message's frames once for
//! its sockets. A topic followed for the first time first catches up with
//! the stream's history. Entries are read from the last one seen, so a
//! reconnection after Redis comes back neither loses what Redis kept nor
//! delivers a message twice (the broker takes in only newer ids).

use crate::broker::{AppTopics, Broker, Deliver, TopicKey};
use bytes::Bytes;
use redis::aio::{ConnectionManager, ConnectionManagerConfig, MultiplexedConnection};
use redis::{AsyncConnectionConfig, Script, Value};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock, PoisonError, Weak};
use std::time::Duration;

/// How long a call waits for Redis before failing.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(5);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// How long one blocking read waits for new entries (new topics to follow
/// are picked up between reads).
const READ_BLOCK_MS: u64 = 200;
/// Entries taken from one stream per read: with payloads of up to 1 MiB,
/// what one read may bring in stays bounded (a busy topic is read again
/// at once).
const READ_COUNT: usize = 32;
/// Entries read per page when a topic is caught up.
const CATCH_UP_PAGE: usize = 16;
/// How long a topic's stream outlives its last publish.
const STREAM_LIFETIME_SECS: u64 = 24 * 3600;

/// A topic this host follows.
struct Followed {
    stream: String,
    /// The last entry read (a stream id, `0-0` before any).
    last: String,
    fence: Arc<AppTopics>,
}

/// The link between this host's broker and the others', through Redis.
pub(crate) struct Relay {
    client: redis::Client,
    connection: tokio::sync::OnceCell<ConnectionManager>,
    publish: Script,
    broker: Arc<Broker>,
    followed: Mutex<HashMap<TopicKey, Followed>>,
    /// Topics being caught up, so two callers do it once.
    catching_up: tokio::sync::Mutex<()>,
    reader: OnceLock<()>,
    me: Weak<Relay>,
}

impl Relay {
    /// A relay through the Redis at `url` for `broker`.
    pub(crate) fn new(url: &str, broker: Arc<Broker>) -> anyhow::Result<Arc<Relay>> {
        let client =
            redis::Client::open(url).map_err(|err| anyhow::anyhow!("server.backend.url: {err}"))?;
        Ok(Arc::new_cyclic(|me| Relay {
            client,
            connection: tokio::sync::OnceCell::new(),
            publish: Script::new(PUBLISH),
            broker,
            followed: Mutex::new(HashMap::new()),
            catching_up: tokio::sync::Mutex::new(()),
            reader: OnceLock::new(),
            me: me.clone(),
        }))
    }

    async fn connection(&self) -> Result<ConnectionManager, String> {
        let config = ConnectionManagerConfig::new()
            .set_response_timeout(Some(RESPONSE_TIMEOUT))
            .set_connection_timeout(Some(CONNECT_TIMEOUT))
            .set_number_of_retries(2);
        self.connection
            .get_or_try_init(|| ConnectionManager::new_with_config(self.client.clone(), config))
            .await
            .cloned()
            .map_err(|err| err.to_string())
    }

    /// Publish `payload` to `key`, keeping `history` messages: its id.
    pub(crate) async fn publish(
        &self,
        key: &TopicKey,
        payload: &[u8],
        history: usize,
    ) -> Result<u64, String> {
        let mut connection = self.connection().await?;
        let base = stream_of(key);
        self.publish
            .arg(&base)
            .arg(payload)
            .arg(history.max(1))
            .arg(STREAM_LIFETIME_SECS)
            .invoke_async::<u64>(&mut connection)
            .await
            .map_err(|err| err.to_string())
    }

    /// Follow `key` from now on (its history caught up first), feeding what
    /// is published to it anywhere to this host's broker.
    pub(crate) async fn follow(
        &self,
        key: &TopicKey,
        fence: &Arc<AppTopics>,
    ) -> Result<(), String> {
        if self.is_followed(key) {
            return Ok(());
        }
        let _one_at_a_time = self.catching_up.lock().await;
        if self.is_followed(key) {
            return Ok(());
        }
        let stream = format!("{}:log", stream_of(key));
        let mut connection = self.connection().await?;
        // Newest first, a page at a time, no more than the app's history
        // may keep in bytes: what is read is bounded before it is taken in.
        let mut newest_first: Vec<Entry> = Vec::new();
        let (mut bytes, budget) = (0u64, fence.max_bytes());
        let mut before = "+".to_owned();
        while bytes < budget && newest_first.len() < fence.history() {
            let page: Value = redis::cmd("XREVRANGE")
                .arg(&stream)
                .arg(&before)
                .arg("-")
                .arg("COUNT")
                .arg(CATCH_UP_PAGE)
                .query_async(&mut connection)
                .await
                .map_err(|err| err.to_string())?;
            let page = entries_of(&page);
            let Some((oldest, _, _)) = page.last() else {
                break;
            };
            before = format!("({oldest}");
            let last_page = page.len() < CATCH_UP_PAGE;
            for entry in page {
                bytes += entry.2.len() as u64;
                newest_first.push(entry);
            }
            if last_page {
                break;
            }
        }
        let mut last = "0-0".to_owned();
        // The newest entry read is where following starts.
        if let Some((newest, _, _)) = newest_first.first() {
            last = newest.clone();
        }
        for (_, id, payload) in newest_first.into_iter().rev() {
            let _ = self
                .broker
                .take_in(key, id, payload, fence, Deliver::HistoryOnly);
        }
        self.followed
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(
                key.clone(),
                Followed {
                    stream,
                    last,
                    fence: fence.clone(),
                },
            );
        self.reader.get_or_init(|| {
            tokio::spawn(read_streams(self.me.clone()));
        });
        Ok(())
    }

    /// Follow `key` for a subscriber: if Redis cannot be reached now, try
    /// again every second for as long as the topic is kept here.
    pub(crate) async fn keep_following(&self, key: &TopicKey, fence: &Arc<AppTopics>) {
        while let Err(why) = self.follow(key, fence).await {
            tracing::debug!(%why, "a subscribed topic cannot be followed across hosts yet");
            tokio::time::sleep(Duration::from_secs(1)).await;
            if !self.broker.has_topic(key) {
                return;
            }
        }
    }

    fn is_followed(&self, key: &TopicKey) -> bool {
        self.followed
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .contains_key(key)
    }

    /// The streams to read now: forget topics the broker no longer keeps.
    fn to_read(&self) -> Vec<(TopicKey, String, String)> {
        let mut followed = self.followed.lock().unwrap_or_else(PoisonError::into_inner);
        followed.retain(|key, _| self.broker.has_topic(key));
        followed
            .iter()
            .map(|(key, topic)| (key.clone(), topic.stream.clone(), topic.last.clone()))
            .collect()
    }

    /// Hand what was read to the broker, and remember where each stream is.
    fn took(&self, key: &TopicKey, entries: Vec<Entry>) {
        let Some(fence) = self.fence_of(key) else {
            return;
        };
        let mut last = None;
        for (entry, id, payload) in entries {
            if let Err(refused) = self
                .broker
                .take_in(key, id, payload, &fence, Deliver::ToAll)
            {
                tracing::debug!(%refused, "a message from another host was not kept");
            }
            last = Some(entry);
        }
        if let Some(last) = last
            && let Some(topic) = self
                .followed
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .get_mut(key)
        {
            topic.last = last;
        }
    }

    fn fence_of(&self, key: &TopicKey) -> Option<Arc<AppTopics>> {
        self.followed
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(key)
            .map(|topic| topic.fence.clone())
    }
}

/// Read every followed stream, one blocking `XREAD` at a time, for as
/// long as the relay lives; on a Redis error, wait and connect again
/// (reading on from the last entry seen).
async fn read_streams(relay: Weak<Relay>) {
    let mut connection: Option<MultiplexedConnection> = None;
    loop {
        let Some(this) = relay.upgrade() else { return };
        let streams = this.to_read();
        if streams.is_empty() {
            drop(this);
            tokio::time::sleep(Duration::from_millis(READ_BLOCK_MS)).await;
            continue;
        }
        if connection.is_none() {
            // Its own connection: a blocking read would hold up others.
            let config = AsyncConnectionConfig::new()
                .set_response_timeout(Some(RESPONSE_TIMEOUT))
                .set_connection_timeout(Some(CONNECT_TIMEOUT));
            match this
                .client
                .get_multiplexed_async_connection_with_config(&config)
                .await
            {
                Ok(opened) => connection = Some(opened),
                Err(err) => {
                    tracing::debug!(%err, "pub/sub cannot reach Redis; trying again");
                    drop(this);
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    continue;
                }
            }
        }
        let Some(reading) = connection.as_mut() else {
            continue;
        };
        let mut command = redis::cmd("XREAD");
        command
            .arg("COUNT")
            .arg(READ_COUNT)
            .arg("BLOCK")
            .arg(READ_BLOCK_MS)
            .arg("STREAMS");
        for (_, stream, _) in &streams {
            command.arg(stream);
        }
        for (_, _, last) in &streams {
            command.arg(last);
        }
        match command.query_async::<Value>(reading).await {
            Ok(answer) => {
                for (stream, entries) in streams_of(&answer) {
                    if let Some((key, _, _)) = streams.iter().find(|(_, name, _)| *name == stream) {
                        this.took(key, entries);
                    }
                }
            }
            Err(err) => {
                tracing::debug!(%err, "pub/sub lost Redis; reconnecting");
                connection = None;
                drop(this);
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    }
}

/// Where a topic's keys start: the app's name prefixed by its length (no
/// app reaches another's topics), then the topic.
fn stream_of(key: &TopicKey) -> String {
    format!(
        "squall:ps:{{{}:{}}}:{}",
        key.app().len(),
        key.app(),
        key.topic()
    )
}

/// One stream entry: its entry id, the message's id, and the payload.
type Entry = (String, u64, Bytes);

/// The entries of an `XRANGE` answer.
fn entries_of(value: &Value) -> Vec<Entry> {
    let Value::Array(entries) = value else {
        return Vec::new();
    };
    entries
        .iter()
        .filter_map(|entry| {
            let Value::Array(parts) = entry else {
                return None;
            };
            let [entry_id, Value::Array(fields)] = parts.as_slice() else {
                return None;
            };
            let entry_id = text(entry_id)?;
            let mut id = None;
            let mut payload = None;
            for pair in fields.chunks(2) {
                match (pair.first().and_then(text).as_deref(), pair.get(1)) {
                    (Some("id"), Some(value)) => id = text(value)?.parse::<u64>().ok(),
                    (Some("p"), Some(Value::BulkString(bytes))) => {
                        payload = Some(Bytes::copy_from_slice(bytes));
                    }
                    _ => {}
                }
            }
            Some((entry_id, id?, payload?))
        })
        .collect()
}

/// The streams of an `XREAD` answer, with their entries.
fn streams_of(value: &Value) -> Vec<(String, Vec<Entry>)> {
    let items: Vec<(&Value, &Value)> = match value {
        Value::Array(streams) => streams
            .iter()
            .filter_map(|stream| match stream {
                Value::Array(pair) if pair.len() == 2 => Some((&pair[0], &pair[1])),
                _ => None,
            })
            .collect(),
        Value::Map(pairs) => pairs
            .iter()
            .map(|(name, entries)| (name, entries))
            .collect(),
        _ => Vec::new(),
    };
    items
        .into_iter()
        .filter_map(|(name, entries)| Some((text(name)?, entries_of(entries))))
        .collect()
}

fn text(value: &Value) -> Option<String> {
    match value {
        Value::BulkString(bytes) => String::from_utf8(bytes.clone()).ok(),
        Value::SimpleString(text) => Some(text.clone()),
        _ => None,
    }
}

/// The next id of the topic, and its entry in the stream (trimmed to the
/// topic's history); both keys kept for a day after the last publish.
/// ARGV: base, payload, history, lifetime (s).
const PUBLISH: &str = r#"
local base, payload, history, lifetime = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local id = redis.call('INCR', base .. ':seq')
redis.call('XADD', base .. ':log', 'MAXLEN', history, '*', 'id', id, 'p', payload)
redis.call('EXPIRE', base .. ':seq', lifetime)
redis.call('EXPIRE', base .. ':log', lifetime)
return id
"#;

//! Pub/sub across hosts, on Redis (`[server.backend] kind = "redis"`).
//!
//! Each topic `T` of app `A` lives under `squall:ps:{LEN:A}:T`: a counter
//! (`…:seq`) numbering its messages, a stream (`…:index`) whose entries
//! carry each message's id and size, and each message's payload in a key
//! of its own (`…:m:ID`). A publish is one Lua script: the next id, the
//! entry and the payload added, the topic trimmed to its history, and the
//! app kept within its `pubsub_history_bytes` across all its topics (a
//! hash `squall:ps:{LEN:A}:held` counts what each topic keeps), so one app
//! cannot fill the Redis every host and app share. Ids are monotonic per
//! topic whichever host publishes, and the history is shared, so a long
//! poll's cursor works on any host.
//!
//! Every host follows the streams of the topics it knows (with waiters,
//! subscribers or history) with one blocking `XREAD`, which brings only
//! ids and sizes, then reads the payloads a bounded number of bytes at a
//! time and hands them to its own broker, which builds each message's
//! frames once for its sockets. A topic followed for the first time first
//! catches up with the stream's history. Entries are read from the last one
//! seen, so a reconnection after Redis comes back neither loses what Redis
//! kept nor delivers a message twice (the broker takes in only newer ids).

use crate::broker::{AppTopics, Broker, Deliver, TopicKey};
use crate::redis_connection::{LazyConnection, SpawnedOnce, connection_of_its_own, spawn_once};
use bytes::Bytes;
use redis::aio::{ConnectionManager, MultiplexedConnection};
use redis::{Script, Value};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock, PoisonError, Weak};
use std::time::Duration;

/// How long one blocking read waits for new entries (new topics to follow
/// are picked up between reads).
const READ_BLOCK_MS: u64 = 200;
/// Entries (ids and sizes) taken from one stream per read (a busy topic
/// is read again at once).
const READ_COUNT: usize = 32;
/// Payload bytes one read of payloads brings in at most (a payload larger
/// alone is read alone).
const READ_BYTES: u64 = 4 << 20;
/// What Redis keeps for a message besides its payload (its stream entry
/// and its payload's key), counted against the app's history bytes.
const MESSAGE_OVERHEAD: u64 = 160;
/// What Redis keeps for a topic while its keys exist (its counter and its
/// stream, even emptied), counted against the app's history bytes.
const TOPIC_COST: u64 = 512;
/// The name of each host's reading connection in Redis's `CLIENT LIST`:
/// it exists once the host follows a topic.
pub(crate) const READER_NAME: &str = "squall-pubsub-reader";
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
    connection: LazyConnection,
    publish: Script,
    broker: Arc<Broker>,
    followed: Mutex<HashMap<TopicKey, Followed>>,
    /// Topics whose history is being caught up.
    catching_up: Mutex<HashMap<TopicKey, SpawnedOnce<()>>>,
    reader: OnceLock<()>,
    me: Weak<Relay>,
}

impl Relay {
    /// A relay through the Redis at `url` for `broker`.
    pub(crate) fn new(url: &str, broker: Arc<Broker>) -> anyhow::Result<Arc<Relay>> {
        let client =
            redis::Client::open(url).map_err(|err| anyhow::anyhow!("server.backend.url: {err}"))?;
        Ok(Arc::new_cyclic(|me| Relay {
            connection: LazyConnection::new(client.clone()),
            client,
            publish: Script::new(PUBLISH),
            broker,
            followed: Mutex::new(HashMap::new()),
            catching_up: Mutex::new(HashMap::new()),
            reader: OnceLock::new(),
            me: me.clone(),
        }))
    }

    async fn connection(&self) -> Result<ConnectionManager, String> {
        self.connection.get().await
    }

    /// Publish `payload` to `key`, keeping `history` messages and, over
    /// all the app's topics, `budget` bytes: its id, or `None` if the
    /// app's other topics hold the whole budget.
    pub(crate) async fn publish(
        &self,
        key: &TopicKey,
        payload: &[u8],
        history: usize,
        budget: u64,
    ) -> Result<Option<u64>, String> {
        let mut connection = self.connection().await?;
        let id = self
            .publish
            .arg(app_of(key))
            .arg(stream_of(key))
            .arg(key.topic())
            .arg(payload)
            .arg(history.max(1))
            .arg(budget)
            .arg(STREAM_LIFETIME_SECS)
            .arg(MESSAGE_OVERHEAD)
            .arg(TOPIC_COST)
            .invoke_async::<u64>(&mut connection)
            .await
            .map_err(|err| err.to_string())?;
        Ok((id > 0).then_some(id))
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
        let catching_up = {
            let mut catching_up = self
                .catching_up
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            // One that has finished (it may end before it is listed) is
            // not waited for: failed, it is tried again.
            match catching_up
                .get(key)
                .filter(|running| running.peek().is_none())
            {
                Some(running) => running.clone(),
                None => {
                    let Some(relay) = self.me.upgrade() else {
                        return Err("the host is stopping".to_owned());
                    };
                    let (followed, fence) = (key.clone(), fence.clone());
                    let running = spawn_once(async move {
                        let key = followed;
                        let caught_up = relay.catch_up(&key, &fence).await;
                        relay
                            .catching_up
                            .lock()
                            .unwrap_or_else(PoisonError::into_inner)
                            .remove(&key);
                        caught_up
                    });
                    catching_up.insert(key.clone(), running.clone());
                    running
                }
            }
        };
        catching_up.await
    }

    /// Take in `key`'s history, newest within the app's fence, then follow
    /// its stream from the newest entry read.
    async fn catch_up(&self, key: &TopicKey, fence: &Arc<AppTopics>) -> Result<(), String> {
        if self.is_followed(key) {
            return Ok(());
        }
        let stream = format!("{}:index", stream_of(key));
        let mut connection = self.connection().await?;
        // Newest first, a page at a time, no more than the app's history
        // may keep in bytes: what is read is bounded before it is taken in.
        let mut newest_first: Vec<Entry> = Vec::new();
        let (mut bytes, budget) = (0u64, fence.max_bytes());
        let mut before = "+".to_owned();
        'pages: while newest_first.len() < fence.history() {
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
            let Some(oldest) = page.last() else {
                break;
            };
            before = format!("({}", oldest.entry);
            let last_page = page.len() < CATCH_UP_PAGE;
            for entry in page {
                bytes += entry.size;
                if bytes > budget || newest_first.len() >= fence.history() {
                    break 'pages;
                }
                newest_first.push(entry);
            }
            if last_page {
                break;
            }
        }
        let mut last = "0-0".to_owned();
        // The newest entry read is where following starts.
        if let Some(newest) = newest_first.first() {
            last = newest.entry.clone();
        }
        newest_first.reverse();
        payloads(&mut connection, key, &newest_first, |id, payload| {
            let _ = self
                .broker
                .take_in(key, id, payload, fence, Deliver::HistoryOnly);
        })
        .await?;
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

    /// Read the payloads of `entries` (a bounded number of bytes at a
    /// time), hand them to the broker, and remember where the stream is.
    async fn take(
        &self,
        connection: &mut MultiplexedConnection,
        key: &TopicKey,
        entries: Vec<Entry>,
    ) -> Result<(), String> {
        let Some(fence) = self.fence_of(key) else {
            return Ok(());
        };
        payloads(connection, key, &entries, |id, payload| {
            if let Err(refused) = self
                .broker
                .take_in(key, id, payload, &fence, Deliver::ToAll)
            {
                tracing::debug!(%refused, "a message from another host was not kept");
            }
        })
        .await?;
        if let Some(last) = entries.last()
            && let Some(topic) = self
                .followed
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .get_mut(key)
        {
            topic.last = last.entry.clone();
        }
        Ok(())
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
            // Named, so that one can see a host follows topics.
            match connection_of_its_own(&this.client, READER_NAME).await {
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
        let answer = match command.query_async::<Value>(reading).await {
            Ok(answer) => answer,
            Err(err) => {
                tracing::debug!(%err, "pub/sub lost Redis; reconnecting");
                connection = None;
                drop(this);
                tokio::time::sleep(Duration::from_millis(500)).await;
                continue;
            }
        };
        for (stream, entries) in streams_of(&answer) {
            let Some((key, _, _)) = streams.iter().find(|(_, name, _)| *name == stream) else {
                continue;
            };
            if let Err(err) = this.take(reading, key, entries).await {
                tracing::debug!(%err, "pub/sub lost Redis while reading payloads; reconnecting");
                connection = None;
                break;
            }
        }
    }
}

/// Where an app's keys start: its name prefixed by its length (no app
/// reaches another's topics).
fn app_of(key: &TopicKey) -> String {
    format!("squall:ps:{{{}:{}}}", key.app().len(), key.app())
}

/// Where a topic's keys start: its app's, then the topic.
fn stream_of(key: &TopicKey) -> String {
    format!("{}:{}", app_of(key), key.topic())
}

/// One stream entry: its entry id, and the message's id and size.
struct Entry {
    entry: String,
    id: u64,
    size: u64,
}

/// The payloads of `entries`, in order, read a bounded number of bytes at
/// a time and each batch handed to `deliver` before the next is read; a
/// message whose payload is gone (trimmed or expired since) is left out.
async fn payloads(
    connection: &mut impl redis::aio::ConnectionLike,
    key: &TopicKey,
    entries: &[Entry],
    mut deliver: impl FnMut(u64, Bytes),
) -> Result<(), String> {
    let base = stream_of(key);
    let mut rest = entries;
    while !rest.is_empty() {
        // At least one, then as many as fit in READ_BYTES.
        let mut bytes = 0u64;
        let count = rest
            .iter()
            .take_while(|entry| {
                bytes += entry.size;
                bytes <= READ_BYTES
            })
            .count()
            .max(1);
        let (batch, after) = rest.split_at(count);
        rest = after;
        let names: Vec<String> = batch
            .iter()
            .map(|entry| format!("{base}:m:{}", entry.id))
            .collect();
        let values: Vec<Option<Vec<u8>>> = redis::cmd("MGET")
            .arg(&names)
            .query_async(connection)
            .await
            .map_err(|err| err.to_string())?;
        for (entry, value) in batch.iter().zip(values) {
            if let Some(value) = value {
                deliver(entry.id, Bytes::from(value));
            }
        }
    }
    Ok(())
}

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
            let entry = text(entry_id)?;
            let (mut id, mut size) = (None, None);
            for pair in fields.chunks(2) {
                match (pair.first().and_then(text).as_deref(), pair.get(1)) {
                    (Some("id"), Some(value)) => id = text(value)?.parse::<u64>().ok(),
                    (Some("n"), Some(value)) => size = text(value)?.parse::<u64>().ok(),
                    _ => {}
                }
            }
            Some(Entry {
                entry,
                id: id?,
                size: size?,
            })
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

/// Publish a message: the topic's next id, its entry (id and size) and
/// its payload, the topic trimmed to its history, and the app's topics
/// together kept within its budget of bytes: each message counts its
/// payload and `overhead`, each topic `topic_cost` while its keys exist
/// (so many empty topics count too). This topic's oldest messages make
/// room; a topic whose keys expired is counted out. Returns the id, or 0,
/// with nothing changed, if the message cannot fit even once this topic
/// keeps nothing else. Every key is kept for a day after the last publish.
/// ARGV: app, base, topic, payload, history, budget, lifetime (s),
/// overhead, topic cost.
const PUBLISH: &str = r#"
local app, base, topic, payload = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local history, budget = tonumber(ARGV[5]), tonumber(ARGV[6])
local lifetime, overhead, topic_cost = tonumber(ARGV[7]), tonumber(ARGV[8]), tonumber(ARGV[9])
local held, index = app .. ':held', base .. ':index'
local size = #payload + overhead

local function total() return tonumber(redis.call('HGET', held, 'total') or '0') end
local function kept(name) return tonumber(redis.call('HGET', held, 't:' .. name) or '0') end

-- Change the app's total by `bytes`, never below zero.
local function add_to_total(bytes)
  if bytes ~= 0 and redis.call('HINCRBY', held, 'total', bytes) < 0 then
    redis.call('HSET', held, 'total', 0)
  end
end

-- A topic whose keys are gone: what it held is counted out.
local function forget(name)
  local bytes = kept(name)
  redis.call('HDEL', held, 't:' .. name)
  add_to_total(-bytes)
end

-- This topic's oldest message dropped; false if it keeps none.
local function drop_oldest()
  local oldest = redis.call('XRANGE', index, '-', '+', 'COUNT', 1)[1]
  if not oldest then return false end
  local fields, id, n = oldest[2], '', 0
  for i = 1, #fields, 2 do
    if fields[i] == 'id' then id = fields[i + 1] elseif fields[i] == 'n' then n = tonumber(fields[i + 1]) end
  end
  redis.call('XDEL', index, oldest[1])
  redis.call('DEL', base .. ':m:' .. id)
  redis.call('HINCRBY', held, 't:' .. topic, -(n + overhead))
  add_to_total(-(n + overhead))
  return true
end

if redis.call('EXISTS', index) == 0 then forget(topic) end
local new_topic = kept(topic) == 0
local need = size + (new_topic and topic_cost or 0)
if total() + need > budget then
  -- Other topics whose keys expired, a bounded look at a time.
  local scan = redis.call('HSCAN', held, redis.call('HGET', held, 'cursor') or '0', 'COUNT', 64)
  redis.call('HSET', held, 'cursor', scan[1])
  for i = 1, #scan[2], 2 do
    local field = scan[2][i]
    if string.sub(field, 1, 2) == 't:' then
      local name = string.sub(field, 3)
      if name ~= topic and redis.call('EXISTS', app .. ':' .. name .. ':index') == 0 then
        forget(name)
      end
    end
  end
end
-- What this topic's messages hold could all make room; if even that is
-- not enough, refuse before dropping any.
local messages = new_topic and 0 or math.max(kept(topic) - topic_cost, 0)
if total() - messages + need > budget then return 0 end
while redis.call('XLEN', index) >= history do
  if not drop_oldest() then break end
end
while total() + need > budget do
  if not drop_oldest() then return 0 end
end
if new_topic then
  redis.call('HINCRBY', held, 't:' .. topic, topic_cost)
  add_to_total(topic_cost)
end
local id = redis.call('INCR', base .. ':seq')
redis.call('XADD', index, '*', 'id', id, 'n', #payload)
redis.call('SET', base .. ':m:' .. id, payload, 'EX', lifetime)
redis.call('HINCRBY', held, 't:' .. topic, size)
add_to_total(size)
redis.call('EXPIRE', base .. ':seq', lifetime)
redis.call('EXPIRE', index, lifetime)
redis.call('EXPIRE', held, lifetime)
return id
"#;

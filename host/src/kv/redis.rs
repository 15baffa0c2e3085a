//! The key-value store on Redis, for several hosts sharing one store
//! (`[server.backend] kind = "redis"`), with the embedded store's
//! semantics: each app's keys in a namespace no key name can leave,
//! writes all or nothing within the app's quota, atomic increments and
//! compare-and-swap, TTLs, and listing by prefix in key order with a
//! cursor.
//!
//! Each namespace `N` lives under `squall:kv:{LEN:N}` (the braces keep an
//! app's keys in one hash slot): `…:v:KEY` holds a value (with Redis's own
//! expiry), `…:i` is a sorted set of the keys (for ordered listing), `…:s`
//! a hash of each key's size, `…:e` a sorted set of expiry times, and
//! `…:u` the namespace's usage. Every change is one Lua script, so it is
//! atomic; a sweep counts expired keys out of the usage.

use super::{
    KvBackend, KvFailure, KvFuture, NamespaceUsage, Page, Quota, Write, WriteOutcome, now_ms,
};
use crate::redis_connection::{CONNECT_TIMEOUT, LazyConnection};
use redis::aio::ConnectionManager;
use redis::{AsyncCommands, Script, Value};
use std::collections::HashSet;
use std::sync::{Arc, Mutex, OnceLock, PoisonError, Weak};
use std::time::Duration;

/// Expired keys counted out of a namespace's usage per sweep (one atomic
/// script: other clients wait no longer than one batch).
const SWEEP_BATCH: u32 = 500;
/// Sweeps of one namespace per second at most, while each finds a full
/// batch: expiry keeps up with up to this many batches a second.
const SWEEPS_PER_SECOND: u32 = 40;

/// A Redis store shared by every app of the host (and other hosts).
pub(crate) struct RedisKv {
    /// Set up on first use, inside the server's runtime; it reconnects by
    /// itself when Redis comes back.
    connection: LazyConnection,
    apply: Script,
    get_many: Script,
    list: Script,
    sweep: Script,
    /// The namespaces this host has written to: the sweeper's round.
    written: Mutex<HashSet<String>>,
    /// The sweeper, started with the first write.
    sweeper: OnceLock<()>,
    /// Itself, for the sweeper to hold without keeping it alive.
    me: Weak<RedisKv>,
}

impl RedisKv {
    /// Connect to `url` (`redis://`, `rediss://` for TLS; a password in
    /// the URL): an error now if Redis cannot be reached or refuses us.
    pub(crate) fn connect(url: &str) -> anyhow::Result<Arc<RedisKv>> {
        let client =
            redis::Client::open(url).map_err(|err| anyhow::anyhow!("server.backend.url: {err}"))?;
        // A clear error at start rather than a host that cannot keep state.
        let mut probe = client
            .get_connection_with_timeout(CONNECT_TIMEOUT)
            .map_err(|err| anyhow::anyhow!("cannot reach Redis at the backend url: {err}"))?;
        redis::cmd("PING")
            .query::<String>(&mut probe)
            .map_err(|err| anyhow::anyhow!("Redis at the backend url does not answer: {err}"))?;
        Ok(Arc::new_cyclic(|me| RedisKv {
            connection: LazyConnection::new(client),
            apply: Script::new(APPLY),
            get_many: Script::new(GET_MANY),
            list: Script::new(LIST),
            sweep: Script::new(SWEEP),
            written: Mutex::new(HashSet::new()),
            sweeper: OnceLock::new(),
            me: me.clone(),
        }))
    }

    /// The shared connection (set up on first use).
    async fn connection(&self) -> Result<ConnectionManager, KvFailure> {
        self.connection.get().await.map_err(KvFailure::Unavailable)
    }

    /// Note a namespace written to, and start the sweeper with the first.
    fn written_to(&self, namespace: &str) {
        let mut written = self.written.lock().unwrap_or_else(PoisonError::into_inner);
        if !written.contains(namespace) {
            written.insert(namespace.to_owned());
        }
        drop(written);
        self.sweeper.get_or_init(|| {
            tokio::spawn(sweep_every_second(self.me.clone()));
        });
    }

    /// Count the expired keys of `namespace` out of its usage, a batch at
    /// a time for as long as batches come full (up to
    /// [`SWEEPS_PER_SECOND`]): the work follows what expires.
    async fn sweep(&self, namespace: &str) -> Result<(), KvFailure> {
        let mut connection = self.connection().await?;
        for _ in 0..SWEEPS_PER_SECOND {
            let swept = self
                .sweep
                .arg(base(namespace))
                .arg(now_ms())
                .arg(SWEEP_BATCH)
                .invoke_async::<i64>(&mut connection)
                .await
                .map_err(unavailable)?;
            if swept < i64::from(SWEEP_BATCH) {
                break;
            }
        }
        Ok(())
    }
}

/// Every second, sweep each namespace this host has written to; stop when
/// the store is gone.
async fn sweep_every_second(store: Weak<RedisKv>) {
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let Some(store) = store.upgrade() else { return };
        let namespaces: Vec<String> = store
            .written
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .cloned()
            .collect();
        for namespace in namespaces {
            if let Err(err) = store.sweep(&namespace).await {
                tracing::debug!(%err, "key-value expiry on Redis failed; it is tried again");
                break;
            }
        }
    }
}

/// Where the namespace's keys start: its name prefixed by its length, so
/// no name is a prefix of another's keys.
fn base(namespace: &str) -> String {
    format!("squall:kv:{{{}:{namespace}}}", namespace.len())
}

fn value_key(namespace: &str, key: &str) -> Vec<u8> {
    let mut name = base(namespace).into_bytes();
    name.extend_from_slice(b":v:");
    name.extend_from_slice(key.as_bytes());
    name
}

fn unavailable(err: redis::RedisError) -> KvFailure {
    KvFailure::Unavailable(err.to_string())
}

impl KvBackend for RedisKv {
    fn get_many(
        &self,
        namespace: &str,
        keys: Vec<String>,
        most: u64,
    ) -> KvFuture<'_, Vec<Option<Vec<u8>>>> {
        let base = base(namespace);
        Box::pin(async move {
            if keys.is_empty() {
                return Ok(Vec::new());
            }
            let mut connection = self.connection().await?;
            let mut invocation = self.get_many.prepare_invoke();
            invocation.arg(&base).arg(most);
            for key in &keys {
                invocation.arg(key);
            }
            let answer: Value = invocation
                .invoke_async(&mut connection)
                .await
                .map_err(unavailable)?;
            decode_values(answer, keys.len(), most)
        })
    }

    fn exists(&self, namespace: &str, key: String) -> KvFuture<'_, bool> {
        let name = value_key(namespace, &key);
        Box::pin(async move {
            let mut connection = self.connection().await?;
            connection.exists(name).await.map_err(unavailable)
        })
    }

    fn list(
        &self,
        namespace: &str,
        prefix: String,
        cursor: Option<String>,
        limit: u32,
    ) -> KvFuture<'_, Page> {
        let base = base(namespace);
        Box::pin(async move {
            let mut connection = self.connection().await?;
            // The range of the prefix: from the prefix (or just after the
            // cursor) to the prefix followed by a byte no UTF-8 key has.
            let start = match cursor.filter(|cursor| cursor.as_str() >= prefix.as_str()) {
                Some(cursor) => [b"(".as_slice(), cursor.as_bytes()].concat(),
                None => [b"[".as_slice(), prefix.as_bytes()].concat(),
            };
            let end = [b"[".as_slice(), prefix.as_bytes(), &[0xff]].concat();
            let mut answer: Vec<String> = self
                .list
                .arg(&base)
                .arg(start)
                .arg(end)
                .arg(limit.saturating_add(1))
                .arg(super::MAX_SCANNED)
                .invoke_async::<Vec<String>>(&mut connection)
                .await
                .map_err(unavailable)?;
            // First the last entry looked at if the scan stopped early.
            let cut = match answer.is_empty() {
                true => String::new(),
                false => answer.remove(0),
            };
            let mut keys = answer;
            let cursor = if keys.len() > limit as usize {
                keys.truncate(limit as usize);
                keys.last().cloned()
            } else {
                Some(cut).filter(|cut| !cut.is_empty())
            };
            Ok(Page { keys, cursor })
        })
    }

    fn apply(
        &self,
        namespace: &str,
        writes: Vec<Write>,
        quota: Quota,
    ) -> KvFuture<'_, Vec<WriteOutcome>> {
        self.written_to(namespace);
        let base = base(namespace);
        Box::pin(async move {
            let mut connection = self.connection().await?;
            let mut invocation = self.apply.prepare_invoke();
            invocation
                .arg(&base)
                .arg(quota.max_keys)
                .arg(quota.max_bytes)
                .arg(now_ms())
                .arg(writes.len());
            for write in &writes {
                add_write(&mut invocation, write);
            }
            let answer: Vec<Value> = invocation
                .invoke_async(&mut connection)
                .await
                .map_err(unavailable)?;
            decode_applied(&answer, writes.len())
        })
    }

    fn usage(&self, namespace: &str) -> KvFuture<'_, NamespaceUsage> {
        let usage = format!("{}:u", base(namespace));
        Box::pin(async move {
            let mut connection = self.connection().await?;
            let (keys, bytes): (Option<i64>, Option<i64>) = redis::cmd("HMGET")
                .arg(&usage)
                .arg("keys")
                .arg("bytes")
                .query_async(&mut connection)
                .await
                .map_err(unavailable)?;
            Ok(NamespaceUsage {
                keys: u64::try_from(keys.unwrap_or(0)).unwrap_or(0),
                bytes: u64::try_from(bytes.unwrap_or(0)).unwrap_or(0),
            })
        })
    }
}

/// The get script's answer: `{"ok", values}` or `{"too-large"}`.
fn decode_values(answer: Value, keys: usize, most: u64) -> Result<Vec<Option<Vec<u8>>>, KvFailure> {
    let broken = || KvFailure::Unavailable("Redis answered the read script oddly".to_owned());
    let Value::Array(mut parts) = answer else {
        return Err(broken());
    };
    let values = parts.pop();
    match (parts.first(), values) {
        (Some(Value::BulkString(status)), Some(Value::Array(values)))
            if status == b"ok" && values.len() == keys =>
        {
            values
                .into_iter()
                .map(|value| match value {
                    Value::BulkString(bytes) => Ok(Some(bytes)),
                    Value::Nil => Ok(None),
                    _ => Err(broken()),
                })
                .collect()
        }
        (None, Some(Value::BulkString(status))) if status == b"too-large" => {
            Err(KvFailure::TooLarge(most))
        }
        _ => Err(broken()),
    }
}

/// One write as five script arguments: its kind, its key, and three
/// more whose meaning depends on the kind.
fn add_write(invocation: &mut redis::ScriptInvocation<'_>, write: &Write) {
    let none: &[u8] = b"";
    match write {
        Write::Set { key, value, ttl } => {
            let ttl = ttl.map_or(String::new(), |ttl| ttl.as_millis().to_string());
            invocation
                .arg("set")
                .arg(key)
                .arg(value.as_slice())
                .arg(ttl)
                .arg(none);
        }
        Write::Delete { key } => {
            invocation.arg("del").arg(key).arg(none).arg(none).arg(none);
        }
        Write::Increment { key, delta } => {
            invocation
                .arg("incr")
                .arg(key)
                .arg(delta.to_string())
                .arg(none)
                .arg(none);
        }
        Write::CompareAndSwap { key, expected, new } => {
            // A leading byte says present (1) or absent (0).
            let tagged = |value: &Option<Vec<u8>>| match value {
                Some(value) => [b"1".as_slice(), value].concat(),
                None => b"0".to_vec(),
            };
            invocation
                .arg("cas")
                .arg(key)
                .arg(tagged(expected))
                .arg(tagged(new))
                .arg(none);
        }
    }
}

/// The script's answer: `{"ok", outcome...}` or `{"quota"|"invalid", why}`.
fn decode_applied(answer: &[Value], writes: usize) -> Result<Vec<WriteOutcome>, KvFailure> {
    let text = |value: &Value| match value {
        Value::BulkString(bytes) => String::from_utf8_lossy(bytes).into_owned(),
        Value::SimpleString(text) => text.clone(),
        Value::Int(number) => number.to_string(),
        other => format!("{other:?}"),
    };
    let broken = || KvFailure::Unavailable("Redis answered the write script oddly".to_owned());
    let (status, rest) = answer.split_first().ok_or_else(broken)?;
    match text(status).as_str() {
        "ok" if rest.len() == writes => rest
            .iter()
            .map(|outcome| {
                let outcome = text(outcome);
                let (kind, detail) = outcome.split_at(outcome.len().min(1));
                Ok(match kind {
                    "S" => WriteOutcome::Stored,
                    "D" => WriteOutcome::Deleted(detail == "1"),
                    "W" => WriteOutcome::Swapped(detail == "1"),
                    "C" => WriteOutcome::Counter(detail.parse().map_err(|_| broken())?),
                    _ => return Err(broken()),
                })
            })
            .collect(),
        "quota" => Err(KvFailure::Quota(rest.first().map(text).unwrap_or_default())),
        "invalid" => Err(KvFailure::Invalid(
            rest.first().map(text).unwrap_or_default(),
        )),
        _ => Err(broken()),
    }
}

/// Apply a job all or nothing: read every key it touches, work out each
/// new value (increments checked by Redis's own INCRBY on a scratch key,
/// which refuses what is not a 64-bit integer), check the quota, then
/// write. ARGV: base, max keys, max bytes, now (ms), count, then five per
/// write (kind, key, a, b, c).
const APPLY: &str = r#"
local base, max_keys, max_bytes, now, count =
  ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local touched, order, out = {}, {}, {'ok'}
local scratch = base .. ':scratch'
for n = 0, count - 1 do
  local at = 6 + n * 5
  local kind, key, a, b = ARGV[at], ARGV[at + 1], ARGV[at + 2], ARGV[at + 3]
  local t = touched[key]
  if not t then
    local vkey = base .. ':v:' .. key
    local size = redis.call('HGET', base .. ':s', key)
    local value = redis.call('GET', vkey)
    local expires = 0
    if value then
      local left = redis.call('PTTL', vkey)
      if left > 0 then expires = now + left end
    end
    t = { before = size and tonumber(size) or false, value = value, expires = expires, changed = false }
    touched[key] = t
    order[#order + 1] = key
  end
  if kind == 'set' then
    t.value = a
    t.expires = (b ~= '') and (now + tonumber(b)) or 0
    t.changed = true
    out[#out + 1] = 'S'
  elseif kind == 'del' then
    out[#out + 1] = t.value and 'D1' or 'D0'
    t.value = false
    t.changed = true
  elseif kind == 'incr' then
    redis.call('SET', scratch, t.value or '0')
    local ok = pcall(redis.call, 'INCRBY', scratch, a)
    -- Read back as text: a Lua number would round a 64-bit integer.
    local new = redis.call('GET', scratch)
    redis.call('DEL', scratch)
    if not ok then
      if t.value and not string.match(t.value, '^-?%d+$') then
        return {'invalid', 'the value is not a decimal integer'}
      end
      return {'invalid', 'the increment overflows a 64-bit integer'}
    end
    t.value = new
    t.changed = true
    out[#out + 1] = 'C' .. new
  elseif kind == 'cas' then
    local current = t.value and ('1' .. t.value) or '0'
    if current == a then
      if string.sub(b, 1, 1) == '1' then t.value = string.sub(b, 2) else t.value = false end
      t.expires = 0
      t.changed = true
      out[#out + 1] = 'W1'
    else
      out[#out + 1] = 'W0'
    end
  end
end
local keys_delta, bytes_delta = 0, 0
for _, key in ipairs(order) do
  local t = touched[key]
  if t.before then keys_delta = keys_delta - 1; bytes_delta = bytes_delta - t.before end
  if t.value then keys_delta = keys_delta + 1; bytes_delta = bytes_delta + #key + #t.value end
end
local usage = redis.call('HMGET', base .. ':u', 'keys', 'bytes')
local keys = (tonumber(usage[1]) or 0) + keys_delta
local bytes = (tonumber(usage[2]) or 0) + bytes_delta
if keys_delta > 0 and keys > max_keys then
  return {'quota', "the app's store would hold " .. keys .. " keys, over its kv_max_keys of " .. max_keys}
end
if bytes_delta > 0 and bytes > max_bytes then
  return {'quota', "the app's store would hold " .. bytes .. " bytes, over its kv_max_bytes of " .. max_bytes}
end
for _, key in ipairs(order) do
  local t = touched[key]
  if t.changed then
    local vkey = base .. ':v:' .. key
    redis.call('ZREM', base .. ':e', key)
    if t.value then
      if t.expires > 0 then
        redis.call('SET', vkey, t.value, 'PXAT', t.expires)
        redis.call('ZADD', base .. ':e', t.expires, key)
      else
        redis.call('SET', vkey, t.value)
      end
      redis.call('HSET', base .. ':s', key, #key + #t.value)
      redis.call('ZADD', base .. ':i', 0, key)
    else
      redis.call('DEL', vkey)
      redis.call('HDEL', base .. ':s', key)
      redis.call('ZREM', base .. ':i', key)
    end
  end
end
if keys_delta ~= 0 then redis.call('HINCRBY', base .. ':u', 'keys', keys_delta) end
if bytes_delta ~= 0 then redis.call('HINCRBY', base .. ':u', 'bytes', bytes_delta) end
return out
"#;

/// The values of some keys, unless their sizes add up to more than
/// `most` bytes: then none is read (Redis builds no reply larger than
/// that). ARGV: base, most, then the keys.
const GET_MANY: &str = r#"
local base, most = ARGV[1], tonumber(ARGV[2])
local names, total = {}, 0
for n = 3, #ARGV do
  local name = base .. ':v:' .. ARGV[n]
  total = total + redis.call('STRLEN', name)
  if total > most then return {'too-large'} end
  names[#names + 1] = name
end
return {'ok', redis.call('MGET', unpack(names))}
"#;

/// Up to `want` live keys of the lexical range, in order (keys whose value
/// has expired are skipped), looking at no more than `scan` entries of the
/// index. The answer starts with the last entry looked at if the scan
/// stopped early ('' if not). ARGV: base, start, end, want, scan.
const LIST: &str = r#"
local base, start, stop, want, scan =
  ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4]), tonumber(ARGV[5])
local out, scanned, last = {''}, 0, ''
while true do
  local room = math.min(want - (#out - 1), scan - scanned)
  if room <= 0 then break end
  local batch = redis.call('ZRANGEBYLEX', base .. ':i', start, stop, 'LIMIT', 0, room)
  for _, key in ipairs(batch) do
    scanned = scanned + 1
    last = key
    if redis.call('EXISTS', base .. ':v:' .. key) == 1 then out[#out + 1] = key end
  end
  if #batch < room then return out end
  start = '(' .. last
end
if #out - 1 < want then out[1] = last end
return out
"#;

/// Count expired keys out of the index and the usage. ARGV: base, now, batch.
const SWEEP: &str = r#"
local base, now, batch = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local due = redis.call('ZRANGEBYSCORE', base .. ':e', '-inf', now, 'LIMIT', 0, batch)
for _, key in ipairs(due) do
  redis.call('ZREM', base .. ':e', key)
  if redis.call('EXISTS', base .. ':v:' .. key) == 0 then
    local size = redis.call('HGET', base .. ':s', key)
    if size then
      redis.call('HDEL', base .. ':s', key)
      redis.call('ZREM', base .. ':i', key)
      redis.call('HINCRBY', base .. ':u', 'keys', -1)
      redis.call('HINCRBY', base .. ':u', 'bytes', -tonumber(size))
    end
  end
end
return #due
"#;

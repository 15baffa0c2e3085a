//! A tiny Redis-protocol (RESP2) key-value server on the app's key-value
//! store: `redis-cli -p 6380` talks to it. It knows PING, ECHO, GET, SET
//! (with EX/PX), DEL, EXISTS, INCR, INCRBY, DECR, DECRBY, KEYS (`*` or a
//! `prefix*`), DBSIZE and QUIT; anything else is an error reply, as Redis
//! gives one. Commands come as RESP arrays (what `redis-cli` sends) or as
//! inline lines of words (`nc`, `redis-cli --pipe`). Each connection has an
//! instance for its life; its commands are answered in order (pipelining
//! works).

mod resp;

use redis_protocol::resp2::types::OwnedFrame as Frame;
use resp::{arguments, decode_frame, encoded, is_quit};
use squall_sdk::Router;
use squall_sdk::kv::{self, KvError};
use squall_sdk::tcp::{ReadError, TcpStream};
use std::time::Duration;

/// The largest command accepted, in bytes (a value and its key).
const MAX_COMMAND: usize = 1 << 20;
/// Keys listed per store call.
const PAGE: u32 = 1000;
/// The most keys KEYS answers with.
const MAX_KEYS: usize = 10_000;

fn app() -> Router {
    Router::new()
        .get("/", |_req| async {
            "A Redis-protocol key-value server: redis-cli -p 6380\n"
        })
        .tcp(serve)
}

async fn serve(mut stream: TcpStream) {
    loop {
        let command = match stream.read_frame(MAX_COMMAND, decode_frame).await {
            Ok(command) => command,
            Err(ReadError::Closed(_)) => return,
            Err(other) => {
                let _ = stream.write(encoded(&error(&other.to_string()))).await;
                return;
            }
        };
        let quit = is_quit(&command);
        let reply = match arguments(command) {
            // An empty inline line: Redis answers nothing.
            Some(arguments) if arguments.is_empty() => continue,
            Some(arguments) => execute(arguments).await,
            None => error("Protocol error: expected an array of bulk strings"),
        };
        if stream.write(encoded(&reply)).await.is_err() || quit {
            return;
        }
    }
}

fn ok() -> Frame {
    Frame::SimpleString(b"OK".to_vec())
}

fn error(message: &str) -> Frame {
    Frame::Error(format!("ERR {message}"))
}

fn wrong_arguments(name: &str) -> Frame {
    error(&format!("wrong number of arguments for '{name}' command"))
}

fn store_error(err: KvError) -> Frame {
    error(&err.to_string())
}

fn text(bytes: &[u8]) -> Option<&str> {
    std::str::from_utf8(bytes).ok()
}

fn integer(bytes: &[u8]) -> Option<i64> {
    text(bytes)?.parse().ok()
}

async fn execute(arguments: Vec<Vec<u8>>) -> Frame {
    let Some((name, rest)) = arguments.split_first() else {
        return error("empty command");
    };
    let name = String::from_utf8_lossy(name).to_ascii_lowercase();
    match (name.as_str(), rest) {
        ("ping", []) => Frame::SimpleString(b"PONG".to_vec()),
        ("ping" | "echo", [message]) => Frame::BulkString(message.clone()),
        ("quit", _) => ok(),
        ("get", [key]) => {
            with_key(key, |key| async move {
                match kv::get(&key).await {
                    Ok(Some(value)) => Frame::BulkString(value),
                    Ok(None) => Frame::Null,
                    Err(err) => store_error(err),
                }
            })
            .await
        }
        ("set", [key, value, options @ ..]) => set(key, value, options).await,
        ("del", keys) if !keys.is_empty() => {
            count(keys, |key| async move { kv::delete(&key).await }).await
        }
        ("exists", keys) if !keys.is_empty() => {
            count(keys, |key| async move { kv::exists(&key).await }).await
        }
        ("incr", [key]) => add(key, 1).await,
        ("decr", [key]) => add(key, -1).await,
        ("incrby" | "decrby", [key, delta]) => match integer(delta) {
            Some(delta) if name == "incrby" => add(key, delta).await,
            Some(delta) => add(key, delta.saturating_neg()).await,
            None => error("value is not an integer or out of range"),
        },
        ("keys", [pattern]) => keys(pattern).await,
        ("dbsize", []) => match all_keys("").await {
            Ok(keys) => Frame::Integer(i64::try_from(keys.len()).unwrap_or(i64::MAX)),
            Err(reply) => reply,
        },
        // redis-cli asks for command docs when it starts interactively.
        ("command", _) => Frame::Array(Vec::new()),
        (
            "ping" | "echo" | "get" | "set" | "del" | "exists" | "incr" | "decr" | "incrby"
            | "decrby" | "keys" | "dbsize",
            _,
        ) => wrong_arguments(&name),
        _ => error(&format!("unknown command '{name}'")),
    }
}

/// Run `call` with `key` as text; an error reply if it is not UTF-8.
async fn with_key<F, Fut>(key: &[u8], call: F) -> Frame
where
    F: FnOnce(String) -> Fut,
    Fut: Future<Output = Frame>,
{
    match text(key) {
        Some(key) => call(key.to_owned()).await,
        None => error("keys must be UTF-8 here"),
    }
}

async fn set(key: &[u8], value: &[u8], options: &[Vec<u8>]) -> Frame {
    let ttl = match options {
        [] => None,
        [unit, amount] => match (
            String::from_utf8_lossy(unit).to_ascii_lowercase().as_str(),
            integer(amount),
        ) {
            ("ex", Some(seconds)) if seconds > 0 => {
                Some(Duration::from_secs(seconds.unsigned_abs()))
            }
            ("px", Some(millis)) if millis > 0 => {
                Some(Duration::from_millis(millis.unsigned_abs()))
            }
            _ => return error("invalid expire time in 'set' command"),
        },
        _ => return error("syntax error"),
    };
    let value = value.to_vec();
    with_key(key, |key| async move {
        let stored = match ttl {
            Some(ttl) => kv::set_with_ttl(&key, &value, ttl).await,
            None => kv::set(&key, &value).await,
        };
        match stored {
            Ok(()) => ok(),
            Err(err) => store_error(err),
        }
    })
    .await
}

/// How many of `keys` `call` says yes to.
async fn count<F, Fut>(keys: &[Vec<u8>], call: F) -> Frame
where
    F: Fn(String) -> Fut,
    Fut: Future<Output = Result<bool, KvError>>,
{
    let mut yes = 0;
    for key in keys {
        let Some(key) = text(key) else {
            return error("keys must be UTF-8 here");
        };
        match call(key.to_owned()).await {
            Ok(true) => yes += 1,
            Ok(false) => {}
            Err(err) => return store_error(err),
        }
    }
    Frame::Integer(yes)
}

async fn add(key: &[u8], delta: i64) -> Frame {
    with_key(key, |key| async move {
        match kv::increment(&key, delta).await {
            Ok(value) => Frame::Integer(value),
            Err(KvError::Invalid(_)) => error("value is not an integer or out of range"),
            Err(err) => store_error(err),
        }
    })
    .await
}

/// KEYS with `*` or `prefix*` (the store lists by prefix).
async fn keys(pattern: &[u8]) -> Frame {
    let Some(prefix) = text(pattern).and_then(|pattern| pattern.strip_suffix('*')) else {
        return error("only KEYS * and KEYS prefix* are supported");
    };
    if prefix.contains(['*', '?', '[']) {
        return error("only KEYS * and KEYS prefix* are supported");
    }
    match all_keys(prefix).await {
        Ok(keys) => Frame::Array(
            keys.into_iter()
                .map(|key| Frame::BulkString(key.into_bytes()))
                .collect(),
        ),
        Err(reply) => reply,
    }
}

async fn all_keys(prefix: &str) -> Result<Vec<String>, Frame> {
    let mut keys = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let page = kv::list_keys(prefix, cursor.as_deref(), PAGE)
            .await
            .map_err(store_error)?;
        keys.extend(page.keys);
        if keys.len() > MAX_KEYS {
            return Err(error("too many keys to list"));
        }
        match page.cursor {
            Some(next) => cursor = Some(next),
            None => return Ok(keys),
        }
    }
}

squall_sdk::export!(app);

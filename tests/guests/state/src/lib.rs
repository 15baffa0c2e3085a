//! A test guest over the key-value store and config values: each route is
//! one store call, so tests can drive the capability with a real client.

use squall_sdk::kv::{self, KvError};
use squall_sdk::{Error, Json, Request, Response, Router, StatusCode};
use std::time::Duration;

fn app() -> Router {
    Router::new()
        .get("/kv/{key}", get)
        .get("/many/{key}", get_many)
        .put("/kv/{key}", set)
        .delete("/kv/{key}", delete)
        .get("/exists/{key}", exists)
        .post("/incr/{key}", increment)
        .post("/cas/{key}", compare_and_swap)
        .post("/cas-incr/{key}", cas_increment)
        .get("/list", list)
        .post("/fill", fill)
        .get("/config/{key}", config)
        .get("/print-config/{key}", print_config)
        .post("/flood/{count}", flood)
}

fn key(req: &Request) -> String {
    req.param("key").unwrap_or_default().to_owned()
}

async fn get(req: Request) -> Result<Response, KvError> {
    Ok(match kv::get(&key(&req)).await? {
        Some(value) => Response::new(StatusCode::OK, value),
        None => Response::new(StatusCode::NOT_FOUND, "absent"),
    })
}

/// `key` asked for `times` times in one call: how many values came back.
async fn get_many(req: Request) -> Result<String, Error> {
    let times: usize = req
        .query_arguments()
        .get("times")
        .map_or(Ok(1), |times| times.parse())
        .map_err(|_| Error::bad_request("times"))?;
    let keys = vec![key(&req); times];
    let values = kv::get_many(&keys).await?;
    Ok(values.iter().flatten().count().to_string())
}

async fn set(mut req: Request) -> Result<StatusCode, Error> {
    let value = req.bytes().await;
    let key = key(&req);
    match req.query_arguments().get("ttl_ms") {
        Some(ms) => {
            let ms = ms.parse().map_err(|_| Error::bad_request("ttl_ms"))?;
            kv::set_with_ttl(&key, value, Duration::from_millis(ms)).await?;
        }
        None => kv::set(&key, value).await?,
    }
    Ok(StatusCode::NO_CONTENT)
}

async fn delete(req: Request) -> Result<String, KvError> {
    Ok(kv::delete(&key(&req)).await?.to_string())
}

async fn exists(req: Request) -> Result<String, KvError> {
    Ok(kv::exists(&key(&req)).await?.to_string())
}

async fn increment(req: Request) -> Result<String, Error> {
    let by = req
        .query_arguments()
        .get("by")
        .map_or(Ok(1), |by| by.parse())
        .map_err(|_| Error::bad_request("by"))?;
    Ok(kv::increment(&key(&req), by).await?.to_string())
}

async fn compare_and_swap(req: Request) -> Result<String, KvError> {
    let expected = req.query_arguments().get("expected");
    let new = req.query_arguments().get("new");
    let swapped = kv::compare_and_swap(
        &key(&req),
        expected.map(str::as_bytes),
        new.map(str::as_bytes),
    )
    .await?;
    Ok(swapped.to_string())
}

/// Add one by reading and swapping until no one else got in between: the
/// number of attempts it took.
async fn cas_increment(req: Request) -> Result<String, KvError> {
    let key = key(&req);
    for attempt in 1.. {
        let current = kv::get(&key).await?;
        let count: u64 = current
            .as_deref()
            .and_then(|bytes| std::str::from_utf8(bytes).ok()?.parse().ok())
            .unwrap_or(0);
        let next = (count + 1).to_string();
        if kv::compare_and_swap(&key, current.as_deref(), Some(next.as_bytes())).await? {
            return Ok(attempt.to_string());
        }
    }
    Ok("never".into())
}

#[derive(serde::Serialize)]
struct PageJson {
    keys: Vec<String>,
    cursor: Option<String>,
}

async fn list(req: Request) -> Result<Json<PageJson>, Error> {
    let prefix = req.query_arguments().get("prefix").unwrap_or_default();
    let cursor = req.query_arguments().get("cursor");
    let limit = req
        .query_arguments()
        .get("limit")
        .map_or(Ok(100), |limit| limit.parse())
        .map_err(|_| Error::bad_request("limit"))?;
    let page = kv::list_keys(prefix, cursor, limit).await?;
    Ok(Json(PageJson {
        keys: page.keys,
        cursor: page.cursor,
    }))
}

/// `count` keys `{prefix}{n:05}`, each `size` bytes (expiring after
/// `ttl_ms` if given), in batches of 1000.
async fn fill(req: Request) -> Result<String, Error> {
    let number = |name: &str, default: usize| {
        req.query_arguments()
            .get(name)
            .map_or(Ok(default), |value| value.parse())
            .map_err(|_| Error::bad_request(name.to_owned()))
    };
    let prefix = req.query_arguments().get("prefix").unwrap_or_default();
    let (count, size) = (number("count", 1)?, number("size", 1)?);
    let ttl = req
        .query_arguments()
        .get("ttl_ms")
        .map(|ms| ms.parse().map(Duration::from_millis))
        .transpose()
        .map_err(|_| Error::bad_request("ttl_ms"))?;
    let value = vec![b'v'; size];
    let keys: Vec<String> = (0..count).map(|n| format!("{prefix}{n:05}")).collect();
    for batch in keys.chunks(1000) {
        let entries: Vec<(&String, &Vec<u8>)> = batch.iter().map(|key| (key, &value)).collect();
        kv::set_many(&entries, ttl).await?;
    }
    Ok(count.to_string())
}

async fn config(req: Request) -> Response {
    match squall_sdk::config::get(&key(&req)) {
        Some(value) => Response::new(StatusCode::OK, value),
        None => Response::new(StatusCode::NOT_FOUND, "unset"),
    }
}

/// Print a config value to stdout (the host must keep secrets out of its log).
async fn print_config(req: Request) -> String {
    let value = squall_sdk::config::get(&key(&req)).unwrap_or_default();
    println!("the value is {value}");
    "printed".into()
}

/// `count` writes at once from one request: how many the host refused.
async fn flood(req: Request) -> Result<String, Error> {
    let count: usize = req
        .param("count")
        .unwrap_or_default()
        .parse()
        .map_err(|_| Error::bad_request("count"))?;
    let value = vec![b'f'; 64 << 10];
    let writes = (0..count).map(|n| {
        let value = &value;
        async move { kv::set(&format!("flood:{n}"), value).await }
    });
    let refused = squall_sdk::futures::future::join_all(writes)
        .await
        .into_iter()
        .filter(
            |outcome| matches!(outcome, Err(KvError::TooLarge(why)) if why.contains("in flight")),
        )
        .count();
    Ok(refused.to_string())
}

squall_sdk::export!(app);

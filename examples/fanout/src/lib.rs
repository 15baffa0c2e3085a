//! Fetch many URLs at once: `squall serve examples/fanout`, then
//! `curl 'localhost:8080/fanout?url=http://127.0.0.1:9000/a&url=http://127.0.0.1:9000/b'`.
//!
//! Each URL is fetched concurrently; the answer is a JSON array with
//! `{url, status, bytes, ms}` per success and `{url, error, detail}` per
//! failure, `error` naming the kind (`denied`, `connect`, `timeout`, ...).

use squall_sdk::futures::future::join_all;
use squall_sdk::http::{FetchError, get};
use squall_sdk::serde_json::{Value, json};
use squall_sdk::{Instant, Json, Request, Router};

fn app() -> Router {
    Router::new().get("/fanout", fanout)
}

async fn fanout(req: Request) -> Json<Vec<Value>> {
    let urls = req.query_arguments().all("url");
    let fetches = urls.into_iter().map(|url| fetch_one(url.to_owned()));
    Json(join_all(fetches).await)
}

async fn fetch_one(url: String) -> Value {
    let started = Instant::now();
    let outcome = fetch_len(&url).await;
    let ms = started.elapsed().as_millis() as u64;
    match outcome {
        Ok((status, bytes)) => json!({ "url": url, "status": status, "bytes": bytes, "ms": ms }),
        Err(err) => json!({ "url": url, "error": err.kind(), "detail": err.to_string(), "ms": ms }),
    }
}

async fn fetch_len(url: &str) -> Result<(u16, usize), FetchError> {
    let response = get(url).send().await?;
    let status = response.status().as_u16();
    Ok((status, response.bytes().await?.len()))
}

squall_sdk::export!(app);

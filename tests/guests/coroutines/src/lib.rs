//! Awaiting the host: fetches with every option, timeouts, streamed bodies
//! both ways. Used by the coroutine tests.

use squall_sdk::http::{FetchError, FetchResponse, RequestBuilder, get, post};
use squall_sdk::serde_json::{Value, json};
use squall_sdk::{Json, Request, Response, Router, sleep, spawn, timeout};
use std::time::Duration;

fn app() -> Router {
    Router::new()
        .get("/fetch", fetch)
        .get("/race", race)
        .post("/hash", hash)
        .post("/forward", forward)
        .get("/forward-broken", forward_broken)
        .get("/sleep/{ms}", nap)
        .get("/after", after)
        .get("/after-streamed", after_streamed)
        .get("/after-spin", after_spin)
}

/// `?url=`: answers at once, then logs and fetches `url` after the response.
async fn after(req: Request) -> &'static str {
    let url = req.query_arguments().get_or("url", "").to_owned();
    spawn(work_after_the_response("squall", url));
    "answered"
}

/// The same behind a streamed body: the work outlives the stream too.
async fn after_streamed(req: Request) -> Response {
    let url = req.query_arguments().get_or("url", "").to_owned();
    spawn(work_after_the_response("squall streamed", url));
    Response::stream(|mut body| async move {
        let _ = body.write("answered, ").await;
        let _ = body.write("streamed").await;
    })
}

async fn work_after_the_response(what: &'static str, url: String) {
    sleep(Duration::from_millis(50)).await;
    println!("{what} work after the response");
    match get(url).send().await {
        Ok(response) => println!(
            "{what} fetched after the response: {}",
            response.status().as_u16()
        ),
        Err(err) => println!("{what} fetch after the response failed: {err}"),
    }
}

/// Work after the response that spins for ever: the request's limits end it.
async fn after_spin(_req: Request) -> &'static str {
    spawn(async {
        sleep(Duration::from_millis(10)).await;
        println!("spinning after the response");
        let mut n: u64 = 0;
        loop {
            n = std::hint::black_box(n.wrapping_add(1));
        }
    });
    "answered"
}

/// `?url=&timeout_ms=&redirects=`: `{status, bytes}` or `{error}`.
async fn fetch(req: Request) -> Json<Value> {
    let url = req.query_arguments().get_or("url", "").to_owned();
    let mut request: RequestBuilder = get(url);
    if let Some(ms) = req
        .query_arguments()
        .get("timeout_ms")
        .and_then(|ms| ms.parse().ok())
    {
        request = request.timeout(Duration::from_millis(ms));
    }
    if let Some(max) = req
        .query_arguments()
        .get("redirects")
        .and_then(|n| n.parse().ok())
    {
        request = request.follow_redirects(max);
    }
    Json(outcome(request.send().await).await)
}

async fn outcome(response: Result<FetchResponse, FetchError>) -> Value {
    let response = match response {
        Ok(response) => response,
        Err(err) => return json!({ "error": err.kind(), "detail": err.to_string() }),
    };
    let status = response.status().as_u16();
    match response.bytes().await {
        Ok(body) => json!({
            "status": status,
            "bytes": body.len(),
            "body": String::from_utf8_lossy(&body[..body.len().min(200)]),
        }),
        Err(err) => json!({ "status": status, "error": err.kind(), "detail": err.to_string() }),
    }
}

/// `?url=&ms=`: the SDK's `timeout` around a fetch.
async fn race(req: Request) -> Json<Value> {
    let url = req.query_arguments().get_or("url", "").to_owned();
    let ms: u64 = req
        .query_arguments()
        .get("ms")
        .and_then(|ms| ms.parse().ok())
        .unwrap_or(100);
    match timeout(Duration::from_millis(ms), get(url).send()).await {
        Ok(response) => Json(outcome(response).await),
        Err(_) => Json(json!({ "error": "elapsed" })),
    }
}

/// Reads the body chunk by chunk: `"<bytes> <fnv1a-64 hex>"`.
async fn hash(mut req: Request) -> String {
    let mut body = req.take_body();
    let mut hasher = Fnv1a::default();
    let mut length = 0u64;
    while let Some(chunk) = body.chunk().await {
        length += chunk.len() as u64;
        hasher.write(&chunk);
    }
    format!("{length} {:016x}", hasher.0)
}

/// Streams the request body on to `?url=` and answers with what came back.
async fn forward(mut req: Request) -> Result<Response, FetchError> {
    let url = req.query_arguments().get_or("url", "").to_owned();
    let mut body = req.take_body();
    let response = post(url)
        .stream_body(|mut out| async move {
            while let Some(chunk) = body.chunk().await {
                if out.write(chunk).await.is_err() {
                    return;
                }
            }
        })
        .send()
        .await?;
    let status = response.status();
    Ok(Response::new(status, response.bytes().await?))
}

/// Streams part of a body to `?url=`, then panics: the upstream must see a
/// broken body, not a complete one.
async fn forward_broken(req: Request) -> Result<Response, FetchError> {
    let url = req.query_arguments().get_or("url", "").to_owned();
    let response = post(url)
        .stream_body(|mut out| async move {
            let _ = out.write("part of it").await;
            sleep(Duration::from_millis(50)).await;
            panic!("the body breaks on purpose");
        })
        .send()
        .await?;
    Ok(Response::new(response.status(), response.bytes().await?))
}

async fn nap(req: Request) -> String {
    let ms: u64 = req.param("ms").and_then(|ms| ms.parse().ok()).unwrap_or(0);
    // Tests wait for this line to know the guest reached its timer.
    println!("napping for {ms} ms");
    sleep(Duration::from_millis(ms)).await;
    format!("slept {ms}ms")
}

/// FNV-1a, 64 bit: small and dependency-free.
struct Fnv1a(u64);

impl Default for Fnv1a {
    fn default() -> Self {
        Fnv1a(0xcbf2_9ce4_8422_2325)
    }
}

impl Fnv1a {
    fn write(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.0 ^= u64::from(byte);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }
}

squall_sdk::export!(app);

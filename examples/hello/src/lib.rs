//! The hello example: `squall serve examples/hello`, then `curl localhost:8080/hello/you`.

use squall_sdk::{Error, Json, Request, Response, Router, StatusCode, sleep};
use std::collections::BTreeMap;
use std::time::Duration;

fn app() -> Router {
    Router::new()
        .get("/", |_req| async { "Hello, world!" })
        .get("/hello/{name}", hello)
        .get("/json", query_as_json)
        .post("/echo", echo)
        .get("/sleep/{ms}", nap)
        .get("/panic", panics)
}

async fn hello(req: Request) -> String {
    format!("Hello, {}!", req.param("name").unwrap_or_default())
}

/// The query string as a JSON object; the last value wins for repeated names.
async fn query_as_json(req: Request) -> Json<BTreeMap<String, String>> {
    Json(req.query_arguments().pairs().iter().cloned().collect())
}

/// Streams the request body back as it arrives.
async fn echo(mut req: Request) -> Response {
    let mut body = req.take_body();
    Response::stream(|mut out| async move {
        while let Some(chunk) = body.chunk().await {
            if out.write(chunk).await.is_err() {
                return;
            }
        }
    })
}

async fn nap(req: Request) -> Result<String, Error> {
    let ms: u64 = req
        .param("ms")
        .unwrap_or_default()
        .parse()
        .map_err(|_| Error::new(StatusCode::BAD_REQUEST, "ms must be a whole number"))?;
    sleep(Duration::from_millis(ms)).await;
    Ok(format!("slept {ms}ms"))
}

/// The host answers 500 and goes on serving: the panic only ends this instance.
async fn panics(_req: Request) -> &'static str {
    panic!("this handler panics on purpose")
}

squall_sdk::export!(app);

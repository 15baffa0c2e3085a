//! An app that says which version it is, for the hot-swap tests: built
//! with `SQUALL_TEST_VERSION=N` in the environment, it answers `vN`.

use squall_sdk::websocket::{Connection, Message, WebSocket};
use squall_sdk::{Request, Router};
use std::time::Duration;

/// The version this build answers with.
const VERSION: &str = match option_env!("SQUALL_TEST_VERSION") {
    Some(version) => version,
    None => "1",
};

fn app() -> Router {
    Router::new()
        .get("/", |_req: Request| async { format!("v{VERSION}") })
        .get("/slow", slow)
        .get("/log", log)
        .websocket("/socket", WebSocket::new().on_message(count))
        .websocket("/live", WebSocket::new().on_message(count))
}

/// `?ms=N`: answer after N milliseconds, with the version that began.
async fn slow(req: Request) -> String {
    let ms = req
        .query_arguments()
        .get("ms")
        .and_then(|ms| ms.parse().ok())
        .unwrap_or(500);
    // Tests wait for this line to know which version took the request.
    println!("slow request on v{VERSION}");
    squall_sdk::sleep(Duration::from_millis(ms)).await;
    format!("v{VERSION}")
}

/// Log a warning, or `?n=N` bytes of `x` at info.
async fn log(req: Request) -> &'static str {
    match req.query_arguments().get("n").and_then(|n| n.parse().ok()) {
        Some(n) => squall_sdk::log::info("x".repeat(n)),
        None => squall_sdk::log::warn(format!("from the guest, v{VERSION}")),
    }
    "logged"
}

/// Count the connection's messages in its host-kept state, and say which
/// version counted.
async fn count(ws: Connection, _message: Message) {
    let Ok(seen) = ws.state::<u64>().map(|seen| seen + 1) else {
        return ws.close(1011, "the count no longer decodes");
    };
    let _ = ws.set_state(&seen);
    let _ = ws.send_text(format!("v{VERSION} count={seen}"));
}

squall_sdk::export!(app);

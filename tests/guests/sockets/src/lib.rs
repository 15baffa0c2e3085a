//! WebSocket behaviours for the real-time tests: echo, per-connection state
//! in both modes, rejection, closing, pub/sub from HTTP.

use squall_sdk::websocket::{Accept, Connection, Message, WebSocket};
use squall_sdk::{Error, Json, Request, Router, StatusCode, pubsub};
use std::cell::Cell;
use std::time::Duration;

thread_local! {
    /// Messages this instance has seen: per connection in live mode, always
    /// 1 in hibernate mode (a fresh instance per event).
    static SEEN_BY_INSTANCE: Cell<u64> = const { Cell::new(0) };
}

fn app() -> Router {
    let echo = || WebSocket::new().on_message(echo);
    let count = || {
        WebSocket::new()
            .on_open(|ws: Connection, _req: Request| async move {
                ws.subscribe("news")
                    .map_err(|e| Error::new(StatusCode::FORBIDDEN, e.to_string()))?;
                Ok(Accept::new())
            })
            .on_message(count)
    };
    Router::new()
        .websocket("/echo", echo())
        .websocket("/live/echo", echo())
        .websocket("/count", count())
        .websocket("/live/count", count())
        .websocket(
            "/reject",
            WebSocket::new().on_open(|_ws: Connection, _req: Request| async {
                Err::<Accept, _>(Error::new(StatusCode::FORBIDDEN, "not you"))
            }),
        )
        .websocket(
            "/protocol",
            WebSocket::new().on_open(|_ws: Connection, _req: Request| async {
                Ok(Accept::new().protocol("chat.v2"))
            }),
        )
        .post("/publish/{topic}", publish)
        .post("/wait/{topic}", wait)
}

/// Echo; `close` closes with 4000, `slow` takes 200 ms first, `flood`
/// queues far more than a client that does not read can take, `big:N`
/// sends N bytes, `burst:N` sends 0..N-1 at once (N at most 200),
/// `wait:MS` answers `waited` after MS, `too-big` says what
/// a 2 MiB send returns, `send-then-close` sends 0..9 then closes with 4001.
async fn echo(ws: Connection, message: Message) {
    let text = message.text().unwrap_or_default();
    if let Some(n) = text.strip_prefix("big:").and_then(|n| n.parse().ok()) {
        let _ = ws.send_text("y".repeat(n));
        return;
    }
    if let Some(count) = text
        .strip_prefix("burst:")
        .and_then(|n| n.parse::<u32>().ok())
    {
        // Numbered messages queued at once, within the connection's queue.
        for n in 0..count.min(200) {
            let _ = ws.send_text(n.to_string());
        }
        return;
    }
    if let Some(ms) = text.strip_prefix("wait:").and_then(|ms| ms.parse().ok()) {
        squall_sdk::sleep(Duration::from_millis(ms)).await;
        let _ = ws.send_text("waited");
        return;
    }
    match message.text() {
        Some("too-big") => {
            let outcome = ws.send_text("x".repeat(2 << 20));
            let _ = ws.send_text(format!("{outcome:?}"));
        }
        Some("send-then-close") => {
            for i in 0..10 {
                let _ = ws.send_text(i.to_string());
            }
            ws.close(4001, "done");
        }
        Some("close") => ws.close(4000, "bye"),
        Some("flood") => {
            let chunk = "x".repeat(16 << 10);
            for _ in 0..4000 {
                if ws.send_text(chunk.clone()).is_err() {
                    return;
                }
                // Let the host drain between sends, as a real producer would.
                squall_sdk::sleep(Duration::from_millis(1)).await;
            }
        }
        Some("later") => {
            // Answers at once; a spawned task sends again after the handler
            // returned (in hibernate mode, its instance stays for it).
            let later = ws.clone();
            squall_sdk::spawn(async move {
                squall_sdk::sleep(Duration::from_millis(100)).await;
                let _ = later.send_text("sent after the handler returned");
            });
            let _ = ws.send_text("handler returned");
        }
        Some("slow") => {
            squall_sdk::sleep(Duration::from_millis(200)).await;
            let _ = ws.send_text("slow done");
        }
        _ => {
            let _ = ws.send(message);
        }
    }
}

/// Replies `state=<messages on this connection> instance=<messages seen by this instance>`;
/// `garble` stores a state that is not a count, and the next message is
/// answered with the error reading it gives.
async fn count(ws: Connection, message: Message) {
    if message.text() == Some("garble") {
        let _ = ws.set_state(&"not a count");
        return;
    }
    let state: u64 = match ws.state::<u64>() {
        Ok(state) => state + 1,
        Err(err) => {
            let _ = ws.send_text(format!("state error: {}", err.message()));
            return;
        }
    };
    let _ = ws.set_state(&state);
    let instance = SEEN_BY_INSTANCE.with(|seen| {
        seen.set(seen.get() + 1);
        seen.get()
    });
    let _ = ws.send_text(format!("state={state} instance={instance}"));
}

async fn publish(mut req: Request) -> Result<String, Error> {
    let topic = req.param("topic").unwrap_or_default().to_owned();
    let body = req.bytes().await;
    let id = pubsub::publish(&topic, body)
        .map_err(|e| Error::new(StatusCode::FORBIDDEN, e.to_string()))?;
    Ok(id.to_string())
}

/// `?after=N&ms=M`: the long poll, as JSON `[{id, text}]`.
async fn wait(req: Request) -> Result<Json<Vec<(u64, String)>>, Error> {
    let topic = req.param("topic").unwrap_or_default().to_owned();
    let after = req
        .query_arguments()
        .get("after")
        .and_then(|a| a.parse().ok());
    let ms = req
        .query_arguments()
        .get("ms")
        .and_then(|m| m.parse().ok())
        .unwrap_or(5000);
    let messages = pubsub::wait(&topic, after, Duration::from_millis(ms))
        .await
        .map_err(|e| Error::new(StatusCode::FORBIDDEN, e.to_string()))?;
    Ok(Json(
        messages
            .into_iter()
            .map(|m| (m.id, m.text().unwrap_or_default().to_owned()))
            .collect(),
    ))
}

squall_sdk::export!(app);

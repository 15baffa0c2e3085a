//! Tornado's chat demo, sandboxed: `squall serve examples/chat`, then open
//! http://127.0.0.1:8080/ in two browser tabs.
//!
//! Each message is kept in the app's key-value store (its id from an atomic
//! counter, its last 200 kept), so the history survives a restart, and
//! published to the host's `chat` topic. Two transports reach them: long
//! polling (`POST /a/message/new`, `POST /a/message/updates` with the last
//! id seen) and a WebSocket at `/chatsocket`, whose clients the host feeds
//! without waking the guest.

use squall_sdk::serde_json::{self, Value, json};
use squall_sdk::websocket::{Accept, Connection, Message, WebSocket};
use squall_sdk::{Error, Html, Json, Request, Router, kv, pubsub};
use std::time::Duration;

const TOPIC: &str = "chat";
/// Messages kept in the store.
const HISTORY: i64 = 200;
/// How long `updates` waits for news before answering an empty list.
const LONG_POLL: Duration = Duration::from_secs(25);
/// Longest message body kept.
const MAX_BODY: usize = 2000;

fn app() -> Router {
    Router::new()
        .get("/", |_req| async { Html(PAGE) })
        .post("/a/message/new", new_message)
        .post("/a/message/updates", updates)
        .websocket(
            "/chatsocket",
            WebSocket::new().on_open(open).on_message(socket_message),
        )
}

#[derive(squall_sdk::serde::Deserialize)]
#[serde(crate = "squall_sdk::serde")]
struct NewMessage {
    body: String,
}

/// Store a message for everyone; answer it with its id.
async fn new_message(mut req: Request) -> Result<Json<Value>, Error> {
    let form: NewMessage = req.form().await?;
    Ok(Json(post(&form.body).await?))
}

/// Keep a message (`{"id", "body"}`) and publish it.
async fn post(body: &str) -> Result<Value, Error> {
    let body: String = body.trim().chars().take(MAX_BODY).collect();
    if body.is_empty() {
        return Err(Error::bad_request("the message is empty"));
    }
    let id = kv::increment("next-id", 1).await?;
    let message = json!({ "id": id, "body": body });
    kv::set_json(&message_key(id), &message).await?;
    if id > HISTORY {
        kv::delete(&message_key(id - HISTORY)).await?;
    }
    pubsub::publish_json(TOPIC, &message)?;
    Ok(message)
}

/// Keys sort in id order.
fn message_key(id: i64) -> String {
    format!("msg:{id:012}")
}

/// The kept messages with ids above `after`, oldest first.
async fn kept_after(after: i64) -> Result<Vec<Value>, Error> {
    let page = kv::list_keys("msg:", Some(&message_key(after)), HISTORY as u32).await?;
    let values = kv::get_many(&page.keys).await?;
    Ok(values
        .into_iter()
        .flatten()
        .filter_map(|bytes| serde_json::from_slice(&bytes).ok())
        .collect())
}

#[derive(squall_sdk::serde::Deserialize)]
#[serde(crate = "squall_sdk::serde")]
struct Updates {
    /// The last id the client has seen.
    cursor: Option<i64>,
}

/// The messages after `cursor`, as soon as there are any; an empty list
/// after the long-poll timeout. Cancelled if the client goes away.
async fn updates(mut req: Request) -> Result<Json<Value>, Error> {
    let form: Updates = req.form().await?;
    let after = form.cursor.unwrap_or(0);
    // Where the topic is now, before reading the store: whatever is stored
    // after the read is published after this point, so the wait sees it.
    let latest = pubsub::wait(TOPIC, Some(0), Duration::ZERO)
        .await?
        .last()
        .map_or(0, |message| message.id);
    let kept = kept_after(after).await?;
    if !kept.is_empty() {
        return Ok(Json(json!({ "messages": kept })));
    }
    let messages: Vec<Value> = pubsub::wait(TOPIC, Some(latest), LONG_POLL)
        .await?
        .iter()
        .filter_map(|message| message.json::<Value>().ok())
        .filter(|message| message["id"].as_i64().is_some_and(|id| id > after))
        .collect();
    Ok(Json(json!({ "messages": messages })))
}

/// A new socket: feed it the topic, then the kept history.
async fn open(ws: Connection, _req: Request) -> Result<Accept, Error> {
    ws.subscribe(TOPIC)?;
    // Clients skip ids they already have, so overlap with the live feed is fine.
    for message in kept_after(0).await? {
        let _ = ws.send_json(&message);
    }
    Ok(Accept::new())
}

/// `{"body": "..."}` from a socket: publish it to everyone, this socket too.
async fn socket_message(ws: Connection, message: Message) {
    let body = match message.json::<NewMessage>() {
        Ok(message) => message.body,
        Err(_) => {
            let _ = ws.send_json(&json!({ "error": "send {\"body\": \"...\"}" }));
            return;
        }
    };
    if let Err(err) = post(&body).await {
        let _ = ws.send_json(&json!({ "error": err.message() }));
    }
}

const PAGE: &str = include_str!("chat.html");

squall_sdk::export!(app);

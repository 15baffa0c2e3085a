//! Tornado's chat demo, sandboxed: `squall serve examples/chat`, then open
//! http://127.0.0.1:8080/ in two browser tabs.
//!
//! Messages live in the host's `chat` topic. Two transports reach them:
//! long polling (`POST /a/message/new`, `POST /a/message/updates` with a
//! cursor) and a WebSocket at `/chatsocket`, whose clients the host feeds
//! without waking the guest.

use squall_sdk::serde_json::{Value, json};
use squall_sdk::websocket::{Accept, Connection, Message, WebSocket};
use squall_sdk::{Error, Html, Json, Request, Router, StatusCode, pubsub};
use std::time::Duration;

const TOPIC: &str = "chat";
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
    let (id, body) = publish(&form.body)?;
    Ok(Json(json!({ "id": id, "body": body })))
}

fn publish(body: &str) -> Result<(u64, String), Error> {
    let body: String = body.trim().chars().take(MAX_BODY).collect();
    if body.is_empty() {
        return Err(Error::bad_request("the message is empty"));
    }
    let id = pubsub::publish_json(TOPIC, &json!({ "body": body }))
        .map_err(|err| Error::new(StatusCode::INTERNAL_SERVER_ERROR, err.to_string()))?;
    Ok((id, body))
}

#[derive(squall_sdk::serde::Deserialize)]
#[serde(crate = "squall_sdk::serde")]
struct Updates {
    /// The last id the client has seen.
    cursor: Option<u64>,
}

/// The messages after `cursor`, as soon as there are any; an empty list
/// after the long-poll timeout. Cancelled if the client goes away.
async fn updates(mut req: Request) -> Result<Json<Value>, Error> {
    let form: Updates = req.form().await?;
    let messages = pubsub::wait(TOPIC, form.cursor, LONG_POLL)
        .await
        .map_err(|err| Error::new(StatusCode::INTERNAL_SERVER_ERROR, err.to_string()))?;
    let messages: Vec<Value> = messages.iter().filter_map(as_json).collect();
    Ok(Json(json!({ "messages": messages })))
}

/// A stored message as the clients see it: `{"id", "body"}`.
fn as_json(message: &pubsub::Message) -> Option<Value> {
    let stored: Value = message.json().ok()?;
    Some(json!({ "id": message.id, "body": stored["body"] }))
}

/// A new socket: feed it the topic (with ids), then what it missed.
async fn open(ws: Connection, _req: Request) -> Result<Accept, Error> {
    ws.subscribe_with_id(TOPIC)
        .map_err(|err| Error::new(StatusCode::INTERNAL_SERVER_ERROR, err.to_string()))?;
    // Clients skip ids they already have, so overlap with the live feed is fine.
    if let Ok(recent) = pubsub::wait(TOPIC, Some(0), Duration::ZERO).await {
        for message in recent.iter().filter_map(as_json) {
            let _ = ws.send_json(&message);
        }
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
    if let Err(err) = publish(&body) {
        let _ = ws.send_json(&json!({ "error": err.message() }));
    }
}

const PAGE: &str = include_str!("chat.html");

squall_sdk::export!(app);

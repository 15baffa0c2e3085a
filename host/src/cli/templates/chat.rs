//! A chat room on Squall: `squall serve .`, then POST messages to /messages
//! and long-poll GET /messages?after=ID, or connect a WebSocket to /socket.
//! Messages are published to the `room` topic and the last one is kept in
//! the app's key-value store (see squall.toml: `pubsub` and `kv` granted).

use squall_sdk::serde_json::{Value, json};
use squall_sdk::websocket::{Accept, Connection, Message, WebSocket};
use squall_sdk::{Error, Json, Request, Router, kv, pubsub};
use std::time::Duration;

const TOPIC: &str = "room";

fn app() -> Router {
    Router::new()
        .post("/messages", post)
        .get("/messages", updates)
        .get("/last", last)
        .websocket(
            "/socket",
            WebSocket::new().on_open(join).on_message(socket_message),
        )
}

/// `{"body": "..."}`: publish it to everyone.
async fn post(mut req: Request) -> Result<Json<Value>, Error> {
    let message: Value = req.json().await?;
    Ok(Json(publish(&message).await?))
}

async fn publish(message: &Value) -> Result<Value, Error> {
    let body = message["body"].as_str().unwrap_or_default().trim();
    if body.is_empty() {
        return Err(Error::bad_request("send {\"body\": \"...\"}"));
    }
    let message = json!({ "body": body });
    let id = pubsub::publish_json(TOPIC, &message)?;
    kv::set_json("last", &message).await?;
    Ok(json!({ "id": id, "body": body }))
}

/// Messages after `?after=ID`, waiting up to 25 s for the first one.
async fn updates(req: Request) -> Result<Json<Vec<Value>>, Error> {
    let after = req.query_arguments().get("after").and_then(|id| id.parse().ok());
    let messages = pubsub::wait(TOPIC, after, Duration::from_secs(25)).await?;
    Ok(Json(
        messages
            .iter()
            .filter_map(|message| message.json::<Value>().ok())
            .collect(),
    ))
}

/// The last message, kept across restarts.
async fn last(_req: Request) -> Result<Json<Value>, Error> {
    Ok(Json(kv::get_json("last").await?.unwrap_or(Value::Null)))
}

/// A new socket gets every message published from now on, with its id.
async fn join(ws: Connection, _req: Request) -> Result<Accept, Error> {
    ws.subscribe_with_id(TOPIC)?;
    Ok(Accept::new())
}

async fn socket_message(ws: Connection, message: Message) {
    let Ok(message) = message.json::<Value>() else {
        let _ = ws.send_json(&json!({ "error": "send {\"body\": \"...\"}" }));
        return;
    };
    if let Err(err) = publish(&message).await {
        let _ = ws.send_json(&json!({ "error": err.message() }));
    }
}

squall_sdk::export!(app);

#[cfg(test)]
mod tests {
    use super::*;
    use squall_sdk::futures::FutureExt;
    use squall_sdk::{Method, StatusCode};

    #[test]
    fn an_empty_message_is_refused_before_any_host_call() {
        let request = Request::new(Method::POST, "/messages").with_json(&json!({ "body": " " }));
        let response = app()
            .handle(request)
            .now_or_never()
            .expect("answers at once");
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    }
}

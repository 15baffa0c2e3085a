//! The app served by the real host (`squall test-server`, through the
//! squall-test kit): pub/sub and the store for real, with a WebSocket and
//! an HTTP client.

use squall_test::TestServer;
use squall_test::http::Method;

#[tokio::test]
async fn a_posted_message_reaches_a_socket_and_is_kept() -> anyhow::Result<()> {
    let server = TestServer::start(env!("CARGO_MANIFEST_DIR"))?;
    let mut socket = server.websocket("/socket").await?;
    let message = serde_json::json!({ "body": "hello, room" });
    let posted = server
        .send(server.request(Method::POST, "/messages").json(&message))
        .await?;
    assert_eq!(posted.status, 200, "{}", posted.text());
    let live: serde_json::Value = serde_json::from_str(&socket.recv_text().await?)?;
    assert_eq!(live["body"], "hello, room");
    let last: serde_json::Value = server.get("/last").await?.json()?;
    assert_eq!(last["body"], "hello, room");
    Ok(())
}

#[tokio::test]
async fn an_empty_message_is_refused() -> anyhow::Result<()> {
    let server = TestServer::start(env!("CARGO_MANIFEST_DIR"))?;
    let refused = server.post("/messages", r#"{"body": " "}"#).await?;
    assert_eq!(refused.status, 400);
    Ok(())
}

//! The chat example served by the real host, through the test kit: a
//! message posted over HTTP reaches a WebSocket and a long poll.

use squall_test::TestServer;

#[tokio::test]
async fn a_posted_message_reaches_sockets_and_long_polls() -> anyhow::Result<()> {
    let server = TestServer::start(env!("CARGO_MANIFEST_DIR"))?;
    let mut socket = server.websocket("/chatsocket").await?;
    let posted = server
        .post_form("/a/message/new", &[("body", "hello, room")])
        .await?;
    assert_eq!(posted.status, 200, "{}", posted.text());
    let live: serde_json::Value = serde_json::from_str(&socket.recv_text().await?)?;
    assert_eq!(live["body"], "hello, room");
    let polled: serde_json::Value = server
        .post_form("/a/message/updates", &[("cursor", "0")])
        .await?
        .json()?;
    assert_eq!(polled["messages"][0]["body"], "hello, room");
    Ok(())
}

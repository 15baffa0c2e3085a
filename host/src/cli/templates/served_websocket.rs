//! The app served by the real host (`squall test-server`, through the
//! squall-test kit), with a real WebSocket client.

use squall_test::TestServer;

#[tokio::test]
async fn a_message_comes_back() -> anyhow::Result<()> {
    let server = TestServer::start(env!("CARGO_MANIFEST_DIR"))?;
    let mut socket = server.websocket("/echo").await?;
    socket.send_text("hello, echo").await?;
    assert_eq!(socket.recv_text().await?, "hello, echo");
    Ok(())
}

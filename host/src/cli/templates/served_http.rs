//! The app served by the real host (`squall test-server`, through the
//! squall-test kit), talked to over HTTP: what `squall serve .` would do.

use squall_test::TestServer;

#[tokio::test]
async fn hello_is_served_over_http() -> anyhow::Result<()> {
    let server = TestServer::start(env!("CARGO_MANIFEST_DIR"))?;
    let hello = server.get("/hello/you").await?;
    assert_eq!(hello.status, 200);
    assert_eq!(hello.text(), "Hello, you!");
    assert_eq!(server.get("/nowhere").await?.status, 404);
    Ok(())
}

//! The hello example served by the real host, through the test kit.

use squall_test::TestServer;

#[tokio::test]
async fn hello_answers_by_name_and_echoes_what_it_is_sent() -> anyhow::Result<()> {
    let server = TestServer::start(env!("CARGO_MANIFEST_DIR"))?;
    let hello = server.get("/hello/you").await?;
    assert_eq!(
        (hello.status, hello.text()),
        (200, "Hello, you!".to_owned())
    );
    let echoed = server.post("/echo", "round trip").await?;
    assert_eq!(echoed.text(), "round trip");
    let query: serde_json::Value = server.get("/json?a=1&b=two").await?.json()?;
    assert_eq!(query, serde_json::json!({"a": "1", "b": "two"}));
    assert_eq!(server.get("/nowhere").await?.status, 404);
    Ok(())
}

//! The shortener served by the real host through the test kit, with config
//! values of the test's own.

use squall_test::TestServer;

#[tokio::test]
async fn short_links_start_with_the_base_url_the_test_gives() -> anyhow::Result<()> {
    let dir = env!("CARGO_MANIFEST_DIR");
    // Two servers at once: one build between them.
    let configured = TestServer::builder(dir)
        .config("base_url", "https://sho.rt")
        .start()?;
    let plain = TestServer::start(dir)?;
    let link = |server: &TestServer| {
        server
            .request(squall_test::http::Method::POST, "/links")
            .header("content-type", "application/json")
            .body(r#"{"url": "https://example.com/a/long/path"}"#)
            .send()
    };
    let created = link(&configured).await?;
    assert_eq!(created.status(), 201);
    let location = created.headers()["location"].to_str()?.to_owned();
    assert!(location.starts_with("https://sho.rt/"), "{location}");
    // The manifest's own value where the test sets none.
    let created = link(&plain).await?;
    let location = created.headers()["location"].to_str()?.to_owned();
    assert!(location.starts_with("http://127.0.0.1:8080/"), "{location}");
    Ok(())
}

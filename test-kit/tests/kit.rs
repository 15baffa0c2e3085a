//! The kit itself, against the `squall` this workspace builds (found beside
//! the test binary) serving the hello example.

use squall_test::TestServer;

fn hello() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/hello")
}

#[tokio::test]
async fn the_server_log_is_the_tests_to_read_and_wait_for() -> anyhow::Result<()> {
    let server = TestServer::start(hello())?;
    assert_eq!(server.get("/hello/kit").await?.status, 200);
    let line = server.wait_for_log("/hello/kit").await?;
    assert!(line.contains("200"), "{line}");
    assert!(server.log().iter().any(|logged| logged == &line));
    Ok(())
}

#[tokio::test]
async fn servers_of_one_binary_start_together_and_build_once() -> anyhow::Result<()> {
    let (first, second) = tokio::join!(
        tokio::task::spawn_blocking(|| TestServer::start(hello())),
        tokio::task::spawn_blocking(|| TestServer::start(hello())),
    );
    let (first, second) = (first??, second??);
    assert_ne!(first.url("/"), second.url("/"));
    assert_eq!(first.get("/hello/a").await?.text(), "Hello, a!");
    assert_eq!(second.get("/hello/b").await?.text(), "Hello, b!");
    let cargo_runs = |server: &TestServer| {
        server
            .log()
            .iter()
            .filter(|line| line.contains("Finished") || line.contains("on build directory"))
            .count()
    };
    // At most one of them built (another test may have): the other was
    // given what it built, and neither waited on cargo's lock.
    assert!(cargo_runs(&first) + cargo_runs(&second) <= 1);
    Ok(())
}

#[test]
fn a_server_that_cannot_start_says_why() {
    let Err(err) = TestServer::start("/no/such/app") else {
        panic!("served an app that does not exist");
    };
    let message = format!("{err:#}");
    assert!(message.contains("does not exist"), "{message}");
}

#[tokio::test]
async fn a_refusal_answers_the_status_and_logs_the_detail() -> anyhow::Result<()> {
    // The chat example with a manifest of the test's own: no topic granted.
    let dir = std::env::temp_dir().join(format!("squall-kit-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let manifest = dir.join("no-topics.toml");
    let chat = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/chat");
    std::fs::write(
        &manifest,
        format!(
            "[app.chat]\nsource = {:?}\nkv = true\n",
            chat.display().to_string()
        ),
    )?;
    let server = TestServer::builder(&chat).manifest(&manifest).start()?;
    let refused = server
        .post_form("/a/message/new", &[("body", "hello, room")])
        .await?;
    assert_eq!(refused.status, 500);
    assert!(!refused.text().contains("pubsub"), "{}", refused.text());
    let line = server
        .wait_for_log("Internal Server Error: pubsub denied")
        .await?;
    assert!(line.contains("WARN"), "{line}");
    drop(server);
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}

#[tokio::test]
async fn a_secret_given_by_the_test_needs_no_environment_variable() -> anyhow::Result<()> {
    let dir = std::env::temp_dir().join(format!("squall-kit-secret-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let manifest = dir.join("squall.toml");
    std::fs::write(
        &manifest,
        format!(
            "[app.hello]\nsource = {:?}\n[app.hello.config]\n\
             cookie_secret = {{ env = \"SQUALL_KIT_SURELY_UNSET\" }}\n",
            hello().display().to_string()
        ),
    )?;
    let server = TestServer::builder(hello())
        .manifest(&manifest)
        .secret("cookie_secret", "a test secret of sixteen bytes or more")
        .start()?;
    assert_eq!(server.get("/hello/secret").await?.status, 200);
    drop(server);
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}

//! The digest example served by the real host through the test kit: the
//! heartbeat counts, a sign-up is welcomed through the queue (by a mailer
//! of the test's own), a reminder runs unless the user confirms, and the
//! digest reaches the page's WebSocket.

use squall_test::TestServer;
use std::path::Path;

/// The example's manifest with the digest every second, so a test sees it.
fn quick_manifest(dir: &tempfile::TempDir) -> anyhow::Result<std::path::PathBuf> {
    let example = Path::new(env!("CARGO_MANIFEST_DIR"));
    let manifest = std::fs::read_to_string(example.join("squall.toml"))?
        .replace(
            "source = \".\"",
            &format!("source = {:?}", example.display().to_string()),
        )
        .replace(
            "source = \"../hello\"",
            &format!(
                "source = {:?}",
                example.join("../hello").display().to_string()
            ),
        )
        .replace("cron = \"0 0 * * * *\"", "every = \"1s\"");
    let path = dir.path().join("squall.toml");
    std::fs::write(&path, manifest)?;
    Ok(path)
}

#[tokio::test]
async fn signups_are_welcomed_reminded_and_digested() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let mailer = TestServer::start(Path::new(env!("CARGO_MANIFEST_DIR")).join("../hello"))?;
    let server = TestServer::builder(env!("CARGO_MANIFEST_DIR"))
        .manifest(quick_manifest(&dir)?)
        .config("welcome_url", &mailer.url("/hello"))
        .config("reminder_after", "1")
        .start()?;
    let mut live = server.websocket("/live").await?;

    let signed = server
        .post_form("/signup", &[("email", "ada@example.com")])
        .await?;
    assert_eq!(signed.status, 202, "{}", signed.text());
    server
        .wait_for_log("welcomed ada@example.com (attempt 1)")
        .await?;
    let welcome = server.get("/welcome/ada@example.com").await?;
    assert_eq!(welcome.text(), "Hello, ada@example.com!");
    server
        .wait_for_log("reminding ada@example.com to confirm")
        .await?;

    // Confirmed before its reminder is due: the reminder is cancelled.
    server
        .post_form("/signup", &[("email", "bob@example.com")])
        .await?;
    let confirmed = server
        .post_form("/confirm", &[("email", "bob@example.com")])
        .await?;
    assert!(
        confirmed.text().contains("\"reminder_cancelled\":true"),
        "{}",
        confirmed.text()
    );

    let digest = live.recv_text().await?;
    assert!(digest.contains("\"signups\":"), "{digest}");
    server.wait_for_log("heartbeat 2").await?;
    let health: serde_json::Value = server.get("/health").await?.json()?;
    assert!(health["heartbeats"].as_i64() >= Some(2), "{health}");
    assert!(
        !server
            .log()
            .iter()
            .any(|line| line.contains("reminding bob"))
    );
    Ok(())
}

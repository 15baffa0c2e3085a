//! The TCP chat served by the real host, through the test kit: a line one
//! client sends reaches the other.

use squall_test::TestServer;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

#[tokio::test]
async fn a_line_reaches_the_other_client() -> anyhow::Result<()> {
    let server = TestServer::start(env!("CARGO_MANIFEST_DIR"))?;
    let mut ann = BufReader::new(server.tcp("chat").await?).lines();
    let welcome = ann.next_line().await?.unwrap_or_default();
    assert!(welcome.starts_with("welcome, "), "{welcome}");
    let mut bob = BufReader::new(server.tcp("chat").await?);
    let mut bob_welcome = String::new();
    bob.read_line(&mut bob_welcome).await?;
    bob.get_mut().write_all(b"hello, ann\n").await?;
    loop {
        let line = ann.next_line().await?.unwrap_or_default();
        if line.ends_with(": hello, ann") {
            break;
        }
        assert!(line.starts_with("* "), "unexpected {line:?}");
    }
    Ok(())
}

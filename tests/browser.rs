//! The chat example in a real browser: two headless Chromium pages chat
//! with each other, once over long polling and once over WebSocket.
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

mod support;

use std::time::Duration;
use support::browser::{Browser, Page};
use support::{Server, repo};

const PATIENCE: Duration = Duration::from_secs(20);

/// Type `text` into the page's form and submit it, as a user would.
async fn say(browser: &mut Browser, page: &Page, text: &str) {
    let script = format!(
        "(() => {{ const input = document.querySelector('input[name=body]'); input.value = {text:?}; \
         document.getElementById('message-form').requestSubmit(); return true; }})()"
    );
    browser.eval(page, &script).await;
}

fn shows(text: &str) -> String {
    format!(
        "[...document.querySelectorAll('#inbox .message')].some((m) => m.textContent === {text:?})"
    )
}

async fn two_pages_chat(transport: &str, ready: &str) {
    let server = Server::start(&repo().join("examples/chat"));
    let mut browser = Browser::launch().await;
    let url = server.url(&format!("/?transport={transport}"));
    let alice = browser.open(&url).await;
    let bob = browser.open(&url).await;
    for page in [&alice, &bob] {
        let status = format!("document.getElementById('status').textContent === {ready:?}");
        browser.wait_for(page, &status, PATIENCE).await;
    }

    let hello = format!("hello bob, over {transport}");
    say(&mut browser, &alice, &hello).await;
    browser.wait_for(&bob, &shows(&hello), PATIENCE).await;
    browser.wait_for(&alice, &shows(&hello), PATIENCE).await;

    let reply = format!("hi alice <b>not bold</b> ({transport})");
    say(&mut browser, &bob, &reply).await;
    browser.wait_for(&alice, &shows(&reply), PATIENCE).await;

    // Messages render as text, never as markup.
    let bold = browser
        .eval(&alice, "document.querySelectorAll('#inbox b').length")
        .await;
    assert_eq!(bold, serde_json::json!(0));
    // Both pages show the same conversation, in the same order.
    let order =
        "[...document.querySelectorAll('#inbox .message')].map((m) => m.textContent).join('|')";
    assert_eq!(
        browser.eval(&alice, order).await,
        browser.eval(&bob, order).await
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn two_browser_pages_chat_over_long_polling() {
    two_pages_chat("poll", "long polling").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn two_browser_pages_chat_over_websocket() {
    two_pages_chat("ws", "websocket open").await;
}

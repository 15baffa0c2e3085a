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
    browser.act(page, &script).await;
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

/// Fill the inputs named in `fields` of the form `#form_id` and submit it.
async fn submit(browser: &mut Browser, page: &Page, form_id: &str, fields: &[(&str, &str)]) {
    let mut script = String::from("(() => {");
    for (name, value) in fields {
        script.push_str(&format!(
            "document.querySelector('#{form_id} [name={name}]').value = {value:?};"
        ));
    }
    script.push_str(&format!(
        "document.getElementById({form_id:?}).requestSubmit(); return true; }})()"
    ));
    browser.act(page, &script).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_notes_app_signs_up_logs_in_and_keeps_a_note() {
    let server = Server::start(&repo().join("examples/notes"));
    let mut browser = Browser::launch().await;
    let page = browser.open(&server.url("/")).await;
    browser
        .wait_for(
            &page,
            "document.querySelector('a[href=\"/signup\"]') !== null",
            PATIENCE,
        )
        .await;

    // Sign up, as a user would: follow the link, fill the form.
    browser
        .act(
            &page,
            "document.querySelector('a[href=\"/signup\"]').click()",
        )
        .await;
    browser
        .wait_for(
            &page,
            "document.getElementById('account-form') !== null && location.pathname === '/signup'",
            PATIENCE,
        )
        .await;
    submit(
        &mut browser,
        &page,
        "account-form",
        &[("username", "grace"), ("password", "a long password")],
    )
    .await;
    browser
        .wait_for(
            &page,
            "location.pathname === '/notes' && document.getElementById('note-form') !== null",
            PATIENCE,
        )
        .await;
    // The stylesheet and the script (static files, served by the host) are in use.
    browser
        .wait_for(
            &page,
            "getComputedStyle(document.body).maxWidth === '640px'",
            PATIENCE,
        )
        .await;
    browser
        .wait_for(
            &page,
            "document.getElementById('count').textContent === '0 / 10000'",
            PATIENCE,
        )
        .await;

    // Write a note; it is listed, as text.
    submit(
        &mut browser,
        &page,
        "note-form",
        &[("title", "Groceries <b>now</b>"), ("body", "milk, eggs")],
    )
    .await;
    let listed = "[...document.querySelectorAll('#notes .note .title')].some((t) => t.textContent === 'Groceries <b>now</b>')";
    browser.wait_for(&page, listed, PATIENCE).await;
    assert_eq!(
        browser
            .eval(&page, "document.querySelectorAll('#notes b').length")
            .await,
        serde_json::json!(0)
    );

    // Log out, then back in: the note is still there.
    browser
        .act(&page, "document.getElementById('logout').click()")
        .await;
    browser
        .wait_for(
            &page,
            "location.pathname === '/' && document.querySelector('a[href=\"/login\"]') !== null",
            PATIENCE,
        )
        .await;
    browser.act(&page, "location.href = '/notes'").await;
    // Not logged in: sent to the login page, which comes back to /notes.
    browser
        .wait_for(
            &page,
            "location.pathname === '/login' && document.getElementById('account-form') !== null",
            PATIENCE,
        )
        .await;
    submit(
        &mut browser,
        &page,
        "account-form",
        &[("username", "grace"), ("password", "a wrong password")],
    )
    .await;
    browser
        .wait_for(&page, "document.getElementById('error') !== null", PATIENCE)
        .await;
    submit(
        &mut browser,
        &page,
        "account-form",
        &[("username", "grace"), ("password", "a long password")],
    )
    .await;
    browser
        .wait_for(
            &page,
            &format!("location.pathname === '/notes' && {listed}"),
            PATIENCE,
        )
        .await;
}

/// The Python port of Tornado's chat demo, in two pages.
async fn two_pages_chat_in_python(transport: &str) {
    let server = Server::start(&repo().join("examples/python-chat"));
    let mut browser = Browser::launch().await;
    let url = server.url(&format!("/?transport={transport}"));
    let alice = browser.open(&url).await;
    let bob = browser.open(&url).await;
    let ready = if transport == "ws" {
        "typeof updater === 'object' && updater.socket !== null && updater.socket.readyState === 1"
    } else {
        "document.readyState === 'complete' && typeof updater === 'object'"
    };
    for page in [&alice, &bob] {
        browser.wait_for(page, ready, PATIENCE).await;
    }
    for (page, text) in [
        (&alice, format!("hello bob, over {transport}")),
        (&bob, format!("hi <b>alice</b> ({transport})")),
    ] {
        let script = format!(
            "(() => {{ document.getElementById('message').value = {text:?}; \
             document.getElementById('messageform').requestSubmit(); return true; }})()"
        );
        browser.act(page, &script).await;
        let shown = format!(
            "[...document.querySelectorAll('#inbox .message')].some((m) => m.textContent === {text:?})"
        );
        browser.wait_for(&alice, &shown, PATIENCE).await;
        browser.wait_for(&bob, &shown, PATIENCE).await;
    }
    let bold = browser
        .eval(&alice, "document.querySelectorAll('#inbox b').length")
        .await;
    assert_eq!(bold, serde_json::json!(0));
}

#[tokio::test(flavor = "multi_thread")]
async fn two_browser_pages_chat_in_the_python_demo_over_long_polling() {
    two_pages_chat_in_python("poll").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn two_browser_pages_chat_in_the_python_demo_over_websocket() {
    two_pages_chat_in_python("ws").await;
}

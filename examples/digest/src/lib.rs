//! Work beyond a request: `squall serve examples/digest`, then open
//! http://127.0.0.1:8080/.
//!
//! - `POST /signup` (`email=...`) sends the address to the `signups`
//!   queue and keeps a `remind` job due in `reminder_after` seconds;
//! - the `signups` consumer "sends" each a welcome: it fetches the mailer
//!   (`GET {welcome_url}/{email}`, the hello app beside it) and keeps its
//!   answer, read back at `GET /welcome/{email}`; a mailer that fails
//!   means the message is delivered again later;
//! - `POST /confirm` (`email=...`) cancels the reminder, if it has not run;
//! - the `digest` schedule publishes the hour's sign-ups to the `digest`
//!   topic, which the page's WebSocket (`/live`) shows;
//! - the `heartbeat` schedule counts, and `GET /health` answers
//!   `{"heartbeats": N}`.

use squall_sdk::jobs::{self, Job};
use squall_sdk::queue::{self, Batch};
use squall_sdk::schedule::Tick;
use squall_sdk::serde_json::{Value, json};
use squall_sdk::websocket::{Accept, Connection, WebSocket};
use squall_sdk::{Error, Html, Json, Request, Router, StatusCode, config, http, kv, log, pubsub};
use std::time::Duration;

const TOPIC: &str = "digest";

fn app() -> Router {
    Router::new()
        .get("/", |_req| async { Html(PAGE) })
        .post("/signup", signup)
        .post("/confirm", confirm)
        .get("/welcome/{email}", welcome)
        .get("/health", health)
        .websocket("/live", WebSocket::new().on_open(live))
        .consumer("signups", send_welcomes)
        .on_job("remind", remind)
        .on_schedule("digest", publish_digest)
        .on_schedule("heartbeat", |_tick: Tick| async {
            let beats = kv::increment("heartbeats", 1).await?;
            log::info(format!("heartbeat {beats}"));
            Ok::<_, Error>(())
        })
}

/// The `email` field, if it is one this example accepts (it goes into a
/// URL path and store keys).
async fn email_of(req: &mut Request) -> Result<String, Error> {
    let form: std::collections::HashMap<String, String> = req.form().await?;
    let email = form
        .get("email")
        .map(|email| email.trim())
        .unwrap_or_default();
    let plain = email
        .bytes()
        .all(|byte| byte.is_ascii_alphanumeric() || b".@_+-".contains(&byte));
    if email.len() > 254 || !plain || !email.contains('@') {
        return Err(Error::bad_request("give an email address (email=...)"));
    }
    Ok(email.to_owned())
}

async fn signup(mut req: Request) -> Result<(StatusCode, Json<Value>), Error> {
    let email = email_of(&mut req).await?;
    queue::send("signups", email.as_bytes()).await?;
    let after: u64 = config::get("reminder_after")
        .and_then(|seconds| seconds.parse().ok())
        .unwrap_or(60);
    let reminder = jobs::after(Duration::from_secs(after), "remind", email.as_bytes()).await?;
    kv::set(&format!("reminder:{email}"), &reminder).await?;
    kv::increment("signups-this-hour", 1).await?;
    let answer = json!({ "email": email, "reminder": reminder });
    Ok((StatusCode::ACCEPTED, Json(answer)))
}

async fn confirm(mut req: Request) -> Result<Json<Value>, Error> {
    let email = email_of(&mut req).await?;
    kv::set(&format!("confirmed:{email}"), "yes").await?;
    let cancelled = match kv::get(&format!("reminder:{email}")).await? {
        Some(id) => jobs::cancel(&String::from_utf8_lossy(&id)).await?,
        None => false,
    };
    Ok(Json(
        json!({ "email": email, "reminder_cancelled": cancelled }),
    ))
}

async fn welcome(req: Request) -> Result<String, Error> {
    let email = req.param("email").unwrap_or_default();
    match kv::get(&format!("welcome:{email}")).await? {
        Some(text) => Ok(String::from_utf8_lossy(&text).into_owned()),
        None => Err(Error::not_found()),
    }
}

async fn health(_req: Request) -> Result<Json<Value>, Error> {
    let heartbeats = kv::increment("heartbeats", 0).await?;
    Ok(Json(json!({ "heartbeats": heartbeats })))
}

async fn live(ws: Connection, _req: Request) -> Result<Accept, Error> {
    ws.subscribe(TOPIC)?;
    Ok(Accept::new())
}

/// Each sign-up's welcome, through the mailer; one the mailer did not
/// take is delivered again after the consumer's `retry_delay`.
async fn send_welcomes(batch: Batch) -> Result<(), Error> {
    let mailer = config::get("welcome_url").unwrap_or_default();
    for message in batch.messages() {
        let email = message.payload_text();
        match http::get(format!("{mailer}/{email}")).send().await {
            Ok(answer) if answer.status().is_success() => {
                let text = answer.text().await.unwrap_or_default();
                kv::set(&format!("welcome:{email}"), &text).await?;
                log::info(format!("welcomed {email} (attempt {})", message.attempt()));
            }
            Ok(answer) => {
                log::warn(format!(
                    "the mailer answered {} for {email}",
                    answer.status()
                ));
                batch.retry(message);
            }
            Err(err) => {
                log::warn(format!("the mailer is unreachable for {email}: {err}"));
                batch.retry(message);
            }
        }
    }
    Ok(())
}

/// A sign-up not confirmed in time (a confirmed one's job was cancelled,
/// unless it was already running).
async fn remind(job: Job) -> Result<(), Error> {
    let email = job.payload_text();
    if kv::exists(&format!("confirmed:{email}")).await? {
        return Ok(());
    }
    kv::increment("reminders", 1).await?;
    log::info(format!("reminding {email} to confirm"));
    Ok(())
}

/// The hour's sign-ups, to every page watching.
async fn publish_digest(tick: Tick) -> Result<(), Error> {
    let count = kv::increment("signups-this-hour", 0).await?;
    kv::increment("signups-this-hour", -count).await?;
    let digest = json!({ "digest": tick.scheduled_ms(), "signups": count });
    pubsub::publish_json(TOPIC, &digest)?;
    log::info(format!("digest published: {count} sign-ups"));
    Ok(())
}

const PAGE: &str = r#"<!doctype html>
<meta charset="utf-8">
<title>Digest</title>
<h1>Sign up</h1>
<form method="post" action="/signup"><input name="email" placeholder="ada@example.com"> <button>Sign up</button></form>
<form method="post" action="/confirm"><input name="email" placeholder="ada@example.com"> <button>Confirm</button></form>
<p>Heartbeats: <span id="beats">?</span></p>
<h2>Digests</h2>
<ul id="digests"></ul>
<script>
async function beat() {
  const health = await (await fetch("/health")).json();
  document.getElementById("beats").textContent = health.heartbeats;
}
setInterval(beat, 2000); beat();
const socket = new WebSocket(`ws://${location.host}/live`);
socket.onmessage = (event) => {
  const item = document.createElement("li");
  item.textContent = event.data;
  document.getElementById("digests").prepend(item);
};
</script>
"#;

squall_sdk::export!(app);

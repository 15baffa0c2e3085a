//! A clock over server-sent events: `squall serve examples/sse-clock`, then
//! open http://127.0.0.1:8080/ or `curl -N localhost:8080/clock`.

use squall_sdk::futures::stream;
use squall_sdk::sse::{Event, Sse};
use squall_sdk::{Html, Request, Router, sleep};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

fn app() -> Router {
    Router::new()
        .get("/", |_req| async { Html(PAGE) })
        .get("/clock", clock)
}

/// One event per second with the time; `?count=N` stops after N events.
async fn clock(req: Request) -> Sse {
    let count = req
        .query_arguments()
        .get("count")
        .and_then(|n| n.parse::<u64>().ok())
        .unwrap_or(u64::MAX);
    let ticks = stream::unfold(0u64, move |n| async move {
        if n >= count {
            return None;
        }
        if n > 0 {
            sleep(Duration::from_secs(1)).await;
        }
        let event = Event::default()
            .event("tick")
            .id(n.to_string())
            .data(utc_time());
        Some((event, n + 1))
    });
    Sse::new(ticks).keep_alive(Duration::from_secs(15))
}

/// `HH:MM:SS UTC` from the host's wall clock.
fn utc_time() -> String {
    let seconds = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_secs());
    let (h, m, s) = ((seconds / 3600) % 24, (seconds / 60) % 60, seconds % 60);
    format!("{h:02}:{m:02}:{s:02} UTC")
}

const PAGE: &str = r#"<!doctype html>
<meta charset="utf-8">
<title>Squall clock</title>
<h1 id="time">…</h1>
<script>
  const clock = new EventSource("/clock");
  clock.addEventListener("tick", (e) => { document.getElementById("time").textContent = e.data; });
</script>
"#;

squall_sdk::export!(app);

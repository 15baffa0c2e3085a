//! A deliberately bad tenant, to show (and test) that its neighbours do not
//! notice it: serve `examples/multi-tenant`, then `curl` its routes on
//! `hostile.localhost` while the other apps keep answering.
//!
//! - `GET /loop`: spins forever (stopped by `cpu_time` or `timeout`)
//! - `GET /oom`: allocates without end (stopped by `memory`)
//! - `GET /panic`: panics (500)
//! - `GET /big`: streams an endless response (cut by `timeout`)
//! - `GET /park/{ms}`: parks on a host timer, holding an instance
//! - `GET /topics/{n}`: publishes to `n` topics of its own (`pubsub_topics`)
//! - `GET /fetch/{n}?url=`: `n` fetches of `url` at once (`max_fetches_per_request`)
//! - `GET /log/{kib}`: prints `kib` KiB to stdout (`log_per_request`)
//! - WebSocket `/flood`: sends its client messages as fast as it is allowed

use squall_sdk::futures::future::join_all;
use squall_sdk::websocket::{Connection, Message, WebSocket};
use squall_sdk::{Request, Response, Router, pubsub, sleep};
use std::time::Duration;

fn app() -> Router {
    Router::new()
        .get("/loop", spin)
        .get("/oom", hoard)
        .get("/panic", panics)
        .get("/big", endless)
        .get("/park/{ms}", park)
        .get("/topics/{n}", topics)
        .get("/fetch/{n}", fetches)
        .get("/log/{kib}", chatter)
        .websocket("/flood", WebSocket::new().on_message(flood))
}

fn number(req: &Request, name: &str) -> u64 {
    req.param(name)
        .and_then(|value| value.parse().ok())
        .unwrap_or(1)
}

async fn spin(_req: Request) -> &'static str {
    let mut counter: u64 = 0;
    loop {
        counter = std::hint::black_box(counter.wrapping_add(1));
    }
}

async fn hoard(_req: Request) -> &'static str {
    let mut hoard: Vec<Vec<u8>> = Vec::new();
    loop {
        hoard.push(vec![1u8; 1 << 20]);
        std::hint::black_box(&hoard);
    }
}

async fn panics(_req: Request) -> &'static str {
    panic!("the hostile tenant panics on purpose");
}

async fn endless(_req: Request) -> Response {
    Response::stream(|mut body| async move {
        let chunk = vec![b'x'; 64 << 10];
        while body.write(chunk.clone()).await.is_ok() {}
    })
}

async fn park(req: Request) -> String {
    let ms = number(&req, "ms");
    // Tests count these lines to know how many requests are parked.
    println!("parking for {ms} ms");
    sleep(Duration::from_millis(ms)).await;
    format!("parked {ms} ms")
}

/// Publishes one message to each of `n` topics; says how far it got.
async fn topics(req: Request) -> String {
    let n = number(&req, "n");
    for i in 0..n {
        if let Err(err) = pubsub::publish(&format!("spam.{i}"), "x") {
            return format!("published {i}, then: {err}");
        }
    }
    format!("published {n}")
}

/// `n` fetches at once; counts how each ended.
async fn fetches(req: Request) -> String {
    let n = number(&req, "n");
    let url = req.query_arguments().get("url").unwrap_or_default();
    let outcomes = join_all((0..n).map(|_| squall_sdk::http::get(url).send())).await;
    let refused = outcomes
        .iter()
        .filter(|outcome| matches!(outcome, Err(err) if err.kind() == "limit"))
        .count();
    format!(
        "{} fetched, {refused} refused by a limit",
        n as usize - refused
    )
}

/// Prints `kib` KiB of output.
async fn chatter(req: Request) -> String {
    let kib = number(&req, "kib");
    let line = "y".repeat(1023);
    for _ in 0..kib {
        println!("{line}");
    }
    format!("printed {kib} KiB")
}

/// Any message starts a flood of 16 KiB messages to the client.
async fn flood(ws: Connection, _message: Message) {
    let chunk = "z".repeat(16 << 10);
    while ws.send_text(chunk.clone()).is_ok() {
        sleep(Duration::from_millis(1)).await;
    }
}

squall_sdk::export!(app);

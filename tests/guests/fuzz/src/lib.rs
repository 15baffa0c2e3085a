//! The capability fuzzer's guest, on the raw bindings (no SDK between it and
//! the host): driven by a seed, it calls every import of the `squall:app`
//! world, and the standard `wasi:keyvalue` and `wasi:config` imports Squall
//! serves, with adversarial arguments: sizes at and past every limit,
//! duplicated and empty and invalid names, ids that are not its own, many
//! calls at once, streams used after their other end is gone.
//!
//! `GET /?seed=S&calls=N&at_once=C[&upstream=HOST:PORT][&only=K]`: `N`
//! calls chosen from `S` (or only of kind `K`), `C` at a time; the answer has one line per kind of outcome,
//! `import outcome count` (`kv.get-many too-large 3`). Every call must come
//! back with an answer: one that traps fails the request (a 500), which
//! the driver (tests/fuzz.rs) counts as a failure.

mod calls;

wit_bindgen::generate!({
    inline: "
        package squall:fuzz;
        world fuzz {
            include squall:app/app@0.1.0;
            import wasi:keyvalue/store@0.2.0-draft;
            import wasi:keyvalue/atomics@0.2.0-draft;
            import wasi:keyvalue/batch@0.2.0-draft;
            import wasi:config/store@0.2.0-rc.1;
        }
    ",
    path: ["../../../wit", "../../../wit-standard/keyvalue", "../../../wit-standard/config"],
    generate_all,
});

use exports::squall::app::app_info::{Description, Guest as InfoGuest};
use exports::squall::app::handler::Guest;
use exports::squall::app::websocket_handler::Guest as SocketGuest;
use squall::app::types::{Body, Request, Response};
use squall::app::websocket_types::{Accept, Connection, OpenResult, WsMessage};
use std::collections::BTreeMap;

struct Fuzz;

export!(Fuzz);

/// What the calls of one request came back with: `(import, outcome)` counts.
pub(crate) type Tally = BTreeMap<(&'static str, String), u64>;

/// A small, seeded generator (xorshift64*), the same on every run.
pub(crate) struct Dice(u64);

impl Dice {
    pub(crate) fn new(seed: u64) -> Dice {
        Dice(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    pub(crate) fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A number below `bound` (0 if `bound` is 0).
    pub(crate) fn below(&mut self, bound: u64) -> u64 {
        if bound == 0 { 0 } else { self.next() % bound }
    }

    /// One of `choices`.
    pub(crate) fn pick<T: Clone>(&mut self, choices: &[T]) -> T {
        let at = usize::try_from(self.below(choices.len() as u64)).unwrap_or(0);
        choices[at].clone()
    }
}

impl Guest for Fuzz {
    async fn handle(request: Request) -> Response {
        let query: BTreeMap<&str, &str> = request
            .query
            .split('&')
            .filter_map(|pair| pair.split_once('='))
            .collect();
        let number = |name: &str, default: u64| {
            query
                .get(name)
                .and_then(|value| value.parse().ok())
                .unwrap_or(default)
        };
        let (seed, calls, at_once) = (
            number("seed", 1),
            number("calls", 100),
            number("at_once", 4),
        );
        let upstream = query.get("upstream").map(|value| value.to_string());
        let only = query.get("only").and_then(|only| only.parse().ok());
        let mut dice = Dice::new(seed);
        let mut tally = Tally::new();
        let mut left = calls;
        while left > 0 {
            let batch = left.min(at_once.max(1));
            left -= batch;
            let round: Vec<_> = (0..batch)
                .map(|_| calls::one(Dice::new(dice.next()), upstream.clone(), only))
                .collect();
            for (import, outcome) in futures::future::join_all(round).await {
                *tally.entry((import, outcome)).or_default() += 1;
            }
        }
        let mut text = String::new();
        for ((import, outcome), count) in &tally {
            text.push_str(&format!("{import} {outcome} {count}\n"));
        }
        Response {
            status: 200,
            headers: vec![("content-type".to_owned(), b"text/plain".to_vec())],
            body: Body::Bytes(text.into_bytes()),
        }
    }
}

impl exports::squall::app::background::Guest for Fuzz {
    async fn on_schedule(
        _name: String,
        _payload: Vec<u8>,
        _scheduled_at: u64,
    ) -> Result<(), String> {
        Ok(())
    }

    async fn on_job(
        _id: String,
        _name: String,
        payload: Vec<u8>,
        attempt: u32,
    ) -> Result<(), String> {
        // Some fail, to be retried.
        match payload.first() {
            Some(b'f') if attempt < 2 => Err("failing on purpose".to_owned()),
            _ => Ok(()),
        }
    }

    async fn on_messages(
        _queue: String,
        messages: Vec<exports::squall::app::background::QueuedMessage>,
    ) -> Result<Vec<bool>, String> {
        // Every other one is not acknowledged, to be retried.
        Ok(messages
            .iter()
            .map(|message| message.attempt % 2 == 0)
            .collect())
    }
}

impl InfoGuest for Fuzz {
    fn describe() -> Description {
        Description {
            websocket_routes: vec!["/ws".to_owned()],
            route_errors: Vec::new(),
            schedules: Vec::new(),
            jobs: vec!["tick".to_owned()],
            consumers: vec!["fuzz-q".to_owned()],
        }
    }
}

impl SocketGuest for Fuzz {
    async fn on_open(_connection: Connection, _request: Request) -> OpenResult {
        OpenResult::Accept(Accept { protocol: None })
    }

    async fn on_message(_connection: Connection, _message: WsMessage) {}

    async fn on_close(_connection: Connection, _code: u16, _reason: String) {}
}

impl exports::squall::app::tcp_handler::Guest for Fuzz {
    async fn on_connection(
        _connection: squall::app::tcp_types::TcpConnection,
        _input: wit_bindgen::StreamReader<u8>,
    ) -> wit_bindgen::StreamReader<u8> {
        wit_stream::new::<u8>().1
    }

    async fn on_open(_connection: squall::app::tcp_types::TcpConnection) {}

    async fn on_frame(_connection: squall::app::tcp_types::TcpConnection, _frame: Vec<u8>) {}

    async fn on_close(_connection: squall::app::tcp_types::TcpConnection) {}
}

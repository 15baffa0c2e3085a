//! A hostile guest written against the raw `squall:app` bindings, not the
//! SDK: its answers alias one buffer many times, so that a host that copied
//! every element of a list of lists would copy the same bytes over and over
//! (a few megabytes of guest memory becoming gigabytes in the host).
//!
//! `GET /headers/{count}/{mib}`: a response with `count` header values that
//! all point at one buffer of `mib` MiB.
#![allow(unsafe_code)]

wit_bindgen::generate!({
    world: "app",
    path: "../../../wit",
});

use exports::squall::app::app_info::{Description, Guest as InfoGuest};
use exports::squall::app::handler::Guest;
use exports::squall::app::websocket_handler::Guest as SocketGuest;
use squall::app::types::{Body, Request, Response};
use squall::app::websocket_types::{Accept, Connection, OpenResult, WsMessage};

struct Alias;

export!(Alias);

impl Guest for Alias {
    async fn handle(request: Request) -> Response {
        let mut parts = request.path.trim_start_matches('/').split('/');
        let (Some("headers"), Some(count), Some(mib)) = (parts.next(), parts.next(), parts.next())
        else {
            return answer(404, Vec::new(), b"not found");
        };
        let count: usize = count.parse().unwrap_or(0);
        let size = mib.parse::<usize>().unwrap_or(0) << 20;
        let mut buffer = vec![b'a'; size];
        let pointer = buffer.as_mut_ptr();
        std::mem::forget(buffer);
        let headers = (0..count)
            .map(|n| {
                // SAFETY: none, on purpose: every value is the same bytes.
                let value = unsafe { Vec::from_raw_parts(pointer, size, size) };
                (format!("x-alias-{n}"), value)
            })
            .collect();
        answer(200, headers, b"aliased")
    }
}

fn answer(status: u16, headers: Vec<(String, Vec<u8>)>, body: &[u8]) -> Response {
    Response {
        status,
        headers,
        body: Body::Bytes(body.to_vec()),
    }
}

impl exports::squall::app::background::Guest for Alias {
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
        _payload: Vec<u8>,
        _attempt: u32,
    ) -> Result<(), String> {
        Ok(())
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

impl InfoGuest for Alias {
    fn describe() -> Description {
        Description {
            websocket_routes: Vec::new(),
            route_errors: Vec::new(),
            schedules: Vec::new(),
            jobs: Vec::new(),
            consumers: Vec::new(),
        }
    }
}

impl SocketGuest for Alias {
    async fn on_open(_connection: Connection, _request: Request) -> OpenResult {
        OpenResult::Accept(Accept { protocol: None })
    }

    async fn on_message(_connection: Connection, _message: WsMessage) {}

    async fn on_close(_connection: Connection, _code: u16, _reason: String) {}
}

impl exports::squall::app::tcp_handler::Guest for Alias {
    async fn on_connection(
        _connection: squall::app::tcp_types::TcpConnection,
        _input: wit_bindgen::StreamReader<u8>,
    ) -> wit_bindgen::StreamReader<u8> {
        // No TCP here: an empty answer, which closes the connection.
        wit_stream::new::<u8>().1
    }

    async fn on_open(_connection: squall::app::tcp_types::TcpConnection) {}

    async fn on_frame(_connection: squall::app::tcp_types::TcpConnection, _frame: Vec<u8>) {}

    async fn on_close(_connection: squall::app::tcp_types::TcpConnection) {}
}

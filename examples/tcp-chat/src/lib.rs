//! A line-based chat server over plain TCP (try it with `nc 127.0.0.1 7000`
//! in two terminals): each line a client sends goes to every connected
//! client, through the `chat` pub/sub topic. Each connection runs in an
//! instance of its own for its whole life, reading the client's lines and
//! forwarding the room's messages at once.

use squall_sdk::Router;
use squall_sdk::futures::future::select;
use squall_sdk::pubsub;
use squall_sdk::tcp::{ReadError, TcpReader, TcpStream, TcpWriter};
use std::pin::pin;
use std::time::Duration;

const TOPIC: &str = "chat";
/// The longest line a client may send.
const MAX_LINE: usize = 1024;

fn app() -> Router {
    Router::new()
        .get("/", |_req| async {
            "A TCP chat: connect with `nc 127.0.0.1 7000`.\n"
        })
        .tcp(chat)
}

async fn chat(stream: TcpStream) {
    let name = stream.peer().to_owned();
    let (reader, writer) = stream.split();
    // The recent history first, then what is said from now on.
    let recent = pubsub::wait(TOPIC, Some(0), Duration::ZERO)
        .await
        .unwrap_or_default();
    let cursor = recent.last().map(|message| message.id);
    let mut welcome = format!("welcome, {name}! /quit to leave\n");
    for message in &recent {
        welcome.push_str(message.text().unwrap_or_default());
    }
    if writer.write(welcome).await.is_err() {
        return;
    }
    let _ = pubsub::publish(TOPIC, format!("* {name} joined\n"));
    // Until the client leaves: its lines to the room, the room's to it.
    // When either ends, the other is dropped, and returning closes the
    // connection.
    let talking = pin!(talk(reader, writer.clone(), &name));
    let listening = pin!(listen(writer, cursor));
    select(talking, listening).await;
    let _ = pubsub::publish(TOPIC, format!("* {name} left\n"));
}

/// The client's lines to the room, until it leaves.
async fn talk(mut reader: TcpReader, writer: TcpWriter, name: &str) {
    loop {
        let line = match reader.read_until(b"\n", MAX_LINE).await {
            Ok(line) => line,
            Err(ReadError::TooLong) => {
                let _ = writer.write("line too long: bye\n").await;
                return;
            }
            // The client left (or sent what is not a line).
            Err(_) => return,
        };
        let text = String::from_utf8_lossy(&line);
        let text = text.trim_end();
        if text == "/quit" {
            let _ = writer.write("bye\n").await;
            return;
        }
        if !text.is_empty() {
            let _ = pubsub::publish(TOPIC, format!("{name}: {text}\n"));
        }
    }
}

/// The room's messages to this client, as they are published.
async fn listen(writer: TcpWriter, mut cursor: Option<u64>) {
    loop {
        let Ok(messages) = pubsub::wait(TOPIC, cursor, Duration::from_secs(60)).await else {
            return;
        };
        for message in messages {
            cursor = Some(message.id);
            if writer.write(message.payload).await.is_err() {
                return;
            }
        }
    }
}

squall_sdk::export!(app);

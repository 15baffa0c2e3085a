//! One fuzzed call: an import chosen by the dice, with arguments chosen to
//! sit at or past the host's limits, and its outcome in a word (`ok`, or
//! the error variant's name).

use crate::Dice;
use crate::squall::app::types::{Body, FetchError, Method};
use crate::squall::app::{
    config, http_client, jobs, kv, log, pubsub, queues, static_files, tcp, time, websocket,
    websocket_types,
};
use crate::wasi::keyvalue::{atomics, batch, store};
use crate::{wit_future, wit_stream};
use wit_bindgen::StreamResult;

/// Lengths of names and keys: empty, at and around the default limits
/// (`kv_max_key` 512), and far past them.
const TEXT_LENGTHS: [usize; 9] = [0, 1, 8, 511, 512, 513, 4096, 65_536, 1 << 20];
/// Lengths of values and payloads: around `kv_max_value` and pub/sub's
/// 1 MiB, and more than a guest could want back.
const BYTE_LENGTHS: [usize; 7] = [0, 1, 100, 65_536, 1 << 20, (1 << 20) + 1, 2 << 20];
/// Keys calls share, so reads find what writes stored (`big` is 1 MiB).
const KEYS: [&str; 6] = ["k0", "k1", "k2", "counter", "big", "prefix/k"];
/// Topics: granted (`fuzz.*`), not granted, and not names at all.
const TOPICS: [&str; 6] = ["fuzz.a", "fuzz.b", "other", "", "fuzz.", "fuzz.\u{0}"];
/// Counts of keys in one call: none, a few, at and past the 1000 allowed.
const COUNTS: [usize; 6] = [0, 1, 2, 8, 1000, 1001];
/// Connection ids: never this app's (the fuzzer opens none).
const IDS: [u64; 4] = [0, 1, 7, u64::MAX];

/// A key or name: one of [`KEYS`], or made up at a length from
/// [`TEXT_LENGTHS`], ASCII or not.
fn text(dice: &mut Dice) -> String {
    match dice.below(4) {
        0 | 1 => dice.pick(&KEYS).to_owned(),
        2 => "k".repeat(dice.pick(&TEXT_LENGTHS)),
        _ => "é\u{0}/..".repeat(dice.pick(&TEXT_LENGTHS) / 8),
    }
}

/// A key for a list of many: one of [`KEYS`], or made up at the limit.
fn short_text(dice: &mut Dice) -> String {
    match dice.below(3) {
        0 | 1 => dice.pick(&KEYS).to_owned(),
        _ => "k".repeat(dice.pick(&[0, 512, 513])),
    }
}

fn bytes(dice: &mut Dice) -> Vec<u8> {
    vec![b'v'; dice.pick(&BYTE_LENGTHS)]
}

fn ttl(dice: &mut Dice) -> Option<u64> {
    dice.pick(&[None, Some(0), Some(1), Some(60_000), Some(u64::MAX)])
}

/// The name of a result's error variant, or `ok`.
macro_rules! outcome {
    ($result:expr) => {
        match $result {
            Ok(_) => "ok".to_owned(),
            Err(err) => variant(&format!("{err:?}")),
        }
    };
}

/// `FetchError::Denied("...")` -> `denied`: the variant, without its type
/// or text.
fn variant(debug: &str) -> String {
    let head = debug.split(['(', ' ', '{']).next().unwrap_or_default();
    let name = head.rsplit("::").next().unwrap_or_default();
    let mut kebab = String::new();
    for (at, c) in name.chars().enumerate() {
        if c.is_uppercase() && at > 0 {
            kebab.push('-');
        }
        kebab.extend(c.to_lowercase());
    }
    kebab
}

/// One call chosen by `dice`: the import it went to and how it came back.
/// With `only`, that kind of call alone (0 to 30).
pub(crate) async fn one(
    mut dice: Dice,
    upstream: Option<String>,
    only: Option<u64>,
) -> (&'static str, String) {
    let dice = &mut dice;
    let kind = dice.below(37);
    match only.unwrap_or(kind) {
        0 => ("kv.get", outcome!(kv::get(text(dice)).await)),
        1 => {
            let keys = vec![short_text(dice); dice.pick(&COUNTS)];
            ("kv.get-many", outcome!(kv::get_many(keys).await))
        }
        2 | 3 => {
            let key = text(dice);
            let value = bytes(dice);
            ("kv.set", outcome!(kv::set(key, value, ttl(dice)).await))
        }
        4 => {
            let count = dice.pick(&COUNTS);
            // Many entries, or large ones: the guest's own memory is not
            // what is fuzzed.
            let value = if count > 8 {
                vec![b'v'; 100]
            } else {
                bytes(dice)
            };
            let entries = (0..count)
                .map(|n| (format!("many{n}"), value.clone()))
                .collect();
            (
                "kv.set-many",
                outcome!(kv::set_many(entries, ttl(dice)).await),
            )
        }
        5 => ("kv.delete", outcome!(kv::delete(text(dice)).await)),
        6 => ("kv.exists", outcome!(kv::exists(text(dice)).await)),
        7 => {
            let prefix = text(dice);
            let cursor = Some(text(dice)).filter(|_| dice.below(2) == 0);
            let limit = dice.pick(&[0, 1, 1000, 1001, u32::MAX]);
            (
                "kv.list-keys",
                outcome!(kv::list_keys(prefix, cursor, limit).await),
            )
        }
        8 => {
            let delta = dice.pick(&[0, 1, -1, i64::MAX, i64::MIN]);
            (
                "kv.increment",
                outcome!(kv::increment(text(dice), delta).await),
            )
        }
        9 => {
            let key = text(dice);
            let expected = Some(bytes(dice)).filter(|_| dice.below(2) == 0);
            let new = Some(bytes(dice)).filter(|_| dice.below(2) == 0);
            (
                "kv.compare-and-swap",
                outcome!(kv::compare_and_swap(key, expected, new).await),
            )
        }
        10 | 11 => {
            let topic = dice.pick(&TOPICS).to_owned();
            (
                "pubsub.publish",
                outcome!(pubsub::publish(&topic, &bytes(dice))),
            )
        }
        12 => {
            let topic = dice.pick(&TOPICS).to_owned();
            let after = dice.pick(&[None, Some(0), Some(u64::MAX)]);
            let waited = pubsub::wait(topic, after, dice.pick(&[0, 1, 20])).await;
            ("pubsub.wait", outcome!(waited))
        }
        13 => {
            time::sleep(dice.pick(&[0, 1, 1_000_000])).await;
            let _ = time::monotonic_now();
            ("time.sleep", "ok".to_owned())
        }
        14 => {
            let level = dice.pick(&[log::Level::Trace, log::Level::Info, log::Level::Error]);
            log::write(level, &text(dice));
            ("log.write", "ok".to_owned())
        }
        15 => {
            let found = config::get(&text(dice));
            (
                "config.get",
                if found.is_some() { "some" } else { "none" }.to_owned(),
            )
        }
        16 => {
            let path = dice.pick(&[
                "/static/app.css",
                "/static/../../etc/passwd",
                "",
                "/nowhere",
            ]);
            let found = static_files::version(path.to_owned()).await;
            (
                "static-files.version",
                if found.is_some() { "some" } else { "none" }.to_owned(),
            )
        }
        17 => ("websocket", websocket_call(dice)),
        18 => ("tcp", tcp_call(dice)),
        19 | 20 => ("tcp.connect", tcp_connect(dice, upstream.as_deref()).await),
        21..=23 => ("http-client.fetch", fetch(dice, upstream.as_deref()).await),
        24 | 25 => ("wasi:keyvalue", wasi_keyvalue(dice)),
        26 => {
            let found = crate::wasi::config::store::get(&text(dice));
            ("wasi:config.get", outcome!(found))
        }
        27 => (
            "wasi:config.get-all",
            outcome!(crate::wasi::config::store::get_all()),
        ),
        28 => ("wasi:sockets", wasi_sockets(dice, upstream.as_deref())),
        31 | 32 => keep_job(dice).await,
        33 => {
            let id = job_id(dice).await;
            ("jobs.cancel", outcome!(jobs::cancel(id).await))
        }
        34 => queue_call(dice).await,
        35 => {
            let queue = dice.pick(&QUEUES).to_owned();
            let limit = dice.pick(&[0, 1, 100, u32::MAX]);
            let letters = queues::dead_letters(queue, limit).await;
            ("queues.dead-letters", outcome!(letters))
        }
        36 => {
            let (queue, id) = (dice.pick(&QUEUES).to_owned(), job_id(dice).await);
            let forgot = queues::forget_dead_letter(queue, id).await;
            ("queues.forget-dead-letter", outcome!(forgot))
        }
        _ => {
            // Many at once from one call: the per-request and per-app
            // limits on calls in flight.
            let reads = (0..40).map(|n| kv::get(format!("k{}", n % 3)));
            let answers = futures::future::join_all(reads).await;
            let refused = answers.iter().any(Result::is_err);
            (
                "kv.get x40",
                if refused {
                    "some refused"
                } else {
                    "none refused"
                }
                .to_owned(),
            )
        }
    }
}

/// Queues: the one a consumer reads (`fuzz-q`), another app's, none.
const QUEUES: [&str; 4] = ["fuzz-q", "emails", "", "fuzz-q\n"];

/// Send one message or a batch, around `queue_max_payload` and the 100
/// a batch may carry.
async fn queue_call(dice: &mut Dice) -> (&'static str, String) {
    let queue = dice.pick(&QUEUES).to_owned();
    match dice.below(2) {
        0 => {
            let sent = queues::send(queue, bytes(dice)).await;
            ("queues.send", outcome!(sent))
        }
        _ => {
            let count = dice.pick(&COUNTS).min(101);
            let payloads = (0..count)
                .map(|_| vec![b'q'; dice.pick(&[0, 10, 65_537])])
                .collect();
            let sent = queues::send_batch(queue, payloads).await;
            ("queues.send-batch", outcome!(sent))
        }
    }
}

/// Job names: the one handled (`tick`), none, unknown, and not names.
const JOB_NAMES: [&str; 5] = ["tick", "", "no-such-job", "tick\n0\n1", "../tick"];
/// Delays and times: now, soon, at and past the year ahead allowed, and
/// numbers that overflow when added to now.
const JOB_TIMES: [u64; 6] = [0, 1, 1_000, 366 * 86_400_000, 367 * 86_400_000, u64::MAX];

/// Keep a job with `after` or `at`, with a payload around `jobs_max_payload`.
async fn keep_job(dice: &mut Dice) -> (&'static str, String) {
    let name = match dice.below(4) {
        0 => text(dice),
        _ => dice.pick(&JOB_NAMES).to_owned(),
    };
    let payload = match dice.below(2) {
        0 => vec![dice.pick(b"jf"); dice.pick(&[0, 65_536, 65_537])],
        _ => bytes(dice),
    };
    let when = dice.pick(&JOB_TIMES);
    match dice.below(2) {
        0 => (
            "jobs.after",
            outcome!(jobs::after(when, name, payload).await),
        ),
        _ => ("jobs.at", outcome!(jobs::at(when, name, payload).await)),
    }
}

/// A job id: one this app kept, or one it could not have been given.
async fn job_id(dice: &mut Dice) -> String {
    match dice.below(5) {
        0 => jobs::after(60_000, "tick".to_owned(), b"cancel me".to_vec())
            .await
            .unwrap_or_default(),
        1 => "0".repeat(32),
        2 => "../other:jobs/j:".to_owned(),
        3 => "F".repeat(32),
        _ => text(dice),
    }
}

/// An act on a WebSocket connection that is not this app's.
fn websocket_call(dice: &mut Dice) -> String {
    let id = dice.pick(&IDS);
    match dice.below(6) {
        0 => {
            let message = match dice.below(2) {
                0 => websocket_types::WsMessage::Text(text(dice)),
                _ => websocket_types::WsMessage::Binary(bytes(dice)),
            };
            format!("send {}", outcome!(websocket::send(id, &message)))
        }
        1 => {
            websocket::close(id, dice.pick(&[0, 1000, 4999, u16::MAX]), &text(dice));
            "close ok".to_owned()
        }
        2 => {
            let topic = dice.pick(&TOPICS);
            format!(
                "subscribe {}",
                outcome!(websocket::subscribe(id, topic, dice.below(2) == 0))
            )
        }
        3 => {
            websocket::unsubscribe(id, dice.pick(&TOPICS));
            "unsubscribe ok".to_owned()
        }
        4 => format!("get-state {}", websocket::get_state(id).len()),
        _ => format!(
            "set-state {}",
            outcome!(websocket::set_state(id, &bytes(dice)))
        ),
    }
}

/// An act on a hibernate-mode TCP connection that is not this app's.
fn tcp_call(dice: &mut Dice) -> String {
    let id = dice.pick(&IDS);
    match dice.below(6) {
        0 => format!("send {}", outcome!(tcp::send(id, &bytes(dice)))),
        1 => {
            tcp::close(id);
            "close ok".to_owned()
        }
        2 => format!(
            "subscribe {}",
            outcome!(tcp::subscribe(id, dice.pick(&TOPICS)))
        ),
        3 => {
            tcp::unsubscribe(id, dice.pick(&TOPICS));
            "unsubscribe ok".to_owned()
        }
        4 => format!("get-state {}", tcp::get_state(id).len()),
        _ => format!("set-state {}", outcome!(tcp::set_state(id, &bytes(dice)))),
    }
}

/// Connect out: to the granted upstream (an echo), or where nothing is
/// granted; then write, read, or drop the streams early.
async fn tcp_connect(dice: &mut Dice, upstream: Option<&str>) -> String {
    let (host, port) = match (dice.below(3), upstream.and_then(|up| up.rsplit_once(':'))) {
        (0, Some((host, port))) => (host.to_owned(), port.parse().unwrap_or(0)),
        (1, _) => (text(dice), dice.pick(&[0, 22, 6379, 65_535])),
        _ => ("127.0.0.1".to_owned(), dice.pick(&[1, 22, 6379])),
    };
    let (mut to_peer, output) = wit_stream::new::<u8>();
    let mut from_peer = match tcp::connect(host, port, output).await {
        Ok(input) => input,
        Err(err) => return variant(&format!("{err:?}")),
    };
    match dice.below(3) {
        // Both ends dropped at once: the host closes the connection.
        0 => "ok dropped".to_owned(),
        // Half-closed before anything was written: the peer sees the end.
        1 => {
            drop(to_peer);
            let (result, _) = from_peer.read(Vec::with_capacity(64)).await;
            format!("ok read-after-close {}", stream_word(result))
        }
        _ => {
            let (result, _) = to_peer.write(bytes(dice)).await;
            drop(to_peer);
            let (read, _) = from_peer.read(Vec::with_capacity(1 << 16)).await;
            format!(
                "ok wrote {} read {}",
                stream_word(result),
                stream_word(read)
            )
        }
    }
}

fn stream_word(result: StreamResult) -> &'static str {
    match result {
        StreamResult::Complete(_) => "complete",
        StreamResult::Dropped => "dropped",
        StreamResult::Cancelled => "cancelled",
    }
}

/// A fetch: granted, denied, or malformed; odd methods, many or large or
/// invalid headers; bodies empty, in memory, or streamed and abandoned.
async fn fetch(dice: &mut Dice, upstream: Option<&str>) -> String {
    let url = match (dice.below(4), upstream) {
        (0 | 1, Some(upstream)) => {
            let path = dice.pick(&[
                "hello",
                "bytes/1048577",
                "chunked/8388608",
                "delay/300",
                "echo",
            ]);
            format!("http://{upstream}/{path}")
        }
        (2, _) => dice
            .pick(&[
                "http://10.0.0.1/",
                "http://127.1:6379/",
                "ftp://x/",
                "",
                "http://",
            ])
            .to_owned(),
        _ => format!("http://{}/", text(dice)),
    };
    let method = dice.pick(&[
        Method::Get,
        Method::Post,
        Method::Other(String::new()),
        Method::Other("BAD METHOD".to_owned()),
        Method::Connect,
    ]);
    let headers = match dice.below(4) {
        0 => Vec::new(),
        1 => (0..1000)
            .map(|n| (format!("x-{n}"), b"v".to_vec()))
            .collect(),
        2 => vec![("x-big".to_owned(), bytes(dice))],
        _ => vec![
            ("bad name\n".to_owned(), b"\r\nx".to_vec()),
            ("host".to_owned(), b"elsewhere".to_vec()),
        ],
    };
    let (body, body_done) = match dice.below(3) {
        0 => (Body::Empty, None),
        1 => (Body::Bytes(bytes(dice)), None),
        _ => {
            // A streamed body whose writer goes away without saying it is done.
            let (writer, reader) = wit_stream::new::<u8>();
            let (done, done_reader) = wit_future::new::<bool>(|| false);
            drop(writer);
            drop(done);
            (Body::Stream(reader), Some(done_reader))
        }
    };
    let request = http_client::OutgoingRequest {
        method,
        url,
        headers,
        body,
        timeout_ms: dice.pick(&[Some(0), Some(200), None]),
        max_redirects: dice.pick(&[0, 1, 255]),
        body_done,
    };
    let response = match http_client::fetch(request).await {
        Ok(response) => response,
        Err(err) => return fetch_word(&err),
    };
    let http_client::IncomingResponse {
        status,
        mut body,
        body_result,
        ..
    } = response;
    match dice.below(2) {
        // The body dropped unread, then its result asked for.
        0 => {
            drop(body);
            let result = body_result.await;
            format!("{status} dropped {}", outcome!(result))
        }
        _ => {
            let mut read = 0usize;
            loop {
                let (result, chunk) = body.read(Vec::with_capacity(1 << 16)).await;
                read += chunk.len();
                if !matches!(result, StreamResult::Complete(_)) || read > (4 << 20) {
                    break;
                }
            }
            drop(body);
            format!("{status} read {}", outcome!(body_result.await))
        }
    }
}

fn fetch_word(err: &FetchError) -> String {
    variant(&format!("{err:?}"))
}

/// `wasi:sockets`, through Rust's `std::net`: names looked up, connects
/// where `tcp_outbound` allows and where it does not, a write and a read.
fn wasi_sockets(dice: &mut Dice, upstream: Option<&str>) -> String {
    use std::io::{Read, Write};
    use std::net::{TcpStream, ToSocketAddrs};
    use std::time::Duration;
    let target = match (dice.below(3), upstream) {
        (0, Some(upstream)) => upstream.to_owned(),
        (1, _) => format!("{}:80", text(dice)),
        _ => dice
            .pick(&["127.0.0.1:22", "10.0.0.1:80", "localhost:6379"])
            .to_owned(),
    };
    let address = match target.to_socket_addrs().map(|mut found| found.next()) {
        Ok(Some(address)) => address,
        Ok(None) => return "lookup none".to_owned(),
        Err(err) => return format!("lookup {:?}", err.kind()),
    };
    let mut stream = match TcpStream::connect_timeout(&address, Duration::from_millis(500)) {
        Ok(stream) => stream,
        Err(err) => return format!("connect {:?}", err.kind()),
    };
    let _ = stream.set_read_timeout(Some(Duration::from_millis(200)));
    let wrote = stream.write_all(b"GET / HTTP/1.0\r\n\r\n").is_ok();
    let mut answer = [0u8; 64];
    let read = stream.read(&mut answer).map(|n| n > 0).unwrap_or(false);
    format!("connected wrote {wrote} read {read}")
}

/// `wasi:keyvalue` on the same store, through its standard interfaces.
fn wasi_keyvalue(dice: &mut Dice) -> String {
    let bucket = match store::open(dice.pick(&["", "default", "other"])) {
        Ok(bucket) => bucket,
        Err(err) => return format!("open {}", variant(&format!("{err:?}"))),
    };
    match dice.below(8) {
        0 => format!("get {}", outcome!(bucket.get(&text(dice)))),
        1 => format!("set {}", outcome!(bucket.set(&text(dice), &bytes(dice)))),
        2 => format!("delete {}", outcome!(bucket.delete(&text(dice)))),
        3 => format!("exists {}", outcome!(bucket.exists(&text(dice)))),
        4 => {
            let cursor = dice.pick(&[None, Some(0), Some(1), Some(u64::MAX)]);
            format!("list-keys {}", outcome!(bucket.list_keys(cursor)))
        }
        5 => {
            let keys = vec![short_text(dice); dice.pick(&COUNTS)];
            format!("get-many {}", outcome!(batch::get_many(&bucket, &keys)))
        }
        6 => {
            let count = dice.pick(&COUNTS);
            let entries: Vec<(String, Vec<u8>)> = (0..count)
                .map(|n| {
                    (
                        format!("w{n}"),
                        if count > 8 {
                            vec![b'w'; 100]
                        } else {
                            bytes(dice)
                        },
                    )
                })
                .collect();
            format!("set-many {}", outcome!(batch::set_many(&bucket, &entries)))
        }
        _ => {
            let delta = dice.pick(&[0, 1, u64::MAX]);
            format!(
                "increment {}",
                outcome!(atomics::increment(&bucket, &text(dice), delta))
            )
        }
    }
}

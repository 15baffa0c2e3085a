//! The `squall:app` backend: the Squall host's own world, generated from
//! `wit/squall.wit` by `wit_bindgen::generate!` in `bindings.rs`.

use crate::body::{BodyTask, OutgoingBody};
use crate::client::Outgoing;
use crate::http::{FetchError, FetchResponse};
use crate::jobs::JobError;
use crate::kv::{self, KvError};
use crate::pubsub::{self, PubSubError};
use crate::queue::{self, QueueError};
use crate::websocket::{Message, SendError};
use crate::{Body, BodyWriter, Disconnected, Request, Response};
use ::http::header::{HeaderMap, HeaderName, HeaderValue};
use ::http::{Method, StatusCode};
use bindings::squall::app::{
    config as host_config, http_client, jobs as host_jobs, kv as host_kv, pubsub as host_pubsub,
    queues as host_queues, time as host_time, types as wit, websocket as host_ws,
    websocket_types as wit_ws,
};
use std::time::Duration;
use wit_bindgen::{FutureReader, StreamReader, StreamResult, StreamWriter};

#[doc(hidden)]
#[path = "../bindings.rs"]
pub mod bindings;

/// How many bytes one read from a body stream asks for.
const READ_CHUNK: usize = 64 * 1024;

/// A request body as the host sent it: in memory or streamed.
#[derive(Debug, Default)]
pub(crate) enum IncomingBody {
    #[default]
    Empty,
    Bytes(Vec<u8>),
    Stream(StreamReader<u8>),
}

impl IncomingBody {
    fn from_wit(body: wit::Body) -> Self {
        match body {
            wit::Body::Empty => IncomingBody::Empty,
            wit::Body::Bytes(bytes) if bytes.is_empty() => IncomingBody::Empty,
            wit::Body::Bytes(bytes) => IncomingBody::Bytes(bytes),
            wit::Body::Stream(stream) => IncomingBody::Stream(stream),
        }
    }

    /// The next chunk, or `None` at the end.
    pub(crate) async fn chunk(&mut self) -> Option<Vec<u8>> {
        match std::mem::take(self) {
            IncomingBody::Empty => None,
            IncomingBody::Bytes(bytes) => Some(bytes),
            IncomingBody::Stream(mut stream) => {
                let (result, chunk) = stream.read(Vec::with_capacity(READ_CHUNK)).await;
                match result {
                    StreamResult::Dropped if chunk.is_empty() => None,
                    StreamResult::Dropped => Some(chunk),
                    StreamResult::Complete(_) | StreamResult::Cancelled => {
                        *self = IncomingBody::Stream(stream);
                        Some(chunk)
                    }
                }
            }
        }
    }
}

/// The writing end of a body stream the host reads.
#[derive(Debug)]
pub(crate) struct BodySink(StreamWriter<u8>);

impl BodySink {
    /// Write all of `chunk`, waiting until the host has taken it.
    pub(crate) async fn write(&mut self, chunk: Vec<u8>) -> Result<(), Disconnected> {
        let unsent = self.0.write_all(chunk).await;
        if unsent.is_empty() {
            Ok(())
        } else {
            Err(Disconnected)
        }
    }
}

/// How many bytes one read from a TCP connection asks for.
const TCP_READ_CHUNK: usize = 16 * 1024;

/// What a TCP client sends.
#[derive(Debug)]
pub(crate) struct TcpInput(StreamReader<u8>);

impl TcpInput {
    /// The next bytes, or `None` once the client has half-closed.
    pub(crate) async fn chunk(&mut self) -> Option<Vec<u8>> {
        loop {
            let (result, chunk) = self.0.read(Vec::with_capacity(TCP_READ_CHUNK)).await;
            match result {
                StreamResult::Dropped if chunk.is_empty() => return None,
                _ if chunk.is_empty() => continue,
                _ => return Some(chunk),
            }
        }
    }
}

/// What goes to a TCP client.
#[derive(Debug)]
pub(crate) struct TcpOutput(StreamWriter<u8>);

impl TcpOutput {
    /// Write all of `bytes`, waiting until the host has taken them.
    pub(crate) async fn write(&mut self, bytes: Vec<u8>) -> Result<(), crate::tcp::Closed> {
        if self.0.write_all(bytes).await.is_empty() {
            Ok(())
        } else {
            Err(crate::tcp::Closed)
        }
    }
}

/// Open a TCP connection to `host:port` through the host.
pub(crate) async fn tcp_connect(
    host: &str,
    port: u16,
) -> Result<crate::tcp::TcpStream, crate::tcp::ConnectError> {
    use crate::tcp::ConnectError;
    use bindings::squall::app::tcp as host_tcp;
    let (writer, reader) = bindings::wit_stream::new::<u8>();
    match host_tcp::connect(host.to_owned(), port, reader).await {
        Ok(input) => Ok(crate::tcp::TcpStream::new(
            crate::tcp::ConnectionInfo {
                id: 0,
                peer: format!("{host}:{port}"),
                listener: String::new(),
            },
            TcpInput(input),
            TcpOutput(writer),
        )),
        Err(host_tcp::ConnectError::Denied(why)) => Err(ConnectError::Denied(why)),
        Err(host_tcp::ConnectError::Limit(why)) => Err(ConnectError::Limit(why)),
        Err(host_tcp::ConnectError::Failed(why)) => Err(ConnectError::Failed(why)),
        Err(host_tcp::ConnectError::Timeout) => Err(ConnectError::Timeout),
    }
}

/// `body` for the host; a streamed one is written by a task of its own,
/// which runs after `handle` returns (the host keeps the instance alive
/// until that task ends).
fn body_to_wit(body: OutgoingBody) -> wit::Body {
    match body {
        OutgoingBody::Bytes(bytes) if bytes.is_empty() => wit::Body::Empty,
        OutgoingBody::Bytes(bytes) => wit::Body::Bytes(bytes),
        OutgoingBody::Stream(write) => wit::Body::Stream(spawn_writer(write)),
    }
}

fn spawn_writer(write: BodyTask) -> StreamReader<u8> {
    let (stream, reader) = bindings::wit_stream::new::<u8>();
    drop(wit_bindgen::spawn_local(write(BodyWriter::new(BodySink(
        stream,
    )))));
    reader
}

/// A fetch's body for the host, and for a streamed one the future its
/// writer task completes with `true` once it has written it all (dropped
/// unwritten, it reads `false`: the host then cuts the body off upstream).
fn request_body_to_wit(body: OutgoingBody) -> (wit::Body, Option<FutureReader<bool>>) {
    match body {
        OutgoingBody::Stream(write) => {
            let (stream, reader) = bindings::wit_stream::new::<u8>();
            let (done, done_reader) = bindings::wit_future::new::<bool>(|| false);
            drop(wit_bindgen::spawn_local(async move {
                write(BodyWriter::new(BodySink(stream))).await;
                let _ = done.write(true).await;
            }));
            (wit::Body::Stream(reader), Some(done_reader))
        }
        other => (body_to_wit(other), None),
    }
}

/// A fetched response's body, and the host's word on whether it all came.
#[derive(Debug)]
pub(crate) struct FetchBody {
    stream: Option<StreamReader<u8>>,
    result: Option<FutureReader<Result<(), wit::FetchError>>>,
}

impl FetchBody {
    /// The next chunk; `None` once it has all arrived, an error if it was cut short.
    pub(crate) async fn chunk(&mut self) -> Option<Result<Vec<u8>, FetchError>> {
        while let Some(mut stream) = self.stream.take() {
            let (status, chunk) = stream.read(Vec::with_capacity(READ_CHUNK)).await;
            if !matches!(status, StreamResult::Dropped) {
                self.stream = Some(stream);
            }
            if !chunk.is_empty() {
                return Some(Ok(chunk));
            }
        }
        // The stream ended: whole, or cut short? The host says which.
        match self.result.take()?.await {
            Ok(()) => None,
            Err(error) => Some(Err(fetch_error(error))),
        }
    }
}

/// Send `request` through the host's pooled client (`squall:app/http-client`).
pub(crate) async fn fetch(request: Outgoing) -> Result<FetchResponse, FetchError> {
    let (body, body_done) = request_body_to_wit(request.body);
    let request = http_client::OutgoingRequest {
        body,
        body_done,
        method: method_to_wit(&request.method),
        url: request.url,
        headers: fields_to_wit(&request.headers),
        timeout_ms: request
            .timeout
            .map(|t| u32::try_from(t.as_millis()).unwrap_or(u32::MAX)),
        max_redirects: request.max_redirects,
    };
    let response = http_client::fetch(request).await.map_err(fetch_error)?;
    Ok(FetchResponse::new(
        StatusCode::from_u16(response.status).unwrap_or(StatusCode::BAD_GATEWAY),
        headers_from_wit(response.headers),
        FetchBody {
            stream: Some(response.body),
            result: Some(response.body_result),
        },
    ))
}

fn fetch_error(error: wit::FetchError) -> FetchError {
    match error {
        wit::FetchError::Denied(why) => FetchError::Denied(why),
        wit::FetchError::InvalidRequest(why) => FetchError::InvalidRequest(why),
        wit::FetchError::Connect(why) => FetchError::Connect(why),
        wit::FetchError::Tls(why) => FetchError::Tls(why),
        wit::FetchError::Timeout => FetchError::Timeout,
        wit::FetchError::TooLarge => FetchError::TooLarge,
        wit::FetchError::Protocol(why) => FetchError::Protocol(why),
        wit::FetchError::Limit(why) => FetchError::Limit(why),
    }
}

/// Nanoseconds on the host's monotonic clock.
pub(crate) fn monotonic_now() -> u64 {
    host_time::monotonic_now()
}

/// Wait `nanos` nanoseconds on the host's event loop.
pub(crate) async fn sleep_ns(nanos: u64) {
    host_time::sleep(nanos).await;
}

/// Publish to a host topic.
pub(crate) fn pubsub_publish(topic: &str, payload: &[u8]) -> Result<u64, PubSubError> {
    host_pubsub::publish(topic, payload).map_err(pubsub_error)
}

/// Wait for a host topic's messages after `after`.
pub(crate) async fn pubsub_wait(
    topic: &str,
    after: Option<u64>,
    timeout: Duration,
) -> Result<Vec<pubsub::Message>, PubSubError> {
    let timeout_ms = u32::try_from(timeout.as_millis()).unwrap_or(u32::MAX);
    let messages = host_pubsub::wait(topic.to_owned(), after, timeout_ms)
        .await
        .map_err(pubsub_error)?;
    Ok(messages
        .into_iter()
        .map(|message| pubsub::Message {
            id: message.id,
            topic: message.topic,
            payload: message.payload,
        })
        .collect())
}

/// Keep a job due in `delay_ms`.
pub(crate) async fn jobs_after(
    delay_ms: u64,
    name: String,
    payload: Vec<u8>,
) -> Result<String, JobError> {
    host_jobs::after(delay_ms, name, payload)
        .await
        .map_err(job_error)
}

/// Keep a job due at `when_ms`.
pub(crate) async fn jobs_at(
    when_ms: u64,
    name: String,
    payload: Vec<u8>,
) -> Result<String, JobError> {
    host_jobs::at(when_ms, name, payload)
        .await
        .map_err(job_error)
}

/// Forget a pending job.
pub(crate) async fn jobs_cancel(id: String) -> Result<bool, JobError> {
    host_jobs::cancel(id).await.map_err(job_error)
}

/// Send one message.
pub(crate) async fn queue_send(queue: String, payload: Vec<u8>) -> Result<String, QueueError> {
    host_queues::send(queue, payload).await.map_err(queue_error)
}

/// Send several messages, all or none.
pub(crate) async fn queue_send_batch(
    queue: String,
    payloads: Vec<Vec<u8>>,
) -> Result<Vec<String>, QueueError> {
    host_queues::send_batch(queue, payloads)
        .await
        .map_err(queue_error)
}

/// A queue's dead letters.
pub(crate) async fn queue_dead_letters(
    queue: String,
    limit: u32,
) -> Result<Vec<queue::DeadLetter>, QueueError> {
    let letters = host_queues::dead_letters(queue, limit)
        .await
        .map_err(queue_error)?;
    Ok(letters
        .into_iter()
        .map(|letter| queue::DeadLetter {
            id: letter.id,
            payload: letter.payload,
            attempts: letter.attempts,
            error: letter.error,
        })
        .collect())
}

/// Forget one dead letter.
pub(crate) async fn queue_forget_dead_letter(
    queue: String,
    id: String,
) -> Result<bool, QueueError> {
    host_queues::forget_dead_letter(queue, id)
        .await
        .map_err(queue_error)
}

fn queue_error(error: host_queues::QueueError) -> QueueError {
    match error {
        host_queues::QueueError::Denied(why) => QueueError::Denied(why),
        host_queues::QueueError::TooLarge(why) => QueueError::TooLarge(why),
        host_queues::QueueError::Quota(why) => QueueError::Quota(why),
        host_queues::QueueError::Invalid(why) => QueueError::Invalid(why),
        host_queues::QueueError::Unavailable(why) => QueueError::Unavailable(why),
    }
}

fn job_error(error: host_jobs::JobError) -> JobError {
    match error {
        host_jobs::JobError::Denied(why) => JobError::Denied(why),
        host_jobs::JobError::TooLarge(why) => JobError::TooLarge(why),
        host_jobs::JobError::Quota(why) => JobError::Quota(why),
        host_jobs::JobError::Invalid(why) => JobError::Invalid(why),
        host_jobs::JobError::Unavailable(why) => JobError::Unavailable(why),
    }
}

/// The value of `key` in the app's store.
pub(crate) async fn kv_get(key: String) -> Result<Option<Vec<u8>>, KvError> {
    host_kv::get(key).await.map_err(kv_error)
}

/// The values of `keys` in the app's store.
pub(crate) async fn kv_get_many(keys: Vec<String>) -> Result<Vec<Option<Vec<u8>>>, KvError> {
    host_kv::get_many(keys).await.map_err(kv_error)
}

/// Store `value` at `key`.
pub(crate) async fn kv_set(
    key: String,
    value: Vec<u8>,
    ttl_ms: Option<u64>,
) -> Result<(), KvError> {
    host_kv::set(key, value, ttl_ms).await.map_err(kv_error)
}

/// Store several values, all or none.
pub(crate) async fn kv_set_many(
    entries: Vec<(String, Vec<u8>)>,
    ttl_ms: Option<u64>,
) -> Result<(), KvError> {
    host_kv::set_many(entries, ttl_ms).await.map_err(kv_error)
}

/// Remove `key`.
pub(crate) async fn kv_delete(key: String) -> Result<bool, KvError> {
    host_kv::delete(key).await.map_err(kv_error)
}

/// Whether `key` is present.
pub(crate) async fn kv_exists(key: String) -> Result<bool, KvError> {
    host_kv::exists(key).await.map_err(kv_error)
}

/// One page of the keys under `prefix`.
pub(crate) async fn kv_list(
    prefix: String,
    cursor: Option<String>,
    limit: u32,
) -> Result<kv::Page, KvError> {
    let page = host_kv::list_keys(prefix, cursor, limit)
        .await
        .map_err(kv_error)?;
    Ok(kv::Page {
        keys: page.keys,
        cursor: page.cursor,
    })
}

/// Add `delta` to the integer at `key`.
pub(crate) async fn kv_increment(key: String, delta: i64) -> Result<i64, KvError> {
    host_kv::increment(key, delta).await.map_err(kv_error)
}

/// Swap the value at `key` if it is `expected`.
pub(crate) async fn kv_compare_and_swap(
    key: String,
    expected: Option<Vec<u8>>,
    new: Option<Vec<u8>>,
) -> Result<bool, KvError> {
    host_kv::compare_and_swap(key, expected, new)
        .await
        .map_err(kv_error)
}

fn kv_error(error: host_kv::KvError) -> KvError {
    match error {
        host_kv::KvError::Denied(why) => KvError::Denied(why),
        host_kv::KvError::TooLarge(why) => KvError::TooLarge(why),
        host_kv::KvError::Quota(why) => KvError::Quota(why),
        host_kv::KvError::Invalid(why) => KvError::Invalid(why),
        host_kv::KvError::Unavailable(why) => KvError::Unavailable(why),
    }
}

/// Write a line into the host's log.
pub(crate) fn log(level: crate::log::Level, message: &str) {
    use crate::log::Level;
    use bindings::squall::app::log::{Level as HostLevel, write};
    let level = match level {
        Level::Trace => HostLevel::Trace,
        Level::Debug => HostLevel::Debug,
        Level::Info => HostLevel::Info,
        Level::Warn => HostLevel::Warn,
        Level::Error => HostLevel::Error,
    };
    write(level, message);
}

/// The app's config value `key`.
pub(crate) fn config_get(key: &str) -> Option<String> {
    host_config::get(key)
}

pub(crate) async fn static_version(path: &str) -> Option<String> {
    bindings::squall::app::static_files::version(path.to_owned()).await
}

fn pubsub_error(error: host_pubsub::PubsubError) -> PubSubError {
    match error {
        host_pubsub::PubsubError::Denied(why) => PubSubError::Denied(why),
        host_pubsub::PubsubError::Invalid(why) => PubSubError::Invalid(why),
        host_pubsub::PubsubError::Limit(why) => PubSubError::Limit(why),
        host_pubsub::PubsubError::Unavailable(why) => PubSubError::Backend(why),
    }
}

/// Queue `message` for connection `id`.
pub(crate) fn ws_send(id: u64, message: Message) -> Result<(), SendError> {
    let message = match message {
        Message::Text(text) => wit_ws::WsMessage::Text(text),
        Message::Binary(bytes) => wit_ws::WsMessage::Binary(bytes),
    };
    host_ws::send(id, &message).map_err(send_error)
}

/// Close connection `id`.
pub(crate) fn ws_close(id: u64, code: u16, reason: &str) {
    host_ws::close(id, code, reason);
}

/// Forward `topic` to connection `id`.
pub(crate) fn ws_subscribe(id: u64, topic: &str, with_id: bool) -> Result<(), PubSubError> {
    host_ws::subscribe(id, topic, with_id).map_err(pubsub_error)
}

/// Stop forwarding `topic` to connection `id`.
pub(crate) fn ws_unsubscribe(id: u64, topic: &str) {
    host_ws::unsubscribe(id, topic);
}

/// The state the host keeps for connection `id` (empty until set).
pub(crate) fn ws_state(id: u64) -> Vec<u8> {
    host_ws::get_state(id)
}

/// Replace the state of connection `id`.
pub(crate) fn ws_set_state(id: u64, state: &[u8]) -> Result<(), SendError> {
    host_ws::set_state(id, state).map_err(send_error)
}

/// Queue `bytes` for hibernate-mode TCP connection `id`.
pub(crate) fn tcp_send(id: u64, bytes: &[u8]) -> Result<(), SendError> {
    bindings::squall::app::tcp::send(id, bytes).map_err(tcp_send_error)
}

/// Close hibernate-mode TCP connection `id` once its queue is written.
pub(crate) fn tcp_close(id: u64) {
    bindings::squall::app::tcp::close(id);
}

/// Forward `topic` to TCP connection `id`.
pub(crate) fn tcp_subscribe(id: u64, topic: &str) -> Result<(), PubSubError> {
    bindings::squall::app::tcp::subscribe(id, topic).map_err(pubsub_error)
}

/// Stop forwarding `topic` to TCP connection `id`.
pub(crate) fn tcp_unsubscribe(id: u64, topic: &str) {
    bindings::squall::app::tcp::unsubscribe(id, topic);
}

/// The state the host keeps for TCP connection `id`.
pub(crate) fn tcp_state(id: u64) -> Vec<u8> {
    bindings::squall::app::tcp::get_state(id)
}

/// Replace the state of TCP connection `id`.
pub(crate) fn tcp_set_state(id: u64, state: &[u8]) -> Result<(), SendError> {
    bindings::squall::app::tcp::set_state(id, state).map_err(tcp_send_error)
}

fn tcp_send_error(error: bindings::squall::app::tcp::SendError) -> SendError {
    use bindings::squall::app::tcp::SendError as Wit;
    match error {
        Wit::Closed => SendError::Closed,
        Wit::QueueFull => SendError::QueueFull,
        Wit::TooLarge => SendError::TooLarge,
    }
}

fn send_error(error: wit_ws::WsError) -> SendError {
    match error {
        wit_ws::WsError::Closed => SendError::Closed,
        wit_ws::WsError::QueueFull => SendError::QueueFull,
        wit_ws::WsError::TooLarge => SendError::TooLarge,
    }
}

fn request_from_wit(request: wit::Request) -> Request {
    Request::from_parts(
        method_from_wit(request.method),
        request.path,
        request.query,
        request.authority,
        headers_from_wit(request.headers),
        Body::from_sys(IncomingBody::from_wit(request.body)),
    )
}

fn response_into_wit(response: Response) -> wit::Response {
    let (status, headers, body) = response.into_parts();
    let headers = fields_to_wit(&headers);
    wit::Response {
        status: status.as_u16(),
        headers,
        body: body_to_wit(body),
    }
}

fn headers_from_wit(fields: wit::Fields) -> HeaderMap {
    let mut headers = HeaderMap::with_capacity(fields.len());
    for (name, value) in fields {
        // The host only forwards valid fields; skip anything that is not.
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_bytes(&value),
        ) {
            headers.append(name, value);
        }
    }
    headers
}

fn fields_to_wit(headers: &HeaderMap) -> wit::Fields {
    headers
        .iter()
        .map(|(name, value)| (name.as_str().to_owned(), value.as_bytes().to_vec()))
        .collect()
}

fn method_to_wit(method: &Method) -> wit::Method {
    match *method {
        Method::GET => wit::Method::Get,
        Method::HEAD => wit::Method::Head,
        Method::POST => wit::Method::Post,
        Method::PUT => wit::Method::Put,
        Method::DELETE => wit::Method::Delete,
        Method::CONNECT => wit::Method::Connect,
        Method::OPTIONS => wit::Method::Options,
        Method::TRACE => wit::Method::Trace,
        Method::PATCH => wit::Method::Patch,
        ref other => wit::Method::Other(other.as_str().to_owned()),
    }
}

fn method_from_wit(method: wit::Method) -> Method {
    match method {
        wit::Method::Get => Method::GET,
        wit::Method::Head => Method::HEAD,
        wit::Method::Post => Method::POST,
        wit::Method::Put => Method::PUT,
        wit::Method::Delete => Method::DELETE,
        wit::Method::Connect => Method::CONNECT,
        wit::Method::Options => Method::OPTIONS,
        wit::Method::Trace => Method::TRACE,
        wit::Method::Patch => Method::PATCH,
        // The host forwards only valid method tokens; anything else becomes
        // a method no route is registered for.
        wit::Method::Other(other) => Method::from_bytes(other.as_bytes())
            .or_else(|_| Method::from_bytes(b"X-INVALID"))
            .unwrap_or_default(),
    }
}

/// Export `app`, a `fn() -> Router`, as this component's request handler.
///
/// Use it once, at the crate root of a `cdylib` built for `wasm32-wasip2`.
/// `app` runs once per instance, at its first request or event; an
/// instance the host reuses keeps the router for its next ones. With the SDK's `wasi-http` feature the component exports the standard
/// `wasi:http/handler` (WASI 0.3) instead, to run on `wasmtime serve` and
/// other standard hosts.
///
/// ```
/// use squall_sdk::Router;
///
/// fn app() -> Router {
///     Router::new().get("/", |_req| async { "Hello, world!" })
/// }
///
/// squall_sdk::export!(app);
/// ```
#[macro_export]
macro_rules! export {
    ($app:path) => {
        #[allow(unsafe_code)]
        const _: () = {
            struct SquallApp;

            impl $crate::__private::Guest for SquallApp {
                async fn handle(
                    request: $crate::__private::WitRequest,
                ) -> $crate::__private::WitResponse {
                    $crate::__private::dispatch(&$crate::__private::router($app), request).await
                }
            }

            impl $crate::__private::WebSocketGuest for SquallApp {
                async fn on_open(
                    connection: $crate::__private::WitConnection,
                    request: $crate::__private::WitRequest,
                ) -> $crate::__private::WitOpenResult {
                    $crate::__private::websocket_open(&$crate::__private::router($app), connection, request).await
                }

                async fn on_message(
                    connection: $crate::__private::WitConnection,
                    message: $crate::__private::WitMessage,
                ) {
                    $crate::__private::websocket_message(&$crate::__private::router($app), connection, message).await
                }

                async fn on_close(
                    connection: $crate::__private::WitConnection,
                    code: u16,
                    reason: String,
                ) {
                    $crate::__private::websocket_close(&$crate::__private::router($app), connection, code, reason).await
                }
            }

            impl $crate::__private::TcpGuest for SquallApp {
                async fn on_connection(
                    connection: $crate::__private::WitTcpConnection,
                    input: $crate::__private::wit_bindgen::StreamReader<u8>,
                ) -> $crate::__private::wit_bindgen::StreamReader<u8> {
                    $crate::__private::tcp_connection(&$crate::__private::router($app), connection, input)
                }

                async fn on_open(connection: $crate::__private::WitTcpConnection) {
                    $crate::__private::tcp_event(&$crate::__private::router($app), connection, $crate::__private::TcpEvent::Open).await
                }

                async fn on_frame(connection: $crate::__private::WitTcpConnection, frame: Vec<u8>) {
                    $crate::__private::tcp_event(&$crate::__private::router($app), connection, $crate::__private::TcpEvent::Frame(frame)).await
                }

                async fn on_close(connection: $crate::__private::WitTcpConnection) {
                    $crate::__private::tcp_event(&$crate::__private::router($app), connection, $crate::__private::TcpEvent::Close).await
                }
            }

            impl $crate::__private::BackgroundGuest for SquallApp {
                async fn on_schedule(name: String, payload: Vec<u8>, scheduled_at: u64) -> Result<(), String> {
                    let tick = $crate::schedule::Tick::new(&name, payload, scheduled_at);
                    $crate::__private::schedule_tick(&$crate::__private::router($app), tick).await
                }

                async fn on_job(id: String, name: String, payload: Vec<u8>, attempt: u32) -> Result<(), String> {
                    let job = $crate::jobs::Job::new(&id, &name, payload, attempt);
                    $crate::__private::job_run(&$crate::__private::router($app), job).await
                }

                async fn on_messages(queue: String, messages: Vec<$crate::__private::WitQueuedMessage>) -> Result<Vec<bool>, String> {
                    $crate::__private::queue_batch(&$crate::__private::router($app), queue, messages).await
                }
            }

            impl $crate::__private::AppInfoGuest for SquallApp {
                fn describe() -> $crate::__private::WitDescription {
                    $crate::__private::describe(&$crate::__private::router($app))
                }
            }

            $crate::__private::bindings::__export_app!(SquallApp with_types_in $crate::__private::bindings);
        };
    };
}

/// What `export!` expands to: the bindings, and the glue between their
/// types and the SDK's.
pub(crate) mod __private {
    pub use super::bindings;
    pub use super::bindings::exports::squall::app::app_info::{
        Description as WitDescription, Guest as AppInfoGuest,
    };
    pub use super::bindings::exports::squall::app::background::{
        Guest as BackgroundGuest, QueuedMessage as WitQueuedMessage,
    };
    pub use super::bindings::exports::squall::app::handler::Guest;
    pub use super::bindings::exports::squall::app::tcp_handler::Guest as TcpGuest;
    pub use super::bindings::exports::squall::app::websocket_handler::Guest as WebSocketGuest;
    pub use super::bindings::squall::app::tcp_types::TcpConnection as WitTcpConnection;
    pub use super::bindings::squall::app::types::{Request as WitRequest, Response as WitResponse};
    pub use super::bindings::squall::app::websocket_types::{
        Connection as WitConnection, OpenResult as WitOpenResult, WsMessage as WitMessage,
    };
    pub use crate::tcp::TcpEvent;
    pub use wit_bindgen;

    use super::{request_from_wit, response_into_wit, wit_ws};
    use crate::Router;
    use crate::websocket::Message;

    /// A TCP connection: the router's handler serves it in a task of its
    /// own; the stream returned carries what it writes. Without a handler
    /// the connection is closed at once.
    pub fn tcp_connection(
        router: &Router,
        connection: WitTcpConnection,
        input: wit_bindgen::StreamReader<u8>,
    ) -> wit_bindgen::StreamReader<u8> {
        let (writer, reader) = super::bindings::wit_stream::new::<u8>();
        if let Some(handler) = router.tcp_handler() {
            let info = crate::tcp::ConnectionInfo {
                id: connection.id,
                peer: connection.peer,
                listener: connection.listener,
            };
            handler.serve(crate::tcp::TcpStream::new(
                info,
                super::TcpInput(input),
                super::TcpOutput(writer),
            ));
        }
        reader
    }

    /// A hibernate-mode connection's event: the router's `TcpEvents`
    /// handler for it, if any.
    pub async fn tcp_event(router: &Router, connection: WitTcpConnection, event: TcpEvent) {
        if let Some(events) = router.tcp_event_handlers() {
            let connection = crate::tcp::TcpConnection::new(crate::tcp::ConnectionInfo {
                id: connection.id,
                peer: connection.peer,
                listener: connection.listener,
            });
            events.dispatch(connection, event).await;
        }
    }

    /// What the host asks at load: the WebSocket routes, the schedules
    /// handled and any mistakes.
    pub fn describe(router: &Router) -> WitDescription {
        WitDescription {
            websocket_routes: router.websocket_patterns(),
            route_errors: router.errors().to_vec(),
            schedules: router.schedule_names(),
            jobs: router.job_names(),
            consumers: router.consumer_queues(),
        }
    }

    /// A schedule's tick: its handler's error, as text, is the host's to log.
    pub async fn schedule_tick(router: &Router, tick: crate::schedule::Tick) -> Result<(), String> {
        router
            .run_schedule(tick)
            .await
            .map_err(|err| err.message().to_owned())
    }

    /// A due job: its handler's error, as text, is the host's to log.
    pub async fn job_run(router: &Router, job: crate::jobs::Job) -> Result<(), String> {
        router
            .run_job(job)
            .await
            .map_err(|err| err.message().to_owned())
    }

    /// A batch of a queue's messages: whether each is done, or the
    /// consumer's error as text.
    pub async fn queue_batch(
        router: &Router,
        queue: String,
        messages: Vec<WitQueuedMessage>,
    ) -> Result<Vec<bool>, String> {
        let messages = messages
            .into_iter()
            .map(|message| {
                crate::queue::Message::new(&message.id, message.payload, message.attempt)
            })
            .collect();
        router
            .run_consumer(crate::queue::Batch::new(&queue, messages))
            .await
            .map_err(|err| err.message().to_owned())
    }

    /// Run one request through `router` and convert the answer for the host.
    pub async fn dispatch(router: &Router, request: WitRequest) -> WitResponse {
        response_into_wit(crate::dispatch::handle(router, request_from_wit(request)).await)
    }

    /// An upgrade request: the route's `on_open`, or 404 if none matches.
    pub async fn websocket_open(
        router: &Router,
        connection: WitConnection,
        request: WitRequest,
    ) -> WitOpenResult {
        let request = request_from_wit(request);
        match crate::dispatch::ws_open(router, connection.id, connection.path, request).await {
            Ok(protocol) => WitOpenResult::Accept(wit_ws::Accept { protocol }),
            Err(response) => WitOpenResult::Reject(response_into_wit(response)),
        }
    }

    /// A message from the client: the route's `on_message`.
    pub async fn websocket_message(
        router: &Router,
        connection: WitConnection,
        message: WitMessage,
    ) {
        let message = match message {
            WitMessage::Text(text) => Message::Text(text),
            WitMessage::Binary(bytes) => Message::Binary(bytes),
        };
        crate::dispatch::ws_message(router, connection.id, connection.path, message).await;
    }

    /// The connection closed: the route's `on_close`.
    pub async fn websocket_close(
        router: &Router,
        connection: WitConnection,
        code: u16,
        reason: String,
    ) {
        crate::dispatch::ws_close(router, connection.id, connection.path, code, reason).await;
    }
}

//! One socket's life after the upgrade: read frames and hand them to the
//! guest one at a time, write what the guest and the broker queue, keep the
//! connection alive with pings, and close it with the right code.

use crate::bindings::websocket_types::WsMessage;
use crate::config::WebSocketRoute;
use crate::dispatch::{Events, describe};
use crate::error::HostError;
use crate::hub::{Connection, Hub, MAX_OUTGOING, Outbox};
use futures::{SinkExt, StreamExt};
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::error::{
    CapacityError, Error as TungsteniteError, ProtocolError,
};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Bytes, Message as Frame};
use tracing::Instrument;

/// How long a write in progress may still take once a close is asked for.
const WRITE_GRACE: Duration = Duration::from_secs(1);

/// Queued frames (and their bytes) written together, with one flush,
/// before the socket task reads from the client again.
const WRITE_BATCH: usize = 16;
const WRITE_BATCH_BYTES: usize = 64 << 10;

/// How long a closing handshake may take before the socket is dropped.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

/// Small buffers: most connections are idle most of the time, and the
/// defaults (128 KiB each) would cost that much memory per connection.
const READ_BUFFER: usize = 4 << 10;
const WRITE_BUFFER: usize = 4 << 10;
/// Room for the largest message the host sends, and its frame header.
const MAX_WRITE_BUFFER: usize = MAX_OUTGOING + (64 << 10);

/// How the connection ended, and so what the guest's `on-close` is told.
struct Ending {
    code: u16,
    reason: String,
}

impl Ending {
    fn new(code: CloseCode, reason: &str) -> Self {
        Ending {
            code: code.into(),
            reason: reason.to_owned(),
        }
    }

    /// The ending a close request (the guest's, or a full queue's) asks for.
    fn asked(request: &CloseFrame) -> Self {
        Ending {
            code: request.code.into(),
            reason: request.reason.to_string(),
        }
    }
}

/// The guest's handling of one message, in its own task so that it keeps
/// running (and queueing) while a write to a slow client is stuck.
type Pending = JoinHandle<Result<(), HostError>>;

/// Run the accepted connection until it closes, then tell the guest.
/// `admitted` is the connection's place among its app's open WebSockets.
pub(super) async fn run(
    connection: Arc<Connection>,
    route: WebSocketRoute,
    events: Events,
    on_upgrade: OnUpgrade,
    admitted: tokio::sync::OwnedSemaphorePermit,
) {
    let hub = events.app().hub().clone();
    let span = tracing::info_span!("websocket", id = connection.id(), path = connection.path());
    async move {
        let ending = match on_upgrade.await {
            Ok(upgraded) => {
                let config = WebSocketConfig::default()
                    .read_buffer_size(READ_BUFFER)
                    .write_buffer_size(WRITE_BUFFER)
                    .max_write_buffer_size(MAX_WRITE_BUFFER)
                    .max_message_size(Some(route.max_message as usize))
                    .max_frame_size(Some(route.max_message as usize));
                let socket = WebSocketStream::from_raw_socket(
                    TokioIo::new(upgraded),
                    Role::Server,
                    Some(config),
                )
                .await;
                serve(&connection, &route, &events, socket, &hub).await
            }
            Err(err) => {
                tracing::info!("the upgrade failed: {err}");
                Ending::new(CloseCode::Abnormal, "upgrade failed")
            }
        };
        hub.disconnect(&connection);
        tracing::info!(
            code = ending.code,
            reason = ending.reason,
            "websocket closed"
        );
        // Dropping `events` after this lets a live instance go.
        events.close(&connection, ending.code, ending.reason).await;
        drop(admitted);
    }
    .instrument(span)
    .await;
}

async fn serve(
    connection: &Arc<Connection>,
    route: &WebSocketRoute,
    events: &Events,
    socket: WebSocketStream<TokioIo<hyper::upgrade::Upgraded>>,
    hub: &Hub,
) -> Ending {
    let Some(mut outbox) = connection.take_outbox() else {
        return Ending::new(CloseCode::Error, "connection served twice");
    };
    let (mut sink, mut stream) = socket.split();
    let shutdown = hub.shutdown_signal();
    // A shutdown that began before this task started counts too.
    let shutdown = shutdown_started(shutdown);
    tokio::pin!(shutdown);
    let superseded = events.superseded();
    tokio::pin!(superseded);
    let mut handler: Option<Pending> = None;
    // Messages read while the handler runs, so pings and pongs are still
    // seen; when it is full, reading waits for the handler.
    let mut inbox = Inbox::new(route.max_message);
    // Ping when idle for `ping_interval`; close if no pong within `ping_timeout`.
    let mut awaiting_pong = false;
    let keepalive = tokio::time::sleep(route.ping_interval);
    tokio::pin!(keepalive);
    let idle = tokio::time::sleep(route.idle_timeout.unwrap_or(Duration::MAX / 4));
    tokio::pin!(idle);
    // One future for the connection's life, not one per turn of the loop.
    let close_request = connection.close_requested();
    tokio::pin!(close_request);

    let (ending, closer) = loop {
        if handler.is_none()
            && let Some(message) = inbox.pop()
        {
            handler = Some(tokio::spawn(
                events
                    .clone()
                    .message(describe(connection), message)
                    .in_current_span(),
            ));
        }
        tokio::select! {
            () = &mut shutdown => {
                break (Ending::new(CloseCode::Away, "server shutting down"), Closer::Host);
            }
            (code, reason) = &mut superseded => {
                tracing::info!("closing: {reason}");
                break (Ending { code, reason: reason.to_owned() }, Closer::Host);
            }
            request = &mut close_request => {
                break close_as_asked(&mut sink, &mut outbox, request, route.write_timeout).await;
            }
            done = async { handler.as_mut().expect("guarded by the if").await }, if handler.is_some() => {
                handler = None;
                match done {
                    Ok(Ok(())) => {}
                    Ok(Err(failure)) => {
                        break (Ending::new(failure.close_code().into(), "the handler failed"), Closer::Host);
                    }
                    Err(_) => break (Ending::new(CloseCode::Error, "the handler failed"), Closer::Host),
                }
            }
            frame = outbox.recv() => {
                let written = write_queued(&mut sink, frame, &mut outbox, close_request.as_mut(), route.write_timeout).await;
                if let Some(end) = ending_after(written, &mut sink, &mut outbox, route.write_timeout).await {
                    break end;
                }
            }
            incoming = stream.next(), if !inbox.is_full() => {
                match take_frame(incoming, &mut sink, route.write_timeout).await {
                    Read::End(ending, closer) => break (ending, closer),
                    Read::Pong => {
                        awaiting_pong = false;
                        keepalive.as_mut().reset(Instant::now() + route.ping_interval);
                    }
                    Read::Handled => {}
                    Read::Message(message) => {
                        if let Some(limit) = route.idle_timeout {
                            idle.as_mut().reset(Instant::now() + limit);
                        }
                        inbox.push(message);
                    }
                }
            }
            () = &mut keepalive => {
                if inbox.is_full() {
                    // Not reading (the handler is behind): a pong could not
                    // be seen, so do not count the silence against the client.
                    awaiting_pong = false;
                    keepalive.as_mut().reset(Instant::now() + route.ping_interval);
                    continue;
                }
                if awaiting_pong {
                    break (Ending::new(CloseCode::Away, "ping timeout"), Closer::Host);
                }
                let ping = timed(route.write_timeout, sink.send(Frame::Ping(Bytes::new())));
                let written = or_close(ping, close_request.as_mut()).await;
                if let Some(end) = ending_after(written, &mut sink, &mut outbox, route.write_timeout).await {
                    break end;
                }
                awaiting_pong = true;
                keepalive.as_mut().reset(Instant::now() + route.ping_timeout);
            }
            () = &mut idle => {
                break (Ending::new(CloseCode::Away, "idle"), Closer::Host);
            }
        }
    };
    if let Some(task) = handler {
        task.abort();
    }
    if closer == Closer::Host {
        send_close(&mut sink, &mut stream, &ending).await;
    }
    ending
}

/// Who ends the closing handshake once the socket's loop is over.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Closer {
    /// The host: it sends a close frame and waits a moment for the answer.
    Host,
    /// Nobody: the client closed, or the connection is gone.
    Done,
}

/// What a frame read from the client asks of the loop.
enum Read {
    /// A message for the guest.
    Message(WsMessage),
    /// A pong: the client is alive.
    Pong,
    /// Nothing more to do (a ping answered).
    Handled,
    /// The connection ends.
    End(Ending, Closer),
}

/// Take one frame read from the client (`None`: the connection dropped).
async fn take_frame(
    incoming: Option<Result<Frame, TungsteniteError>>,
    sink: &mut Sink,
    write_timeout: Duration,
) -> Read {
    match incoming {
        None => Read::End(
            Ending::new(CloseCode::Abnormal, "connection dropped"),
            Closer::Done,
        ),
        Some(Err(err)) => Read::End(ending_for(&err), Closer::Host),
        Some(Ok(Frame::Close(frame))) => {
            let ending = frame.map_or(Ending::new(CloseCode::Status, ""), |frame| Ending {
                code: frame.code.into(),
                reason: frame.reason.to_string(),
            });
            // tungstenite queued the reply; send it.
            let _ = tokio::time::timeout(CLOSE_TIMEOUT, sink.close()).await;
            Read::End(ending, Closer::Done)
        }
        Some(Ok(Frame::Text(text))) => Read::Message(WsMessage::Text(text.to_string())),
        Some(Ok(Frame::Binary(bytes))) => Read::Message(WsMessage::Binary(bytes.to_vec())),
        Some(Ok(Frame::Pong(_))) => Read::Pong,
        // tungstenite answers pings itself; flush the pong out.
        Some(Ok(Frame::Ping(_) | Frame::Frame(_))) => {
            if timed(write_timeout, sink.flush()).await.is_err() {
                return Read::End(
                    Ending::new(CloseCode::Abnormal, "write failed"),
                    Closer::Done,
                );
            }
            Read::Handled
        }
    }
}

/// Our side closes: send the close frame, then give the client a moment to
/// answer before the socket is dropped.
async fn send_close(
    sink: &mut Sink,
    stream: &mut futures::stream::SplitStream<WebSocketStream<TokioIo<hyper::upgrade::Upgraded>>>,
    ending: &Ending,
) {
    let frame = CloseFrame {
        code: ending.code.into(),
        reason: ending.reason.clone().into(),
    };
    let close = async {
        let _ = sink.send(Frame::Close(Some(frame))).await;
        let _ = sink.flush().await;
        while let Some(Ok(frame)) = stream.next().await {
            if matches!(frame, Frame::Close(_)) {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(2), close).await;
}

/// Messages read from the client that wait for the handler: a few, and no
/// more bytes than a few of the largest.
struct Inbox {
    messages: std::collections::VecDeque<WsMessage>,
    bytes: usize,
    max_bytes: usize,
}

/// Messages read ahead while a handler runs.
const INBOX_MESSAGES: usize = 16;

impl Inbox {
    fn new(max_message: u64) -> Self {
        Inbox {
            messages: std::collections::VecDeque::new(),
            bytes: 0,
            max_bytes: usize::try_from(max_message)
                .unwrap_or(usize::MAX)
                .saturating_mul(4),
        }
    }

    fn is_full(&self) -> bool {
        self.messages.len() >= INBOX_MESSAGES || self.bytes >= self.max_bytes
    }

    fn push(&mut self, message: WsMessage) {
        self.bytes += message_len(&message);
        self.messages.push_back(message);
    }

    fn pop(&mut self) -> Option<WsMessage> {
        let message = self.messages.pop_front()?;
        self.bytes -= message_len(&message);
        Some(message)
    }
}

fn message_len(message: &WsMessage) -> usize {
    match message {
        WsMessage::Text(text) => text.len(),
        WsMessage::Binary(bytes) => bytes.len(),
    }
}

/// Write out what is queued now, within the write timeout each.
async fn flush_queued(
    sink: &mut Sink,
    outbox: &mut Outbox,
    timeout: Duration,
) -> Result<(), Ending> {
    let flushed = async {
        while let Some(frame) = outbox.try_recv() {
            timed(timeout, sink.send(frame)).await?;
        }
        Ok(())
    };
    tokio::time::timeout(CLOSE_TIMEOUT, flushed)
        .await
        .unwrap_or_else(|_| Err(Ending::new(CloseCode::Abnormal, "write timeout")))
}

/// A write that fails if it takes longer than `timeout`: a client that
/// stops reading is given up.
async fn timed<E>(
    timeout: Duration,
    write: impl Future<Output = Result<(), E>>,
) -> Result<(), Ending> {
    match tokio::time::timeout(timeout, write).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(_)) => Err(Ending::new(CloseCode::Abnormal, "write failed")),
        Err(_) => Err(Ending::new(CloseCode::Abnormal, "write timeout")),
    }
}

/// Resolves once the server is shutting down (or the hub is gone).
async fn shutdown_started(mut shutdown: tokio::sync::watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|down| *down).await;
}

/// Write `first` and what else is queued now (a few frames and bytes at
/// most, so that reading, pongs included, is not held up), with one flush:
/// a burst goes out in as few writes to the socket as the buffer allows.
/// Each step (a frame taken in, the flush) has the write timeout.
async fn write_queued(
    sink: &mut Sink,
    first: Frame,
    outbox: &mut Outbox,
    close_request: Pin<&mut impl Future<Output = CloseFrame>>,
    timeout: Duration,
) -> Result<Option<CloseFrame>, Ending> {
    let writes = async {
        let mut bytes = first.len();
        timed(timeout, sink.feed(first)).await?;
        for _ in 1..WRITE_BATCH {
            if bytes >= WRITE_BATCH_BYTES {
                break;
            }
            let Some(frame) = outbox.try_recv() else {
                break;
            };
            bytes += frame.len();
            timed(timeout, sink.feed(frame)).await?;
        }
        timed(timeout, sink.flush()).await
    };
    or_close(writes, close_request).await
}

/// Run `write`; if a close is asked for meanwhile, the write gets a short
/// grace to finish (a client too slow to take it would not take a close
/// frame either) and the close is returned for the caller to perform.
async fn or_close(
    write: impl Future<Output = Result<(), Ending>>,
    mut close_request: Pin<&mut impl Future<Output = CloseFrame>>,
) -> Result<Option<CloseFrame>, Ending> {
    tokio::pin!(write);
    tokio::select! {
        written = &mut write => written.map(|()| None),
        request = &mut close_request => {
            // Past the grace, give up on the socket with the close that was
            // asked for (a close frame would not get through either).
            match tokio::time::timeout(WRITE_GRACE, write).await {
                Ok(written) => written.map(|()| Some(request)),
                Err(_) => Err(Ending::asked(&request)),
            }
        }
    }
}

/// Perform a close asked for (by the guest, or by a full queue): what was
/// queued before it goes out first. The loop's ending, and who closes.
async fn close_as_asked(
    sink: &mut Sink,
    outbox: &mut Outbox,
    request: CloseFrame,
    timeout: Duration,
) -> (Ending, Closer) {
    match flush_queued(sink, outbox, timeout).await {
        Ok(()) => (Ending::asked(&request), Closer::Host),
        Err(ending) => (ending, Closer::Done),
    }
}

/// What a write that raced a close request leaves the loop to do: go on
/// (`None`), or end as the close asked for (performed here) or as the
/// write failed.
async fn ending_after(
    written: Result<Option<CloseFrame>, Ending>,
    sink: &mut Sink,
    outbox: &mut Outbox,
    timeout: Duration,
) -> Option<(Ending, Closer)> {
    match written {
        Ok(None) => None,
        Ok(Some(request)) => Some(close_as_asked(sink, outbox, request, timeout).await),
        Err(ending) => Some((ending, Closer::Done)),
    }
}

type Sink = futures::stream::SplitSink<WebSocketStream<TokioIo<hyper::upgrade::Upgraded>>, Frame>;

/// The close code for an error reading from the client.
fn ending_for(err: &TungsteniteError) -> Ending {
    match err {
        TungsteniteError::Capacity(CapacityError::MessageTooLong { .. }) => {
            Ending::new(CloseCode::Size, "message too big")
        }
        TungsteniteError::Utf8(_) => {
            Ending::new(CloseCode::Invalid, "invalid UTF-8 in a text message")
        }
        TungsteniteError::Protocol(ProtocolError::ResetWithoutClosingHandshake) => {
            Ending::new(CloseCode::Abnormal, "connection reset")
        }
        TungsteniteError::Protocol(_) | TungsteniteError::AttackAttempt => {
            Ending::new(CloseCode::Protocol, "protocol error")
        }
        TungsteniteError::Capacity(_) => Ending::new(CloseCode::Size, "frame too big"),
        _ => Ending::new(CloseCode::Abnormal, "connection lost"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_errors_close_with_the_right_code() {
        let too_long = TungsteniteError::Capacity(CapacityError::MessageTooLong {
            size: 10,
            max_size: 5,
        });
        assert_eq!(ending_for(&too_long).code, 1009);
        assert_eq!(
            ending_for(&TungsteniteError::Protocol(
                ProtocolError::UnmaskedFrameFromClient
            ))
            .code,
            1002
        );
        assert_eq!(
            ending_for(&TungsteniteError::Protocol(
                ProtocolError::ResetWithoutClosingHandshake
            ))
            .code,
            1006
        );
        assert_eq!(ending_for(&TungsteniteError::ConnectionClosed).code, 1006);
    }
}

//! One socket's life after the upgrade: read frames and hand them to the
//! guest one at a time, write what the guest and the broker queue, keep the
//! connection alive with pings, and close it with the right code.

use crate::bindings::websocket_types::WsMessage;
use crate::config::WebSocketRoute;
use crate::dispatch::{Events, describe};
use crate::error::HostError;
use crate::hub::{Connection, Hub};
use futures::{SinkExt, StreamExt};
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
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

/// How long a closing handshake may take before the socket is dropped.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

/// Small buffers: most connections are idle most of the time, and the
/// defaults (128 KiB each) would cost that much memory per connection.
const READ_BUFFER: usize = 4 << 10;
const WRITE_BUFFER: usize = 4 << 10;
const MAX_WRITE_BUFFER: usize = 64 << 10;

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
    let mut pending: Option<Pending> = None;
    // Ping when idle for `ping_interval`; close if no pong within `ping_timeout`.
    let mut awaiting_pong = false;
    let keepalive = tokio::time::sleep(route.ping_interval);
    tokio::pin!(keepalive);

    let (ending, reply) = loop {
        tokio::select! {
            () = &mut shutdown => {
                break (Ending::new(CloseCode::Away, "server shutting down"), true);
            }
            request = connection.close_requested() => {
                break (Ending { code: request.code.into(), reason: request.reason.to_string() }, true);
            }
            done = async { pending.as_mut().expect("guarded by the if").await }, if pending.is_some() => {
                pending = None;
                match done {
                    Ok(Ok(())) => {}
                    Ok(Err(failure)) => {
                        break (Ending::new(failure.close_code().into(), "the handler failed"), true);
                    }
                    Err(_) => break (Ending::new(CloseCode::Error, "the handler failed"), true),
                }
            }
            frame = outbox.recv() => {
                let Some(frame) = frame else { continue };
                if let Err(ending) = write(&mut sink, frame, connection).await {
                    break (ending, false);
                }
            }
            incoming = stream.next(), if pending.is_none() => {
                let message = match incoming {
                    None => break (Ending::new(CloseCode::Abnormal, "connection dropped"), false),
                    Some(Err(err)) => break (ending_for(&err), true),
                    Some(Ok(Frame::Close(frame))) => {
                        let ending = frame.map_or(Ending::new(CloseCode::Status, ""), |frame| Ending {
                            code: frame.code.into(),
                            reason: frame.reason.to_string(),
                        });
                        // tungstenite queued the reply; send it.
                        let _ = tokio::time::timeout(CLOSE_TIMEOUT, sink.close()).await;
                        break (ending, false);
                    }
                    Some(Ok(Frame::Text(text))) => WsMessage::Text(text.to_string()),
                    Some(Ok(Frame::Binary(bytes))) => WsMessage::Binary(bytes.to_vec()),
                    Some(Ok(Frame::Pong(_))) => {
                        awaiting_pong = false;
                        keepalive.as_mut().reset(Instant::now() + route.ping_interval);
                        continue;
                    }
                    // tungstenite answers pings itself; flush the pong out.
                    Some(Ok(Frame::Ping(_) | Frame::Frame(_))) => {
                        if sink.flush().await.is_err() {
                            break (Ending::new(CloseCode::Abnormal, "write failed"), false);
                        }
                        continue;
                    }
                };
                pending = Some(tokio::spawn(
                    events
                        .clone()
                        .message(describe(connection), message)
                        .in_current_span(),
                ));
            }
            () = &mut keepalive => {
                if awaiting_pong {
                    break (Ending::new(CloseCode::Away, "ping timeout"), true);
                }
                if let Err(ending) = write(&mut sink, Frame::Ping(Bytes::new()), connection).await {
                    break (ending, false);
                }
                awaiting_pong = true;
                keepalive.as_mut().reset(Instant::now() + route.ping_timeout);
            }
        }
    };
    if let Some(task) = pending {
        task.abort();
    }
    if reply {
        // Our side closes: send the close frame, then give the client a
        // moment to answer before dropping the socket.
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
    ending
}

/// Resolves once the server is shutting down (or the hub is gone).
async fn shutdown_started(mut shutdown: tokio::sync::watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|down| *down).await;
}

/// Write `frame`, unless a close is requested while the client is too slow
/// to take it: then give up on the socket (a close frame would not get
/// through either).
async fn write(sink: &mut Sink, frame: Frame, connection: &Connection) -> Result<(), Ending> {
    tokio::select! {
        sent = sink.send(frame) => sent.map_err(|_| Ending::new(CloseCode::Abnormal, "write failed")),
        request = connection.close_requested() => Err(Ending {
            code: request.code.into(),
            reason: request.reason.to_string(),
        }),
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

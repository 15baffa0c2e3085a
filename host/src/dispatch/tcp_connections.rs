//! The executor for TCP connections: each accepted connection gets an
//! instance of the app's version current at accept time for its whole
//! life, its `on-connection` export called with a stream of what the client
//! sends; the stream it returns goes back to the client. The connection
//! ends when the guest has ended its stream and finished its tasks, when
//! no byte has moved for the listener's idle timeout, when its CPU time is
//! spent, when its version has been replaced (after the drain grace) or
//! when the server stops.
//!
//! In hibernate mode the host keeps the connection (`server/tcp_hibernate.rs`)
//! and each event (`on-open`, a line for `on-frame`, `on-close`) goes to a
//! fresh instance of the app's version current then ([`deliver`]).

use crate::app::AppRef;
use crate::bindings::tcp_types::TcpConnection;
use crate::error::HostError;
use crate::runtime::{finish_in_background, guest_tasks_done, until_answer};
use crate::tcp_pipes::{Activity, SocketReader, SocketWriter};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use wasmtime::component::StreamReader;

/// How a connection's guest is fenced.
#[derive(Debug, Clone)]
pub(crate) struct ConnectionLimits {
    /// No byte either way for this long closes the connection.
    pub(crate) idle_timeout: Duration,
    /// Guest execution over the connection's whole life.
    pub(crate) cpu_time: Duration,
}

/// Serve `socket`, accepted from `peer` on the listener `listener`, as
/// connection `id`, with an instance of `app` until the connection ends
/// (or `stop` resolves).
pub(crate) async fn serve(
    app: AppRef,
    id: u64,
    socket: TcpStream,
    peer: SocketAddr,
    listener: String,
    limits: ConnectionLimits,
    stop: impl Future<Output = ()>,
) {
    let connection = TcpConnection {
        id,
        peer: peer.to_string(),
        listener,
    };
    let activity = Arc::new(Activity::default());
    activity.touch();
    let running = run(app.clone(), socket, connection, &limits, activity.clone());
    let ended = tokio::select! {
        ended = running => ended,
        () = activity.idle(limits.idle_timeout) => {
            tracing::debug!(app = %app.name(), id, %peer, "closing an idle tcp connection");
            return;
        }
        () = app.retired() => {
            tracing::debug!(app = %app.name(), id, %peer, "closing a tcp connection: its app version was replaced");
            return;
        }
        () = stop => return,
    };
    if let Err(failure) = ended {
        super::failed(app.name_label(), &failure);
        tracing::debug!(app = %app.name(), id, %peer, "tcp connection ended: {failure}");
    }
}

/// The guest's side of the connection, to its end. Dropping the future
/// drops the store, which cancels the guest and closes the socket.
async fn run(
    app: AppRef,
    socket: TcpStream,
    connection: TcpConnection,
    limits: &ConnectionLimits,
    activity: Arc<Activity>,
) -> Result<(), HostError> {
    let (mut store, guest) = app.instantiate().await.map_err(HostError::from_guest)?;
    store.data_mut().set_cpu_time(limits.cpu_time);
    let (from_client, to_client) = socket.into_split();
    store
        .run_concurrent(async move |accessor| -> wasmtime::Result<()> {
            let input = SocketReader::new(from_client, activity.clone());
            let input = accessor.with(|store| StreamReader::new(store, input))?;
            let output = guest
                .squall_app_tcp_handler()
                .call_on_connection(accessor, connection, input)
                .await?;
            let (writer, ended) = SocketWriter::new(to_client, activity);
            accessor.with(|store| output.pipe(store, writer))?;
            // The guest ended its stream: half-close, then let it finish
            // (it may still read what the client sends).
            if let Ok(mut to_client) = ended.await {
                let _ = to_client.shutdown().await;
            }
            guest_tasks_done(accessor).await;
            Ok(())
        })
        .await
        .and_then(|finished| finished)
        .map_err(HostError::from_guest)
}

/// An event of a hibernate-mode connection.
pub(crate) enum TcpEvent {
    Open,
    /// A line, its `\n` included.
    Frame(Vec<u8>),
    Close,
}

/// Deliver `event` of `connection` to a fresh instance of `app`, within
/// its `timeout` and `cpu_time`; what the handler spawned goes on after it
/// returns, and the next event does not wait for it.
pub(crate) async fn deliver(
    app: AppRef,
    connection: TcpConnection,
    event: TcpEvent,
) -> Result<(), HostError> {
    let timeout = app.limits().timeout;
    let (answer, running) = until_answer(timeout, |answer| {
        once(app.clone(), connection, event, answer)
    })
    .await;
    if let Some(running) = running {
        finish_in_background(running);
    }
    if let Err(failure) = &answer {
        super::failed(app.name_label(), failure);
    }
    answer
}

async fn once(
    app: AppRef,
    connection: TcpConnection,
    event: TcpEvent,
    answer: futures::channel::oneshot::Sender<()>,
) -> wasmtime::Result<()> {
    let (mut store, guest) = app.instantiate().await?;
    store
        .run_concurrent(async move |accessor| {
            let handler = guest.squall_app_tcp_handler();
            match event {
                TcpEvent::Open => handler.call_on_open(accessor, connection).await?,
                TcpEvent::Frame(frame) => {
                    handler.call_on_frame(accessor, connection, frame).await?
                }
                TcpEvent::Close => handler.call_on_close(accessor, connection).await?,
            }
            let _ = answer.send(());
            guest_tasks_done(accessor).await;
            Ok(())
        })
        .await?
}

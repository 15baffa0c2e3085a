//! A hibernate-mode TCP connection's life: the host reads the client's
//! lines (each bounded by `max_frame`) and hands each to a fresh instance,
//! one at a time; it writes what the app queued for the connection (the
//! hub's bounded queue, shared with WebSockets: `tcp.send`, subscribed
//! topics) as it comes. No instance is held while the connection idles.

use crate::app::AppHandle;
use crate::bindings::tcp_types::TcpConnection;
use crate::config::TcpListenerConfig;
use crate::dispatch::tcp_connections::{TcpEvent, deliver};
use crate::hub::{Hub, Outbox};
use crate::tcp_pipes::Activity;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

/// Messages queued for one client at most (its bytes are bounded by the
/// listener's `send_buffer`).
const QUEUED_MESSAGES: usize = 4096;
/// What the host reads from a client at once.
const READ_BUFFER: usize = 4 << 10;
/// How long one write to the client may take before it is given up as
/// gone (a client that does not read).
const WRITE_TIMEOUT: Duration = Duration::from_secs(30);

/// Serve `socket` until the client leaves, the app closes it or removes
/// itself, it idles too long, or the server stops (`stop`).
pub(super) async fn serve(
    app: Arc<AppHandle>,
    hub: Arc<Hub>,
    socket: TcpStream,
    peer: SocketAddr,
    config: TcpListenerConfig,
    mut stop: watch::Receiver<bool>,
) {
    let name = config.display_name();
    let connection = hub.connect(
        app.current().name(),
        &name,
        QUEUED_MESSAGES,
        usize::try_from(config.send_buffer).unwrap_or(usize::MAX),
    );
    let info = TcpConnection {
        id: connection.id(),
        peer: peer.to_string(),
        listener: name,
    };
    let Some(outbox) = connection.take_outbox() else {
        hub.disconnect(&connection);
        return;
    };
    let activity = Arc::new(Activity::default());
    activity.touch();
    let (from_client, to_client) = socket.into_split();
    if deliver(app.current(), info.clone(), TcpEvent::Open)
        .await
        .is_err()
    {
        hub.disconnect(&connection);
        return;
    }
    let reading = async {
        read_lines(&app, &info, from_client, &config, &activity).await;
        // The client is done (or its line was refused): what the app
        // queued still goes out, then the connection closes.
        connection.request_close(CloseCode::Normal, "");
        std::future::pending::<()>().await
    };
    let writing = write_queue(&connection, outbox, to_client, &activity);
    tokio::select! {
        () = reading => {}
        () = writing => {}
        () = activity.idle(config.idle_timeout) => {
            tracing::debug!(id = info.id, %peer, "closing an idle tcp connection");
        }
        () = app.removed() => {}
        _ = stop.wait_for(|stop| *stop) => {}
    }
    // Its state is still there for on-close; its queue is closed.
    let _ = deliver(app.current(), info, TcpEvent::Close).await;
    hub.disconnect(&connection);
}

/// The client's lines, each to a fresh instance in turn, until the client
/// leaves, sends a line over `max_frame`, or a handler fails.
async fn read_lines(
    app: &AppHandle,
    info: &TcpConnection,
    from_client: OwnedReadHalf,
    config: &TcpListenerConfig,
    activity: &Activity,
) {
    let mut reader = BufReader::with_capacity(READ_BUFFER, from_client);
    loop {
        let mut line = Vec::new();
        let read = (&mut reader)
            .take(config.max_frame.saturating_add(1))
            .read_until(b'\n', &mut line)
            .await;
        if !matches!(read, Ok(count) if count > 0) {
            return;
        }
        activity.touch();
        if line.len() as u64 > config.max_frame {
            tracing::debug!(
                id = info.id,
                "closing a tcp connection: its line is over max_frame"
            );
            return;
        }
        if !line.ends_with(b"\n") {
            // The client left mid-line.
            return;
        }
        if deliver(app.current(), info.clone(), TcpEvent::Frame(line))
            .await
            .is_err()
        {
            return;
        }
    }
}

/// What the app queues for the client, as it comes; once the app asks to
/// close, what is queued then, and a FIN.
async fn write_queue(
    connection: &crate::hub::Connection,
    mut outbox: Outbox,
    mut to_client: OwnedWriteHalf,
    activity: &Activity,
) {
    loop {
        tokio::select! {
            message = outbox.recv() => {
                if !write(&mut to_client, &message.into_data()).await {
                    return;
                }
                activity.touch();
            }
            _ = connection.close_requested() => {
                while let Some(message) = outbox.try_recv() {
                    if !write(&mut to_client, &message.into_data()).await {
                        return;
                    }
                }
                let _ = to_client.shutdown().await;
                return;
            }
        }
    }
}

/// Write `bytes` within [`WRITE_TIMEOUT`]; whether it went.
async fn write(to_client: &mut OwnedWriteHalf, bytes: &[u8]) -> bool {
    matches!(
        tokio::time::timeout(WRITE_TIMEOUT, to_client.write_all(bytes)).await,
        Ok(Ok(()))
    )
}

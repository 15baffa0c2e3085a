//! `squall:app/tcp`: outbound TCP connections (Tornado's `TCPClient`), to
//! the destinations the app's `tcp_outbound` allows: the name and port are
//! checked first, then every address it resolves to (an internal one only
//! if a rule names it), within `tcp_outbound_connections` and
//! `tcp_connect_timeout`. The connection's bytes cross as the listeners'
//! do (`crate::tcp`): pulled both ways, nothing buffered by the host.
//! Also what a guest does with its hibernate-mode connections (send,
//! close, subscribe, state), through the hub.

use super::websocket::open_connection;
use super::{Grants, GuestState, grants_of};
use crate::bindings::pubsub::PubsubError;
use crate::bindings::tcp::{ConnectError, Host, HostWithStore, SendError};
use crate::bindings::websocket;
use crate::hub::SendRefused;
use crate::limit_log::Limit;
use crate::policy::is_own;
use crate::tcp_pipes::{Activity, Place, SocketReader, SocketWriter};
use bytes::Bytes;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message as Frame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use wasmtime::component::{Accessor, GuardedStreamReader, HasSelf, StreamReader};

/// Hibernate-mode connections live in the hub beside WebSockets: the
/// same queue, state and subscriptions, by id, for this app only.
impl Host for GuestState {
    fn send(&mut self, connection: u64, bytes: Vec<u8>) -> wasmtime::Result<Result<(), SendError>> {
        let Some(connection) = open_connection(self, connection) else {
            return Ok(Err(SendError::Closed));
        };
        Ok(connection
            .send(Frame::Binary(Bytes::from(bytes)))
            .map_err(refused))
    }

    fn close(&mut self, connection: u64) -> wasmtime::Result<()> {
        if let Some(connection) = open_connection(self, connection) {
            connection.request_close(CloseCode::Normal, "");
        }
        Ok(())
    }

    fn subscribe(
        &mut self,
        connection: u64,
        topic: String,
    ) -> wasmtime::Result<Result<(), PubsubError>> {
        websocket::Host::subscribe(self, connection, topic, false)
    }

    fn unsubscribe(&mut self, connection: u64, topic: String) -> wasmtime::Result<()> {
        websocket::Host::unsubscribe(self, connection, topic)
    }

    fn get_state(&mut self, connection: u64) -> wasmtime::Result<Vec<u8>> {
        websocket::Host::get_state(self, connection)
    }

    fn set_state(
        &mut self,
        connection: u64,
        state: Vec<u8>,
    ) -> wasmtime::Result<Result<(), SendError>> {
        let Some(connection) = open_connection(self, connection) else {
            return Ok(Err(SendError::Closed));
        };
        Ok(connection.set_state(Bytes::from(state)).map_err(refused))
    }
}

fn refused(refused: SendRefused) -> SendError {
    match refused {
        SendRefused::Closed => SendError::Closed,
        SendRefused::QueueFull => SendError::QueueFull,
        SendRefused::TooLarge => SendError::TooLarge,
    }
}

impl HostWithStore<GuestState> for HasSelf<GuestState> {
    async fn connect(
        accessor: &Accessor<GuestState, Self>,
        host: String,
        port: u16,
        output: StreamReader<u8>,
    ) -> wasmtime::Result<Result<StreamReader<u8>, ConnectError>> {
        let grants = grants_of(accessor);
        // Closed if the connect fails: the guest's writer is not left open.
        let output = GuardedStreamReader::new(accessor, output);
        let (socket, place) = match open(&grants, &host, port).await {
            Ok(opened) => opened,
            Err(refused) => {
                tracing::debug!(app = %grants.app(), host, port, "tcp connect refused: {refused:?}");
                return Ok(Err(refused));
            }
        };
        let output = output.into_stream();
        let activity = Arc::new(Activity::default());
        let (from_peer, to_peer) = socket.into_split();
        let input = SocketReader::new(from_peer, activity.clone()).holding(place.clone());
        let (writer, ended) = SocketWriter::new(to_peer, activity);
        let writer = writer.holding(place);
        // When the guest ends its stream: a FIN to the peer.
        tokio::spawn(async move {
            if let Ok(mut to_peer) = ended.await {
                let _ = to_peer.shutdown().await;
            }
        });
        accessor.with(|mut store| {
            output.pipe(&mut store, writer)?;
            Ok(Ok(StreamReader::new(&mut store, input)?))
        })
    }
}

/// A connection to `host:port` for the app, and its place under
/// `tcp_outbound_connections`.
async fn open(grants: &Grants, host: &str, port: u16) -> Result<(TcpStream, Place), ConnectError> {
    if !grants.tcp_outbound.allows(host, port) {
        return Err(ConnectError::Denied(format!(
            "{host}:{port} is not in the app's tcp_outbound"
        )));
    }
    let Some(place) = grants.tcp_connections.try_enter() else {
        let why = format!(
            "the app has {} tcp connections open (tcp_outbound_connections)",
            grants.tcp_connections.ceiling()
        );
        grants.hits.hit(Limit::TcpOutbound, &why);
        return Err(ConnectError::Limit(why));
    };
    let connecting = async {
        let addresses = resolve(grants, host, port).await?;
        let mut last_failure = None;
        for address in addresses {
            match TcpStream::connect(address).await {
                Ok(socket) => {
                    let _ = socket.set_nodelay(true);
                    return Ok(socket);
                }
                Err(err) => last_failure = Some(format!("{address}: {err}")),
            }
        }
        Err(ConnectError::Failed(last_failure.unwrap_or_default()))
    };
    match tokio::time::timeout(grants.tcp_connect_timeout, connecting).await {
        Ok(Ok(socket)) => Ok((socket, Arc::new(place))),
        Ok(Err(failure)) => Err(failure),
        Err(_) => Err(ConnectError::Timeout),
    }
}

/// The addresses `host` resolves to that the app may reach.
async fn resolve(grants: &Grants, host: &str, port: u16) -> Result<Vec<SocketAddr>, ConnectError> {
    let resolved = crate::dns::lookup(&grants.lookups, host, port)
        .await
        .map_err(|failure| match failure {
            crate::dns::LookupFailure::Timeout(_) => ConnectError::Timeout,
            crate::dns::LookupFailure::Failed(..) => ConnectError::Failed(failure.to_string()),
        })?;
    let allowed: Vec<SocketAddr> = resolved
        .iter()
        .copied()
        .filter(|address| {
            grants
                .tcp_outbound
                .allows_address(address.ip(), address.port(), is_own(address.ip()))
        })
        .collect();
    match (allowed.is_empty(), resolved.first()) {
        (true, Some(refused)) => Err(ConnectError::Denied(format!(
            "{host} resolves to {}, an internal address no tcp_outbound rule names",
            refused.ip()
        ))),
        (true, None) => Err(ConnectError::Failed(format!("{host} resolves to nothing"))),
        (false, _) => Ok(allowed),
    }
}

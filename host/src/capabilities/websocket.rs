//! `squall:app/websocket`: what a guest can do with its app's connections.

use super::pubsub::granted;
use crate::bindings::pubsub::PubsubError;
use crate::bindings::websocket::Host;
use crate::bindings::websocket_types::{WsError, WsMessage};
use crate::runtime::State;
use crate::websocket::Connection;
use bytes::Bytes;
use std::sync::Arc;
use tokio_tungstenite::tungstenite::Message as Frame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

impl State {
    /// The connection `id` if it is open and belongs to this app.
    fn connection(&self, id: u64) -> Option<Arc<Connection>> {
        let grants = self.grants();
        grants.hub.get(&grants.app, id)
    }
}

impl Host for State {
    fn send(
        &mut self,
        connection: u64,
        message: WsMessage,
    ) -> wasmtime::Result<Result<(), WsError>> {
        let Some(connection) = self.connection(connection) else {
            return Ok(Err(WsError::Closed));
        };
        let frame = match message {
            WsMessage::Text(text) => Frame::Text(text.into()),
            WsMessage::Binary(bytes) => Frame::Binary(Bytes::from(bytes)),
        };
        Ok(connection.send(frame))
    }

    fn close(&mut self, connection: u64, code: u16, reason: String) -> wasmtime::Result<()> {
        if let Some(connection) = self.connection(connection) {
            // Only codes an endpoint may send; anything else is a normal close.
            let code = match code {
                1000 | 1001 | 1003 | 1007..=1011 | 3000..=4999 => CloseCode::from(code),
                _ => CloseCode::Normal,
            };
            // A close reason must fit a control frame (123 bytes).
            let reason: String = reason.chars().take(30).collect();
            connection.request_close(code, &reason);
        }
        Ok(())
    }

    fn subscribe(
        &mut self,
        connection: u64,
        topic: String,
        with_id: bool,
    ) -> wasmtime::Result<Result<(), PubsubError>> {
        let grants = self.grants().clone();
        let key = match granted(&grants, &topic) {
            Ok(key) => key,
            Err(err) => return Ok(Err(err)),
        };
        let Some(connection) = self.connection(connection) else {
            return Ok(Err(PubsubError::Invalid("the connection is closed".into())));
        };
        grants
            .hub
            .subscribe(&connection, key, with_id, grants.pubsub_history);
        Ok(Ok(()))
    }

    fn unsubscribe(&mut self, connection: u64, topic: String) -> wasmtime::Result<()> {
        let grants = self.grants().clone();
        if let (Ok(key), Some(connection)) = (granted(&grants, &topic), self.connection(connection))
        {
            grants.hub.unsubscribe(&connection, &key);
        }
        Ok(())
    }

    fn get_state(&mut self, connection: u64) -> wasmtime::Result<Vec<u8>> {
        Ok(self
            .connection(connection)
            .map(|connection| connection.state().to_vec())
            .unwrap_or_default())
    }

    fn set_state(
        &mut self,
        connection: u64,
        state: Vec<u8>,
    ) -> wasmtime::Result<Result<(), WsError>> {
        let Some(connection) = self.connection(connection) else {
            return Ok(Err(WsError::Closed));
        };
        Ok(connection.set_state(Bytes::from(state)))
    }
}

impl crate::bindings::websocket_types::Host for State {}

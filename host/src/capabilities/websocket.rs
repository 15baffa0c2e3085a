//! `squall:app/websocket`: what a guest can do with its app's connections.

use super::GuestState;
use super::pubsub::granted;
use crate::bindings::pubsub::PubsubError;
use crate::bindings::websocket::Host;
use crate::bindings::websocket_types::{WsError, WsMessage};
use crate::hub::{Connection, SendRefused};
use bytes::Bytes;
use std::sync::Arc;
use tokio_tungstenite::tungstenite::Message as Frame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

/// The connection `id` if it is open and belongs to this store's app.
pub(super) fn open_connection(state: &GuestState, id: u64) -> Option<Arc<Connection>> {
    let grants = state.host().grants();
    grants.hub().get(grants.app(), id)
}

/// A refusal of the hub, as the guest sees it.
fn refused(refused: SendRefused) -> WsError {
    match refused {
        SendRefused::Closed => WsError::Closed,
        SendRefused::QueueFull => WsError::QueueFull,
        SendRefused::TooLarge => WsError::TooLarge,
    }
}

/// Only codes an endpoint may send; anything else is a normal close.
fn endpoint_close_code(code: u16) -> CloseCode {
    match code {
        1000 | 1001 | 1003 | 1007..=1011 | 3000..=4999 => CloseCode::from(code),
        _ => CloseCode::Normal,
    }
}

/// A close reason must fit a control frame (123 bytes): at most 30
/// characters of up to 4 bytes each.
fn close_reason(reason: &str) -> String {
    reason.chars().take(30).collect()
}

impl Host for GuestState {
    fn send(
        &mut self,
        connection: u64,
        message: WsMessage,
    ) -> wasmtime::Result<Result<(), WsError>> {
        let Some(connection) = open_connection(self, connection) else {
            return Ok(Err(WsError::Closed));
        };
        let frame = match message {
            WsMessage::Text(text) => Frame::Text(text.into()),
            WsMessage::Binary(bytes) => Frame::Binary(Bytes::from(bytes)),
        };
        Ok(connection.send(frame).map_err(refused))
    }

    fn close(&mut self, connection: u64, code: u16, reason: String) -> wasmtime::Result<()> {
        if let Some(connection) = open_connection(self, connection) {
            connection.request_close(endpoint_close_code(code), &close_reason(&reason));
        }
        Ok(())
    }

    fn subscribe(
        &mut self,
        connection: u64,
        topic: String,
        with_id: bool,
    ) -> wasmtime::Result<Result<(), PubsubError>> {
        let grants = self.host().grants().clone();
        let key = match granted(&grants, &topic) {
            Ok(key) => key,
            Err(err) => return Ok(Err(err)),
        };
        let Some(connection) = open_connection(self, connection) else {
            return Ok(Err(PubsubError::Invalid("the connection is closed".into())));
        };
        let subscribed = grants
            .hub()
            .subscribe(&connection, key.clone(), with_id, &grants.topic_fence)
            .map_err(|refused| grants.refused(refused));
        // Across hosts: follow the topic, so what others publish arrives.
        if subscribed.is_ok()
            && let Some(relay) = grants.shared.relay().cloned()
        {
            let fence = grants.topic_fence.clone();
            tokio::spawn(async move { relay.keep_following(&key, &fence).await });
        }
        Ok(subscribed)
    }

    fn unsubscribe(&mut self, connection: u64, topic: String) -> wasmtime::Result<()> {
        let grants = self.host().grants().clone();
        if let (Ok(key), Some(connection)) =
            (granted(&grants, &topic), open_connection(self, connection))
        {
            grants.hub().unsubscribe(&connection, &key);
        }
        Ok(())
    }

    fn get_state(&mut self, connection: u64) -> wasmtime::Result<Vec<u8>> {
        Ok(open_connection(self, connection)
            .map(|connection| connection.state().to_vec())
            .unwrap_or_default())
    }

    fn set_state(
        &mut self,
        connection: u64,
        state: Vec<u8>,
    ) -> wasmtime::Result<Result<(), WsError>> {
        let Some(connection) = open_connection(self, connection) else {
            return Ok(Err(WsError::Closed));
        };
        Ok(connection.set_state(Bytes::from(state)).map_err(refused))
    }
}

impl crate::bindings::websocket_types::Host for GuestState {}

/// The TCP handler's types; nothing to call.
impl crate::bindings::tcp_types::Host for GuestState {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_codes_an_endpoint_may_send_are_kept() {
        for code in [1000, 1001, 1003, 1007, 1011, 3000, 4000, 4999] {
            assert_eq!(u16::from(endpoint_close_code(code)), code);
        }
        for code in [0, 999, 1004, 1005, 1006, 1015, 2000, 5000] {
            assert_eq!(endpoint_close_code(code), CloseCode::Normal, "{code}");
        }
    }

    #[test]
    fn close_reasons_fit_a_control_frame() {
        let long = "é".repeat(100);
        let reason = close_reason(&long);
        assert!(reason.len() <= 123);
        assert_eq!(close_reason("bye"), "bye");
        let wide = "😀".repeat(100);
        assert!(close_reason(&wide).len() <= 123);
    }
}

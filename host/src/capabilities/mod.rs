//! Host interfaces offered to guests, one file each.

pub mod http_client;
mod pubsub;
mod time;
pub mod wasi_http;
mod websocket;

use crate::bindings::types;
use crate::runtime::State;

impl types::Host for State {}

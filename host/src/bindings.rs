//! The one `bindgen!` of the host: Rust types for the `squall:app` world.
#![allow(missing_docs)]

wasmtime::component::bindgen!({
    world: "app",
    path: "../wit",
    imports: { default: trappable },
    exports: { default: async },
});

pub use self::exports::squall::app::handler;
pub use self::squall::app::{http_client, pubsub, time, types, websocket, websocket_types};

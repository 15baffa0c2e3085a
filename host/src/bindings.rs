//! The one `bindgen!` of the host: Rust types for the `squall:app` world.
#![allow(missing_docs, unreachable_pub)]

wasmtime::component::bindgen!({
    world: "app",
    path: "../wit",
    imports: {
        // With pub/sub across hosts, a publish waits for its id from Redis.
        "squall:app/pubsub.publish": async | trappable,
        default: trappable,
    },
    exports: { default: async },
});

pub(crate) use self::squall::app::{
    config, http_client, jobs, kv, log, pubsub, queues, static_files, tcp, tcp_types, time, types,
    websocket, websocket_types,
};

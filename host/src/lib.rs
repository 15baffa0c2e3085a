//! Squall: a Tornado-style async web server whose handlers are sandboxed
//! WebAssembly components.
//!
//! The path of a request: [`server`] accepts connections and speaks HTTP
//! with hyper, [`router`] picks the app by path prefix, [`dispatch`] runs the
//! request in a fresh instance of that app ([`runtime`]), and [`body`] streams
//! bodies between hyper and the guest. Guests reach the host only through
//! [`capabilities`].

pub mod bindings;
pub mod body;
pub mod builder;
pub mod capabilities;
pub mod cli;
pub mod config;
pub mod dispatch;
pub mod policy;
pub mod pubsub;
pub mod router;
pub mod runtime;
pub mod server;
pub mod standard;
pub mod websocket;

//! Squall: a Tornado-style async web server whose handlers are sandboxed
//! WebAssembly components.
//!
//! The layers, top to bottom (each imports only those below it; see
//! `ARCHITECTURE.md`): `cli` and `testing` assemble a host; `server`
//! accepts connections, routes each request to its app and owns WebSocket
//! sockets; `dispatch` runs a request or event in a guest, one executor per
//! kind of guest; `app` is a loaded app (component, grants, routes);
//! `capabilities` are the host interfaces guests import; `outbound`, `body`,
//! `broker` and `hub` are the machinery they share; `runtime` is wasmtime
//! (engine, stores, limits, the instance lifecycle); `config`, `policy`,
//! `convert`, `error` and `bindings` are leaves.
//!
//! The public surface is small: the command line ([`cli`]), an in-process
//! harness for tests and benchmarks ([`testing`]), and the listener the
//! server uses ([`bind`]).

mod admin;
mod app;
mod bindings;
mod body;
mod broker;
mod budget;
mod capabilities;
mod cargo_build;
pub mod cli;
mod config;
mod convert;
mod dead_letters;
mod deploy;
mod dispatch;
mod dns;
mod error;
mod fence;
#[cfg(feature = "fuzzing")]
pub mod fuzzing;
mod guest_call;
mod hub;
mod job_runner;
mod job_store;
mod kv;
mod limit_log;
mod outbound;
mod policy;
mod python_build;
mod queue_consumer;
mod redis_connection;
mod relay;
mod reuse;
mod routes;
mod runtime;
mod scheduler;
mod server;
mod static_files;
mod stats;
mod tcp_pipes;
pub mod testing;
mod tick_claims;

pub use server::bind;

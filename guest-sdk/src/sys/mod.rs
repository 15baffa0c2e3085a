//! The one seam between the SDK and the host it is built for.
//!
//! Each backend offers the same items, with the same signatures; the rest of
//! the SDK uses them as `crate::sys::…` and never asks which backend it got:
//!
//! - `IncomingBody`: a request body as received (`Default` is empty), read
//!   with `async fn chunk(&mut self) -> Option<Vec<u8>>`;
//! - `BodySink`: where a [`BodyWriter`](crate::BodyWriter) writes, with
//!   `async fn write(&mut self, chunk: Vec<u8>) -> Result<(), Disconnected>`;
//! - `FetchBody`: a fetched response's body, read with
//!   `async fn chunk(&mut self) -> Option<Result<Vec<u8>, FetchError>>`;
//! - `fetch`: send an outgoing request;
//! - `monotonic_now` and `sleep_ns`: the clock;
//! - `pubsub_publish` and `pubsub_wait`: pub/sub topics;
//! - `kv_get`, `kv_get_many`, `kv_set`, `kv_set_many`, `kv_delete`,
//!   `kv_exists`, `kv_list`, `kv_increment`, `kv_compare_and_swap`: the
//!   app's key-value store;
//! - `jobs_after`, `jobs_at`, `jobs_cancel`: the app's delayed jobs;
//! - `queue_send`, `queue_send_batch`, `queue_dead_letters`,
//!   `queue_forget_dead_letter`: its queues;
//! - `config_get`: the app's configuration values;
//! - `static_version`: the version of a static file the host serves;
//! - `ws_send`, `ws_close`, `ws_subscribe`, `ws_unsubscribe`, `ws_state` and
//!   `ws_set_state`: calls on a WebSocket connection;
//! - `TcpInput` (`async fn chunk(&mut self) -> Option<Vec<u8>>`) and
//!   `TcpOutput` (`async fn write(&mut self, bytes: Vec<u8>) -> Result<(),
//!   Closed>`): the two directions of a TCP connection, and `tcp_connect`
//!   to open one;
//! - `__private`: what the backend's `export!` macro expands to (its
//!   bindings, and the glue converting its request and response types to
//!   [`Request`](crate::Request) and [`Response`](crate::Response), which
//!   hands them to `crate::dispatch`);
//! - the `export!` macro itself (`#[macro_export]`, so at the crate root).
//!
//! Where a backend lacks a capability (a standard host, or no host at all
//! in a native test), its functions fail the way the SDK documents for
//! that case (`PubSubError::Unavailable`, `SendError::Closed`,
//! `KvError::Unavailable`, an absent config value).

/// `squall:app`: the Squall host's world, with every capability.
#[cfg(all(target_arch = "wasm32", not(feature = "wasi-http")))]
mod squall;
#[cfg(all(target_arch = "wasm32", not(feature = "wasi-http")))]
pub(crate) use squall::*;

/// `wasi:http/service` (WASI 0.3): standard hosts such as `wasmtime serve`.
#[cfg(all(target_arch = "wasm32", feature = "wasi-http"))]
mod wasi_http;
#[cfg(all(target_arch = "wasm32", feature = "wasi-http"))]
pub(crate) use wasi_http::*;

/// What a backend without a Squall host lacks: calls that fail or do nothing.
#[cfg(any(not(target_arch = "wasm32"), feature = "wasi-http"))]
mod absent;

/// No host: the SDK compiled for the machine itself (an app's native tests).
/// The generated bindings would abort the test binary at the first host
/// call; this backend fails each call the way its API documents instead.
#[cfg(not(target_arch = "wasm32"))]
mod native;
#[cfg(not(target_arch = "wasm32"))]
pub(crate) use native::*;

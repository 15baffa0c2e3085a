//! Write Squall request handlers in Rust.
//!
//! A Squall app is a WebAssembly component: build it for `wasm32-wasip2` and
//! serve it with `squall serve`. Each request runs in a fresh sandboxed
//! instance; handlers are plain `async fn`s that can await host timers
//! without blocking anyone else.
//!
//! ```
//! use squall_sdk::{Request, Router};
//!
//! fn app() -> Router {
//!     Router::new()
//!         .get("/", |_req| async { "Hello, world!" })
//!         .get("/hello/{name}", hello)
//! }
//!
//! async fn hello(req: Request) -> String {
//!     format!("Hello, {}!", req.param("name").unwrap_or("stranger"))
//! }
//!
//! squall_sdk::export!(app);
//! ```

// Natively (an app's `cargo test`) there is no host, so the glue that
// converts the host's types is never called.
#![cfg_attr(
    not(target_arch = "wasm32"),
    allow(dead_code, unused_imports, unreachable_pub)
)]

// The generated bindings name this crate by its path from outside.
extern crate self as squall_sdk;

mod body;
mod client;
pub mod config;
pub mod cookie;
mod dispatch;
mod error;
mod forms;
pub mod jobs;
pub mod kv;
pub mod log;
pub mod pubsub;
pub mod queue;
mod request;
mod response;
mod router;
pub mod schedule;
pub mod sse;
mod sys;
mod task;
pub mod tcp;
#[cfg(feature = "templates")]
pub mod template;
mod time;
pub mod web;
pub mod websocket;
pub mod xsrf;

pub use ::http::{Method, StatusCode, header};
pub use body::{Body, BodyWriter, Disconnected};
pub use error::Error;
pub use forms::{Arguments, Field, Multipart};
pub use futures;
pub use request::Request;
pub use response::{Html, IntoResponse, Json, Response};
pub use router::{Handler, Router};
pub use serde;
pub use serde_json;
pub use task::spawn;
pub use time::{Elapsed, Instant, sleep, timeout};

/// Outbound requests through the host's pooled client, and the HTTP types
/// beyond the crate root's [`Method`], [`StatusCode`] and [`header`].
///
/// ```no_run
/// use squall_sdk::{Error, Request, StatusCode, http};
///
/// async fn weather(req: Request) -> Result<String, Error> {
///     let city = req.param("city").unwrap_or("Paris");
///     let response = http::get(format!("https://wttr.in/{city}?format=3")).await?;
///     if !response.status().is_success() {
///         return Err(Error::new(StatusCode::BAD_GATEWAY, "no weather today"));
///     }
///     Ok(response.text().await?)
/// }
/// ```
pub mod http {
    pub use crate::client::{FetchError, FetchResponse, RequestBuilder, fetch, get, post};
    pub use ::http::{HeaderMap, HeaderName, HeaderValue, Uri};
}

/// What the `export!` macro expands to: not part of the API.
#[doc(hidden)]
pub mod __private {
    // The backend-neutral event handling, then the backend's bindings and the
    // glue that converts their types (and defines `export!`'s names).
    pub use crate::dispatch::*;
    pub use crate::sys::__private::*;

    use crate::Router;
    use std::cell::OnceCell;
    use std::rc::Rc;

    thread_local! {
        static APP: OnceCell<Rc<Router>> = const { OnceCell::new() };
    }

    /// The app's router, built by `build` at the instance's first call and
    /// kept for its next ones (an instance the host reuses serves many
    /// requests; routes are the same for all of them).
    pub fn router(build: impl FnOnce() -> Router) -> Rc<Router> {
        APP.with(|app| app.get_or_init(|| Rc::new(build())).clone())
    }
}

//! Write Squall request handlers in Rust.
//!
//! A Squall app is a WebAssembly component: build it for `wasm32-wasip2` and
//! serve it with `squall serve`. Each request runs in a fresh sandboxed
//! instance; handlers are plain `async fn`s that can await host timers
//! without blocking anyone else.
//!
//! ```ignore
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

// The generated bindings name this crate by its path from outside.
extern crate self as squall_sdk;

#[cfg(not(feature = "wasi-http"))]
#[doc(hidden)]
pub mod bindings;
mod body;
mod client;
mod error;
pub mod pubsub;
mod request;
mod response;
mod router;
pub mod sse;
mod time;
pub mod websocket;

pub use ::http::{Method, StatusCode, header};
pub use body::{Body, BodyWriter, Disconnected};
pub use error::Error;
pub use futures;
pub use request::Request;
pub use response::{Html, IntoResponse, Json, Response};
pub use router::{Handler, Router};
pub use serde;
pub use serde_json;
pub use time::{Elapsed, Instant, sleep, timeout};

/// HTTP types, and outbound requests through the host's pooled client.
pub mod http {
    pub use crate::client::{FetchError, FetchResponse, RequestBuilder, fetch, get, post};
    pub use ::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri, header};
}

/// Export `app`, a `fn() -> Router`, as this component's request handler.
///
/// Use it once, at the crate root of a `cdylib` built for `wasm32-wasip2`.
/// With the SDK's `wasi-http` feature the component exports the standard
/// `wasi:http/handler` (WASI 0.3) instead, to run on `wasmtime serve` and
/// other standard hosts.
#[cfg(not(feature = "wasi-http"))]
#[macro_export]
macro_rules! export {
    ($app:path) => {
        #[allow(unsafe_code)]
        const _: () = {
            struct SquallApp;

            impl $crate::__private::Guest for SquallApp {
                async fn handle(
                    request: $crate::__private::WitRequest,
                ) -> $crate::__private::WitResponse {
                    $crate::__private::dispatch(&$app(), request).await
                }
            }

            impl $crate::__private::WebSocketGuest for SquallApp {
                async fn on_open(
                    connection: $crate::__private::WitConnection,
                    request: $crate::__private::WitRequest,
                ) -> $crate::__private::WitOpenResult {
                    $crate::__private::websocket_open(&$app(), connection, request).await
                }

                async fn on_message(
                    connection: $crate::__private::WitConnection,
                    message: $crate::__private::WitMessage,
                ) {
                    $crate::__private::websocket_message(&$app(), connection, message).await
                }

                async fn on_close(
                    connection: $crate::__private::WitConnection,
                    code: u16,
                    reason: String,
                ) {
                    $crate::__private::websocket_close(&$app(), connection, code, reason).await
                }
            }

            $crate::__private::bindings::__export_app!(SquallApp with_types_in $crate::__private::bindings);
        };
    };
}

/// Export `app`, a `fn() -> Router`, as a standard `wasi:http/handler`.
#[cfg(feature = "wasi-http")]
#[macro_export]
macro_rules! export {
    ($app:path) => {
        #[allow(unsafe_code)]
        const _: () = {
            struct SquallApp;

            impl $crate::__private::wasip3::exports::http::handler::Guest for SquallApp {
                async fn handle(
                    request: $crate::__private::wasip3::http::types::Request,
                ) -> ::core::result::Result<
                    $crate::__private::wasip3::http::types::Response,
                    $crate::__private::wasip3::http::types::ErrorCode,
                > {
                    $crate::__private::dispatch_standard(&$app(), request).await
                }
            }

            $crate::__private::wasip3::http::service::export!(SquallApp);
        };
    };
}

/// What the `export!` macro expands to on a standard wasi:http host.
#[cfg(feature = "wasi-http")]
#[doc(hidden)]
pub mod __private {
    pub use wasip3;
    use wasip3::http::types::{ErrorCode, Request, Response};
    use wasip3::http_compat::{http_from_wasi_request, http_into_wasi_response};

    /// Run one standard request through `router`.
    pub async fn dispatch_standard(
        router: &crate::Router,
        request: Request,
    ) -> Result<Response, ErrorCode> {
        let request = crate::Request::from_standard(http_from_wasi_request(request)?);
        http_into_wasi_response(router.handle(request).await.into_standard())
    }
}

#[cfg(not(feature = "wasi-http"))]
#[doc(hidden)]
pub mod __private {
    pub use crate::bindings;
    pub use crate::bindings::exports::squall::app::handler::Guest;
    pub use crate::bindings::exports::squall::app::websocket_handler::Guest as WebSocketGuest;
    pub use crate::bindings::squall::app::types::{Request as WitRequest, Response as WitResponse};
    pub use crate::bindings::squall::app::websocket_types::{
        Connection as WitConnection, OpenResult as WitOpenResult, WsMessage as WitMessage,
    };
    pub use wit_bindgen;

    use crate::IntoResponse;
    use crate::websocket::{accept_to_wit, connection};

    /// Run one request through `router` and convert the answer for the host.
    pub async fn dispatch(router: &crate::Router, request: WitRequest) -> WitResponse {
        let request = crate::Request::from_wit(request);
        router.handle(request).await.into_wit()
    }

    /// An upgrade request: the route's `on_open`, or 404 if none matches.
    pub async fn websocket_open(
        router: &crate::Router,
        ws: WitConnection,
        request: WitRequest,
    ) -> WitOpenResult {
        let Some((handler, params)) = router.websocket_for(&ws.path) else {
            return WitOpenResult::Reject(crate::Error::not_found().into_response().into_wit());
        };
        let mut request = crate::Request::from_wit(request);
        request.set_params(params.clone());
        match handler.open(connection(ws, params), request).await {
            Ok(accept) => WitOpenResult::Accept(accept_to_wit(accept)),
            Err(error) => WitOpenResult::Reject(error.into_response().into_wit()),
        }
    }

    pub async fn websocket_message(router: &crate::Router, ws: WitConnection, message: WitMessage) {
        if let Some((handler, params)) = router.websocket_for(&ws.path) {
            handler.message(connection(ws, params), message).await;
        }
    }

    pub async fn websocket_close(
        router: &crate::Router,
        ws: WitConnection,
        code: u16,
        reason: String,
    ) {
        if let Some((handler, params)) = router.websocket_for(&ws.path) {
            handler.close(connection(ws, params), code, reason).await;
        }
    }
}

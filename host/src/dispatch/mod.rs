//! Running guests: one executor per kind of guest. A request goes to the
//! squall-world executor ([`squall`]) or the standard wasi:http one
//! ([`wasi_http`]) by what the app's component exports; WebSocket events go
//! to [`socket_events`], TCP connections to [`tcp`], schedule ticks and
//! due jobs to [`background_runs`]. Each runs its guest in a fresh instance (or a
//! connection's live one) under the app's limits, and turns what comes back,
//! or what went wrong ([`HostError`](crate::error::HostError)), into an
//! answer.

pub(crate) mod background_runs;
mod concurrent;
mod socket_events;
mod squall;
pub(crate) mod tcp_connections;
mod wasi_http;

pub(crate) use socket_events::{Events, Opened, describe};

use crate::app::{AppRef, Executor};
use crate::bindings::types as wit;
use crate::body::{InboundBody, OutgoingBody, accepts_gzip, discard_in_background, gzip};
use crate::convert::guest_response_head;
use crate::error::HostError;
use crate::runtime::OnCancel;
use crate::stats;
use http::header::{self, HeaderValue};
use http::{Request, Response, StatusCode};
use http_body::Body as _;
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::OwnedSemaphorePermit;

/// Run `request` through `app` (under its limits, on the executor for its
/// kind of guest), and log it.
pub(crate) async fn dispatch(app: AppRef, request: Request<InboundBody>) -> Response<OutgoingBody> {
    let started = Instant::now();
    let name = app.name_label().clone();
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let compress = app.config().compress && accepts_gzip(request.headers());
    let cancelled = OnCancel::new("the client went away before the response");
    let response = match app.admit_request() {
        Err(busy) => error_response(busy.logged_status()),
        Ok(admitted) => run_admitted(app, request, admitted).await,
    };
    cancelled.disarm();
    let response = if compress {
        gzip(response).await
    } else {
        response
    };
    stats::request(&name, response.status().as_u16(), started.elapsed());
    tracing::info!(
        method = %method,
        path,
        status = response.status().as_u16(),
        ms = format_args!("{:.2}", started.elapsed().as_secs_f64() * 1000.0),
        "request"
    );
    response
}

/// Run a request `admitted` among the app's requests in flight: what
/// every executor needs first, then the executor for the app's guest.
async fn run_admitted(
    app: AppRef,
    request: Request<InboundBody>,
    admitted: OwnedSemaphorePermit,
) -> Response<OutgoingBody> {
    // An app over its CPU share waits its turn (its place held).
    if let Some(pause) = app.component().charge_request() {
        tokio::time::sleep(pause).await;
    }
    let (parts, body) = request.into_parts();
    // A body declared larger than the app takes needs no instance.
    if body.size_hint().lower() > app.limits().max_body {
        discard_in_background(body);
        return error_response(StatusCode::PAYLOAD_TOO_LARGE);
    }
    match app.executor() {
        Executor::Squall(shared) => {
            let shared = shared.clone();
            squall::run(app, parts, body, admitted, shared).await
        }
        Executor::Standard(shared) => {
            let shared = shared.clone();
            wasi_http::run(app, parts, body, admitted, shared).await
        }
    }
}

/// Log `failure` of the app `app`, count it if the guest caused it, and
/// return its status.
pub(crate) fn failed(app: &Arc<str>, failure: &HostError) -> StatusCode {
    if let Some(kind) = failure.guest_kind() {
        stats::guest_failure(app, kind);
    }
    failure.logged_status()
}

/// The HTTP response for a guest's answer: its status and headers, once
/// checked, with the body `body` makes (made only then). A head that does
/// not pass is the guest's failure: a 500, logged and counted.
pub(crate) fn guest_response(
    app: &Arc<str>,
    status: u16,
    headers: wit::Fields,
    body: impl FnOnce() -> OutgoingBody,
) -> Response<OutgoingBody> {
    match guest_response_head(status, headers) {
        Ok((status, headers)) => {
            let mut response = Response::new(body());
            *response.status_mut() = status;
            *response.headers_mut() = headers;
            response
        }
        Err(reason) => error_response(failed(app, &HostError::InvalidResponse(reason))),
    }
}

/// A short plain-text answer that reveals nothing about the guest. A 503
/// (the app over its share) says when to try again.
pub(crate) fn error_response(status: StatusCode) -> Response<OutgoingBody> {
    let reason = status.canonical_reason().unwrap_or("Error");
    let mut response = Response::new(OutgoingBody::full(format!("{reason}\n")));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    if status == StatusCode::SERVICE_UNAVAILABLE {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    #[tokio::test]
    async fn error_responses_say_only_the_reason() {
        let response = error_response(StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(response.status(), 503);
        assert_eq!(response.headers()[header::RETRY_AFTER], "1");
        assert_eq!(
            response.headers()[header::CONTENT_TYPE],
            "text/plain; charset=utf-8"
        );
        let body = response
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes();
        assert_eq!(body, "Service Unavailable\n");
    }
}

//! WebSockets handled inside the sandbox. The host owns the socket (frames,
//! ping/pong, limits, the outgoing queue); the guest receives `on-open`,
//! `on-message` and `on-close` through our own WIT interface and acts on
//! connections through the `websocket` import. wasi:http has no Upgrade, so
//! this interface is ours (Spin's SIP 016 and Cloudflare's Hibernation API
//! are the precedents).

mod connection;
mod guest;
mod hub;

pub use hub::{Connection, Hub};

use crate::body::OutgoingBody;
use crate::config::{WebSocketMode, WebSocketRoute};
use crate::dispatch::{error_response, guest_response_head, request_head_to_wit};
use crate::runtime::SharedApp;
use guest::Events;
use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;

/// Whether `request` asks to become a WebSocket.
pub fn is_upgrade_request(request: &Request<Incoming>) -> bool {
    let has_token = |name: header::HeaderName, token: &str| {
        request.headers().get_all(name).iter().any(|value| {
            value
                .to_str()
                .is_ok_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
        })
    };
    request.method() == Method::GET
        && has_token(header::CONNECTION, "upgrade")
        && has_token(header::UPGRADE, "websocket")
}

/// The WebSocket route of `app` that serves `path`, if any.
pub fn route_for<'a>(app: &'a SharedApp, path: &str) -> Option<&'a WebSocketRoute> {
    app.websockets().iter().find(|route| {
        route
            .routes
            .iter()
            .any(|prefix| crate::router::prefix_matches(prefix, path))
    })
}

/// Answer an upgrade request: check it, let the guest accept or reject it,
/// and on accept hand the socket to a connection task.
pub async fn upgrade(
    app: SharedApp,
    route: WebSocketRoute,
    mut request: Request<Incoming>,
) -> Response<OutgoingBody> {
    let Some(key) = handshake_key(request.headers()) else {
        return plain(StatusCode::BAD_REQUEST, "not a valid WebSocket handshake\n");
    };
    if !origin_allowed(request.headers(), &route.origins) {
        tracing::info!("websocket refused: cross-origin upgrade");
        return plain(StatusCode::FORBIDDEN, "cross-origin WebSocket refused\n");
    }
    let on_upgrade = hyper::upgrade::on(&mut request);
    let (parts, _body) = request.into_parts();
    let hub = app.hub().clone();
    let connection = hub.connect(app.name(), parts.uri.path(), route.send_queue);
    let events = match route.mode {
        WebSocketMode::Hibernate => Events::hibernate(app.clone()),
        WebSocketMode::Live => match Events::live(app.clone()).await {
            Ok(events) => events,
            Err(status) => {
                hub.disconnect(&connection);
                return error_response(status);
            }
        },
    };
    let opened = events.open(&connection, request_head_to_wit(&parts)).await;
    let accept = match opened {
        Ok(guest::Opened::Accept { protocol }) => protocol,
        Ok(guest::Opened::Reject(response)) => {
            hub.disconnect(&connection);
            return response_from_guest(response);
        }
        Err(status) => {
            hub.disconnect(&connection);
            return error_response(status);
        }
    };
    let protocol = accept.filter(|chosen| offered_protocols(&parts.headers).any(|p| p == chosen));
    tracing::info!(connection = connection.id(), "websocket opened");
    tokio::spawn(connection::run(connection, route, events, on_upgrade));
    switching_protocols(&key, protocol.as_deref())
}

/// The `Sec-WebSocket-Key` of a version-13 handshake.
fn handshake_key(headers: &HeaderMap) -> Option<String> {
    let version_ok = headers
        .get(header::SEC_WEBSOCKET_VERSION)
        .is_some_and(|v| v.as_bytes() == b"13");
    let key = headers.get(header::SEC_WEBSOCKET_KEY)?.to_str().ok()?;
    version_ok.then(|| key.trim().to_owned())
}

/// Same-origin, an origin the manifest allows, or no `Origin` at all (not a
/// browser). Cross-origin is refused by default, as Tornado's `check_origin`.
fn origin_allowed(headers: &HeaderMap, allowed: &[String]) -> bool {
    let Some(origin) = headers.get(header::ORIGIN).and_then(|o| o.to_str().ok()) else {
        return true;
    };
    if allowed
        .iter()
        .any(|a| a == "*" || a.eq_ignore_ascii_case(origin))
    {
        return true;
    }
    let origin_host = origin
        .split_once("://")
        .map_or(origin, |(_, rest)| rest)
        .trim_end_matches('/');
    headers
        .get(header::HOST)
        .and_then(|host| host.to_str().ok())
        .is_some_and(|host| host.eq_ignore_ascii_case(origin_host))
}

fn offered_protocols(headers: &HeaderMap) -> impl Iterator<Item = &str> {
    headers
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .map(str::trim)
}

fn switching_protocols(key: &str, protocol: Option<&str>) -> Response<OutgoingBody> {
    let mut response = Response::new(OutgoingBody::empty());
    *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let headers = response.headers_mut();
    headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    if let Ok(accept) = HeaderValue::from_str(&derive_accept_key(key.as_bytes())) {
        headers.insert(header::SEC_WEBSOCKET_ACCEPT, accept);
    }
    if let Some(protocol) = protocol.and_then(|p| HeaderValue::from_str(p).ok()) {
        headers.insert(header::SEC_WEBSOCKET_PROTOCOL, protocol);
    }
    response
}

/// A rejection the guest wrote, as an HTTP response (its body in memory).
fn response_from_guest(response: crate::bindings::types::Response) -> Response<OutgoingBody> {
    let body = match response.body {
        crate::bindings::types::Body::Bytes(bytes) => OutgoingBody::full(bytes),
        _ => OutgoingBody::empty(),
    };
    match guest_response_head(response.status, response.headers) {
        Ok((status, headers)) => {
            let mut http = Response::new(body);
            *http.status_mut() = status;
            *http.headers_mut() = headers;
            http
        }
        Err(reason) => {
            tracing::error!("the guest rejected the upgrade with an invalid response: {reason}");
            error_response(StatusCode::INTERNAL_SERVER_ERROR)
        }
    }
}

fn plain(status: StatusCode, text: &'static str) -> Response<OutgoingBody> {
    let mut response = Response::new(OutgoingBody::full(text));
    *response.status_mut() = status;
    response
}

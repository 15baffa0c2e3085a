//! WebSocket upgrades: check the handshake and the origin, let the guest
//! accept or reject, and hand the socket to its task ([`socket`]). The host
//! owns the socket; the guest receives `on-open`, `on-message` and
//! `on-close` through our own WIT interface and acts on connections through
//! the `websocket` import. wasi:http has no Upgrade, so this interface is
//! ours (Spin's SIP 016 and Cloudflare's Hibernation API are the
//! precedents).

use super::socket;
use crate::app::{AppHandle, AppRef};
use crate::bindings::types as wit;
use crate::body::{InboundBody, OutgoingBody};
use crate::config::{WebSocketMode, WebSocketRoute};
use crate::convert::request_head_to_wit;
use crate::dispatch::{Events, Opened, error_response, guest_response};
use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;

/// Whether `request` asks to become a WebSocket.
pub(super) fn is_upgrade_request<B>(request: &Request<B>) -> bool {
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

/// Answer an upgrade request to `app`, the current version of `handle`:
/// check it, let the guest accept or reject it, and on accept hand the
/// socket to a connection task.
pub(super) async fn upgrade(
    handle: std::sync::Arc<AppHandle>,
    app: AppRef,
    route: WebSocketRoute,
    mut request: Request<InboundBody>,
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
    let opened = match open(handle, &app, &route, &parts).await {
        Ok(opened) => opened,
        Err(refused) => return refused,
    };
    let protocol = opened
        .protocol
        .filter(|chosen| offered_protocols(&parts.headers).any(|p| p == chosen));
    let connection = opened.connection.hand_over();
    tracing::info!(connection = connection.id(), "websocket opened");
    crate::stats::websocket_opened(app.name_label());
    // The socket task owns the connection from here, and forgets it itself.
    tokio::spawn(socket::run(
        connection,
        route,
        opened.events,
        on_upgrade,
        opened.admitted,
    ));
    switching_protocols(&key, protocol.as_deref())
}

/// A WebSocket the guest accepted, its place under the app's connection
/// limit held, not yet handed to a socket task.
pub(crate) struct OpenedSocket {
    /// Forgotten by the hub if dropped before it is handed over.
    pub(crate) connection: Registered,
    pub(crate) events: Events,
    /// Its place under the app's `max_connections`.
    pub(crate) admitted: tokio::sync::OwnedSemaphorePermit,
    /// The subprotocol the guest chose, if any.
    pub(crate) protocol: Option<String>,
}

/// Open a WebSocket on `route` of `app` (the current version of `handle`)
/// for a request with head `parts`: a place under the app's connection
/// limit, the connection in the hub, the guest's `on-open`. The answer to
/// send instead if any refuses. The server and the in-process harness
/// both open sockets through here.
pub(crate) async fn open(
    handle: std::sync::Arc<AppHandle>,
    app: &AppRef,
    route: &WebSocketRoute,
    parts: &http::request::Parts,
) -> Result<OpenedSocket, Response<OutgoingBody>> {
    let admitted = match app.admit_connection() {
        Ok(admitted) => admitted,
        Err(busy) => return Err(error_response(busy.logged_status())),
    };
    let hub = app.hub().clone();
    let connection = hub.connect(
        app.name(),
        parts.uri.path(),
        route.send_queue,
        usize::try_from(route.send_buffer).unwrap_or(usize::MAX),
    );
    // If the client goes away while the guest decides, nothing is left
    // behind: the guard forgets the connection and its subscriptions.
    let registered = Registered {
        hub,
        connection: connection.clone(),
        handed_over: false,
    };
    let events = match route.mode {
        WebSocketMode::Hibernate => Events::hibernate(handle),
        WebSocketMode::Live => Events::live(app.clone()),
    };
    match events.open(&connection, request_head_to_wit(parts)).await {
        Ok(Opened::Accept { protocol }) => Ok(OpenedSocket {
            connection: registered,
            events,
            admitted,
            protocol,
        }),
        // The guard forgets the connection.
        Ok(Opened::Reject(response)) => Err(rejection(app, response)),
        Err(failure) => Err(error_response(failure.status())),
    }
}

/// A connection registered in the hub, forgotten again when dropped unless
/// it was handed over (to its socket task).
pub(crate) struct Registered {
    hub: std::sync::Arc<crate::hub::Hub>,
    connection: std::sync::Arc<crate::hub::Connection>,
    handed_over: bool,
}

impl Registered {
    /// The connection, now its new owner's to forget.
    pub(crate) fn hand_over(mut self) -> std::sync::Arc<crate::hub::Connection> {
        self.handed_over = true;
        self.connection.clone()
    }
}

impl Drop for Registered {
    fn drop(&mut self) {
        if !self.handed_over {
            self.hub.disconnect(&self.connection);
        }
    }
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
fn rejection(app: &AppRef, response: wit::Response) -> Response<OutgoingBody> {
    let body = response.body;
    guest_response(
        app.name_label(),
        response.status,
        response.headers,
        || match body {
            wit::Body::Bytes(bytes) => OutgoingBody::full(bytes),
            _ => OutgoingBody::empty(),
        },
    )
}

fn plain(status: StatusCode, text: &'static str) -> Response<OutgoingBody> {
    let mut response = Response::new(OutgoingBody::full(text));
    *response.status_mut() = status;
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_static(value));
        }
        map
    }

    #[test]
    fn the_accept_key_is_rfc_6455s() {
        let response = switching_protocols("dGhlIHNhbXBsZSBub25jZQ==", None);
        assert_eq!(response.status(), StatusCode::SWITCHING_PROTOCOLS);
        assert_eq!(
            response.headers()[header::SEC_WEBSOCKET_ACCEPT],
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
        assert!(
            !response
                .headers()
                .contains_key(header::SEC_WEBSOCKET_PROTOCOL)
        );
    }

    #[test]
    fn the_handshake_needs_version_13_and_a_key() {
        let good = headers(&[
            ("sec-websocket-version", "13"),
            ("sec-websocket-key", " abc== "),
        ]);
        assert_eq!(handshake_key(&good).as_deref(), Some("abc=="));
        let old = headers(&[
            ("sec-websocket-version", "8"),
            ("sec-websocket-key", "abc=="),
        ]);
        assert_eq!(handshake_key(&old), None);
        assert_eq!(
            handshake_key(&headers(&[("sec-websocket-version", "13")])),
            None
        );
    }

    #[test]
    fn only_get_with_both_tokens_asks_to_upgrade() {
        let request = |method: Method, connection: &'static str| {
            Request::builder()
                .method(method)
                .uri("/ws")
                .header("connection", connection)
                .header("upgrade", "WebSocket")
                .body(())
                .expect("request")
        };
        assert!(is_upgrade_request(&request(
            Method::GET,
            "keep-alive, Upgrade"
        )));
        assert!(!is_upgrade_request(&request(Method::POST, "upgrade")));
        assert!(!is_upgrade_request(&request(Method::GET, "keep-alive")));
    }

    #[test]
    fn cross_origin_is_refused_unless_allowed() {
        let same = headers(&[
            ("host", "chat.example:8080"),
            ("origin", "http://chat.example:8080"),
        ]);
        assert!(origin_allowed(&same, &[]));
        let cross = headers(&[("host", "chat.example"), ("origin", "https://evil.example")]);
        assert!(!origin_allowed(&cross, &[]));
        assert!(origin_allowed(&cross, &["https://EVIL.example".to_owned()]));
        assert!(origin_allowed(&cross, &["*".to_owned()]));
        let no_browser = headers(&[("host", "chat.example")]);
        assert!(origin_allowed(&no_browser, &[]));
    }

    #[test]
    fn offered_protocols_are_split_and_trimmed() {
        let offered = headers(&[
            ("sec-websocket-protocol", "chat.v1, chat.v2"),
            ("sec-websocket-protocol", "json"),
        ]);
        let protocols: Vec<&str> = offered_protocols(&offered).collect();
        assert_eq!(protocols, vec!["chat.v1", "chat.v2", "json"]);
    }
}

//! Serve one request: find its app by host and path ([`RouteTable`]),
//! strip the app's mount prefix if it asks, and send it to the app's
//! WebSocket route if it asks to upgrade on one, else to its handler.

use super::upgrade;
use crate::app::{AppHandle, AppRef};
use crate::body::{InboundBody, OutgoingBody};
use crate::config::WebSocketRoute;
use crate::dispatch::{dispatch, error_response};
use crate::routes::{RouteTable, host_name, prefix_matches, strip_prefix};
use http::{Request, Response, StatusCode, Uri, header};
use http_body::Body;
use std::sync::atomic::{AtomicU64, Ordering};
use tracing::Instrument;

/// The apps being served, by their hosts and route prefixes.
pub(crate) type AppRouter = RouteTable<std::sync::Arc<AppHandle>>;

static NEXT_REQUEST_ID: AtomicU64 = AtomicU64::new(1);

/// Serve one request: to its app's WebSocket route if it asks to upgrade
/// on one, else to its app's handler; 404 if no app serves it.
pub(crate) async fn route(
    router: &AppRouter,
    mut request: Request<InboundBody>,
) -> Response<OutgoingBody> {
    let id = NEXT_REQUEST_ID.fetch_add(1, Ordering::Relaxed);
    let Some(found) = router.find(requested_host(&request), request.uri().path()) else {
        tracing::info!(
            id,
            path = request.uri().path(),
            status = 404,
            "no app serves this host and path"
        );
        return error_response(StatusCode::NOT_FOUND);
    };
    let handle = found.app.clone();
    // This request runs on the version current now, whatever replaces it.
    let app = &handle.current();
    if app.strip_prefix() {
        *request.uri_mut() = without_prefix(request.uri(), found.prefix);
    }
    let span = tracing::info_span!("request", id, app = app.name());
    if app.static_files().serves(request.uri().path()) {
        let (head, _) = request.into_parts();
        let response = app
            .static_files()
            .serve(&head)
            .instrument(span.clone())
            .await;
        span.in_scope(|| {
            tracing::debug!(
                method = %head.method,
                path = head.uri.path(),
                status = response.status().as_u16(),
                "static file"
            );
        });
        return response.map(OutgoingBody::boxed);
    }
    if upgrade::is_upgrade_request(&request)
        && let Some(route) = websocket_route(app, request.uri().path())
    {
        let route = route.clone();
        return upgrade::upgrade(handle, app.clone(), route, request)
            .instrument(span)
            .await;
    }
    let continuing = !request.body().is_end_stream()
        && request
            .headers()
            .get(header::EXPECT)
            .is_some_and(|expect| expect.as_bytes().eq_ignore_ascii_case(b"100-continue"));
    if !continuing {
        return dispatch(app.clone(), request).instrument(span).await;
    }
    let (head, body) = request.into_parts();
    let (body, before_answer) = crate::body::expecting_continue(body);
    let response = dispatch(app.clone(), Request::from_parts(head, body))
        .instrument(span)
        .await;
    // An answer that streams may still read the body: the 100 first.
    if !response.body().is_complete() {
        before_answer.answered().await;
    }
    response
}

/// The header that tells an app its client's address (Spin's
/// `spin-client-addr`); what a client sends under that name is replaced.
const CLIENT_ADDRESS: header::HeaderName = header::HeaderName::from_static("squall-client-addr");

/// Tell the app who the client is (the peer of the connection).
pub(super) fn set_client_address<B>(request: &mut Request<B>, peer: std::net::SocketAddr) {
    let address = peer.ip().to_canonical().to_string();
    if let Ok(value) = header::HeaderValue::from_str(&address) {
        request.headers_mut().insert(CLIENT_ADDRESS, value);
    }
}

/// A 308 to the same host, path and query over HTTPS on `port`; 400 if
/// the request names no host.
pub(super) fn redirect_to_https<B>(request: &Request<B>, port: u16) -> Response<OutgoingBody> {
    let Some(host) = requested_host(request).and_then(host_name) else {
        return error_response(StatusCode::BAD_REQUEST);
    };
    let authority = if port == 443 {
        host
    } else {
        format!("{host}:{port}")
    };
    let path = request
        .uri()
        .path_and_query()
        .map_or("/", |path| path.as_str());
    match http::HeaderValue::from_str(&format!("https://{authority}{path}")) {
        Ok(location) => {
            let mut response = Response::new(OutgoingBody::full(String::new()));
            *response.status_mut() = StatusCode::PERMANENT_REDIRECT;
            response.headers_mut().insert(header::LOCATION, location);
            response
        }
        Err(_) => error_response(StatusCode::BAD_REQUEST),
    }
}

/// The host the client asked for: HTTP/2's `:authority`, else `Host`.
fn requested_host<B>(request: &Request<B>) -> Option<&str> {
    request.uri().authority().map(|a| a.as_str()).or_else(|| {
        request
            .headers()
            .get(header::HOST)
            .and_then(|host| host.to_str().ok())
    })
}

/// `uri` with `prefix` taken off its path (the query is kept).
fn without_prefix(uri: &Uri, prefix: &str) -> Uri {
    let path = strip_prefix(prefix, uri.path());
    let path_and_query = match uri.query() {
        Some(query) => format!("{path}?{query}"),
        None => path.into_owned(),
    };
    let mut parts = uri.clone().into_parts();
    parts.path_and_query = path_and_query.parse().ok();
    Uri::from_parts(parts).unwrap_or_else(|_| uri.clone())
}

/// The WebSocket route of `app` that serves `path` (as the app sees it).
pub(crate) fn websocket_route<'a>(app: &'a AppRef, path: &str) -> Option<&'a WebSocketRoute> {
    app.websockets().iter().find(|route| {
        route
            .routes
            .iter()
            .any(|prefix| prefix_matches(prefix, path))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_host_comes_from_the_authority_or_the_host_header() {
        let h2 = Request::get("http://a.example:8080/x")
            .header("host", "b.example")
            .body(())
            .expect("request");
        assert_eq!(requested_host(&h2), Some("a.example:8080"));
        let h1 = Request::get("/x")
            .header("host", "b.example")
            .body(())
            .expect("request");
        assert_eq!(requested_host(&h1), Some("b.example"));
        let h10 = Request::get("/x").body(()).expect("request");
        assert_eq!(requested_host(&h10), None);
    }

    #[test]
    fn a_redirect_keeps_host_path_and_query_and_takes_the_https_port() {
        let request = Request::get("/a/b?c=d")
            .header("host", "example.com:8080")
            .body(())
            .expect("request");
        let response = redirect_to_https(&request, 8443);
        assert_eq!(response.status(), StatusCode::PERMANENT_REDIRECT);
        assert_eq!(
            response.headers()[header::LOCATION],
            "https://example.com:8443/a/b?c=d"
        );
        let request = Request::get("/")
            .header("host", "[::1]:80")
            .body(())
            .expect("request");
        assert_eq!(
            redirect_to_https(&request, 443).headers()[header::LOCATION],
            "https://[::1]/"
        );
        let nameless = Request::get("/").body(()).expect("request");
        assert_eq!(
            redirect_to_https(&nameless, 443).status(),
            StatusCode::BAD_REQUEST
        );
    }

    #[test]
    fn stripping_keeps_the_query() {
        let uri: Uri = "/api/users?page=2".parse().expect("uri");
        assert_eq!(without_prefix(&uri, "/api").to_string(), "/users?page=2");
        let uri: Uri = "/api".parse().expect("uri");
        assert_eq!(without_prefix(&uri, "/api").to_string(), "/");
    }
}

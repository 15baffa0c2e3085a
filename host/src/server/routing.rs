//! Picks the app for a request by path prefix (the longest match wins), and
//! whether it becomes a WebSocket or an ordinary request.

use super::upgrade;
use crate::app::SharedApp;
use crate::body::{InboundBody, OutgoingBody};
use crate::config::WebSocketRoute;
use crate::dispatch::{dispatch, error_response};
use http::{Request, Response, StatusCode};
use std::sync::atomic::{AtomicU64, Ordering};
use tracing::Instrument;

/// The apps of a manifest, by route prefix.
pub(crate) struct AppRouter<A = SharedApp> {
    /// Longest prefix first, so the first match is the most specific.
    routes: Vec<(String, A)>,
}

impl<A: Clone> AppRouter<A> {
    /// A router over `(prefixes, app)` pairs.
    pub(crate) fn new(apps: impl IntoIterator<Item = (Vec<String>, A)>) -> Self {
        let mut routes: Vec<(String, A)> = apps
            .into_iter()
            .flat_map(|(prefixes, app)| prefixes.into_iter().map(move |p| (p, app.clone())))
            .collect();
        routes.sort_by_key(|(prefix, _)| std::cmp::Reverse(prefix.len()));
        AppRouter { routes }
    }

    /// The app serving `path`, if any.
    pub(crate) fn find(&self, path: &str) -> Option<&A> {
        self.routes
            .iter()
            .find(|(prefix, _)| prefix_matches(prefix, path))
            .map(|(_, app)| app)
    }
}

static NEXT_REQUEST_ID: AtomicU64 = AtomicU64::new(1);

/// Serve one request: to its app's WebSocket route if it asks to upgrade
/// on one, else to its app's handler; 404 if no app serves its path.
pub(crate) async fn route(
    router: &AppRouter,
    request: Request<InboundBody>,
) -> Response<OutgoingBody> {
    let id = NEXT_REQUEST_ID.fetch_add(1, Ordering::Relaxed);
    match router.find(request.uri().path()) {
        Some(app) => {
            let span = tracing::info_span!("request", id, app = app.name());
            if upgrade::is_upgrade_request(&request)
                && let Some(route) = websocket_route(app, request.uri().path())
            {
                let route = route.clone();
                return upgrade::upgrade(app.clone(), route, request)
                    .instrument(span)
                    .await;
            }
            dispatch(app.clone(), request).instrument(span).await
        }
        None => {
            tracing::info!(
                id,
                path = request.uri().path(),
                status = 404,
                "no app serves this path"
            );
            error_response(StatusCode::NOT_FOUND)
        }
    }
}

/// The WebSocket route of `app` that serves `path`, if any.
pub(crate) fn websocket_route<'a>(app: &'a SharedApp, path: &str) -> Option<&'a WebSocketRoute> {
    app.websockets().iter().find(|route| {
        route
            .routes
            .iter()
            .any(|prefix| prefix_matches(prefix, path))
    })
}

/// `/chat` matches `/chat` and `/chat/...` but not `/chatter`.
fn prefix_matches(prefix: &str, path: &str) -> bool {
    match path.strip_prefix(prefix) {
        Some(rest) => rest.is_empty() || prefix.ends_with('/') || rest.starts_with('/'),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::{AppRouter, prefix_matches};

    #[test]
    fn the_longest_prefix_wins() {
        let router = AppRouter::new([
            (vec!["/".to_owned()], "root"),
            (vec!["/api".to_owned(), "/v2/api".to_owned()], "api"),
            (vec!["/api/admin".to_owned()], "admin"),
        ]);
        assert_eq!(router.find("/"), Some(&"root"));
        assert_eq!(router.find("/apis"), Some(&"root"));
        assert_eq!(router.find("/api/users"), Some(&"api"));
        assert_eq!(router.find("/v2/api"), Some(&"api"));
        assert_eq!(router.find("/api/admin/x"), Some(&"admin"));
    }

    #[test]
    fn no_route_no_app() {
        let router = AppRouter::new([(vec!["/only".to_owned()], "only")]);
        assert_eq!(router.find("/"), None);
        assert_eq!(router.find("/onlyx"), None);
    }

    #[test]
    fn prefixes_match_whole_segments() {
        assert!(prefix_matches("/", "/"));
        assert!(prefix_matches("/", "/anything/at/all"));
        assert!(prefix_matches("/chat", "/chat"));
        assert!(prefix_matches("/chat", "/chat/room"));
        assert!(!prefix_matches("/chat", "/chatter"));
        assert!(prefix_matches("/chat/", "/chat/room"));
        assert!(!prefix_matches("/chat/", "/chat"));
    }

    #[test]
    fn prefixes_are_case_sensitive_and_literal() {
        assert!(!prefix_matches("/Chat", "/chat"));
        assert!(!prefix_matches("/chat", "/"));
        assert!(!prefix_matches("/a/b", "/a"));
    }
}

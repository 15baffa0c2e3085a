//! Routing by path pattern and method.

use crate::response::{IntoResponse, Response};
use crate::websocket::WebSocket;
use crate::{Error, Request};
use ::http::header::{self, HeaderValue};
use ::http::{Method, StatusCode};
use std::future::Future;
use std::pin::Pin;

/// A boxed future as the router stores it (guests are single-threaded).
type BoxFuture = Pin<Box<dyn Future<Output = Response>>>;

/// An async function from a [`Request`] to anything that is [`IntoResponse`].
///
/// Implemented for every `Fn(Request) -> impl Future<Output = impl IntoResponse>`,
/// so plain `async fn`s and closures returning `async` blocks are handlers.
pub trait Handler: 'static {
    /// Run the handler.
    fn call(&self, request: Request) -> BoxFuture;
}

impl<F, Fut, R> Handler for F
where
    F: Fn(Request) -> Fut + 'static,
    Fut: Future<Output = R> + 'static,
    R: IntoResponse,
{
    fn call(&self, request: Request) -> BoxFuture {
        let future = self(request);
        Box::pin(async move { future.await.into_response() })
    }
}

/// Routes requests to handlers by path pattern and method.
///
/// Patterns are literal segments, `{name}` for one segment and `{*name}` as
/// the last segment for the rest of the path. When several patterns match,
/// the one with the most literal segments wins. A path that matches no
/// pattern answers `404`, a known path with another method `405`.
///
/// ```ignore
/// Router::new()
///     .get("/", index)
///     .get("/hello/{name}", hello)
///     .post("/echo", echo)
/// ```
#[derive(Default)]
pub struct Router {
    routes: Vec<Route>,
    fallback: Option<Box<dyn Handler>>,
    websockets: Vec<(Vec<Segment>, WebSocket)>,
}

struct Route {
    segments: Vec<Segment>,
    handlers: Vec<(Method, Box<dyn Handler>)>,
}

#[derive(Debug, PartialEq, Eq)]
enum Segment {
    Literal(String),
    Param(String),
    Rest(String),
}

impl Router {
    /// An empty router: every request answers `404`.
    pub fn new() -> Self {
        Router::default()
    }

    /// Route `method` requests for `pattern` to `handler`.
    ///
    /// # Panics
    /// If `pattern` does not start with `/`, has an unclosed `{`, or puts
    /// `{*rest}` anywhere but last: a bug in the app, found on its first request.
    pub fn route(mut self, method: Method, pattern: &str, handler: impl Handler) -> Self {
        let segments = parse_pattern(pattern).unwrap_or_else(|err| panic!("{err}"));
        let handler: Box<dyn Handler> = Box::new(handler);
        match self.routes.iter_mut().find(|r| r.segments == segments) {
            Some(route) => route.handlers.push((method, handler)),
            None => self.routes.push(Route {
                segments,
                handlers: vec![(method, handler)],
            }),
        }
        self
    }

    /// Route `GET` (and `HEAD`) requests.
    pub fn get(self, pattern: &str, handler: impl Handler) -> Self {
        self.route(Method::GET, pattern, handler)
    }

    /// Route `POST` requests.
    pub fn post(self, pattern: &str, handler: impl Handler) -> Self {
        self.route(Method::POST, pattern, handler)
    }

    /// Route `PUT` requests.
    pub fn put(self, pattern: &str, handler: impl Handler) -> Self {
        self.route(Method::PUT, pattern, handler)
    }

    /// Route `PATCH` requests.
    pub fn patch(self, pattern: &str, handler: impl Handler) -> Self {
        self.route(Method::PATCH, pattern, handler)
    }

    /// Route `DELETE` requests.
    pub fn delete(self, pattern: &str, handler: impl Handler) -> Self {
        self.route(Method::DELETE, pattern, handler)
    }

    /// Handle WebSocket connections opened on `pattern` (the manifest must
    /// also list the path under the app's `websocket` routes).
    ///
    /// # Panics
    /// On a malformed pattern, like [`Router::route`].
    pub fn websocket(mut self, pattern: &str, handler: WebSocket) -> Self {
        let segments = parse_pattern(pattern).unwrap_or_else(|err| panic!("{err}"));
        self.websockets.push((segments, handler));
        self
    }

    /// The WebSocket handler for `path` and the path parameters.
    #[cfg_attr(feature = "wasi-http", allow(dead_code))]
    pub(crate) fn websocket_for(&self, path: &str) -> Option<(&WebSocket, Vec<(String, String)>)> {
        self.websockets
            .iter()
            .enumerate()
            .filter_map(|(index, (segments, handler))| {
                let params = match_path(segments, path)?;
                Some((
                    literal_count(segments),
                    std::cmp::Reverse(index),
                    handler,
                    params,
                ))
            })
            .max_by_key(|(literals, index, _, _)| (*literals, *index))
            .map(|(_, _, handler, params)| (handler, params))
    }

    /// Answer requests that match no pattern with `handler` instead of `404`.
    pub fn fallback(mut self, handler: impl Handler) -> Self {
        self.fallback = Some(Box::new(handler));
        self
    }

    /// Dispatch one request to its handler.
    pub async fn handle(&self, mut request: Request) -> Response {
        let best = self
            .routes
            .iter()
            .enumerate()
            .filter_map(|(index, route)| {
                let params = match_path(&route.segments, request.path())?;
                Some((
                    literal_count(&route.segments),
                    std::cmp::Reverse(index),
                    route,
                    params,
                ))
            })
            // Most literal segments wins; on a tie, the earliest route.
            .max_by_key(|(literals, index, _, _)| (*literals, *index))
            .map(|(_, _, route, params)| (route, params));
        let Some((route, params)) = best else {
            return match &self.fallback {
                Some(fallback) => fallback.call(request).await,
                None => Error::not_found().into_response(),
            };
        };
        let method = request.method().clone();
        let handler = route.find(&method).or_else(|| {
            (method == Method::HEAD)
                .then(|| route.find(&Method::GET))
                .flatten()
        });
        match handler {
            Some(handler) => {
                request.set_params(params);
                handler.call(request).await
            }
            None => method_not_allowed(route),
        }
    }
}

fn literal_count(segments: &[Segment]) -> usize {
    segments
        .iter()
        .filter(|s| matches!(s, Segment::Literal(_)))
        .count()
}

impl Route {
    fn find(&self, method: &Method) -> Option<&dyn Handler> {
        self.handlers
            .iter()
            .find(|(m, _)| m == method)
            .map(|(_, handler)| handler.as_ref())
    }
}

fn method_not_allowed(route: &Route) -> Response {
    let allow: Vec<&str> = route.handlers.iter().map(|(m, _)| m.as_str()).collect();
    let mut response = Error::from(StatusCode::METHOD_NOT_ALLOWED).into_response();
    if let Ok(value) = HeaderValue::from_str(&allow.join(", ")) {
        response.headers_mut().insert(header::ALLOW, value);
    }
    response
}

fn parse_pattern(pattern: &str) -> Result<Vec<Segment>, String> {
    let Some(rest) = pattern.strip_prefix('/') else {
        return Err(format!("route pattern {pattern:?} must start with '/'"));
    };
    let parts: Vec<&str> = rest.split('/').collect();
    let last = parts.len() - 1;
    parts
        .iter()
        .enumerate()
        .map(|(i, part)| match part.strip_prefix('{') {
            None if part.contains(['{', '}']) => Err(format!(
                "route pattern {pattern:?}: braces must enclose a whole segment"
            )),
            None => Ok(Segment::Literal((*part).to_owned())),
            Some(inner) => {
                let name = inner
                    .strip_suffix('}')
                    .ok_or_else(|| format!("route pattern {pattern:?}: unclosed '{{'"))?;
                match name.strip_prefix('*') {
                    Some(name) if i == last => Ok(Segment::Rest(name.to_owned())),
                    Some(_) => Err(format!(
                        "route pattern {pattern:?}: {{*{name}}} must be the last segment"
                    )),
                    None => Ok(Segment::Param(name.to_owned())),
                }
            }
        })
        .collect()
}

/// The parameters if `path` matches `segments`.
fn match_path(segments: &[Segment], path: &str) -> Option<Vec<(String, String)>> {
    let mut parts = path.strip_prefix('/')?.split('/');
    let mut params = Vec::new();
    for segment in segments {
        match segment {
            Segment::Literal(literal) => {
                if decode(parts.next()?) != *literal {
                    return None;
                }
            }
            Segment::Param(name) => {
                let part = parts.next()?;
                if part.is_empty() {
                    return None;
                }
                params.push((name.clone(), decode(part)));
            }
            Segment::Rest(name) => {
                let rest: Vec<&str> = parts.by_ref().collect();
                params.push((name.clone(), decode(&rest.join("/"))));
            }
        }
    }
    parts.next().is_none().then_some(params)
}

fn decode(part: &str) -> String {
    percent_encoding::percent_decode_str(part)
        .decode_utf8_lossy()
        .into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pattern: &str, path: &str) -> Option<Vec<(String, String)>> {
        match_path(&parse_pattern(pattern).expect("valid pattern"), path)
    }

    #[test]
    fn literal_and_param_segments() {
        assert_eq!(params("/", "/"), Some(vec![]));
        assert_eq!(params("/", "/x"), None);
        assert_eq!(
            params("/hello/{name}", "/hello/w%C3%B6rld"),
            Some(vec![("name".into(), "wörld".into())])
        );
        assert_eq!(params("/hello/{name}", "/hello/"), None);
        assert_eq!(params("/hello/{name}", "/hello/a/b"), None);
    }

    #[test]
    fn rest_segment_takes_the_remainder() {
        assert_eq!(
            params("/files/{*path}", "/files/a/b.txt"),
            Some(vec![("path".into(), "a/b.txt".into())])
        );
        assert_eq!(
            params("/files/{*path}", "/files/"),
            Some(vec![("path".into(), "".into())])
        );
    }

    #[test]
    fn bad_patterns_are_rejected() {
        assert!(parse_pattern("no-slash").is_err());
        assert!(parse_pattern("/{open").is_err());
        assert!(parse_pattern("/a{b}").is_err());
        assert!(parse_pattern("/{*rest}/more").is_err());
    }
}

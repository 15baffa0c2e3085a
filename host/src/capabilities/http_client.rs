//! `squall:app/http-client`: outbound HTTP for guests, Tornado's
//! `AsyncHTTPClient`. One pooled hyper client (HTTP/1.1 and HTTP/2, HTTPS
//! through rustls with the web's roots) serves every app; each request is
//! checked against its app's `outbound` allow-list, redirects included.

use super::{Grants, GuestState, grants_of};
use crate::bindings::http_client::{Host, HostWithStore, IncomingResponse, OutgoingRequest};
use crate::bindings::types::{self as wit, FetchError};
use crate::body::{ChunkConsumer, IncomingBodyProducer, OutgoingBody, inbound};
use crate::convert::{check_guest_fields, fields_to_wit, is_connection_header, method_from_wit};
use crate::outbound::SendFailure;
use bytes::Bytes;
use futures::channel::oneshot;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Request, Response, StatusCode, Uri};
use hyper::body::{Body as _, Incoming};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use wasmtime::StoreContextMut;
use wasmtime::component::{
    Accessor, FutureConsumer, FutureReader, GuardedFutureReader, GuardedStreamReader, HasSelf,
    Source, StreamReader,
};

impl Host for GuestState {}

impl HostWithStore<GuestState> for HasSelf<GuestState> {
    async fn fetch(
        accessor: &Accessor<GuestState, Self>,
        request: OutgoingRequest,
    ) -> wasmtime::Result<Result<IncomingResponse, FetchError>> {
        let grants = grants_of(accessor);
        let fetched = fetch(accessor, request, grants.clone()).await;
        if let Ok(result) = &fetched {
            crate::stats::fetch(grants.app(), fetch_result(result));
        }
        fetched
    }
}

/// How a fetch ended, for the counts.
fn fetch_result(result: &Result<IncomingResponse, FetchError>) -> &'static str {
    match result {
        Ok(_) => "ok",
        Err(FetchError::Denied(_)) => "denied",
        Err(FetchError::Limit(_)) => "limit",
        Err(FetchError::Timeout) => "timeout",
        Err(FetchError::TooLarge) => "too_large",
        Err(_) => "failed",
    }
}

/// Send `request` for the app `grants` belongs to: the response head, and
/// its body as a stream the guest reads.
async fn fetch(
    accessor: &Accessor<GuestState, HasSelf<GuestState>>,
    request: OutgoingRequest,
    grants: Arc<Grants>,
) -> wasmtime::Result<Result<IncomingResponse, FetchError>> {
    let max_redirects = request.max_redirects;
    let head_timeout = request.timeout_ms.map_or(grants.default_timeout, |ms| {
        Duration::from_millis(u64::from(ms))
    });
    let outgoing = match Outgoing::new(accessor, request, &grants) {
        Ok(outgoing) => outgoing,
        Err(err) => return Ok(Err(err)),
    };
    let fetches = accessor.with(|mut access| access.get().host().fetches().clone());
    // In flight until the guest has the whole body, or drops it.
    let admitted = match grants.admit_fetch(&fetches) {
        Ok(admitted) => admitted,
        Err(why) => return Ok(Err(FetchError::Limit(why))),
    };
    let outgoing = outgoing.with_body(accessor)?;
    let response = match tokio::time::timeout(
        head_timeout,
        send_following_redirects(&grants, outgoing, max_redirects),
    )
    .await
    {
        Ok(Ok(response)) => response,
        Ok(Err(err)) => return Ok(Err(err)),
        Err(_) => return Ok(Err(FetchError::Timeout)),
    };
    if response.body().size_hint().lower() > grants.fetch_max_body {
        return Ok(Err(FetchError::TooLarge));
    }
    let (parts, body) = response.into_parts();
    let (producer, outcome) = IncomingBodyProducer::fetched(inbound(body), grants.fetch_max_body);
    accessor.with(|mut store| {
        let body = StreamReader::new(&mut store, producer)?;
        let body_result = FutureReader::new(&mut store, async move {
            let _admitted = admitted;
            let outcome = outcome.await.unwrap_or_else(|_| {
                Err(FetchError::Protocol(
                    "the body ended without a result".into(),
                ))
            });
            Ok::<_, wasmtime::Error>(outcome)
        })?;
        Ok(Ok(IncomingResponse {
            status: parts.status.as_u16(),
            headers: fields_to_wit(&parts.headers),
            body,
            body_result,
        }))
    })
}

/// The guest's store, from inside the fetch.
type Access<'a> = &'a Accessor<GuestState, HasSelf<GuestState>>;

/// A request on its way out, before its body is attached. The guest's
/// stream and future are closed if the request goes no further (refused,
/// malformed, over a limit): left open, the guest's end of them would wait
/// for the host until its request's deadline.
struct Outgoing<'a> {
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: GuestBody<'a>,
    /// For a streamed body: the guest's word that it wrote all of it.
    body_done: Option<GuardedFutureReader<bool, Access<'a>>>,
}

/// A request body as the guest gave it.
enum GuestBody<'a> {
    Empty,
    Bytes(Vec<u8>),
    Stream(GuardedStreamReader<u8, Access<'a>>),
}

/// Passes on the guest's word that it wrote its whole request body. If the
/// guest's future is dropped unwritten (its store is gone: a trap), the
/// sender is dropped, which reads as "not finished" too.
struct BodyDone(Option<oneshot::Sender<bool>>);

impl<D: 'static> FutureConsumer<D> for BodyDone {
    type Item = bool;

    fn poll_consume(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        mut store: StoreContextMut<D>,
        mut source: Source<'_, bool>,
        _finish: bool,
    ) -> Poll<wasmtime::Result<()>> {
        let mut done = None;
        source.read(&mut store, &mut done)?;
        if let Some(word) = self.0.take() {
            let _ = word.send(done.unwrap_or(false));
        }
        Poll::Ready(Ok(()))
    }
}

/// A request ready to send; `replay` keeps an in-memory body for redirects.
struct Ready {
    request: Request<OutgoingBody>,
    replay: Option<Bytes>,
}

impl<'a> Outgoing<'a> {
    fn new(
        accessor: Access<'a>,
        request: OutgoingRequest,
        grants: &Grants,
    ) -> Result<Outgoing<'a>, FetchError> {
        // Guarded first: every refusal below closes them.
        let body = match request.body {
            wit::Body::Empty => GuestBody::Empty,
            wit::Body::Bytes(bytes) => GuestBody::Bytes(bytes),
            wit::Body::Stream(reader) => {
                GuestBody::Stream(GuardedStreamReader::new(accessor, reader))
            }
        };
        let body_done = request
            .body_done
            .map(|done| GuardedFutureReader::new(accessor, done));
        let uri: Uri = request.url.parse().map_err(|err| {
            FetchError::InvalidRequest(format!("bad URL {:?}: {err}", request.url))
        })?;
        if !matches!(uri.scheme_str(), Some("http" | "https")) || uri.host().is_none() {
            return Err(FetchError::InvalidRequest(format!(
                "{:?} is not an absolute http:// or https:// URL",
                request.url
            )));
        }
        check_allowed(grants, &uri)?;
        let method = method_from_wit(request.method)
            .ok_or_else(|| FetchError::InvalidRequest("bad method".into()))?;
        check_guest_fields(&request.headers).map_err(FetchError::InvalidRequest)?;
        let mut headers = HeaderMap::with_capacity(request.headers.len());
        for (name, value) in request.headers {
            let name = HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| FetchError::InvalidRequest(format!("bad header name {name:?}")))?;
            let value = HeaderValue::from_bytes(&value)
                .map_err(|_| FetchError::InvalidRequest(format!("bad value for header {name}")))?;
            // The connection's own headers, and Host (the URL decides it).
            if !is_connection_header(&name) && name != header::HOST {
                headers.append(name, value);
            }
        }
        Ok(Outgoing {
            method,
            uri,
            headers,
            body,
            body_done,
        })
    }

    /// Attach the body: bytes as they are, a guest stream piped through.
    fn with_body(self, accessor: Access<'a>) -> wasmtime::Result<Ready> {
        let (body, replay) = match self.body {
            GuestBody::Empty => (OutgoingBody::empty(), Some(Bytes::new())),
            GuestBody::Bytes(bytes) => {
                let bytes = Bytes::from(bytes);
                (OutgoingBody::full(bytes.clone()), Some(bytes))
            }
            GuestBody::Stream(reader) => {
                let (consumer, chunks, _ended) = ChunkConsumer::new();
                let reader = reader.into_stream();
                accessor.with(|store| reader.pipe(store, consumer))?;
                let finished = match self.body_done {
                    Some(done) => {
                        let (word, finished) = oneshot::channel();
                        let done = done.into_future();
                        accessor.with(|store| done.pipe(store, BodyDone(Some(word))))?;
                        Some(finished)
                    }
                    None => None,
                };
                (
                    OutgoingBody::Streamed {
                        chunks,
                        guest: None,
                        finished,
                    },
                    None,
                )
            }
        };
        let mut request = Request::new(body);
        *request.method_mut() = self.method;
        *request.uri_mut() = self.uri;
        *request.headers_mut() = self.headers;
        Ok(Ready { request, replay })
    }
}

async fn send_following_redirects(
    grants: &Grants,
    mut ready: Ready,
    mut redirects_left: u8,
) -> Result<Response<Incoming>, FetchError> {
    loop {
        let method = ready.request.method().clone();
        let uri = ready.request.uri().clone();
        let headers = ready.request.headers().clone();
        let response = grants
            .client
            .request(ready.request)
            .await
            .map_err(|err| fetch_error(SendFailure::of(&err)))?;
        let Some(location) = redirect_target(response.status(), response.headers(), &uri) else {
            return Ok(response);
        };
        // A streamed body cannot be sent twice: hand back the 3xx.
        let Some(replay) = ready.replay.take() else {
            return Ok(response);
        };
        if redirects_left == 0 {
            return Ok(response);
        }
        redirects_left -= 1;
        check_allowed(grants, &location)?;
        let (method, body) = if redirect_keeps_method(response.status(), &method) {
            (method, replay)
        } else {
            (Method::GET, Bytes::new())
        };
        let mut headers = headers;
        if !same_origin(&uri, &location) {
            // Credentials were meant for the first origin only.
            for credential in [
                header::AUTHORIZATION,
                header::COOKIE,
                header::PROXY_AUTHORIZATION,
            ] {
                headers.remove(credential);
            }
        }
        let mut request = Request::new(OutgoingBody::full(body.clone()));
        *request.method_mut() = method;
        *request.uri_mut() = location;
        *request.headers_mut() = headers;
        if body.is_empty() {
            request.headers_mut().remove(header::CONTENT_TYPE);
        }
        ready = Ready {
            request,
            replay: Some(body),
        };
    }
}

/// Same scheme, host and port (the port a scheme implies counts).
fn same_origin(a: &Uri, b: &Uri) -> bool {
    let port = |uri: &Uri| {
        uri.port_u16().or(match uri.scheme_str() {
            Some("https") => Some(443),
            Some("http") => Some(80),
            _ => None,
        })
    };
    a.scheme() == b.scheme()
        && a.host().map(str::to_ascii_lowercase) == b.host().map(str::to_ascii_lowercase)
        && port(a) == port(b)
}

/// 303, and 301/302 after a POST, continue as a GET without a body; 307
/// and 308 keep the method and body.
fn redirect_keeps_method(status: StatusCode, method: &Method) -> bool {
    matches!(status.as_u16(), 307 | 308)
        || (*method != Method::POST && status != StatusCode::SEE_OTHER)
}

/// The absolute URI a 3xx response points to, if it is a redirect.
fn redirect_target(status: StatusCode, headers: &HeaderMap, base: &Uri) -> Option<Uri> {
    if !matches!(status.as_u16(), 301 | 302 | 303 | 307 | 308) {
        return None;
    }
    let location = headers.get(header::LOCATION)?.to_str().ok()?;
    // An absolute URL; a relative reference (`/x`, `x?y`) does not parse
    // as one on its own.
    if let Ok(target) = location.parse::<Uri>()
        && target.scheme().is_some()
    {
        return Some(target);
    }
    // A relative reference: keep the base's scheme and authority.
    let path = if location.starts_with('/') {
        location.to_owned()
    } else {
        let base_path = base.path();
        let directory = &base_path[..base_path.rfind('/').map_or(0, |i| i + 1)];
        format!("{directory}{location}")
    };
    Uri::builder()
        .scheme(base.scheme()?.clone())
        .authority(base.authority()?.clone())
        .path_and_query(path)
        .build()
        .ok()
}

fn check_allowed(grants: &Grants, uri: &Uri) -> Result<(), FetchError> {
    if grants.outbound.allows(uri) {
        Ok(())
    } else {
        let origin = format!(
            "{}://{}",
            uri.scheme_str().unwrap_or("?"),
            uri.authority().map_or("?", |a| a.as_str())
        );
        tracing::info!("fetch denied: {origin} is not in the app's outbound list");
        Err(FetchError::Denied(format!(
            "{origin} is not in this app's outbound list"
        )))
    }
}

/// A failed pooled request, as the guest sees it.
fn fetch_error(failure: SendFailure) -> FetchError {
    match failure {
        SendFailure::Denied(why) => FetchError::Denied(why),
        SendFailure::Tls(why) => FetchError::Tls(why),
        SendFailure::Timeout => FetchError::Timeout,
        SendFailure::Connect(why) => FetchError::Connect(why),
        SendFailure::Protocol(why) => FetchError::Protocol(why),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(status: u16, location: &str, base: &str) -> Option<String> {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::LOCATION,
            HeaderValue::from_str(location).expect("value"),
        );
        redirect_target(
            StatusCode::from_u16(status).expect("status"),
            &headers,
            &base.parse().expect("base"),
        )
        .map(|uri| uri.to_string())
    }

    #[test]
    fn absolute_and_relative_locations_resolve_against_the_base() {
        let base = "http://a.example:8080/dir/page?q=1";
        assert_eq!(
            target(302, "https://b.example/x", base).as_deref(),
            Some("https://b.example/x")
        );
        assert_eq!(
            target(301, "/root", base).as_deref(),
            Some("http://a.example:8080/root")
        );
        assert_eq!(
            target(307, "sibling?x=2", base).as_deref(),
            Some("http://a.example:8080/dir/sibling?x=2")
        );
    }

    #[test]
    fn only_redirect_statuses_with_a_location_redirect() {
        assert_eq!(target(200, "/x", "http://a.example/"), None);
        assert_eq!(target(304, "/x", "http://a.example/"), None);
        let no_location = redirect_target(
            StatusCode::FOUND,
            &HeaderMap::new(),
            &"http://a.example/".parse().expect("base"),
        );
        assert!(no_location.is_none());
    }

    #[test]
    fn redirects_keep_or_drop_the_method_as_browsers_do() {
        let see_other = StatusCode::SEE_OTHER;
        assert!(!redirect_keeps_method(see_other, &Method::PUT));
        assert!(!redirect_keeps_method(StatusCode::FOUND, &Method::POST));
        assert!(!redirect_keeps_method(
            StatusCode::MOVED_PERMANENTLY,
            &Method::POST
        ));
        assert!(redirect_keeps_method(StatusCode::FOUND, &Method::PUT));
        assert!(redirect_keeps_method(
            StatusCode::TEMPORARY_REDIRECT,
            &Method::POST
        ));
        assert!(redirect_keeps_method(
            StatusCode::PERMANENT_REDIRECT,
            &Method::POST
        ));
    }

    #[test]
    fn origins_compare_scheme_host_and_port() {
        let uri = |text: &str| text.parse::<Uri>().expect("uri");
        assert!(same_origin(
            &uri("http://a.test/x"),
            &uri("http://A.test:80/y")
        ));
        assert!(!same_origin(
            &uri("http://a.test/"),
            &uri("https://a.test/")
        ));
        assert!(!same_origin(&uri("http://a.test/"), &uri("http://b.test/")));
        assert!(!same_origin(
            &uri("http://a.test:8080/"),
            &uri("http://a.test/")
        ));
    }

    #[test]
    fn pool_failures_keep_their_kind() {
        assert!(matches!(
            fetch_error(SendFailure::Timeout),
            FetchError::Timeout
        ));
        assert!(matches!(
            fetch_error(SendFailure::Connect("refused".into())),
            FetchError::Connect(why) if why == "refused"
        ));
    }
}

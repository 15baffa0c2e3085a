//! `squall:app/http-client`: outbound HTTP for guests, Tornado's
//! `AsyncHTTPClient`. One pooled hyper client (HTTP/1.1 and HTTP/2, HTTPS
//! through rustls with the web's roots) serves every app; each request is
//! checked against its app's `outbound` allow-list, redirects included.

use crate::bindings::http_client::{Host, HostWithStore, IncomingResponse, OutgoingRequest};
use crate::bindings::types::{self as wit, FetchError};
use crate::body::{ChunkConsumer, IncomingBodyProducer, OutgoingBody};
use crate::dispatch::{fields_to_wit, is_connection_header};
use crate::runtime::{Grants, State};
use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Request, Response, StatusCode, Uri};
use hyper::body::{Body as _, Incoming};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use std::time::Duration;
use wasmtime::component::{Accessor, FutureReader, HasSelf, StreamReader};

/// The pooled client every app's fetches go through.
pub type HttpClient = Client<HttpsConnector<HttpConnector>, OutgoingBody>;

/// How long a TCP (and TLS) connection may take to establish.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Idle pooled connections are closed after this long.
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// Build the shared client.
pub fn new_client() -> anyhow::Result<HttpClient> {
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_nodelay(true);
    http.set_connect_timeout(Some(CONNECT_TIMEOUT));
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_provider_and_webpki_roots(rustls::crypto::ring::default_provider())?
        .https_or_http()
        .enable_http1()
        .enable_http2()
        .wrap_connector(http);
    Ok(Client::builder(TokioExecutor::new())
        .pool_idle_timeout(POOL_IDLE_TIMEOUT)
        .build(https))
}

impl Host for State {}

impl HostWithStore<State> for HasSelf<State> {
    async fn fetch(
        accessor: &Accessor<State, Self>,
        request: OutgoingRequest,
    ) -> wasmtime::Result<Result<IncomingResponse, FetchError>> {
        let grants = accessor.with(|mut access| access.get().grants().clone());
        let max_redirects = request.max_redirects;
        let head_timeout = request.timeout_ms.map_or(grants.default_timeout, |ms| {
            Duration::from_millis(u64::from(ms))
        });
        let outgoing = match Outgoing::new(request, &grants) {
            Ok(outgoing) => outgoing,
            Err(err) => return Ok(Err(err)),
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
        let (producer, outcome) = IncomingBodyProducer::fetched(body, grants.fetch_max_body);
        accessor.with(|mut store| {
            let body = StreamReader::new(&mut store, producer)?;
            let body_result = FutureReader::new(&mut store, async move {
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
}

/// A request on its way out, before its body is attached.
struct Outgoing {
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: wit::Body,
}

/// A request ready to send; `replay` keeps an in-memory body for redirects.
struct Ready {
    request: Request<OutgoingBody>,
    replay: Option<Bytes>,
}

impl Outgoing {
    fn new(request: OutgoingRequest, grants: &Grants) -> Result<Outgoing, FetchError> {
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
        let method = method_from_wit(request.method)?;
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
            body: request.body,
        })
    }

    /// Attach the body: bytes as they are, a guest stream piped through.
    fn with_body(self, accessor: &Accessor<State, HasSelf<State>>) -> wasmtime::Result<Ready> {
        let (body, replay) = match self.body {
            wit::Body::Empty => (OutgoingBody::empty(), Some(Bytes::new())),
            wit::Body::Bytes(bytes) => {
                let bytes = Bytes::from(bytes);
                (OutgoingBody::full(bytes.clone()), Some(bytes))
            }
            wit::Body::Stream(reader) => {
                let (consumer, chunks, _ended) = ChunkConsumer::new();
                accessor.with(|store| reader.pipe(store, consumer))?;
                (
                    OutgoingBody::Streamed {
                        chunks,
                        guest: None,
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
            .map_err(classify_client_error)?;
        let Some(location) = redirect_target(&response, &uri) else {
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
        // 303, and 301/302 after a POST, continue as a GET without a body.
        let keeps_method = matches!(response.status().as_u16(), 307 | 308)
            || (method != Method::POST && response.status() != StatusCode::SEE_OTHER);
        let (method, body) = if keeps_method {
            (method, replay)
        } else {
            (Method::GET, Bytes::new())
        };
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

/// The absolute URI a 3xx response points to, if it is a redirect.
fn redirect_target(response: &Response<Incoming>, base: &Uri) -> Option<Uri> {
    if !matches!(response.status().as_u16(), 301 | 302 | 303 | 307 | 308) {
        return None;
    }
    let location = response.headers().get(header::LOCATION)?.to_str().ok()?;
    let target: Uri = location.parse().ok()?;
    if target.scheme().is_some() {
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

pub(crate) fn classify_client_error(err: hyper_util::client::legacy::Error) -> FetchError {
    let message = error_chain(&err);
    let mut link: Option<&(dyn std::error::Error + 'static)> = Some(&err);
    while let Some(current) = link {
        if current.downcast_ref::<rustls::Error>().is_some() {
            return FetchError::Tls(message);
        }
        link = match current.downcast_ref::<std::io::Error>() {
            Some(io) if io.kind() == std::io::ErrorKind::TimedOut => return FetchError::Timeout,
            // An io::Error's `source` skips the error it wraps: step into it.
            Some(io) => match io.get_ref() {
                Some(inner) => Some(inner as &(dyn std::error::Error + 'static)),
                None => current.source(),
            },
            None => current.source(),
        };
    }
    if err.is_connect() {
        FetchError::Connect(message)
    } else {
        FetchError::Protocol(message)
    }
}

fn error_chain(err: &dyn std::error::Error) -> String {
    let mut message = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    message
}

fn method_from_wit(method: wit::Method) -> Result<Method, FetchError> {
    Ok(match method {
        wit::Method::Get => Method::GET,
        wit::Method::Head => Method::HEAD,
        wit::Method::Post => Method::POST,
        wit::Method::Put => Method::PUT,
        wit::Method::Delete => Method::DELETE,
        wit::Method::Connect => Method::CONNECT,
        wit::Method::Options => Method::OPTIONS,
        wit::Method::Trace => Method::TRACE,
        wit::Method::Patch => Method::PATCH,
        wit::Method::Other(other) => Method::from_bytes(other.as_bytes())
            .map_err(|_| FetchError::InvalidRequest(format!("bad method {other:?}")))?,
    })
}

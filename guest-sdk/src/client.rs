//! Outbound HTTP: Tornado's `AsyncHTTPClient` for guests.
//!
//! Every request goes through the host's pooled client and is checked
//! against the app's `outbound` allow-list. Failures are [`FetchError`]s,
//! never traps, and several requests can be awaited at once with ordinary
//! combinators:
//!
//! ```ignore
//! use squall_sdk::futures::future::join_all;
//! let pages = join_all(urls.iter().map(|url| squall_sdk::http::get(url).send())).await;
//! ```

use crate::BodyWriter;
#[cfg(not(feature = "wasi-http"))]
use crate::bindings::squall::app::{http_client as host, types as wit};
use crate::body::{BodyTask, body_task};
use ::http::header::{HeaderMap, HeaderName, HeaderValue};
use ::http::{Method, StatusCode};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::future::{Future, IntoFuture};
use std::pin::Pin;
use std::time::Duration;
#[cfg(not(feature = "wasi-http"))]
use wit_bindgen::{FutureReader, StreamReader, StreamResult};

/// Why a fetch failed; [`FetchError::kind`] names it in one word.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FetchError {
    /// The app's manifest does not allow this destination.
    Denied(String),
    /// The request cannot be sent as given.
    InvalidRequest(String),
    /// No connection could be made.
    Connect(String),
    /// The TLS handshake failed.
    Tls(String),
    /// The connect or response timeout elapsed.
    Timeout,
    /// The response body is over the app's `fetch_max_body`.
    TooLarge,
    /// The peer broke the protocol or the connection.
    Protocol(String),
    /// The body arrived but is not what the caller asked for (text, JSON).
    Decode(String),
}

impl FetchError {
    /// `denied`, `invalid-request`, `connect`, `tls`, `timeout`,
    /// `too-large`, `protocol` or `decode`.
    pub fn kind(&self) -> &'static str {
        match self {
            FetchError::Denied(_) => "denied",
            FetchError::InvalidRequest(_) => "invalid-request",
            FetchError::Connect(_) => "connect",
            FetchError::Tls(_) => "tls",
            FetchError::Timeout => "timeout",
            FetchError::TooLarge => "too-large",
            FetchError::Protocol(_) => "protocol",
            FetchError::Decode(_) => "decode",
        }
    }

    #[cfg(not(feature = "wasi-http"))]
    fn from_wit(error: wit::FetchError) -> Self {
        match error {
            wit::FetchError::Denied(why) => FetchError::Denied(why),
            wit::FetchError::InvalidRequest(why) => FetchError::InvalidRequest(why),
            wit::FetchError::Connect(why) => FetchError::Connect(why),
            wit::FetchError::Tls(why) => FetchError::Tls(why),
            wit::FetchError::Timeout => FetchError::Timeout,
            wit::FetchError::TooLarge => FetchError::TooLarge,
            wit::FetchError::Protocol(why) => FetchError::Protocol(why),
        }
    }
}

#[cfg(feature = "wasi-http")]
impl FetchError {
    /// The SDK's kind for a `wasi:http` error code.
    fn from_code(code: wasip3::http::types::ErrorCode) -> Self {
        use wasip3::http::types::ErrorCode as Code;
        match code {
            Code::HttpRequestDenied => FetchError::Denied("the host denied the request".into()),
            Code::ConnectionTimeout
            | Code::ConnectionReadTimeout
            | Code::ConnectionWriteTimeout
            | Code::HttpResponseTimeout
            | Code::DnsTimeout => FetchError::Timeout,
            Code::TlsProtocolError | Code::TlsCertificateError | Code::TlsAlertReceived(_) => {
                FetchError::Tls(format!("{code:?}"))
            }
            Code::HttpResponseBodySize(_) => FetchError::TooLarge,
            Code::HttpRequestUriInvalid | Code::HttpRequestMethodInvalid => {
                FetchError::InvalidRequest(format!("{code:?}"))
            }
            Code::DnsError(_)
            | Code::DestinationNotFound
            | Code::DestinationUnavailable
            | Code::DestinationIpProhibited
            | Code::DestinationIpUnroutable
            | Code::ConnectionRefused
            | Code::ConnectionTerminated
            | Code::ConnectionLimitReached => FetchError::Connect(format!("{code:?}")),
            other => FetchError::Protocol(format!("{other:?}")),
        }
    }
}

impl std::fmt::Display for FetchError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FetchError::Timeout => f.write_str("fetch timed out"),
            FetchError::TooLarge => f.write_str("fetch response is too large"),
            FetchError::Denied(why)
            | FetchError::InvalidRequest(why)
            | FetchError::Connect(why)
            | FetchError::Tls(why)
            | FetchError::Protocol(why)
            | FetchError::Decode(why) => write!(f, "fetch failed ({}): {why}", self.kind()),
        }
    }
}

impl std::error::Error for FetchError {}

impl crate::IntoResponse for FetchError {
    /// `504` for a timeout, `502` otherwise: an upstream failed.
    fn into_response(self) -> crate::Response {
        let status = match self {
            FetchError::Timeout => StatusCode::GATEWAY_TIMEOUT,
            _ => StatusCode::BAD_GATEWAY,
        };
        crate::Error::new(status, self.to_string()).into_response()
    }
}

enum OutgoingBody {
    Bytes(Vec<u8>),
    Stream(BodyTask),
}

/// An outgoing request being built; `.send().await` or just `.await` it.
pub struct RequestBuilder {
    method: Method,
    url: String,
    headers: HeaderMap,
    body: OutgoingBody,
    timeout: Option<Duration>,
    max_redirects: u8,
    error: Option<FetchError>,
}

/// A `GET` of `url`.
pub fn get(url: impl Into<String>) -> RequestBuilder {
    RequestBuilder::new(Method::GET, url)
}

/// A `POST` to `url`.
pub fn post(url: impl Into<String>) -> RequestBuilder {
    RequestBuilder::new(Method::POST, url)
}

/// Send `request`: a [`RequestBuilder`], or a URL to `GET`.
pub async fn fetch(request: impl Into<RequestBuilder>) -> Result<FetchResponse, FetchError> {
    request.into().send().await
}

impl From<&str> for RequestBuilder {
    fn from(url: &str) -> Self {
        get(url)
    }
}

impl From<String> for RequestBuilder {
    fn from(url: String) -> Self {
        get(url)
    }
}

impl RequestBuilder {
    /// A `method` request to `url` (absolute, `http://` or `https://`).
    pub fn new(method: Method, url: impl Into<String>) -> Self {
        RequestBuilder {
            method,
            url: url.into(),
            headers: HeaderMap::new(),
            body: OutgoingBody::Bytes(Vec::new()),
            timeout: None,
            max_redirects: 0,
            error: None,
        }
    }

    /// Add a header. An invalid name or value makes `send` fail with
    /// `invalid-request`.
    pub fn header(mut self, name: &str, value: &str) -> Self {
        match (HeaderName::try_from(name), HeaderValue::try_from(value)) {
            (Ok(name), Ok(value)) => {
                self.headers.append(name, value);
            }
            _ => self.fail(format!("bad header {name:?}")),
        }
        self
    }

    /// Send `bytes` as the body.
    pub fn body(mut self, bytes: impl Into<Vec<u8>>) -> Self {
        self.body = OutgoingBody::Bytes(bytes.into());
        self
    }

    /// Send `value` as a JSON body.
    pub fn json<T: Serialize>(self, value: &T) -> Self {
        match serde_json::to_vec(value) {
            Ok(bytes) => self.header("content-type", "application/json").body(bytes),
            Err(err) => {
                let mut this = self;
                this.fail(format!("cannot serialize the JSON body: {err}"));
                this
            }
        }
    }

    /// Send `value` as a URL-encoded form.
    pub fn form<T: Serialize>(self, value: &T) -> Self {
        match serde_urlencoded::to_string(value) {
            Ok(text) => self
                .header("content-type", "application/x-www-form-urlencoded")
                .body(text),
            Err(err) => {
                let mut this = self;
                this.fail(format!("cannot encode the form: {err}"));
                this
            }
        }
    }

    /// Stream the body: `write` produces it chunk by chunk while the request
    /// is in flight. A streamed request is not replayed across redirects.
    pub fn stream_body<F, Fut>(mut self, write: F) -> Self
    where
        F: FnOnce(BodyWriter) -> Fut + 'static,
        Fut: Future<Output = ()> + 'static,
    {
        self.body = OutgoingBody::Stream(body_task(write));
        self
    }

    /// Give up if the response head takes longer than `timeout`
    /// (default: the app's request timeout).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Follow up to `max` redirects (none by default); each is checked
    /// against the allow-list.
    pub fn follow_redirects(mut self, max: u8) -> Self {
        self.max_redirects = max;
        self
    }

    fn fail(&mut self, why: String) {
        self.error.get_or_insert(FetchError::InvalidRequest(why));
    }

    /// Send the request and wait for the response head.
    pub async fn send(self) -> Result<FetchResponse, FetchError> {
        if let Some(error) = self.error {
            return Err(error);
        }
        self.send_to_host().await
    }

    /// On a standard host: `wasi:http/client.send` (redirects are not
    /// followed there; the timeout is the SDK's own).
    #[cfg(feature = "wasi-http")]
    async fn send_to_host(self) -> Result<FetchResponse, FetchError> {
        use futures::StreamExt;
        use http_body_util::BodyExt;
        use wasip3::http_compat::{http_from_wasi_response, http_into_wasi_request};
        let body = match self.body {
            OutgoingBody::Bytes(bytes) => http_body_util::Full::new(bytes::Bytes::from(bytes))
                .map_err(|never| match never {})
                .boxed_unsync(),
            OutgoingBody::Stream(write) => {
                let (writer, chunks) = BodyWriter::new();
                drop(wit_bindgen::spawn_local(write(writer)));
                let frames = chunks.map(|chunk| Ok(http_body::Frame::data(chunk)));
                http_body_util::StreamBody::new(frames).boxed_unsync()
            }
        };
        let uri: ::http::Uri = self
            .url
            .parse()
            .map_err(|err| FetchError::InvalidRequest(format!("bad URL {:?}: {err}", self.url)))?;
        let mut request = ::http::Request::new(body);
        *request.method_mut() = self.method;
        *request.uri_mut() = uri;
        *request.headers_mut() = self.headers;
        let request = http_into_wasi_request(request).map_err(FetchError::from_code)?;
        let sending = wasip3::http::client::send(request);
        let response = match self.timeout {
            Some(limit) => crate::timeout(limit, sending)
                .await
                .map_err(|_| FetchError::Timeout)?,
            None => sending.await,
        }
        .map_err(FetchError::from_code)?;
        let response = http_from_wasi_response(response).map_err(FetchError::from_code)?;
        let (parts, body) = response.into_parts();
        Ok(FetchResponse {
            status: parts.status,
            headers: parts.headers,
            body: Some(crate::body::Opaque(body)),
        })
    }

    #[cfg(not(feature = "wasi-http"))]
    async fn send_to_host(self) -> Result<FetchResponse, FetchError> {
        let body = match self.body {
            OutgoingBody::Bytes(bytes) if bytes.is_empty() => wit::Body::Empty,
            OutgoingBody::Bytes(bytes) => wit::Body::Bytes(bytes),
            OutgoingBody::Stream(write) => {
                let (writer, reader) = BodyWriter::new();
                drop(wit_bindgen::spawn_local(write(writer)));
                wit::Body::Stream(reader)
            }
        };
        let request = host::OutgoingRequest {
            method: crate::request::method_to_wit(&self.method),
            url: self.url,
            headers: crate::request::fields_to_wit(&self.headers),
            body,
            timeout_ms: self
                .timeout
                .map(|t| u32::try_from(t.as_millis()).unwrap_or(u32::MAX)),
            max_redirects: self.max_redirects,
        };
        let response = host::fetch(request).await.map_err(FetchError::from_wit)?;
        Ok(FetchResponse::from_wit(response))
    }
}

impl IntoFuture for RequestBuilder {
    type Output = Result<FetchResponse, FetchError>;
    type IntoFuture = Pin<Box<dyn Future<Output = Self::Output>>>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(self.send())
    }
}

/// A response from [`fetch`]: its head now, its body as it arrives.
#[derive(Debug)]
pub struct FetchResponse {
    status: StatusCode,
    headers: HeaderMap,
    #[cfg(not(feature = "wasi-http"))]
    body: Option<StreamReader<u8>>,
    #[cfg(not(feature = "wasi-http"))]
    result: Option<FutureReader<Result<(), wit::FetchError>>>,
    #[cfg(feature = "wasi-http")]
    body: Option<crate::body::Opaque<wasip3::http_compat::IncomingResponseBody>>,
}

impl FetchResponse {
    #[cfg(not(feature = "wasi-http"))]
    fn from_wit(response: host::IncomingResponse) -> Self {
        FetchResponse {
            status: StatusCode::from_u16(response.status).unwrap_or(StatusCode::BAD_GATEWAY),
            headers: crate::request::headers_from_wit(response.headers),
            body: Some(response.body),
            result: Some(response.body_result),
        }
    }

    /// The status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The headers.
    pub fn headers(&self) -> &HeaderMap {
        &self.headers
    }

    /// One header as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name)?.to_str().ok()
    }

    /// The next chunk of the body; `None` once it has all arrived. An
    /// error means the body was cut short.
    #[cfg(feature = "wasi-http")]
    pub async fn chunk(&mut self) -> Option<Result<Vec<u8>, FetchError>> {
        use http_body_util::BodyExt;
        let crate::body::Opaque(mut body) = self.body.take()?;
        loop {
            match body.frame().await? {
                Ok(frame) => {
                    if let Ok(data) = frame.into_data() {
                        self.body = Some(crate::body::Opaque(body));
                        return Some(Ok(data.to_vec()));
                    }
                }
                Err(code) => return Some(Err(FetchError::from_code(code))),
            }
        }
    }

    /// The next chunk of the body; `None` once it has all arrived. An
    /// error means the body was cut short.
    #[cfg(not(feature = "wasi-http"))]
    pub async fn chunk(&mut self) -> Option<Result<Vec<u8>, FetchError>> {
        while let Some(mut stream) = self.body.take() {
            let (status, chunk) = stream.read(Vec::with_capacity(64 * 1024)).await;
            if !matches!(status, StreamResult::Dropped) {
                self.body = Some(stream);
            }
            if !chunk.is_empty() {
                return Some(Ok(chunk));
            }
        }
        // The stream ended: whole, or cut short? The host says which.
        match self.result.take()?.await {
            Ok(()) => None,
            Err(error) => Some(Err(FetchError::from_wit(error))),
        }
    }

    /// The whole body.
    pub async fn bytes(mut self) -> Result<Vec<u8>, FetchError> {
        let mut all = Vec::new();
        while let Some(chunk) = self.chunk().await {
            all.extend_from_slice(&chunk?);
        }
        Ok(all)
    }

    /// The whole body as UTF-8 text.
    pub async fn text(self) -> Result<String, FetchError> {
        String::from_utf8(self.bytes().await?)
            .map_err(|_| FetchError::Decode("the body is not valid UTF-8".into()))
    }

    /// The whole body parsed as JSON.
    pub async fn json<T: DeserializeOwned>(self) -> Result<T, FetchError> {
        let bytes = self.bytes().await?;
        serde_json::from_slice(&bytes).map_err(|err| FetchError::Decode(format!("bad JSON: {err}")))
    }
}

//! Responses and the conversions handlers return through.

use crate::BodyWriter;
#[cfg(not(feature = "wasi-http"))]
use crate::bindings::squall::app::types as wit;
use crate::body::BodyTask;
use ::http::StatusCode;
use ::http::header::{self, HeaderMap, HeaderName, HeaderValue};
use serde::Serialize;
use std::future::Future;

/// An HTTP response: status, headers and a body that is either in memory or
/// streamed.
pub struct Response {
    status: StatusCode,
    headers: HeaderMap,
    body: ResponseBody,
}

enum ResponseBody {
    Bytes(Vec<u8>),
    Stream(BodyTask),
}

impl std::fmt::Debug for Response {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let body = match &self.body {
            ResponseBody::Bytes(bytes) => format!("{} bytes", bytes.len()),
            ResponseBody::Stream(_) => "stream".to_owned(),
        };
        f.debug_struct("Response")
            .field("status", &self.status)
            .field("headers", &self.headers)
            .field("body", &body)
            .finish()
    }
}

impl Default for Response {
    fn default() -> Self {
        Response::new(StatusCode::OK, Vec::new())
    }
}

impl Response {
    /// A response with `status` and an in-memory `body` (no content type).
    pub fn new(status: StatusCode, body: impl Into<Vec<u8>>) -> Self {
        Response {
            status,
            headers: HeaderMap::new(),
            body: ResponseBody::Bytes(body.into()),
        }
    }

    /// A `200 OK` whose body is written chunk by chunk by `write`, which keeps
    /// running after the handler has returned. Each chunk reaches the client
    /// as soon as it is written.
    ///
    /// ```ignore
    /// Response::stream(|mut body| async move {
    ///     for i in 0..3 {
    ///         if body.write(format!("tick {i}\n")).await.is_err() { return; }
    ///         squall_sdk::sleep(Duration::from_secs(1)).await;
    ///     }
    /// })
    /// ```
    pub fn stream<F, Fut>(write: F) -> Self
    where
        F: FnOnce(BodyWriter) -> Fut + 'static,
        Fut: Future<Output = ()> + 'static,
    {
        Response {
            status: StatusCode::OK,
            headers: HeaderMap::new(),
            body: ResponseBody::Stream(crate::body::body_task(write)),
        }
    }

    /// A `303 See Other` to `location` (use [`Response::with_status`] for 301, 302, 307, 308).
    pub fn redirect(location: &str) -> Self {
        Response::new(StatusCode::SEE_OTHER, Vec::new()).with_header(header::LOCATION, location)
    }

    /// The status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The headers.
    pub fn headers(&self) -> &HeaderMap {
        &self.headers
    }

    /// The headers, to change.
    pub fn headers_mut(&mut self) -> &mut HeaderMap {
        &mut self.headers
    }

    /// The in-memory body; `None` for a streamed one.
    pub fn body(&self) -> Option<&[u8]> {
        match &self.body {
            ResponseBody::Bytes(bytes) => Some(bytes),
            ResponseBody::Stream(_) => None,
        }
    }

    /// Replace the status, like Tornado's `set_status`.
    pub fn with_status(mut self, status: StatusCode) -> Self {
        self.status = status;
        self
    }

    /// Set a header, replacing any earlier value. A value that is not a
    /// valid header value is dropped.
    pub fn with_header(mut self, name: HeaderName, value: &str) -> Self {
        if let Ok(value) = HeaderValue::from_str(value) {
            self.headers.insert(name, value);
        }
        self
    }

    /// Add a `Set-Cookie` header (`name=value; Path=/; HttpOnly; SameSite=Lax`).
    pub fn with_cookie(mut self, name: &str, value: &str) -> Self {
        let cookie = format!("{name}={value}; Path=/; HttpOnly; SameSite=Lax");
        if let Ok(value) = HeaderValue::from_str(&cookie) {
            self.headers.append(header::SET_COOKIE, value);
        }
        self
    }

    fn with_default_content_type(mut self, content_type: &'static str) -> Self {
        self.headers
            .entry(header::CONTENT_TYPE)
            .or_insert(HeaderValue::from_static(content_type));
        self
    }

    /// The response for a standard `wasi:http` host.
    #[cfg(feature = "wasi-http")]
    pub(crate) fn into_standard(
        self,
    ) -> ::http::Response<
        http_body_util::combinators::UnsyncBoxBody<bytes::Bytes, wasip3::http::types::ErrorCode>,
    > {
        use futures::StreamExt;
        use http_body_util::BodyExt;
        let body = match self.body {
            ResponseBody::Bytes(bytes) => http_body_util::Full::new(bytes::Bytes::from(bytes))
                .map_err(|never| match never {})
                .boxed_unsync(),
            ResponseBody::Stream(write) => {
                let (writer, chunks) = BodyWriter::new();
                drop(wit_bindgen::spawn_local(write(writer)));
                let frames = chunks.map(|chunk| Ok(http_body::Frame::data(chunk)));
                http_body_util::StreamBody::new(frames).boxed_unsync()
            }
        };
        let mut response = ::http::Response::new(body);
        *response.status_mut() = self.status;
        *response.headers_mut() = self.headers;
        response
    }

    #[cfg(not(feature = "wasi-http"))]
    pub(crate) fn into_wit(self) -> wit::Response {
        let headers = crate::request::fields_to_wit(&self.headers);
        let body = match self.body {
            ResponseBody::Bytes(bytes) if bytes.is_empty() => wit::Body::Empty,
            ResponseBody::Bytes(bytes) => wit::Body::Bytes(bytes),
            ResponseBody::Stream(write) => {
                let (writer, reader) = BodyWriter::new();
                // Runs after `handle` returns; the host keeps the instance
                // alive until this task ends.
                drop(wit_bindgen::spawn_local(write(writer)));
                wit::Body::Stream(reader)
            }
        };
        wit::Response {
            status: self.status.as_u16(),
            headers,
            body,
        }
    }
}

/// Anything a handler can return.
pub trait IntoResponse {
    /// Convert into a [`Response`].
    fn into_response(self) -> Response;
}

impl IntoResponse for Response {
    fn into_response(self) -> Response {
        self
    }
}

impl IntoResponse for () {
    fn into_response(self) -> Response {
        Response::default()
    }
}

impl IntoResponse for StatusCode {
    fn into_response(self) -> Response {
        Response::new(self, Vec::new())
    }
}

const TEXT: &str = "text/plain; charset=utf-8";
const BINARY: &str = "application/octet-stream";

impl IntoResponse for &'static str {
    fn into_response(self) -> Response {
        Response::new(StatusCode::OK, self).with_default_content_type(TEXT)
    }
}

impl IntoResponse for String {
    fn into_response(self) -> Response {
        Response::new(StatusCode::OK, self).with_default_content_type(TEXT)
    }
}

impl IntoResponse for Vec<u8> {
    fn into_response(self) -> Response {
        Response::new(StatusCode::OK, self).with_default_content_type(BINARY)
    }
}

impl IntoResponse for &'static [u8] {
    fn into_response(self) -> Response {
        Response::new(StatusCode::OK, self).with_default_content_type(BINARY)
    }
}

impl<T: IntoResponse> IntoResponse for (StatusCode, T) {
    fn into_response(self) -> Response {
        self.1.into_response().with_status(self.0)
    }
}

impl<T: IntoResponse, E: IntoResponse> IntoResponse for Result<T, E> {
    fn into_response(self) -> Response {
        match self {
            Ok(ok) => ok.into_response(),
            Err(err) => err.into_response(),
        }
    }
}

/// A JSON body: `Json(value)` answers `application/json`.
#[derive(Debug, Clone)]
pub struct Json<T>(pub T);

impl<T: Serialize> IntoResponse for Json<T> {
    fn into_response(self) -> Response {
        match serde_json::to_vec(&self.0) {
            Ok(bytes) => {
                Response::new(StatusCode::OK, bytes).with_default_content_type("application/json")
            }
            Err(err) => crate::Error::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("could not serialize the response: {err}"),
            )
            .into_response(),
        }
    }
}

/// An HTML body: `Html(text)` answers `text/html; charset=utf-8`.
#[derive(Debug, Clone)]
pub struct Html<T>(pub T);

impl<T: Into<String>> IntoResponse for Html<T> {
    fn into_response(self) -> Response {
        Response::new(StatusCode::OK, self.0.into())
            .with_default_content_type("text/html; charset=utf-8")
    }
}

//! The incoming request as a handler sees it.

#[cfg(not(feature = "wasi-http"))]
use crate::bindings::squall::app::types as wit;
use crate::{Body, Error};
use ::http::header::{self, HeaderMap};
#[cfg(not(feature = "wasi-http"))]
use ::http::header::{HeaderName, HeaderValue};
use ::http::{Method, StatusCode};
use serde::de::DeserializeOwned;

/// An HTTP request, with the path parameters its route matched.
#[derive(Debug)]
pub struct Request {
    method: Method,
    path: String,
    query: String,
    authority: Option<String>,
    headers: HeaderMap,
    params: Vec<(String, String)>,
    body: Body,
}

impl Request {
    /// A standard `wasi:http` request, converted by the `wasip3` crate.
    #[cfg(feature = "wasi-http")]
    pub(crate) fn from_standard(
        request: ::http::Request<wasip3::http_compat::IncomingRequestBody>,
    ) -> Self {
        let (parts, body) = request.into_parts();
        let authority = parts
            .uri
            .authority()
            .map(|a| a.as_str().to_owned())
            .or_else(|| {
                parts
                    .headers
                    .get(header::HOST)?
                    .to_str()
                    .ok()
                    .map(str::to_owned)
            });
        Request {
            method: parts.method,
            path: parts.uri.path().to_owned(),
            query: parts.uri.query().unwrap_or_default().to_owned(),
            authority,
            headers: parts.headers,
            params: Vec::new(),
            body: Body::from_standard(body),
        }
    }

    #[cfg(not(feature = "wasi-http"))]
    pub(crate) fn from_wit(request: wit::Request) -> Self {
        Request {
            method: method_from_wit(request.method),
            path: request.path,
            query: request.query,
            authority: request.authority,
            headers: headers_from_wit(request.headers),
            params: Vec::new(),
            body: Body::from_wit(request.body),
        }
    }

    /// Build a request by hand, e.g. to unit-test a handler.
    pub fn new(method: Method, path_and_query: &str) -> Self {
        let (path, query) = path_and_query
            .split_once('?')
            .unwrap_or((path_and_query, ""));
        Request {
            method,
            path: path.to_owned(),
            query: query.to_owned(),
            authority: None,
            headers: HeaderMap::new(),
            params: Vec::new(),
            body: Body::default(),
        }
    }

    pub(crate) fn set_params(&mut self, params: Vec<(String, String)>) {
        self.params = params;
    }

    /// The request method.
    pub fn method(&self) -> &Method {
        &self.method
    }

    /// The path as received, percent-encoded, starting with `/`.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The raw query string, without its `?`.
    pub fn query(&self) -> &str {
        &self.query
    }

    /// The `host[:port]` the client asked for, if it said.
    pub fn authority(&self) -> Option<&str> {
        self.authority.as_deref()
    }

    /// All request headers.
    pub fn headers(&self) -> &HeaderMap {
        &self.headers
    }

    /// One header as text; `None` if absent or not visible ASCII.
    pub fn header(&self, name: impl header::AsHeaderName) -> Option<&str> {
        self.headers.get(name)?.to_str().ok()
    }

    /// A path parameter by name: `{name}` in the route, percent-decoded.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }

    /// All path parameters, in route order.
    pub fn params(&self) -> &[(String, String)] {
        &self.params
    }

    /// The last value of a query argument, like Tornado's `get_query_argument`.
    pub fn query_argument(&self, name: &str) -> Option<String> {
        self.query_arguments(name).pop()
    }

    /// Every value of a query argument, in order.
    pub fn query_arguments(&self, name: &str) -> Vec<String> {
        form_urlencoded::parse(self.query.as_bytes())
            .filter(|(key, _)| key == name)
            .map(|(_, value)| value.into_owned())
            .collect()
    }

    /// The whole query string as decoded `(name, value)` pairs.
    pub fn query_pairs(&self) -> Vec<(String, String)> {
        form_urlencoded::parse(self.query.as_bytes())
            .map(|(key, value)| (key.into_owned(), value.into_owned()))
            .collect()
    }

    /// The query string deserialized into `T`; `400 Bad Request` if it does not fit.
    pub fn query_as<T: DeserializeOwned>(&self) -> Result<T, Error> {
        serde_urlencoded::from_str(&self.query)
            .map_err(|err| Error::new(StatusCode::BAD_REQUEST, format!("bad query: {err}")))
    }

    /// A cookie sent by the client, by name.
    pub fn cookie(&self, name: &str) -> Option<&str> {
        self.headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(';'))
            .filter_map(|pair| pair.trim().split_once('='))
            .find(|(key, _)| *key == name)
            .map(|(_, value)| value.trim_matches('"'))
    }

    /// Take the body out of the request, to read it as a stream.
    pub fn take_body(&mut self) -> Body {
        std::mem::take(&mut self.body)
    }

    /// The whole body as bytes.
    pub async fn bytes(&mut self) -> Vec<u8> {
        self.take_body().bytes().await
    }

    /// The whole body as UTF-8 text; `400 Bad Request` if it is not.
    pub async fn text(&mut self) -> Result<String, Error> {
        self.take_body().text().await
    }

    /// The body parsed as JSON; `400 Bad Request` if it does not parse into `T`.
    pub async fn json<T: DeserializeOwned>(&mut self) -> Result<T, Error> {
        let bytes = self.bytes().await;
        serde_json::from_slice(&bytes)
            .map_err(|err| Error::new(StatusCode::BAD_REQUEST, format!("bad JSON body: {err}")))
    }

    /// A URL-encoded form body deserialized into `T`; `400 Bad Request` if it does not fit.
    pub async fn form<T: DeserializeOwned>(&mut self) -> Result<T, Error> {
        let bytes = self.bytes().await;
        serde_urlencoded::from_bytes(&bytes)
            .map_err(|err| Error::new(StatusCode::BAD_REQUEST, format!("bad form body: {err}")))
    }
}

#[cfg(not(feature = "wasi-http"))]
pub(crate) fn headers_from_wit(fields: wit::Fields) -> HeaderMap {
    let mut headers = HeaderMap::with_capacity(fields.len());
    for (name, value) in fields {
        // The host only forwards valid fields; skip anything that is not.
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_bytes(&value),
        ) {
            headers.append(name, value);
        }
    }
    headers
}

#[cfg(not(feature = "wasi-http"))]
pub(crate) fn fields_to_wit(headers: &HeaderMap) -> wit::Fields {
    headers
        .iter()
        .map(|(name, value)| (name.as_str().to_owned(), value.as_bytes().to_vec()))
        .collect()
}

#[cfg(not(feature = "wasi-http"))]
pub(crate) fn method_to_wit(method: &Method) -> wit::Method {
    match *method {
        Method::GET => wit::Method::Get,
        Method::HEAD => wit::Method::Head,
        Method::POST => wit::Method::Post,
        Method::PUT => wit::Method::Put,
        Method::DELETE => wit::Method::Delete,
        Method::CONNECT => wit::Method::Connect,
        Method::OPTIONS => wit::Method::Options,
        Method::TRACE => wit::Method::Trace,
        Method::PATCH => wit::Method::Patch,
        ref other => wit::Method::Other(other.as_str().to_owned()),
    }
}

#[cfg(not(feature = "wasi-http"))]
fn method_from_wit(method: wit::Method) -> Method {
    match method {
        wit::Method::Get => Method::GET,
        wit::Method::Head => Method::HEAD,
        wit::Method::Post => Method::POST,
        wit::Method::Put => Method::PUT,
        wit::Method::Delete => Method::DELETE,
        wit::Method::Connect => Method::CONNECT,
        wit::Method::Options => Method::OPTIONS,
        wit::Method::Trace => Method::TRACE,
        wit::Method::Patch => Method::PATCH,
        // The host forwards only valid method tokens; anything else becomes
        // a method no route is registered for.
        wit::Method::Other(other) => Method::from_bytes(other.as_bytes())
            .or_else(|_| Method::from_bytes(b"X-INVALID"))
            .unwrap_or_default(),
    }
}

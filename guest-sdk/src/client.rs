//! Outbound HTTP: Tornado's `AsyncHTTPClient` for guests.
//!
//! Every request goes through the host's pooled client and is checked
//! against the app's `outbound` allow-list. Failures are [`FetchError`]s,
//! never traps, and several requests can be awaited at once with ordinary
//! combinators:
//!
//! ```no_run
//! use squall_sdk::futures::future::join_all;
//! use squall_sdk::http::{FetchError, FetchResponse};
//!
//! async fn fetch_all(urls: &[String]) -> Vec<Result<FetchResponse, FetchError>> {
//!     join_all(urls.iter().map(|url| squall_sdk::http::get(url).send())).await
//! }
//! ```

use crate::body::{OutgoingBody, body_task};
use crate::{BodyWriter, sys};
use ::http::header::{HeaderMap, HeaderName, HeaderValue};
use ::http::{Method, StatusCode};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::future::{Future, IntoFuture};
use std::pin::Pin;
use std::time::Duration;

/// Why a fetch failed; [`FetchError::kind`] names it in one word.
///
/// A handler's `?` turns it into an [`Error`](crate::Error): `504` for a
/// timeout, `503` for a limit of the app's, `502` otherwise.
///
/// ```no_run
/// use squall_sdk::http::{self, FetchError};
/// use squall_sdk::{Error, Request};
///
/// async fn avatar(_req: Request) -> Result<Vec<u8>, Error> {
///     match http::get("https://cdn.example.com/avatar.png").await {
///         Ok(response) => Ok(response.bytes().await?),
///         Err(FetchError::Denied(why)) => Err(Error::internal(format!("not allowed: {why}"))),
///         Err(other) => Err(other.into()),
///     }
/// }
/// ```
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
    /// Too many fetches in flight for this request or this app; the
    /// manifest key (`max_fetches_per_request`, `max_fetches`) is named.
    Limit(String),
}

impl FetchError {
    /// `denied`, `invalid-request`, `connect`, `tls`, `timeout`,
    /// `too-large`, `protocol`, `decode` or `limit`.
    ///
    /// ```
    /// use squall_sdk::http::FetchError;
    ///
    /// fn metric_name(error: &FetchError) -> String {
    ///     format!("upstream_errors_{}", error.kind().replace('-', "_"))
    /// }
    /// assert_eq!(metric_name(&FetchError::Timeout), "upstream_errors_timeout");
    /// assert_eq!(metric_name(&FetchError::TooLarge), "upstream_errors_too_large");
    /// ```
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
            FetchError::Limit(_) => "limit",
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
            | FetchError::Decode(why)
            | FetchError::Limit(why) => write!(f, "fetch failed ({}): {why}", self.kind()),
        }
    }
}

impl std::error::Error for FetchError {}

impl From<FetchError> for crate::Error {
    /// `504` for a timeout, `503` for a limit of the app's, `502`
    /// otherwise: an upstream failed.
    fn from(error: FetchError) -> Self {
        let status = match error {
            FetchError::Timeout => StatusCode::GATEWAY_TIMEOUT,
            FetchError::Limit(_) => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::BAD_GATEWAY,
        };
        crate::Error::from_capability(status, error.to_string())
    }
}

impl crate::IntoResponse for FetchError {
    /// As its [`Error`](crate::Error).
    fn into_response(self) -> crate::Response {
        crate::Error::from(self).into_response()
    }
}

/// An outgoing request being built; `.send().await` or just `.await` it.
///
/// ```no_run
/// use squall_sdk::Method;
/// use squall_sdk::http::RequestBuilder;
/// use squall_sdk::{Error, Request};
/// use std::time::Duration;
///
/// async fn purge(req: Request) -> Result<String, Error> {
///     let url = format!("https://cdn.example.com/cache/{}", req.param("key").unwrap_or_default());
///     let response = RequestBuilder::new(Method::DELETE, url)
///         .header("authorization", "Bearer s3cret")
///         .timeout(Duration::from_secs(5))
///         .await?;
///     Ok(format!("purge: {}", response.status()))
/// }
/// ```
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
///
/// ```no_run
/// use squall_sdk::{Error, Request, http};
///
/// async fn proxy_readme(_req: Request) -> Result<String, Error> {
///     let url = "https://raw.githubusercontent.com/rust-lang/rust/master/README.md";
///     let response = http::get(url).send().await?;
///     Ok(response.text().await?)
/// }
/// ```
pub fn get(url: impl Into<String>) -> RequestBuilder {
    RequestBuilder::new(Method::GET, url)
}

/// A `POST` to `url`.
///
/// ```no_run
/// use squall_sdk::{Error, Request, StatusCode, http};
///
/// async fn notify(mut req: Request) -> Result<StatusCode, Error> {
///     let text = req.text().await?;
///     let response = http::post("https://hooks.example.com/chat")
///         .json(&squall_sdk::serde_json::json!({ "text": text }))
///         .await?;
///     Ok(response.status())
/// }
/// ```
pub fn post(url: impl Into<String>) -> RequestBuilder {
    RequestBuilder::new(Method::POST, url)
}

/// Send `request`: a [`RequestBuilder`], or a URL to `GET`.
///
/// ```no_run
/// use squall_sdk::{Error, Request, http};
///
/// async fn status_page(_req: Request) -> Result<String, Error> {
///     let plain = http::fetch("https://status.example.com/health").await?;
///     let api = http::get("https://status.example.com/api").header("accept", "application/json");
///     let detailed = http::fetch(api).await?;
///     Ok(format!("{} / {}", plain.status(), detailed.status()))
/// }
/// ```
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
    ///
    /// ```no_run
    /// use squall_sdk::Method;
    /// use squall_sdk::http::RequestBuilder;
    /// use squall_sdk::{Error, Request};
    ///
    /// async fn rename(mut req: Request) -> Result<String, Error> {
    ///     let body = req.bytes().await;
    ///     let response = RequestBuilder::new(Method::PUT, "https://api.example.com/items/7")
    ///         .header("content-type", "application/json")
    ///         .body(body)
    ///         .await?;
    ///     Ok(response.text().await?)
    /// }
    /// ```
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
    ///
    /// ```no_run
    /// use squall_sdk::serde_json::Value;
    /// use squall_sdk::{Error, Request, http};
    ///
    /// async fn stars(_req: Request) -> Result<String, Error> {
    ///     let repo: Value = http::get("https://api.github.com/repos/rust-lang/rust")
    ///         .header("accept", "application/vnd.github+json")
    ///         .header("user-agent", "squall-app")
    ///         .await?
    ///         .json()
    ///         .await?;
    ///     Ok(format!("{} stars", repo["stargazers_count"]))
    /// }
    /// ```
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
    ///
    /// ```no_run
    /// use squall_sdk::{Error, Request, StatusCode, http};
    ///
    /// async fn archive(mut req: Request) -> Result<StatusCode, Error> {
    ///     let upload = req.bytes().await;
    ///     let response = http::post("https://storage.example.com/archive")
    ///         .header("content-type", "application/octet-stream")
    ///         .body(upload)
    ///         .await?;
    ///     Ok(response.status())
    /// }
    /// ```
    pub fn body(mut self, bytes: impl Into<Vec<u8>>) -> Self {
        self.body = OutgoingBody::Bytes(bytes.into());
        self
    }

    /// Send `value` as a JSON body.
    ///
    /// ```no_run
    /// use serde::Serialize;
    /// use squall_sdk::{Error, Request, http};
    ///
    /// #[derive(Serialize)]
    /// struct Issue<'a> {
    ///     title: &'a str,
    ///     labels: [&'a str; 1],
    /// }
    ///
    /// async fn report(_req: Request) -> Result<String, Error> {
    ///     let issue = Issue { title: "Checkout is down", labels: ["incident"] };
    ///     let response = http::post("https://tracker.example.com/issues").json(&issue).await?;
    ///     Ok(response.text().await?)
    /// }
    /// ```
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
    ///
    /// ```no_run
    /// use squall_sdk::{Error, Request, http};
    ///
    /// async fn login_upstream(_req: Request) -> Result<String, Error> {
    ///     let response = http::post("https://auth.example.com/oauth/token")
    ///         .form(&[("grant_type", "client_credentials"), ("client_id", "squall")])
    ///         .await?;
    ///     Ok(response.text().await?)
    /// }
    /// ```
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
    ///
    /// ```no_run
    /// use squall_sdk::{Error, Request, StatusCode, http};
    ///
    /// async fn forward_upload(mut req: Request) -> Result<StatusCode, Error> {
    ///     let mut upload = req.take_body();
    ///     let response = http::post("https://storage.example.com/uploads")
    ///         .stream_body(|mut body| async move {
    ///             while let Some(chunk) = upload.chunk().await {
    ///                 if body.write(chunk).await.is_err() {
    ///                     return;
    ///                 }
    ///             }
    ///         })
    ///         .await?;
    ///     Ok(response.status())
    /// }
    /// ```
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
    ///
    /// ```no_run
    /// use squall_sdk::http::{self, FetchError};
    /// use squall_sdk::{Error, Request};
    /// use std::time::Duration;
    ///
    /// async fn quote(_req: Request) -> Result<String, Error> {
    ///     let request = http::get("https://quotes.example.com/today");
    ///     match request.timeout(Duration::from_millis(500)).await {
    ///         Ok(response) => Ok(response.text().await?),
    ///         Err(FetchError::Timeout) => Ok("No quote today.".to_owned()),
    ///         Err(other) => Err(other.into()),
    ///     }
    /// }
    /// ```
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Follow up to `max` redirects (none by default); each is checked
    /// against the allow-list.
    ///
    /// ```no_run
    /// use squall_sdk::{Error, Request, http};
    ///
    /// async fn latest_release(_req: Request) -> Result<String, Error> {
    ///     // GitHub answers `/releases/latest` with a redirect to the release.
    ///     let response = http::get("https://github.com/rust-lang/rust/releases/latest")
    ///         .follow_redirects(3)
    ///         .await?;
    ///     Ok(response.status().to_string())
    /// }
    /// ```
    pub fn follow_redirects(mut self, max: u8) -> Self {
        self.max_redirects = max;
        self
    }

    fn fail(&mut self, why: String) {
        self.error.get_or_insert(FetchError::InvalidRequest(why));
    }

    /// Send the request and wait for the response head.
    ///
    /// ```no_run
    /// use squall_sdk::futures::future::try_join;
    /// use squall_sdk::{Error, Request, http};
    ///
    /// async fn dashboard(_req: Request) -> Result<String, Error> {
    ///     let (users, orders) = try_join(
    ///         http::get("https://api.example.com/users/count").send(),
    ///         http::get("https://api.example.com/orders/count").send(),
    ///     )
    ///     .await?;
    ///     Ok(format!("{} users, {} orders", users.text().await?, orders.text().await?))
    /// }
    /// ```
    pub async fn send(self) -> Result<FetchResponse, FetchError> {
        if let Some(error) = self.error {
            return Err(error);
        }
        sys::fetch(Outgoing {
            method: self.method,
            url: self.url,
            headers: self.headers,
            body: self.body,
            timeout: self.timeout,
            max_redirects: self.max_redirects,
        })
        .await
    }
}

/// A valid outgoing request, as a backend sends it.
pub(crate) struct Outgoing {
    pub(crate) method: Method,
    pub(crate) url: String,
    pub(crate) headers: HeaderMap,
    pub(crate) body: OutgoingBody,
    /// `None`: the host's default.
    pub(crate) timeout: Option<Duration>,
    pub(crate) max_redirects: u8,
}

impl IntoFuture for RequestBuilder {
    type Output = Result<FetchResponse, FetchError>;
    type IntoFuture = Pin<Box<dyn Future<Output = Self::Output>>>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(self.send())
    }
}

/// A response from [`fetch`]: its head now, its body as it arrives.
///
/// ```no_run
/// use squall_sdk::{StatusCode, http};
/// use squall_sdk::{Error, Request};
///
/// async fn weather(_req: Request) -> Result<String, Error> {
///     let response = http::get("https://wttr.in/Paris?format=3").await?;
///     if response.status() != StatusCode::OK {
///         return Err(Error::new(StatusCode::BAD_GATEWAY, "no weather today"));
///     }
///     Ok(response.text().await?)
/// }
/// ```
#[derive(Debug)]
pub struct FetchResponse {
    status: StatusCode,
    headers: HeaderMap,
    body: sys::FetchBody,
}

impl FetchResponse {
    /// A response whose body comes from the backend's `body`.
    pub(crate) fn new(status: StatusCode, headers: HeaderMap, body: sys::FetchBody) -> Self {
        FetchResponse {
            status,
            headers,
            body,
        }
    }

    /// The status.
    ///
    /// ```no_run
    /// use squall_sdk::{StatusCode, http};
    /// use squall_sdk::{Error, Request};
    ///
    /// async fn availability(req: Request) -> Result<&'static str, Error> {
    ///     let name = req.param("name").unwrap_or_default();
    ///     let response = http::get(format!("https://crates.example.com/{name}")).await?;
    ///     Ok(if response.status() == StatusCode::NOT_FOUND { "free" } else { "taken" })
    /// }
    /// ```
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The headers.
    ///
    /// ```no_run
    /// use squall_sdk::{Error, Request, http};
    ///
    /// async fn links(_req: Request) -> Result<String, Error> {
    ///     let response = http::get("https://api.github.com/repos/rust-lang/rust/issues").await?;
    ///     let links: Vec<&str> =
    ///         response.headers().get_all("link").iter().filter_map(|v| v.to_str().ok()).collect();
    ///     Ok(links.join("\n"))
    /// }
    /// ```
    pub fn headers(&self) -> &HeaderMap {
        &self.headers
    }

    /// One header as text.
    ///
    /// ```no_run
    /// use squall_sdk::{Error, Request, http};
    ///
    /// async fn content_type(_req: Request) -> Result<String, Error> {
    ///     let response = http::get("https://example.com/").await?;
    ///     Ok(response.header("content-type").unwrap_or("unknown").to_owned())
    /// }
    /// ```
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name)?.to_str().ok()
    }

    /// The next chunk of the body; `None` once it has all arrived. An
    /// error means the body was cut short.
    ///
    /// ```no_run
    /// use squall_sdk::{Error, Request, http};
    ///
    /// async fn download_size(_req: Request) -> Result<String, Error> {
    ///     let mut response = http::get("https://example.com/big.iso").await?;
    ///     let mut total = 0;
    ///     while let Some(chunk) = response.chunk().await {
    ///         total += chunk?.len();
    ///     }
    ///     Ok(format!("{total} bytes"))
    /// }
    /// ```
    pub async fn chunk(&mut self) -> Option<Result<Vec<u8>, FetchError>> {
        self.body.chunk().await
    }

    /// The whole body.
    ///
    /// ```no_run
    /// use squall_sdk::{Error, Request, Response, StatusCode, header, http};
    ///
    /// async fn logo(_req: Request) -> Result<Response, Error> {
    ///     let response = http::get("https://www.rust-lang.org/logos/rust-logo-32x32.png").await?;
    ///     let png = response.bytes().await?;
    ///     Ok(Response::new(StatusCode::OK, png).with_header(header::CONTENT_TYPE, "image/png"))
    /// }
    /// ```
    pub async fn bytes(mut self) -> Result<Vec<u8>, FetchError> {
        let mut all = Vec::new();
        while let Some(chunk) = self.chunk().await {
            all.extend_from_slice(&chunk?);
        }
        Ok(all)
    }

    /// The whole body as UTF-8 text.
    ///
    /// ```no_run
    /// use squall_sdk::{Error, Html, Request, http};
    ///
    /// async fn mirror(_req: Request) -> Result<Html<String>, Error> {
    ///     let page = http::get("https://example.com/").await?.text().await?;
    ///     Ok(Html(page))
    /// }
    /// ```
    pub async fn text(self) -> Result<String, FetchError> {
        String::from_utf8(self.bytes().await?)
            .map_err(|_| FetchError::Decode("the body is not valid UTF-8".into()))
    }

    /// The whole body parsed as JSON.
    ///
    /// ```no_run
    /// use serde::Deserialize;
    /// use squall_sdk::{Error, Request, http};
    ///
    /// #[derive(Deserialize)]
    /// struct Rate {
    ///     eur: f64,
    /// }
    ///
    /// async fn price_in_euros(_req: Request) -> Result<String, Error> {
    ///     let rate: Rate = http::get("https://rates.example.com/usd").await?.json().await?;
    ///     Ok(format!("{:.2} EUR", 19.99 * rate.eur))
    /// }
    /// ```
    pub async fn json<T: DeserializeOwned>(self) -> Result<T, FetchError> {
        let bytes = self.bytes().await?;
        serde_json::from_slice(&bytes).map_err(|err| FetchError::Decode(format!("bad JSON: {err}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::IntoResponse;
    use futures::FutureExt;
    use std::collections::HashMap;

    #[test]
    fn every_error_has_a_kind_and_a_message() {
        let cases = [
            (FetchError::Denied("x".into()), "denied"),
            (FetchError::InvalidRequest("x".into()), "invalid-request"),
            (FetchError::Connect("x".into()), "connect"),
            (FetchError::Tls("x".into()), "tls"),
            (FetchError::Protocol("x".into()), "protocol"),
            (FetchError::Decode("x".into()), "decode"),
        ];
        for (error, kind) in cases {
            assert_eq!(error.kind(), kind);
            assert_eq!(error.to_string(), format!("fetch failed ({kind}): x"));
        }
        assert_eq!(FetchError::Timeout.kind(), "timeout");
        assert_eq!(FetchError::Timeout.to_string(), "fetch timed out");
        assert_eq!(FetchError::TooLarge.kind(), "too-large");
        assert_eq!(
            FetchError::TooLarge.to_string(),
            "fetch response is too large"
        );
    }

    #[test]
    fn an_upstream_failure_answers_502_or_504_with_the_detail_only_in_debug() {
        let response = FetchError::Timeout.into_response();
        assert_eq!(response.status(), StatusCode::GATEWAY_TIMEOUT);
        assert_eq!(response.body(), Some(&b"Gateway Timeout\n"[..]));
        let response = FetchError::Connect("refused".into()).into_response();
        assert_eq!(response.status(), StatusCode::BAD_GATEWAY);
        assert_eq!(response.body(), Some(&b"Bad Gateway\n"[..]));
        // Debug mode (`debug = "true"` in the app's config) shows the detail.
        crate::sys::config_set("debug", "true");
        let response = FetchError::Connect("refused".into()).into_response();
        assert_eq!(
            response.body(),
            Some(&b"fetch failed (connect): refused\n"[..])
        );
    }

    /// `builder`'s error, found before anything is sent to the host.
    fn refused(builder: RequestBuilder) -> FetchError {
        builder
            .send()
            .now_or_never()
            .expect("a refused request does not wait")
            .expect_err("the request is invalid")
    }

    #[test]
    fn a_bad_header_fails_the_send_without_sending() {
        let error = refused(get("http://example.com/").header("bad name", "v"));
        assert_eq!(
            error,
            FetchError::InvalidRequest("bad header \"bad name\"".into())
        );
        let error = refused(post("http://example.com/").header("x-ok", "line\nbreak"));
        assert_eq!(error.kind(), "invalid-request");
    }

    #[test]
    fn the_first_builder_error_is_the_one_reported() {
        let unserializable: HashMap<(u8, u8), u8> = HashMap::from([((1, 2), 3)]);
        let builder = RequestBuilder::new(Method::PUT, "http://example.com/")
            .header("bad name", "v")
            .json(&unserializable)
            .timeout(Duration::from_secs(1))
            .follow_redirects(3);
        assert_eq!(
            refused(builder),
            FetchError::InvalidRequest("bad header \"bad name\"".into())
        );
        let error = refused(post("http://example.com/").json(&unserializable));
        assert!(
            matches!(&error, FetchError::InvalidRequest(why) if why.starts_with("cannot serialize the JSON body")),
            "{error:?}"
        );
    }

    #[test]
    fn builders_come_from_urls() {
        let builder = RequestBuilder::from("http://example.com/a");
        assert_eq!(
            (&builder.method, builder.url.as_str()),
            (&Method::GET, "http://example.com/a")
        );
        let builder = RequestBuilder::from(String::from("http://example.com/b"))
            .json(&serde_json::json!({ "a": 1 }));
        assert_eq!(builder.headers["content-type"], "application/json");
        assert!(matches!(&builder.body, OutgoingBody::Bytes(bytes) if bytes == br#"{"a":1}"#));
        let builder = post("http://example.com/").form(&[("q", "a b"), ("n", "1")]);
        assert_eq!(
            builder.headers["content-type"],
            "application/x-www-form-urlencoded"
        );
        assert!(matches!(&builder.body, OutgoingBody::Bytes(bytes) if bytes == b"q=a+b&n=1"));
        assert!(builder.error.is_none());
    }
}

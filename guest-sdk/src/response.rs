//! Responses and the conversions handlers return through.

use crate::BodyWriter;
use crate::body::OutgoingBody;
use ::http::StatusCode;
use ::http::header::{self, HeaderMap, HeaderName, HeaderValue};
use serde::Serialize;
use std::future::Future;

/// An HTTP response: status, headers and a body that is either in memory or
/// streamed.
///
/// ```
/// use squall_sdk::{Request, Response, StatusCode, header};
///
/// async fn teapot(_req: Request) -> Response {
///     Response::new(StatusCode::IM_A_TEAPOT, "short and stout")
///         .with_header(header::CONTENT_TYPE, "text/plain")
/// }
/// ```
pub struct Response {
    status: StatusCode,
    headers: HeaderMap,
    body: OutgoingBody,
    /// The message of the [`Error`](crate::Error) this answers, for the
    /// router's error page.
    error: Option<String>,
    /// The first header this response could not take (an invalid name or
    /// value): the router answers 500 instead, and logs why.
    refused_header: Option<String>,
}

impl std::fmt::Debug for Response {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let body = match &self.body {
            OutgoingBody::Bytes(bytes) => format!("{} bytes", bytes.len()),
            OutgoingBody::Stream(_) => "stream".to_owned(),
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
    ///
    /// ```
    /// use squall_sdk::{Response, StatusCode};
    ///
    /// let response = Response::new(StatusCode::CREATED, "saved");
    /// assert_eq!(response.body(), Some(&b"saved"[..]));
    /// ```
    pub fn new(status: StatusCode, body: impl Into<Vec<u8>>) -> Self {
        Response {
            status,
            headers: HeaderMap::new(),
            body: OutgoingBody::Bytes(body.into()),
            error: None,
            refused_header: None,
        }
    }

    /// A `200 OK` whose body is written chunk by chunk by `write`, which keeps
    /// running after the handler has returned. Each chunk reaches the client
    /// as soon as it is written.
    ///
    /// ```no_run
    /// use squall_sdk::{Request, Response};
    /// use std::time::Duration;
    ///
    /// async fn ticks(_req: Request) -> Response {
    ///     Response::stream(|mut body| async move {
    ///         for i in 0..3 {
    ///             if body.write(format!("tick {i}\n")).await.is_err() {
    ///                 return;
    ///             }
    ///             squall_sdk::sleep(Duration::from_secs(1)).await;
    ///         }
    ///     })
    /// }
    /// ```
    pub fn stream<F, Fut>(write: F) -> Self
    where
        F: FnOnce(BodyWriter) -> Fut + 'static,
        Fut: Future<Output = ()> + 'static,
    {
        Response {
            status: StatusCode::OK,
            headers: HeaderMap::new(),
            body: OutgoingBody::Stream(crate::body::body_task(write)),
            error: None,
            refused_header: None,
        }
    }

    /// A `303 See Other` to `location` (use [`Response::redirect_with`] for 301, 302, 307, 308).
    ///
    /// ```
    /// use squall_sdk::{Response, StatusCode, header};
    ///
    /// let response = Response::redirect("/login");
    /// assert_eq!(response.status(), StatusCode::SEE_OTHER);
    /// assert_eq!(response.headers()[header::LOCATION], "/login");
    /// ```
    pub fn redirect(location: &str) -> Self {
        Response::new(StatusCode::SEE_OTHER, Vec::new()).with_header(header::LOCATION, location)
    }

    /// The status.
    ///
    /// ```
    /// use squall_sdk::{IntoResponse, StatusCode};
    ///
    /// assert_eq!("hello".into_response().status(), StatusCode::OK);
    /// ```
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The headers.
    ///
    /// ```
    /// use squall_sdk::{IntoResponse, header};
    ///
    /// let response = "hello".into_response();
    /// assert_eq!(response.headers()[header::CONTENT_TYPE], "text/plain; charset=utf-8");
    /// ```
    pub fn headers(&self) -> &HeaderMap {
        &self.headers
    }

    /// The headers, to change.
    ///
    /// ```
    /// use squall_sdk::{IntoResponse, header};
    /// use squall_sdk::http::HeaderValue;
    ///
    /// let mut response = "cached".into_response();
    /// let headers = response.headers_mut();
    /// headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("max-age=60"));
    /// headers.append(header::VARY, HeaderValue::from_static("accept-encoding"));
    /// ```
    pub fn headers_mut(&mut self) -> &mut HeaderMap {
        &mut self.headers
    }

    /// The in-memory body; `None` for a streamed one.
    ///
    /// ```
    /// use squall_sdk::{IntoResponse, Response};
    ///
    /// assert_eq!("hi".into_response().body(), Some(&b"hi"[..]));
    /// assert_eq!(Response::stream(|_body| async {}).body(), None);
    /// ```
    pub fn body(&self) -> Option<&[u8]> {
        match &self.body {
            OutgoingBody::Bytes(bytes) => Some(bytes),
            OutgoingBody::Stream(_) => None,
        }
    }

    /// Replace the status, like Tornado's `set_status`.
    ///
    /// ```
    /// use squall_sdk::{Response, StatusCode};
    ///
    /// let response = Response::redirect("/new-home").with_status(StatusCode::PERMANENT_REDIRECT);
    /// assert_eq!(response.status(), StatusCode::PERMANENT_REDIRECT);
    /// ```
    pub fn with_status(mut self, status: StatusCode) -> Self {
        self.status = status;
        self
    }

    /// Set header `name` to `value`, replacing any earlier value, as
    /// [`Request::with_header`](crate::Request::with_header) does. A name or
    /// value that is not valid (a control character such as CR or LF, in a
    /// redirect's URL too) is not sent: the router answers `500` instead and
    /// logs which header it was.
    ///
    /// ```
    /// use squall_sdk::{Response, StatusCode, header};
    ///
    /// let response = Response::new(StatusCode::OK, "a,b\n1,2\n")
    ///     .with_header(header::CONTENT_TYPE, "text/csv")
    ///     .with_header(header::CACHE_CONTROL, "no-store");
    /// assert_eq!(response.headers()[header::CONTENT_TYPE], "text/csv");
    /// ```
    pub fn with_header(mut self, name: impl TryInto<HeaderName>, value: &str) -> Self {
        let Ok(name) = name.try_into() else {
            self.refuse_header("a header name is not a valid HTTP header name".to_owned());
            return self;
        };
        match HeaderValue::from_str(value) {
            Ok(value) => {
                self.headers.insert(name, value);
            }
            Err(_) => self.refuse_header(format!(
                "header `{name}`: its value is not a valid header value \
                 (control characters such as CR and LF must be percent-encoded)"
            )),
        }
        self
    }

    pub(crate) fn refuse_header(&mut self, why: String) {
        self.refused_header.get_or_insert(why);
    }

    /// A `Set-Cookie` of `text`, or the refusal naming cookie `name`.
    fn append_cookie(&mut self, name: &str, text: &str) {
        match HeaderValue::from_str(text) {
            Ok(value) => {
                self.headers.append(header::SET_COOKIE, value);
            }
            Err(_) => self.refuse_header(format!("cookie `{name}`: not a valid header value")),
        }
    }

    /// Why a header was not taken, if one was not.
    pub(crate) fn take_refused_header(&mut self) -> Option<String> {
        self.refused_header.take()
    }

    /// Add a `Set-Cookie` header (`name=value; Path=/; HttpOnly; SameSite=Lax`).
    ///
    /// ```
    /// use squall_sdk::{Response, header};
    ///
    /// let response = Response::redirect("/").with_cookie("session", "abc123");
    /// assert_eq!(
    ///     response.headers()[header::SET_COOKIE],
    ///     "session=abc123; Path=/; HttpOnly; SameSite=Lax"
    /// );
    /// ```
    pub fn with_cookie(mut self, name: &str, value: &str) -> Self {
        let cookie = format!("{name}={value}; Path=/; HttpOnly; SameSite=Lax");
        self.append_cookie(name, &cookie);
        self
    }

    /// Add a `Set-Cookie` header built with the [`cookie`](crate::cookie)
    /// builder (or a signed one from [`Signer::cookie`](crate::cookie::Signer::cookie)).
    /// A cookie whose text is not a valid header value is not sent: the
    /// router answers `500` instead and logs which cookie it was.
    ///
    /// ```
    /// use squall_sdk::cookie::{Cookie, SameSite, time::Duration};
    /// use squall_sdk::{Response, header};
    ///
    /// let response = Response::redirect("/")
    ///     .set_cookie(Cookie::build(("lang", "en")).path("/").max_age(Duration::days(30)).same_site(SameSite::Strict))
    ///     .set_cookie(Cookie::build("session").path("/").removal());
    /// let cookies: Vec<_> = response.headers().get_all(header::SET_COOKIE).iter().collect();
    /// assert_eq!(cookies[0], "lang=en; SameSite=Strict; Path=/; Max-Age=2592000");
    /// assert!(cookies[1].to_str().unwrap().starts_with("session=; Path=/; Max-Age=0; Expires="));
    /// ```
    pub fn set_cookie(mut self, cookie: impl Into<crate::cookie::Cookie<'static>>) -> Self {
        let cookie: crate::cookie::Cookie<'static> = cookie.into();
        self.append_cookie(cookie.name(), &cookie.to_string());
        self
    }

    /// A redirect to `location` with `status` (`301`, `302`, `303`, `307`
    /// or `308`; Tornado's `redirect(url, permanent)`).
    ///
    /// ```
    /// use squall_sdk::{Response, StatusCode, header};
    ///
    /// let moved = Response::redirect_with(StatusCode::PERMANENT_REDIRECT, "/v2/items");
    /// assert_eq!(moved.status(), StatusCode::PERMANENT_REDIRECT);
    /// assert_eq!(moved.headers()[header::LOCATION], "/v2/items");
    /// ```
    pub fn redirect_with(status: StatusCode, location: &str) -> Self {
        Response::new(status, Vec::new()).with_header(header::LOCATION, location)
    }

    /// Mark this response as the answer to an error, for the error page.
    pub(crate) fn with_error(mut self, message: String) -> Self {
        self.error = Some(message);
        self
    }

    /// The error message this answers, if it answers an error.
    pub(crate) fn take_error(&mut self) -> Option<String> {
        self.error.take()
    }

    fn with_default_content_type(mut self, content_type: &'static str) -> Self {
        self.headers
            .entry(header::CONTENT_TYPE)
            .or_insert(HeaderValue::from_static(content_type));
        self
    }

    /// Status, headers and body, for a backend to send.
    pub(crate) fn into_parts(self) -> (StatusCode, HeaderMap, OutgoingBody) {
        (self.status, self.headers, self.body)
    }
}

/// Anything a handler can return.
///
/// ```
/// use squall_sdk::{IntoResponse, Request, Response, StatusCode};
///
/// struct Created(u64);
///
/// impl IntoResponse for Created {
///     fn into_response(self) -> Response {
///         (StatusCode::CREATED, format!("created #{}", self.0)).into_response()
///     }
/// }
///
/// async fn create(_req: Request) -> Created {
///     Created(42)
/// }
/// # assert_eq!(Created(42).into_response().status(), StatusCode::CREATED);
/// ```
pub trait IntoResponse {
    /// Convert into a [`Response`].
    ///
    /// ```
    /// use squall_sdk::{IntoResponse, StatusCode};
    ///
    /// let response = (StatusCode::ACCEPTED, "queued").into_response();
    /// assert_eq!(response.status(), StatusCode::ACCEPTED);
    /// assert_eq!(response.body(), Some(&b"queued"[..]));
    /// ```
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
///
/// ```
/// use serde::Serialize;
/// use squall_sdk::{Json, Request};
///
/// #[derive(Serialize)]
/// struct Todo {
///     id: u64,
///     title: &'static str,
/// }
///
/// async fn todo(_req: Request) -> Json<Todo> {
///     Json(Todo { id: 1, title: "milk" })
/// }
/// # use squall_sdk::IntoResponse;
/// # assert_eq!(Json(Todo { id: 1, title: "milk" }).into_response().body(), Some(&br#"{"id":1,"title":"milk"}"#[..]));
/// ```
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
///
/// ```
/// use squall_sdk::{Html, Request};
///
/// async fn greet(req: Request) -> Html<String> {
///     let name = req.query_arguments().get_or("name", "stranger");
///     Html(format!("<h1>Hello, {name}!</h1>"))
/// }
/// ```
#[derive(Debug, Clone)]
pub struct Html<T>(pub T);

impl<T: Into<String>> IntoResponse for Html<T> {
    fn into_response(self) -> Response {
        Response::new(StatusCode::OK, self.0.into())
            .with_default_content_type("text/html; charset=utf-8")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn content_type(response: &Response) -> Option<&str> {
        response.headers().get(header::CONTENT_TYPE)?.to_str().ok()
    }

    #[test]
    fn text_and_bytes_get_their_content_types() {
        let cases: [(Response, &[u8], &str); 5] = [
            ("hi".into_response(), b"hi", TEXT),
            (String::from("hé").into_response(), "hé".as_bytes(), TEXT),
            (vec![0u8, 1].into_response(), &[0, 1], BINARY),
            ((b"raw" as &'static [u8]).into_response(), b"raw", BINARY),
            (
                Html("<p>").into_response(),
                b"<p>",
                "text/html; charset=utf-8",
            ),
        ];
        for (response, body, expected) in cases {
            assert_eq!(response.status(), StatusCode::OK);
            assert_eq!(response.body(), Some(body));
            assert_eq!(content_type(&response), Some(expected));
        }
    }

    #[test]
    fn json_serializes_its_value() {
        let response = Json(serde_json::json!({ "id": 7, "tags": ["a"] })).into_response();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(content_type(&response), Some("application/json"));
        assert_eq!(response.body(), Some(&br#"{"id":7,"tags":["a"]}"#[..]));
    }

    #[test]
    fn json_that_cannot_serialize_is_a_500() {
        // JSON object keys must be strings.
        let value: HashMap<(u8, u8), u8> = HashMap::from([((1, 2), 3)]);
        let response = Json(value).into_response();
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(content_type(&response), Some(TEXT));
        let body = String::from_utf8_lossy(response.body().expect("in memory"));
        assert!(
            body.starts_with("could not serialize the response: "),
            "{body}"
        );
    }

    #[test]
    fn unit_and_status_codes_have_empty_bodies() {
        let response = ().into_response();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.body(), Some(&[][..]));
        assert!(response.headers().is_empty());

        let response = StatusCode::NO_CONTENT.into_response();
        assert_eq!(response.status(), StatusCode::NO_CONTENT);
        assert_eq!(response.body(), Some(&[][..]));
        assert_eq!(content_type(&response), None);
    }

    #[test]
    fn a_status_pair_keeps_the_body_and_its_content_type() {
        let response = (StatusCode::CREATED, Json([1, 2])).into_response();
        assert_eq!(response.status(), StatusCode::CREATED);
        assert_eq!(content_type(&response), Some("application/json"));
        assert_eq!(response.body(), Some(&b"[1,2]"[..]));

        let response = (StatusCode::ACCEPTED, "queued").into_response();
        assert_eq!(response.status(), StatusCode::ACCEPTED);
        assert_eq!(content_type(&response), Some(TEXT));
    }

    #[test]
    fn results_answer_with_either_side() {
        let ok: Result<&'static str, crate::Error> = Ok("fine");
        let response = ok.into_response();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.body(), Some(&b"fine"[..]));

        let err: Result<&'static str, crate::Error> = Err(crate::Error::bad_request("nope"));
        let response = err.into_response();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        assert_eq!(response.body(), Some(&b"nope\n"[..]));

        let nested: Result<(StatusCode, String), StatusCode> = Err(StatusCode::FORBIDDEN);
        assert_eq!(nested.into_response().status(), StatusCode::FORBIDDEN);
    }

    #[test]
    fn an_explicit_content_type_is_not_overridden() {
        let response = Response::new(StatusCode::OK, "a,b")
            .with_header(header::CONTENT_TYPE, "text/csv")
            .with_default_content_type(TEXT);
        assert_eq!(content_type(&response), Some("text/csv"));
        assert_eq!(content_type(&Response::new(StatusCode::OK, "x")), None);
    }

    #[test]
    fn redirect_is_a_303_with_a_location() {
        let response = Response::redirect("/login?next=%2F");
        assert_eq!(response.status(), StatusCode::SEE_OTHER);
        assert_eq!(response.headers()[header::LOCATION], "/login?next=%2F");
        assert_eq!(response.body(), Some(&[][..]));

        let moved = Response::redirect("/new").with_status(StatusCode::PERMANENT_REDIRECT);
        assert_eq!(moved.status(), StatusCode::PERMANENT_REDIRECT);
        assert_eq!(moved.headers()[header::LOCATION], "/new");
    }

    #[test]
    fn with_header_replaces_and_drops_invalid_values() {
        let response = Response::default()
            .with_header(header::CACHE_CONTROL, "no-store")
            .with_header(header::CACHE_CONTROL, "max-age=60");
        assert_eq!(response.headers()[header::CACHE_CONTROL], "max-age=60");
        assert_eq!(
            response
                .headers()
                .get_all(header::CACHE_CONTROL)
                .iter()
                .count(),
            1
        );

        // A newline would split the header: the value is dropped, the
        // earlier one stays.
        let response = response.with_header(header::CACHE_CONTROL, "a\r\nx-injected: 1");
        assert_eq!(response.headers()[header::CACHE_CONTROL], "max-age=60");
        let response = Response::default().with_header(header::ETAG, "bad\nvalue");
        assert!(response.headers().get(header::ETAG).is_none());
    }

    #[test]
    fn with_cookie_appends_one_set_cookie_each() {
        let response = Response::default()
            .with_cookie("session", "abc")
            .with_cookie("theme", "dark")
            .with_cookie("bad", "new\nline");
        let cookies: Vec<&str> = response
            .headers()
            .get_all(header::SET_COOKIE)
            .iter()
            .map(|value| value.to_str().expect("ASCII"))
            .collect();
        assert_eq!(
            cookies,
            [
                "session=abc; Path=/; HttpOnly; SameSite=Lax",
                "theme=dark; Path=/; HttpOnly; SameSite=Lax",
            ]
        );
    }

    #[test]
    fn a_streamed_response_has_no_in_memory_body() {
        let response = Response::stream(|_body| async {});
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.body(), None);
        assert!(format!("{response:?}").contains("stream"));
        let (status, _, body) = response.into_parts();
        assert_eq!(status, StatusCode::OK);
        assert!(matches!(body, OutgoingBody::Stream(_)));
        assert!(format!("{:?}", Response::new(StatusCode::OK, "abc")).contains("3 bytes"));
    }
}

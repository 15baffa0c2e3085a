//! Errors that carry their HTTP status, like Tornado's `HTTPError`.

use crate::response::{IntoResponse, Response};
use ::http::StatusCode;
use ::http::header::{self, HeaderValue};

/// An error a handler returns to answer with a status and a short message.
///
/// ```
/// use squall_sdk::{Error, Request};
/// # use squall_sdk::futures::FutureExt;
/// # use squall_sdk::{Method, StatusCode};
///
/// async fn show(req: Request) -> Result<String, Error> {
///     let id = req.param("id").ok_or_else(Error::not_found)?;
///     Ok(format!("item {id}"))
/// }
/// # let error = show(Request::new(Method::GET, "/items")).now_or_never().expect("ready");
/// # assert_eq!(error.map_err(|err| err.status()), Err(StatusCode::NOT_FOUND));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    status: StatusCode,
    message: String,
}

impl Error {
    /// An error answering `status` with `message` as its plain-text body.
    ///
    /// ```
    /// use squall_sdk::{Error, StatusCode};
    ///
    /// let error = Error::new(StatusCode::TOO_MANY_REQUESTS, "slow down");
    /// assert_eq!(error.to_string(), "429 Too Many Requests: slow down");
    /// ```
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Error {
            status,
            message: message.into(),
        }
    }

    /// `400 Bad Request` with `message`.
    ///
    /// ```
    /// use squall_sdk::{Error, Request};
    /// # use squall_sdk::futures::FutureExt;
    /// # use squall_sdk::{Method, StatusCode};
    ///
    /// async fn square(req: Request) -> Result<String, Error> {
    ///     let n: i64 = req
    ///         .query_arguments().get("n")
    ///         .and_then(|n| n.parse().ok())
    ///         .ok_or_else(|| Error::bad_request("n must be a number"))?;
    ///     Ok((n * n).to_string())
    /// }
    /// # let answer = square(Request::new(Method::GET, "/?n=ten")).now_or_never().expect("ready");
    /// # assert_eq!(answer.map_err(|err| err.status()), Err(StatusCode::BAD_REQUEST));
    /// ```
    pub fn bad_request(message: impl Into<String>) -> Self {
        Error::new(StatusCode::BAD_REQUEST, message)
    }

    /// `404 Not Found`.
    ///
    /// ```
    /// use squall_sdk::{Error, StatusCode};
    ///
    /// let error = Error::not_found();
    /// assert_eq!((error.status(), error.message()), (StatusCode::NOT_FOUND, "Not Found"));
    /// ```
    pub fn not_found() -> Self {
        Error::from(StatusCode::NOT_FOUND)
    }

    /// `500 Internal Server Error` with `message` (say what failed, not
    /// secrets: the client sees it).
    ///
    /// ```
    /// use squall_sdk::{Error, StatusCode};
    ///
    /// let error = Error::internal("the template is missing");
    /// assert_eq!(error.status(), StatusCode::INTERNAL_SERVER_ERROR);
    /// ```
    pub fn internal(message: impl Into<String>) -> Self {
        Error::new(StatusCode::INTERNAL_SERVER_ERROR, message)
    }

    /// `401 Unauthorized`.
    ///
    /// ```
    /// use squall_sdk::{Error, Request};
    /// # use squall_sdk::Method;
    ///
    /// fn check_token(req: &Request) -> Result<(), Error> {
    ///     match req.header("authorization") {
    ///         Some("Bearer s3cret") => Ok(()),
    ///         _ => Err(Error::unauthorized()),
    ///     }
    /// }
    /// # assert!(check_token(&Request::new(Method::GET, "/")).is_err());
    /// # assert!(check_token(&Request::new(Method::GET, "/").with_header("authorization", "Bearer s3cret")).is_ok());
    /// ```
    pub fn unauthorized() -> Self {
        Error::from(StatusCode::UNAUTHORIZED)
    }

    /// `403 Forbidden`.
    ///
    /// ```
    /// use squall_sdk::{Error, Request};
    /// # use squall_sdk::Method;
    ///
    /// fn check_admin(req: &Request) -> Result<(), Error> {
    ///     if req.cookie("role") != Some("admin") {
    ///         return Err(Error::forbidden());
    ///     }
    ///     Ok(())
    /// }
    /// # assert!(check_admin(&Request::new(Method::GET, "/").with_cookie("role", "admin")).is_ok());
    /// # assert!(check_admin(&Request::new(Method::GET, "/")).is_err());
    /// ```
    pub fn forbidden() -> Self {
        Error::from(StatusCode::FORBIDDEN)
    }

    /// `409 Conflict` with `message`.
    ///
    /// ```
    /// use squall_sdk::{Error, StatusCode};
    ///
    /// let error = Error::conflict("that name is taken");
    /// assert_eq!(error.status(), StatusCode::CONFLICT);
    /// ```
    pub fn conflict(message: impl Into<String>) -> Self {
        Error::new(StatusCode::CONFLICT, message)
    }

    /// The status this error answers with.
    ///
    /// ```
    /// use squall_sdk::{Error, StatusCode};
    ///
    /// assert_eq!(Error::forbidden().status(), StatusCode::FORBIDDEN);
    /// ```
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The message sent as the body.
    ///
    /// ```
    /// use squall_sdk::Error;
    ///
    /// assert_eq!(Error::bad_request("missing name").message(), "missing name");
    /// ```
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl Error {
    /// A host capability's refusal or failure (`?` on a store, pub/sub,
    /// fetch or WebSocket error): the client is told the status only, as
    /// Tornado does outside debug mode; the detail, which can name the
    /// app's grants and limits, goes to the log at WARN. In debug mode
    /// (the app's config value `debug = "true"`, or `squall serve --dev`)
    /// the client sees the detail too.
    pub(crate) fn from_capability(status: StatusCode, detail: String) -> Error {
        crate::log::warn(format!("{status}: {detail}"));
        if crate::config::get("debug").as_deref() == Some("true") {
            Error::new(status, detail)
        } else {
            Error::new(status, status.canonical_reason().unwrap_or("Error"))
        }
    }
}

impl From<StatusCode> for Error {
    /// An error whose message is the status's reason phrase.
    fn from(status: StatusCode) -> Self {
        Error::new(status, status.canonical_reason().unwrap_or("Error"))
    }
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.status, self.message)
    }
}

impl std::error::Error for Error {}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let mut response = Response::new(self.status, format!("{}\n", self.message));
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        response.with_error(self.message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_error_carries_its_status_and_message() {
        let error = Error::new(StatusCode::CONFLICT, "already there");
        assert_eq!(error.status(), StatusCode::CONFLICT);
        assert_eq!(error.message(), "already there");
        assert_eq!(error.to_string(), "409 Conflict: already there");

        let error = Error::bad_request("missing field");
        assert_eq!(
            (error.status(), error.message()),
            (StatusCode::BAD_REQUEST, "missing field")
        );
        let error = Error::not_found();
        assert_eq!(
            (error.status(), error.message()),
            (StatusCode::NOT_FOUND, "Not Found")
        );
    }

    #[test]
    fn from_a_status_uses_its_reason_phrase() {
        assert_eq!(
            Error::from(StatusCode::TOO_MANY_REQUESTS).message(),
            "Too Many Requests"
        );
        let unnamed = StatusCode::from_u16(599).expect("a valid status");
        let error = Error::from(unnamed);
        assert_eq!((error.status(), error.message()), (unnamed, "Error"));
    }

    #[test]
    fn into_response_is_plain_text_with_a_newline() {
        let response = Error::new(StatusCode::UNAUTHORIZED, "log in first").into_response();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(
            response.headers()[header::CONTENT_TYPE],
            "text/plain; charset=utf-8"
        );
        assert_eq!(response.body(), Some(&b"log in first\n"[..]));
    }

    #[test]
    fn every_sdk_error_converts_with_its_status() {
        use crate::http::FetchError;
        use crate::kv::KvError;
        use crate::pubsub::PubSubError;
        use crate::websocket::SendError;
        let cases = [
            (
                Error::from(FetchError::Timeout),
                StatusCode::GATEWAY_TIMEOUT,
            ),
            (
                Error::from(FetchError::Connect("refused".into())),
                StatusCode::BAD_GATEWAY,
            ),
            (
                Error::from(PubSubError::Limit("pubsub_topics".into())),
                StatusCode::SERVICE_UNAVAILABLE,
            ),
            (Error::from(SendError::Closed), StatusCode::GONE),
            (Error::from(crate::Elapsed), StatusCode::GATEWAY_TIMEOUT),
            (
                Error::from(KvError::Quota("kv_max_bytes".into())),
                StatusCode::INSUFFICIENT_STORAGE,
            ),
            (Error::internal("broke"), StatusCode::INTERNAL_SERVER_ERROR),
            (Error::forbidden(), StatusCode::FORBIDDEN),
        ];
        for (error, status) in cases {
            assert_eq!(error.status(), status, "{error}");
        }
    }

    #[test]
    fn handlers_can_use_question_mark_on_statuses() {
        fn check(allowed: bool) -> Result<&'static str, Error> {
            if !allowed {
                Err(StatusCode::FORBIDDEN)?;
            }
            Ok("in")
        }
        assert_eq!(check(true), Ok("in"));
        assert_eq!(check(false), Err(Error::from(StatusCode::FORBIDDEN)));
    }
}

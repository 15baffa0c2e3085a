//! Errors that carry their HTTP status, like Tornado's `HTTPError`.

use crate::response::{IntoResponse, Response};
use ::http::StatusCode;
use ::http::header::{self, HeaderValue};

/// An error a handler returns to answer with a status and a short message.
///
/// ```ignore
/// async fn show(req: Request) -> Result<String, Error> {
///     let id = req.param("id").ok_or_else(|| Error::not_found())?;
///     Ok(format!("item {id}"))
/// }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    status: StatusCode,
    message: String,
}

impl Error {
    /// An error answering `status` with `message` as its plain-text body.
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Error {
            status,
            message: message.into(),
        }
    }

    /// `400 Bad Request` with `message`.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Error::new(StatusCode::BAD_REQUEST, message)
    }

    /// `404 Not Found`.
    pub fn not_found() -> Self {
        Error::from(StatusCode::NOT_FOUND)
    }

    /// The status this error answers with.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The message sent as the body.
    pub fn message(&self) -> &str {
        &self.message
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
        let mut response = Response::new(self.status, self.message + "\n");
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        response
    }
}

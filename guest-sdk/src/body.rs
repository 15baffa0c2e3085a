//! Message bodies: the incoming request body and the writer of streamed responses.

use crate::{Error, sys};
use ::http::StatusCode;
use std::future::Future;
use std::pin::Pin;

/// The body of an incoming request, read once, in chunks or whole.
///
/// ```
/// # use squall_sdk::Request;
/// # use squall_sdk::Method;
/// # use squall_sdk::futures::FutureExt;
/// async fn upload(mut req: Request) -> String {
///     let mut body = req.take_body();
///     let mut total = 0;
///     while let Some(chunk) = body.chunk().await {
///         total += chunk.len();
///     }
///     format!("{total} bytes")
/// }
/// # let request = Request::new(Method::POST, "/upload").with_body("hello");
/// # assert_eq!(upload(request).now_or_never().expect("ready"), "5 bytes");
/// ```
#[derive(Debug, Default)]
pub struct Body {
    inner: Source,
}

#[derive(Debug)]
enum Source {
    /// What the host delivers.
    Host(sys::IncomingBody),
    /// Bytes already in memory (a request built by hand, in a test).
    Memory(Option<Vec<u8>>),
    /// Bytes read ahead (to look into a form), then the rest.
    Prefixed(Option<Vec<u8>>, Box<Body>),
}

impl Default for Source {
    fn default() -> Self {
        Source::Host(sys::IncomingBody::default())
    }
}

impl Body {
    /// A body read from the backend's incoming body.
    /// `prefix` (bytes already read from `rest`), then the rest of `rest`.
    pub(crate) fn prefixed(prefix: Vec<u8>, rest: Body) -> Self {
        Body {
            inner: Source::Prefixed(Some(prefix), Box::new(rest)),
        }
    }

    pub(crate) fn from_sys(inner: sys::IncomingBody) -> Self {
        Body {
            inner: Source::Host(inner),
        }
    }

    /// A body of `bytes`, already in memory (e.g. for a request built in a
    /// test with [`Request::with_body`](crate::Request::with_body)).
    ///
    /// ```
    /// use squall_sdk::Body;
    /// # use squall_sdk::futures::FutureExt;
    ///
    /// let body = Body::from_bytes("name=ada");
    /// assert_eq!(body.text().now_or_never(), Some(Ok("name=ada".to_owned())));
    /// ```
    pub fn from_bytes(bytes: impl Into<Vec<u8>>) -> Self {
        let bytes = bytes.into();
        Body {
            inner: Source::Memory((!bytes.is_empty()).then_some(bytes)),
        }
    }

    /// The next chunk of the body, or `None` at its end.
    ///
    /// ```
    /// use squall_sdk::{Error, Request};
    /// # use squall_sdk::Method;
    /// # use squall_sdk::futures::FutureExt;
    ///
    /// async fn count_lines(mut req: Request) -> Result<String, Error> {
    ///     let mut body = req.take_body();
    ///     let mut lines = 0;
    ///     while let Some(chunk) = body.chunk().await {
    ///         lines += chunk.iter().filter(|&&byte| byte == b'\n').count();
    ///     }
    ///     Ok(format!("{lines} lines"))
    /// }
    /// # let request = Request::new(Method::POST, "/import").with_body("a\nb\nc\n");
    /// # assert_eq!(count_lines(request).now_or_never().expect("ready"), Ok("3 lines".to_owned()));
    /// ```
    pub async fn chunk(&mut self) -> Option<Vec<u8>> {
        match &mut self.inner {
            Source::Host(body) => body.chunk().await,
            Source::Memory(bytes) => bytes.take(),
            Source::Prefixed(prefix, rest) => match prefix.take() {
                Some(bytes) if !bytes.is_empty() => Some(bytes),
                _ => Box::pin(rest.chunk()).await,
            },
        }
    }

    /// The whole body, read to its end.
    ///
    /// ```
    /// use squall_sdk::Request;
    /// # use squall_sdk::Method;
    /// # use squall_sdk::futures::FutureExt;
    ///
    /// async fn checksum(mut req: Request) -> String {
    ///     let bytes = req.take_body().bytes().await;
    ///     let sum = bytes.iter().fold(0u8, |sum, byte| sum.wrapping_add(*byte));
    ///     format!("{} bytes, sum {sum}", bytes.len())
    /// }
    /// # let request = Request::new(Method::PUT, "/blob").with_body(vec![1, 2, 3]);
    /// # assert_eq!(checksum(request).now_or_never().expect("ready"), "3 bytes, sum 6");
    /// ```
    pub async fn bytes(mut self) -> Vec<u8> {
        let mut all = Vec::new();
        while let Some(chunk) = self.chunk().await {
            if all.is_empty() {
                all = chunk;
            } else {
                all.extend_from_slice(&chunk);
            }
        }
        all
    }

    /// The whole body as UTF-8 text; `400 Bad Request` if it is not.
    ///
    /// ```
    /// use squall_sdk::{Error, Request};
    /// # use squall_sdk::futures::FutureExt;
    /// # use squall_sdk::{Method, StatusCode};
    ///
    /// async fn word_count(mut req: Request) -> Result<String, Error> {
    ///     let text = req.take_body().text().await?;
    ///     Ok(text.split_whitespace().count().to_string())
    /// }
    /// # let request = Request::new(Method::POST, "/count").with_body("to be or not");
    /// # assert_eq!(word_count(request).now_or_never().expect("ready"), Ok("4".to_owned()));
    /// # let request = Request::new(Method::POST, "/count").with_body(vec![0xff]);
    /// # let error = word_count(request).now_or_never().expect("ready").expect_err("not UTF-8");
    /// # assert_eq!(error.status(), StatusCode::BAD_REQUEST);
    /// ```
    pub async fn text(self) -> Result<String, Error> {
        String::from_utf8(self.bytes().await)
            .map_err(|_| Error::new(StatusCode::BAD_REQUEST, "request body is not valid UTF-8"))
    }
}

/// A body writer's work, run after the handler returns.
pub(crate) type BodyTask = Box<dyn FnOnce(BodyWriter) -> Pin<Box<dyn Future<Output = ()>>>>;

pub(crate) fn body_task<F, Fut>(write: F) -> BodyTask
where
    F: FnOnce(BodyWriter) -> Fut + 'static,
    Fut: Future<Output = ()> + 'static,
{
    Box::new(move |writer| Box::pin(write(writer)))
}

/// An outgoing body (a response's or a fetch request's): in memory, or
/// written by a task while it is being sent.
pub(crate) enum OutgoingBody {
    Bytes(Vec<u8>),
    Stream(BodyTask),
}

/// The sending end of a streamed response body.
///
/// Each [`write`](BodyWriter::write) waits until the host has taken the
/// bytes, so a slow client slows the writer down instead of filling memory.
///
/// ```
/// use squall_sdk::{BodyWriter, Request, Response, header};
///
/// async fn export(_req: Request) -> Response {
///     Response::stream(|mut body: BodyWriter| async move {
///         let _ = body.write("id,name\n").await;
///         for id in 1..=1000 {
///             if body.write(format!("{id},user {id}\n")).await.is_err() {
///                 return; // the client left
///             }
///         }
///     })
///     .with_header(header::CONTENT_TYPE, "text/csv")
/// }
/// # use squall_sdk::futures::FutureExt;
/// # let response = export(Request::new(squall_sdk::Method::GET, "/export.csv")).now_or_never().expect("ready");
/// # assert_eq!(response.body(), None);
/// # assert_eq!(response.headers()[header::CONTENT_TYPE], "text/csv");
/// ```
#[derive(Debug)]
pub struct BodyWriter {
    sink: sys::BodySink,
}

/// The client went away before the whole body was sent.
///
/// ```
/// use squall_sdk::{BodyWriter, Disconnected};
///
/// async fn send_rows(body: &mut BodyWriter, rows: &[String]) -> Result<(), Disconnected> {
///     for row in rows {
///         body.write(format!("{row}\n")).await?;
///     }
///     Ok(())
/// }
/// # assert_eq!(Disconnected.to_string(), "the client disconnected");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Disconnected;

impl std::fmt::Display for Disconnected {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the client disconnected")
    }
}

impl std::error::Error for Disconnected {}

impl BodyWriter {
    /// A writer feeding the backend's `sink`.
    pub(crate) fn new(sink: sys::BodySink) -> Self {
        BodyWriter { sink }
    }

    /// Send `chunk` to the client, waiting until the host has accepted it.
    ///
    /// ```no_run
    /// use squall_sdk::{Request, Response};
    ///
    /// async fn countdown(_req: Request) -> Response {
    ///     Response::stream(|mut body| async move {
    ///         for n in (1..=10).rev() {
    ///             if body.write(format!("{n}...\n")).await.is_err() {
    ///                 return;
    ///             }
    ///             squall_sdk::sleep(std::time::Duration::from_secs(1)).await;
    ///         }
    ///         let _ = body.write("liftoff!\n").await;
    ///     })
    /// }
    /// ```
    pub async fn write(&mut self, chunk: impl Into<Vec<u8>>) -> Result<(), Disconnected> {
        let chunk = chunk.into();
        if chunk.is_empty() {
            return Ok(());
        }
        self.sink.write(chunk).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::FutureExt;

    #[test]
    fn a_default_body_is_empty() {
        let mut body = Body::default();
        assert_eq!(body.chunk().now_or_never().expect("ready"), None);
        assert_eq!(Body::default().bytes().now_or_never().expect("ready"), b"");
        assert_eq!(
            Body::default().text().now_or_never().expect("ready"),
            Ok(String::new())
        );
    }

    #[test]
    fn disconnected_says_who_left() {
        assert_eq!(Disconnected.to_string(), "the client disconnected");
    }
}

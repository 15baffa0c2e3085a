//! Message bodies: the incoming request body and the writer of streamed responses.

use crate::Error;
#[cfg(not(feature = "wasi-http"))]
use crate::bindings::{squall::app::types as wit, wit_stream};
use ::http::StatusCode;
use std::future::Future;
use std::pin::Pin;
#[cfg(not(feature = "wasi-http"))]
use wit_bindgen::{StreamReader, StreamResult, StreamWriter};

/// How many bytes one read from a body stream asks for.
#[cfg(not(feature = "wasi-http"))]
const READ_CHUNK: usize = 64 * 1024;

/// The body of an incoming request, read once, in chunks or whole.
///
/// ```ignore
/// let mut body = req.take_body();
/// while let Some(chunk) = body.chunk().await {
///     total += chunk.len();
/// }
/// ```
#[derive(Debug, Default)]
pub struct Body {
    inner: Incoming,
}

#[derive(Debug, Default)]
enum Incoming {
    #[default]
    Empty,
    #[cfg_attr(feature = "wasi-http", allow(dead_code))]
    Bytes(Vec<u8>),
    #[cfg(not(feature = "wasi-http"))]
    Stream(StreamReader<u8>),
    #[cfg(feature = "wasi-http")]
    Standard(Opaque<wasip3::http_compat::IncomingRequestBody>),
}

/// A value whose `Debug` says only that it is there.
#[cfg(feature = "wasi-http")]
pub(crate) struct Opaque<T>(pub T);

#[cfg(feature = "wasi-http")]
impl<T> std::fmt::Debug for Opaque<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("..")
    }
}

impl Body {
    #[cfg(feature = "wasi-http")]
    pub(crate) fn from_standard(body: wasip3::http_compat::IncomingRequestBody) -> Self {
        Body {
            inner: Incoming::Standard(Opaque(body)),
        }
    }

    #[cfg(not(feature = "wasi-http"))]
    pub(crate) fn from_wit(body: wit::Body) -> Self {
        let inner = match body {
            wit::Body::Empty => Incoming::Empty,
            wit::Body::Bytes(bytes) if bytes.is_empty() => Incoming::Empty,
            wit::Body::Bytes(bytes) => Incoming::Bytes(bytes),
            wit::Body::Stream(stream) => Incoming::Stream(stream),
        };
        Body { inner }
    }

    /// The next chunk of the body, or `None` at its end.
    pub async fn chunk(&mut self) -> Option<Vec<u8>> {
        match std::mem::take(&mut self.inner) {
            Incoming::Empty => None,
            Incoming::Bytes(bytes) => Some(bytes),
            #[cfg(feature = "wasi-http")]
            Incoming::Standard(Opaque(mut body)) => {
                use http_body_util::BodyExt;
                while let Some(Ok(frame)) = body.frame().await {
                    if let Ok(data) = frame.into_data() {
                        self.inner = Incoming::Standard(Opaque(body));
                        return Some(data.to_vec());
                    }
                }
                None
            }
            #[cfg(not(feature = "wasi-http"))]
            Incoming::Stream(mut stream) => {
                let (result, chunk) = stream.read(Vec::with_capacity(READ_CHUNK)).await;
                match result {
                    StreamResult::Dropped if chunk.is_empty() => None,
                    StreamResult::Dropped => Some(chunk),
                    StreamResult::Complete(_) | StreamResult::Cancelled => {
                        self.inner = Incoming::Stream(stream);
                        Some(chunk)
                    }
                }
            }
        }
    }

    /// The whole body, read to its end.
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

/// The sending end of a streamed response body.
///
/// Each [`write`](BodyWriter::write) waits until the host has taken the
/// bytes, so a slow client slows the writer down instead of filling memory.
#[derive(Debug)]
pub struct BodyWriter {
    #[cfg(not(feature = "wasi-http"))]
    stream: StreamWriter<u8>,
    #[cfg(feature = "wasi-http")]
    chunks: futures::channel::mpsc::Sender<bytes::Bytes>,
}

/// The client went away before the whole body was sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Disconnected;

impl std::fmt::Display for Disconnected {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the client disconnected")
    }
}

impl std::error::Error for Disconnected {}

impl BodyWriter {
    #[cfg(not(feature = "wasi-http"))]
    pub(crate) fn new() -> (BodyWriter, StreamReader<u8>) {
        let (stream, reader) = wit_stream::new::<u8>();
        (BodyWriter { stream }, reader)
    }

    /// A writer and the chunks it sends (one at a time: backpressure).
    #[cfg(feature = "wasi-http")]
    pub(crate) fn new() -> (BodyWriter, futures::channel::mpsc::Receiver<bytes::Bytes>) {
        let (chunks, receiver) = futures::channel::mpsc::channel(0);
        (BodyWriter { chunks }, receiver)
    }

    /// Send `chunk` to the client, waiting until the host has accepted it.
    pub async fn write(&mut self, chunk: impl Into<Vec<u8>>) -> Result<(), Disconnected> {
        let chunk = chunk.into();
        if chunk.is_empty() {
            return Ok(());
        }
        #[cfg(not(feature = "wasi-http"))]
        {
            let unsent = self.stream.write_all(chunk).await;
            if unsent.is_empty() {
                Ok(())
            } else {
                Err(Disconnected)
            }
        }
        #[cfg(feature = "wasi-http")]
        {
            use futures::SinkExt;
            self.chunks
                .send(bytes::Bytes::from(chunk))
                .await
                .map_err(|_| Disconnected)
        }
    }
}

//! Plain TCP connections, in the style of Tornado's `TCPServer` and
//! `IOStream`: the host accepts connections on the listeners the manifest
//! gives the app (`[[app.NAME.tcp]]`) and hands each to the handler set
//! with [`Router::tcp`](crate::Router::tcp), in an instance of its own for
//! the connection's whole life (state lives in guest memory).
//!
//! A line-based echo server, testable with `nc 127.0.0.1 7000`:
//!
//! ```no_run
//! use squall_sdk::Router;
//! use squall_sdk::tcp::{ReadError, TcpStream};
//!
//! fn app() -> Router {
//!     Router::new().tcp(echo)
//! }
//!
//! async fn echo(mut stream: TcpStream) -> Result<(), ReadError> {
//!     loop {
//!         let line = stream.read_until(b"\n", 4096).await?;
//!         if stream.write(line).await.is_err() {
//!             return Ok(());
//!         }
//!     }
//! }
//!
//! squall_sdk::export!(app);
//! ```
//!
//! Both directions are pulled: the host reads from the socket only when the
//! handler reads, and a write waits until the client has taken the bytes,
//! so neither a fast client nor a fast handler makes anyone buffer without
//! bound. Dropping the [`TcpWriter`] (every clone of it) half-closes the
//! connection; the connection closes once the handler and what it spawned
//! are done.
//!
//! A listener in hibernate mode (`mode = "hibernate"`) instead hands each
//! line the client sends to a fresh instance, with [`TcpEvents`] set by
//! [`Router::tcp_events`](crate::Router::tcp_events): no instance is alive
//! while a connection idles, and what the handlers send, subscribe and
//! keep goes through the host ([`TcpConnection`]).

// Built for a standard host no connection ever arrives.
#![cfg_attr(feature = "wasi-http", allow(dead_code))]

mod events;

#[doc(hidden)]
pub use events::{TcpConnection, TcpEvent, TcpEvents};

use crate::sys;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;

/// One accepted connection: who it is from, and its two directions.
#[derive(Debug)]
pub struct TcpStream {
    info: ConnectionInfo,
    reader: TcpReader,
    writer: TcpWriter,
}

/// Where a connection comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionInfo {
    /// Unique in the host for the connection's lifetime.
    pub id: u64,
    /// The client's address, `127.0.0.1:50312`.
    pub peer: String,
    /// The listener that accepted it: its `name` in the manifest, else its address.
    pub listener: String,
}

impl TcpStream {
    pub(crate) fn new(info: ConnectionInfo, input: sys::TcpInput, output: sys::TcpOutput) -> Self {
        TcpStream {
            info,
            reader: TcpReader::new(input),
            writer: TcpWriter::new(output),
        }
    }

    /// Who the connection is from.
    pub fn info(&self) -> &ConnectionInfo {
        &self.info
    }

    /// The client's address, `127.0.0.1:50312`.
    pub fn peer(&self) -> &str {
        &self.info.peer
    }

    /// The next bytes the client sent; `None` once it has half-closed.
    pub async fn read(&mut self) -> Option<Vec<u8>> {
        self.reader.read().await
    }

    /// Bytes up to and including the first `delimiter`; see [`TcpReader::read_until`].
    pub async fn read_until(
        &mut self,
        delimiter: &[u8],
        max_bytes: usize,
    ) -> Result<Vec<u8>, ReadError> {
        self.reader.read_until(delimiter, max_bytes).await
    }

    /// Exactly `count` bytes; see [`TcpReader::read_exact`].
    pub async fn read_exact(&mut self, count: usize) -> Result<Vec<u8>, ReadError> {
        self.reader.read_exact(count).await
    }

    /// One frame of a protocol; see [`TcpReader::read_frame`].
    pub async fn read_frame<T>(
        &mut self,
        max_bytes: usize,
        decode: impl FnMut(&[u8]) -> Result<Option<(T, usize)>, String>,
    ) -> Result<T, ReadError> {
        self.reader.read_frame(max_bytes, decode).await
    }

    /// Send `bytes`, waiting until the host has taken them (as fast as the
    /// peer reads).
    pub async fn write(&mut self, bytes: impl Into<Vec<u8>>) -> Result<(), Closed> {
        self.writer.write(bytes).await
    }

    /// The two directions apart: read in one task, write from others
    /// (the writer clones).
    pub fn split(self) -> (TcpReader, TcpWriter) {
        (self.reader, self.writer)
    }
}

/// Open a TCP connection to `host:port` (Tornado's `TCPClient.connect`),
/// if the manifest's `tcp_outbound` allows it: a rule naming the host and
/// port (`"db.internal:5432"`, `"*.example.com:*"`), and for a name that
/// resolves to an internal address, a rule naming that address.
///
/// ```no_run
/// use squall_sdk::tcp;
///
/// async fn ping_redis() -> Result<bool, Box<dyn std::error::Error>> {
///     let mut redis = tcp::connect("127.0.0.1", 6379).await?;
///     redis.write("PING\r\n").await?;
///     Ok(redis.read_until(b"\r\n", 512).await? == b"+PONG\r\n")
/// }
/// ```
pub async fn connect(host: &str, port: u16) -> Result<TcpStream, ConnectError> {
    sys::tcp_connect(host, port).await
}

/// Why [`connect`] found no connection.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConnectError {
    /// The manifest does not allow the destination (or its name resolves
    /// to an internal address no rule names).
    Denied(String),
    /// The app has `tcp_outbound_connections` open.
    Limit(String),
    /// The name did not resolve, or the peer refused or was unreachable.
    Failed(String),
    /// No connection within the app's `tcp_connect_timeout`.
    Timeout,
}

impl std::fmt::Display for ConnectError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ConnectError::Denied(why) => write!(f, "tcp connect denied: {why}"),
            ConnectError::Limit(why) => write!(f, "tcp connect over a limit: {why}"),
            ConnectError::Failed(why) => write!(f, "tcp connect failed: {why}"),
            ConnectError::Timeout => f.write_str("tcp connect timed out"),
        }
    }
}

impl std::error::Error for ConnectError {}

/// What a client sends, with a buffer for reads that wait for a delimiter
/// or a count (Tornado's `read_until` and `read_bytes`).
#[derive(Debug)]
pub struct TcpReader {
    input: Option<Input>,
    /// Received and not yet handed out.
    buffered: Vec<u8>,
}

/// Why a read that waits for more could not finish.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ReadError {
    /// The client half-closed (or went away) first; what it sent after the
    /// last complete read is here.
    Closed(Vec<u8>),
    /// No delimiter (or whole frame) within `max_bytes`: the caller's
    /// bound on what it buffers.
    TooLong,
    /// Bytes that can never be a frame, as the decoder said.
    Invalid(String),
}

impl std::fmt::Display for ReadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReadError::Closed(_) => f.write_str("the client closed the connection"),
            ReadError::TooLong => f.write_str("no delimiter within the read's limit"),
            ReadError::Invalid(why) => write!(f, "malformed input: {why}"),
        }
    }
}

impl std::error::Error for ReadError {}

/// Where a reader's bytes come from.
#[derive(Debug)]
enum Input {
    Host(sys::TcpInput),
    /// Chunks given up front (unit tests of the framing).
    #[cfg(test)]
    Chunks(std::collections::VecDeque<Vec<u8>>),
}

impl Input {
    async fn chunk(&mut self) -> Option<Vec<u8>> {
        match self {
            Input::Host(input) => input.chunk().await,
            #[cfg(test)]
            Input::Chunks(chunks) => chunks.pop_front(),
        }
    }
}

impl TcpReader {
    fn new(input: sys::TcpInput) -> Self {
        TcpReader {
            input: Some(Input::Host(input)),
            buffered: Vec::new(),
        }
    }

    /// The next bytes the client sent (whatever arrived, buffered ones
    /// first); `None` once it has half-closed and nothing is left.
    pub async fn read(&mut self) -> Option<Vec<u8>> {
        if !self.buffered.is_empty() {
            return Some(std::mem::take(&mut self.buffered));
        }
        self.receive().await
    }

    /// Bytes up to and including the first `delimiter` (`b"\n"`, `b"\r\n"`).
    /// At most `max_bytes` are buffered while waiting: a client that sends
    /// more without a delimiter gets [`ReadError::TooLong`].
    pub async fn read_until(
        &mut self,
        delimiter: &[u8],
        max_bytes: usize,
    ) -> Result<Vec<u8>, ReadError> {
        let mut searched = 0;
        loop {
            if let Some(at) = find(&self.buffered[searched..], delimiter) {
                let end = searched + at + delimiter.len();
                let rest = self.buffered.split_off(end);
                return Ok(std::mem::replace(&mut self.buffered, rest));
            }
            if self.buffered.len() >= max_bytes {
                return Err(ReadError::TooLong);
            }
            // A delimiter may straddle what has arrived and what comes next.
            searched = self
                .buffered
                .len()
                .saturating_sub(delimiter.len().saturating_sub(1));
            match self.receive().await {
                Some(chunk) => self.buffered.extend_from_slice(&chunk),
                None => return Err(ReadError::Closed(std::mem::take(&mut self.buffered))),
            }
        }
    }

    /// One frame of a protocol: `decode` looks at what has arrived and
    /// returns the frame and how many bytes it took, `Ok(None)` if it needs
    /// more, or why the bytes can never be a frame. At most `max_bytes` are
    /// buffered while waiting.
    ///
    /// ```
    /// # use squall_sdk::tcp::TcpReader;
    /// // A length-prefixed frame: one byte of length, then the bytes.
    /// fn decode(bytes: &[u8]) -> Result<Option<(Vec<u8>, usize)>, String> {
    ///     let Some((&length, rest)) = bytes.split_first() else { return Ok(None) };
    ///     let length = usize::from(length);
    ///     Ok((rest.len() >= length).then(|| (rest[..length].to_vec(), 1 + length)))
    /// }
    /// # async fn read(reader: &mut TcpReader) {
    /// let frame = reader.read_frame(256, decode).await;
    /// # }
    /// ```
    pub async fn read_frame<T>(
        &mut self,
        max_bytes: usize,
        mut decode: impl FnMut(&[u8]) -> Result<Option<(T, usize)>, String>,
    ) -> Result<T, ReadError> {
        loop {
            if !self.buffered.is_empty()
                && let Some((frame, used)) = decode(&self.buffered).map_err(ReadError::Invalid)?
            {
                self.buffered.drain(..used.min(self.buffered.len()));
                return Ok(frame);
            }
            if self.buffered.len() >= max_bytes {
                return Err(ReadError::TooLong);
            }
            match self.receive().await {
                Some(chunk) => self.buffered.extend_from_slice(&chunk),
                None => return Err(ReadError::Closed(std::mem::take(&mut self.buffered))),
            }
        }
    }

    /// Exactly `count` bytes (Tornado's `read_bytes`).
    pub async fn read_exact(&mut self, count: usize) -> Result<Vec<u8>, ReadError> {
        while self.buffered.len() < count {
            match self.receive().await {
                Some(chunk) => self.buffered.extend_from_slice(&chunk),
                None => return Err(ReadError::Closed(std::mem::take(&mut self.buffered))),
            }
        }
        let rest = self.buffered.split_off(count);
        Ok(std::mem::replace(&mut self.buffered, rest))
    }

    async fn receive(&mut self) -> Option<Vec<u8>> {
        let input = self.input.as_mut()?;
        match input.chunk().await {
            Some(chunk) => Some(chunk),
            None => {
                self.input = None;
                None
            }
        }
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() {
        return Some(0);
    }
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
}

/// What goes to the client. Clones share the connection: it half-closes
/// once every clone is dropped.
#[derive(Debug, Clone)]
pub struct TcpWriter {
    output: Rc<futures::lock::Mutex<sys::TcpOutput>>,
}

/// The client is gone: what was written is lost.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Closed;

impl std::fmt::Display for Closed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the connection is closed")
    }
}

impl std::error::Error for Closed {}

impl TcpWriter {
    fn new(output: sys::TcpOutput) -> Self {
        TcpWriter {
            output: Rc::new(futures::lock::Mutex::new(output)),
        }
    }

    /// Send `bytes`, waiting until the host has taken them (as fast as the
    /// client reads). Writes from clones go out whole, one after another.
    pub async fn write(&self, bytes: impl Into<Vec<u8>>) -> Result<(), Closed> {
        let bytes = bytes.into();
        if bytes.is_empty() {
            return Ok(());
        }
        self.output.lock().await.write(bytes).await
    }
}

/// What a TCP handler may return: nothing, or a result whose error is
/// logged as a warning.
pub trait Finished {
    #[doc(hidden)]
    fn report(self);
}

impl Finished for () {
    fn report(self) {}
}

impl<E: std::fmt::Display> Finished for Result<(), E> {
    fn report(self) {
        if let Err(error) = self {
            crate::log::warn(format!("tcp connection handler: {error}"));
        }
    }
}

type BoxedHandler = dyn Fn(TcpStream) -> Pin<Box<dyn Future<Output = ()>>>;

/// A connection handler, as the router keeps it.
#[derive(Clone)]
pub(crate) struct TcpHandler(Rc<BoxedHandler>);

impl TcpHandler {
    pub(crate) fn new<F, Fut>(handler: F) -> Self
    where
        F: Fn(TcpStream) -> Fut + 'static,
        Fut: Future + 'static,
        Fut::Output: Finished,
    {
        TcpHandler(Rc::new(move |stream| {
            let running = handler(stream);
            Box::pin(async move { running.await.report() })
        }))
    }

    /// Serve `stream` in a task of its own: the export returns at once
    /// and the instance lives until the task is done.
    pub(crate) fn serve(&self, stream: TcpStream) {
        crate::spawn((self.0)(stream));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::FutureExt;

    fn reader(chunks: &[&[u8]]) -> TcpReader {
        TcpReader {
            input: Some(Input::Chunks(
                chunks.iter().map(|chunk| chunk.to_vec()).collect(),
            )),
            buffered: Vec::new(),
        }
    }

    fn ready<T>(future: impl Future<Output = T>) -> T {
        future.now_or_never().expect("no host call, so ready")
    }

    #[test]
    fn lines_come_whole_however_the_bytes_arrive() {
        let mut lines = reader(&[b"he", b"llo\r", b"\nwor", b"ld\r\nrest"]);
        assert_eq!(
            ready(lines.read_until(b"\r\n", 100)),
            Ok(b"hello\r\n".to_vec())
        );
        assert_eq!(
            ready(lines.read_until(b"\r\n", 100)),
            Ok(b"world\r\n".to_vec())
        );
        assert_eq!(
            ready(lines.read_until(b"\r\n", 100)),
            Err(ReadError::Closed(b"rest".to_vec()))
        );
        assert_eq!(ready(lines.read()), None);
    }

    #[test]
    fn a_line_longer_than_its_bound_is_refused() {
        let mut lines = reader(&[b"aaaa", b"aaaa", b"aaaa\n"]);
        assert_eq!(ready(lines.read_until(b"\n", 8)), Err(ReadError::TooLong));
    }

    #[test]
    fn frames_wait_for_their_bytes_and_bad_ones_are_refused() {
        let decode = |bytes: &[u8]| -> Result<Option<(Vec<u8>, usize)>, String> {
            let (&length, rest) = bytes.split_first().expect("called with bytes");
            if length == 0 {
                return Err("empty frame".into());
            }
            let length = usize::from(length);
            Ok((rest.len() >= length).then(|| (rest[..length].to_vec(), 1 + length)))
        };
        let mut frames = reader(&[&[3, b'a'], &[b'b', b'c', 1], &[b'z', 0]]);
        assert_eq!(ready(frames.read_frame(16, decode)), Ok(b"abc".to_vec()));
        assert_eq!(ready(frames.read_frame(16, decode)), Ok(b"z".to_vec()));
        assert_eq!(
            ready(frames.read_frame(16, decode)),
            Err(ReadError::Invalid("empty frame".into()))
        );
        let mut long = reader(&[&[200; 10], &[200; 10]]);
        assert_eq!(ready(long.read_frame(16, decode)), Err(ReadError::TooLong));
    }

    #[test]
    fn exact_reads_split_and_join_chunks() {
        let mut bytes = reader(&[b"abc", b"defgh"]);
        assert_eq!(ready(bytes.read_exact(2)), Ok(b"ab".to_vec()));
        assert_eq!(ready(bytes.read_exact(4)), Ok(b"cdef".to_vec()));
        assert_eq!(ready(bytes.read()), Some(b"gh".to_vec()));
        assert_eq!(
            ready(bytes.read_exact(1)),
            Err(ReadError::Closed(Vec::new()))
        );
    }
}

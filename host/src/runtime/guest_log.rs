//! Guest stdout and stderr, forwarded line by line to the host's log.
//!
//! Each line is logged inside the request's span, so it carries the app
//! name and request id. Output past the request's budget (stdout and stderr
//! together, the app's `log_per_request`) is dropped: a guest cannot make
//! the host buffer or log without bound.

use crate::limit_log::{Limit, LimitHits};
use bytes::Bytes;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::{Context, Poll};
use tokio::io::AsyncWrite;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};

/// Longest line kept whole; longer lines are split.
const MAX_LINE: usize = 4096;

/// What one request may still log, shared by its stdout and stderr.
#[derive(Debug)]
pub(crate) struct LogBudget {
    left: AtomicU64,
    limit: u64,
    /// Set once output has been dropped (it is reported once).
    dropped: AtomicBool,
    hits: Arc<LimitHits>,
    /// Text replaced by `[redacted]` (the app's secrets).
    redact: Arc<[String]>,
}

impl LogBudget {
    /// `limit` bytes; running out is counted in `hits`; `redact` never
    /// shows.
    pub(crate) fn new(limit: u64, hits: Arc<LimitHits>, redact: Arc<[String]>) -> Arc<Self> {
        Arc::new(LogBudget {
            left: AtomicU64::new(limit),
            limit,
            dropped: AtomicBool::new(false),
            hits,
            redact,
        })
    }

    /// A new request on the same instance: its own budget.
    pub(crate) fn refill(&self) {
        self.left.store(self.limit, Ordering::Relaxed);
        self.dropped.store(false, Ordering::Relaxed);
    }

    /// How many of `wanted` bytes may still be logged. The first time any
    /// are dropped, the app's limit hit is counted.
    fn take(&self, wanted: usize) -> usize {
        let wanted = wanted as u64;
        let before = self
            .left
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |left| {
                Some(left.saturating_sub(wanted))
            })
            .unwrap_or(0);
        if before < wanted && !self.dropped.swap(true, Ordering::Relaxed) {
            self.hits.hit(
                Limit::LogBytes,
                &format!(
                    "guest output over {} bytes in one request; the rest is dropped",
                    self.limit
                ),
            );
        }
        usize::try_from(before.min(wanted)).unwrap_or(usize::MAX)
    }
}

/// The level of a line the guest logs itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum GuestLevel {
    Trace,
    Debug,
    Info,
    Warn,
    Error,
}

impl LogBudget {
    /// Log `message` at `level`, as much of it as the budget allows (cut
    /// at a character boundary), secrets redacted.
    pub(crate) fn log(&self, level: GuestLevel, message: &str) {
        let end = message.floor_char_boundary(self.take(message.len()));
        if end == 0 && !message.is_empty() {
            return;
        }
        let message = self.redacted(&message[..end]);
        match level {
            GuestLevel::Trace => tracing::trace!(target: "squall::guest", "{message}"),
            GuestLevel::Debug => tracing::debug!(target: "squall::guest", "{message}"),
            GuestLevel::Info => tracing::info!(target: "squall::guest", "{message}"),
            GuestLevel::Warn => tracing::warn!(target: "squall::guest", "{message}"),
            GuestLevel::Error => tracing::error!(target: "squall::guest", "{message}"),
        }
    }

    /// `text` with the app's secrets replaced by `[redacted]`.
    fn redacted<'a>(&self, text: &'a str) -> std::borrow::Cow<'a, str> {
        let mut text = std::borrow::Cow::Borrowed(text);
        for secret in self.redact.iter() {
            if text.contains(secret.as_str()) {
                text = text.replace(secret.as_str(), "[redacted]").into();
            }
        }
        text
    }
}

/// A guest output stream (`stdout` or `stderr`) that writes to `tracing`.
/// Every handle the guest opens on it shares one partial line, so output
/// written in pieces (or through several handles) is logged as the lines
/// the guest wrote, empty ones included; what is left without a newline is
/// logged when the request's store goes.
#[derive(Clone)]
pub(crate) struct GuestLog {
    lines: Arc<Lines>,
}

impl GuestLog {
    /// Standard output, within `budget`.
    pub(crate) fn stdout(budget: Arc<LogBudget>) -> Self {
        GuestLog {
            lines: Arc::new(Lines::new("stdout", budget)),
        }
    }

    /// Standard error, within `budget`.
    pub(crate) fn stderr(budget: Arc<LogBudget>) -> Self {
        GuestLog {
            lines: Arc::new(Lines::new("stderr", budget)),
        }
    }
}

impl IsTerminal for GuestLog {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for GuestLog {
    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        Box::new(LineLogger {
            lines: self.lines.clone(),
        })
    }

    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(LineLogger {
            lines: self.lines.clone(),
        })
    }
}

/// One stream's partial line, shared by its handles.
struct Lines {
    name: &'static str,
    line: std::sync::Mutex<Vec<u8>>,
    budget: Arc<LogBudget>,
    /// What was logged, for the tests.
    #[cfg(test)]
    logged: std::sync::Mutex<Vec<String>>,
}

impl Lines {
    fn new(name: &'static str, budget: Arc<LogBudget>) -> Self {
        Lines {
            name,
            line: std::sync::Mutex::new(Vec::new()),
            budget,
            #[cfg(test)]
            logged: std::sync::Mutex::new(Vec::new()),
        }
    }

    fn push(&self, bytes: &[u8]) {
        let bytes = &bytes[..self.budget.take(bytes.len())];
        let mut line = self
            .line
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        for &byte in bytes {
            if byte == b'\n' {
                self.emit(&line);
                line.clear();
                continue;
            }
            if line.len() >= MAX_LINE {
                self.emit(&line);
                line.clear();
            }
            line.push(byte);
        }
    }

    fn emit(&self, line: &[u8]) {
        let text = String::from_utf8_lossy(line);
        let text = self.budget.redacted(&text);
        tracing::info!(target: "squall::guest", stream = self.name, "{text}");
        #[cfg(test)]
        if let Ok(mut logged) = self.logged.lock() {
            logged.push(text.into_owned());
        }
    }
}

impl Drop for Lines {
    fn drop(&mut self) {
        let line = std::mem::take(
            self.line
                .get_mut()
                .unwrap_or_else(|poison| poison.into_inner()),
        );
        if !line.is_empty() {
            self.emit(&line);
        }
    }
}

/// One handle on a stream.
struct LineLogger {
    lines: Arc<Lines>,
}

impl LineLogger {
    fn push(&mut self, bytes: &[u8]) {
        self.lines.push(bytes);
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for LineLogger {
    async fn ready(&mut self) {}
}

impl OutputStream for LineLogger {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        self.push(&bytes);
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(MAX_LINE)
    }
}

impl AsyncWrite for LineLogger {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.get_mut().push(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stdout_and_stderr_share_one_budget() {
        let hits = Arc::new(LimitHits::new("app"));
        let budget = LogBudget::new(10, hits.clone(), Arc::from([]));
        assert_eq!(budget.take(6), 6);
        assert_eq!(budget.take(6), 4, "cut at the limit");
        assert_eq!(budget.take(6), 0);
        assert_eq!(hits.count(Limit::LogBytes), 1, "counted once per request");
    }

    fn lines() -> Arc<Lines> {
        let hits = Arc::new(LimitHits::new("app"));
        Arc::new(Lines::new(
            "stdout",
            LogBudget::new(1 << 20, hits, Arc::from(["hunter2".to_owned()])),
        ))
    }

    fn logged(lines: &Lines) -> Vec<String> {
        lines.logged.lock().expect("not poisoned").clone()
    }

    #[test]
    fn pieces_through_several_handles_make_one_line_and_empty_lines_stay() {
        let lines = lines();
        let mut first = LineLogger {
            lines: lines.clone(),
        };
        first.push(b"start a print ");
        for digit in [b"1", b"2", b"3", b"4"] {
            // A new handle for each write, as a guest that asks for stdout
            // every time does.
            LineLogger {
                lines: lines.clone(),
            }
            .push(digit);
        }
        first.push(b"\n\nnext\n");
        assert_eq!(logged(&lines), ["start a print 1234", "", "next"]);
    }

    #[test]
    fn long_lines_are_split_secrets_hidden_and_the_rest_logged_at_the_end() {
        let lines = lines();
        LineLogger {
            lines: lines.clone(),
        }
        .push(&vec![b'x'; MAX_LINE + 10]);
        assert_eq!(logged(&lines).len(), 1, "a full line is logged at once");
        LineLogger {
            lines: lines.clone(),
        }
        .push(b"\nthe key is hunter2\nno newline");
        assert_eq!(logged(&lines)[2], "the key is [redacted]");
        let partial = lines.line.lock().expect("not poisoned").clone();
        assert_eq!(partial, b"no newline", "kept until the store goes");
    }
}

//! Guest stdout and stderr, forwarded line by line to the host's log.
//!
//! Each line is logged inside the request's span, so it carries the app
//! name and request id. Output past a per-stream budget is dropped: a guest
//! cannot make the host buffer or log without bound.

use bytes::Bytes;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::io::AsyncWrite;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};

/// Bytes of output one stream may log before the rest is dropped.
const LOG_BUDGET: usize = 64 * 1024;
/// Longest line kept whole; longer lines are split.
const MAX_LINE: usize = 4096;

/// A guest output stream (`stdout` or `stderr`) that writes to `tracing`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct GuestLog {
    name: &'static str,
}

impl GuestLog {
    pub(crate) fn stdout() -> Self {
        GuestLog { name: "stdout" }
    }

    pub(crate) fn stderr() -> Self {
        GuestLog { name: "stderr" }
    }
}

impl IsTerminal for GuestLog {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for GuestLog {
    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        Box::new(LineLogger::new(self.name))
    }

    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(LineLogger::new(self.name))
    }
}

struct LineLogger {
    name: &'static str,
    line: Vec<u8>,
    budget: usize,
}

impl LineLogger {
    fn new(name: &'static str) -> Self {
        LineLogger {
            name,
            line: Vec::new(),
            budget: LOG_BUDGET,
        }
    }

    fn push(&mut self, mut bytes: &[u8]) {
        if self.budget == 0 {
            return;
        }
        if bytes.len() >= self.budget {
            bytes = &bytes[..self.budget];
            self.budget = 0;
        } else {
            self.budget -= bytes.len();
        }
        for &byte in bytes {
            if byte == b'\n' || self.line.len() >= MAX_LINE {
                self.emit();
            }
            if byte != b'\n' {
                self.line.push(byte);
            }
        }
        if self.budget == 0 {
            self.emit();
            tracing::warn!(
                stream = self.name,
                "guest output over {LOG_BUDGET} bytes; the rest is dropped"
            );
        }
    }

    fn emit(&mut self) {
        if !self.line.is_empty() {
            let text = String::from_utf8_lossy(&self.line);
            tracing::info!(target: "squall::guest", stream = self.name, "{text}");
            self.line.clear();
        }
    }
}

impl Drop for LineLogger {
    fn drop(&mut self) {
        self.emit();
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

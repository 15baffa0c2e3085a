//! Log lines of the app's own, at a level: the host writes them into its
//! log with the app's name and the request they belong to (like Tornado's
//! `app_log`). They count against the request's `log_per_request` budget,
//! with whatever the app prints.
//!
//! ```no_run
//! use squall_sdk::log;
//! log::info("cache warmed");
//! log::warn(format!("slow upstream: {} ms", 1200));
//! ```
//!
//! Built as a standard wasi:http component, the SDK writes them to stderr,
//! prefixed with the level.

use crate::sys;

/// How much a line matters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// Very fine detail.
    Trace,
    /// Detail for debugging.
    Debug,
    /// Normal events.
    Info,
    /// Something unexpected that the app handled.
    Warn,
    /// Something failed.
    Error,
}

/// Log `message` at `level`.
pub fn write(level: Level, message: impl AsRef<str>) {
    sys::log(level, message.as_ref());
}

/// Log `message` at [`Level::Trace`].
pub fn trace(message: impl AsRef<str>) {
    write(Level::Trace, message);
}

/// Log `message` at [`Level::Debug`].
pub fn debug(message: impl AsRef<str>) {
    write(Level::Debug, message);
}

/// Log `message` at [`Level::Info`].
pub fn info(message: impl AsRef<str>) {
    write(Level::Info, message);
}

/// Log `message` at [`Level::Warn`].
pub fn warn(message: impl AsRef<str>) {
    write(Level::Warn, message);
}

/// Log `message` at [`Level::Error`].
pub fn error(message: impl AsRef<str>) {
    write(Level::Error, message);
}

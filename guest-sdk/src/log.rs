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
///
/// ```
/// use squall_sdk::StatusCode;
/// use squall_sdk::log::Level;
///
/// fn level_for(status: StatusCode) -> Level {
///     match status.as_u16() {
///         500.. => Level::Error,
///         400..=499 => Level::Warn,
///         _ => Level::Info,
///     }
/// }
/// assert_eq!(level_for(StatusCode::BAD_GATEWAY), Level::Error);
/// assert_eq!(level_for(StatusCode::NOT_FOUND), Level::Warn);
/// ```
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
///
/// ```no_run
/// use squall_sdk::log::{self, Level};
/// use squall_sdk::{Error, Request, http};
///
/// async fn sync(_req: Request) -> Result<String, Error> {
///     let response = http::post("https://api.example.com/sync").await?;
///     let level = if response.status().is_success() { Level::Info } else { Level::Warn };
///     log::write(level, format!("sync answered {}", response.status()));
///     Ok(response.text().await?)
/// }
/// ```
pub fn write(level: Level, message: impl AsRef<str>) {
    sys::log(level, message.as_ref());
}

/// Log `message` at [`Level::Trace`].
///
/// ```no_run
/// use squall_sdk::{Request, log};
///
/// async fn echo(mut req: Request) -> Vec<u8> {
///     let body = req.bytes().await;
///     log::trace(format!("echo: {} bytes: {:?}", body.len(), String::from_utf8_lossy(&body)));
///     body
/// }
/// ```
pub fn trace(message: impl AsRef<str>) {
    write(Level::Trace, message);
}

/// Log `message` at [`Level::Debug`].
///
/// ```no_run
/// use squall_sdk::{Request, log};
///
/// async fn search(req: Request) -> String {
///     let query = req.query_arguments().get("q").unwrap_or_default();
///     log::debug(format!("search for {query:?}"));
///     format!("no results for {query}")
/// }
/// ```
pub fn debug(message: impl AsRef<str>) {
    write(Level::Debug, message);
}

/// Log `message` at [`Level::Info`].
///
/// ```no_run
/// use squall_sdk::{Error, Request, StatusCode, log};
///
/// async fn signup(mut req: Request) -> Result<StatusCode, Error> {
///     let email = req.text().await?;
///     log::info(format!("new signup: {email}"));
///     Ok(StatusCode::CREATED)
/// }
/// ```
pub fn info(message: impl AsRef<str>) {
    write(Level::Info, message);
}

/// Log `message` at [`Level::Warn`].
///
/// ```no_run
/// use squall_sdk::{Request, log};
///
/// async fn legacy(req: Request) -> &'static str {
///     let client = req.header("user-agent").unwrap_or("unknown");
///     log::warn(format!("deprecated endpoint /v1 used by {client}"));
///     "please move to /v2"
/// }
/// ```
pub fn warn(message: impl AsRef<str>) {
    write(Level::Warn, message);
}

/// Log `message` at [`Level::Error`].
///
/// ```no_run
/// use squall_sdk::{Error, Request, kv, log};
///
/// async fn checkout(_req: Request) -> Result<&'static str, Error> {
///     if let Err(err) = kv::increment("orders", 1).await {
///         log::error(format!("cannot count the order: {err}"));
///         return Err(err.into());
///     }
///     Ok("thank you")
/// }
/// ```
pub fn error(message: impl AsRef<str>) {
    write(Level::Error, message);
}

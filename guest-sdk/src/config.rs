//! The app's configuration values and secrets, from its `[app.NAME.config]`
//! table in `squall.toml`:
//!
//! ```toml
//! [app.shortener.config]
//! base_url = "https://sho.rt"
//! api_token = { env = "SHORTENER_TOKEN" }   # a secret: never in the host's log
//! ```
//!
//! ```no_run
//! let base = squall_sdk::config::get("base_url").unwrap_or_else(|| "http://localhost:8080".into());
//! # let _ = base;
//! ```
//!
//! Built as a standard wasi:http component, the SDK has no config: every
//! value reads as absent.

use crate::sys;

/// The value of `key`, if the manifest sets it.
pub fn get(key: &str) -> Option<String> {
    sys::config_get(key)
}

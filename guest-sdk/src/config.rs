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
//! value reads as absent. In a native test (`cargo test`), values come from
//! [`Request::with_config`](crate::Request::with_config).

use crate::sys;

/// The value of `key`, if the manifest sets it.
///
/// ```no_run
/// use squall_sdk::{Error, Request, config, http};
///
/// async fn forecast(_req: Request) -> Result<String, Error> {
///     let token = config::get("weather_token")
///         .ok_or_else(|| Error::internal("weather_token is not configured"))?;
///     let response = http::get("https://api.weather.example.com/today")
///         .header("authorization", &format!("Bearer {token}"))
///         .await?;
///     Ok(response.text().await?)
/// }
/// ```
pub fn get(key: &str) -> Option<String> {
    sys::config_get(key)
}

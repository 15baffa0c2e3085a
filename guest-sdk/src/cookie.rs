//! Cookies: the [`cookie`](https://docs.rs/cookie) crate's builder for
//! `Set-Cookie` (Max-Age, Expires, Secure, HttpOnly, Domain, Path,
//! SameSite, removal), and cookies signed with the app's secret
//! (Tornado's `set_signed_cookie` / `get_signed_cookie`).
//!
//! ```
//! use squall_sdk::cookie::{Cookie, SameSite, time::Duration};
//! use squall_sdk::Response;
//!
//! let theme = Cookie::build(("theme", "dark"))
//!     .path("/")
//!     .max_age(Duration::days(365))
//!     .same_site(SameSite::Lax);
//! let response = Response::redirect("/").set_cookie(theme);
//! # assert!(response.headers()["set-cookie"].to_str().unwrap().starts_with("theme=dark"));
//! ```
//!
//! A signed cookie carries its value, when it was signed, which key signed
//! it and an HMAC-SHA256 over all of that and the cookie's name. A value
//! that was tampered with, signed by a key the app no longer has, signed
//! for another name, expired, or never signed reads as absent: never as an
//! error page.

use crate::Request;
use crate::error::Error;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub use cookie::{Cookie, CookieBuilder, SameSite, time};

/// The format tag of a signed value; a new format gets a new tag.
const FORMAT: &str = "2";
/// The shortest secret accepted: a guessable key signs nothing.
const MIN_SECRET: usize = 16;
/// Versions `from_config` looks for beyond `cookie_secret` (version 1).
const MAX_VERSION: u32 = 9;
/// How far in the future a signature may be dated (clock skew).
const FUTURE_SKEW: Duration = Duration::from_secs(300);
/// Tornado's defaults: signed for 30 days, accepted for 31.
const SIGNED_FOR: Duration = Duration::from_secs(30 * 86_400);

/// Signs and verifies cookie values with the app's versioned keys: the
/// newest signs, all of them verify, so a key can be rotated without
/// logging everyone out.
///
/// ```
/// use squall_sdk::cookie::Signer;
/// use std::time::Duration;
///
/// let old = Signer::new(1, "an old secret of the app, 32 bytes");
/// let signed = old.sign("user", "ada");
///
/// // Rotated: version 2 signs from now on, version 1 still verifies.
/// let rotated = Signer::new(1, "an old secret of the app, 32 bytes")
///     .with_key(2, "the new secret of the app, 32 bytes");
/// let day = Duration::from_secs(86_400);
/// assert_eq!(rotated.verify("user", &signed, day).as_deref(), Some("ada"));
/// assert_eq!(rotated.verify("admin", &signed, day), None); // signed for another name
/// assert!(rotated.sign("user", "ada").starts_with("2|2|"));
/// ```
#[derive(Clone)]
pub struct Signer {
    /// By version, oldest first: the last one signs.
    keys: Vec<(u32, Vec<u8>)>,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let versions: Vec<u32> = self.keys.iter().map(|(version, _)| *version).collect();
        f.debug_struct("Signer")
            .field("versions", &versions)
            .finish_non_exhaustive()
    }
}

impl Signer {
    /// A signer with one key, `secret`, as `version`.
    pub fn new(version: u32, secret: impl AsRef<[u8]>) -> Self {
        Signer {
            keys: vec![(version, secret.as_ref().to_vec())],
        }
    }

    /// Add a key; the highest version signs.
    ///
    /// ```
    /// use squall_sdk::cookie::Signer;
    ///
    /// let signer = Signer::new(1, "first secret, long enough").with_key(2, "second secret, long enough");
    /// assert!(signer.sign("session", "42").starts_with("2|2|"));
    /// ```
    pub fn with_key(mut self, version: u32, secret: impl AsRef<[u8]>) -> Self {
        self.keys.retain(|(known, _)| *known != version);
        self.keys.push((version, secret.as_ref().to_vec()));
        self.keys.sort_by_key(|(version, _)| *version);
        self
    }

    /// The app's keys from its config values: `cookie_secret` is version
    /// 1, `cookie_secret_2` … `cookie_secret_9` the later ones (keep them
    /// as secrets: `{ env = "NAME" }` or `{ file = "path" }`). `500` if
    /// there is none, or one is shorter than 16 bytes.
    ///
    /// ```no_run
    /// use squall_sdk::cookie::Signer;
    /// use squall_sdk::{Error, Request, Response};
    ///
    /// async fn login(_req: Request) -> Result<Response, Error> {
    ///     let signer = Signer::from_config()?;
    ///     Ok(Response::redirect("/").set_cookie(signer.cookie("user", "ada")))
    /// }
    /// ```
    pub fn from_config() -> Result<Self, Error> {
        let mut keys = Vec::new();
        for version in 1..=MAX_VERSION {
            let key = match version {
                1 => "cookie_secret".to_owned(),
                n => format!("cookie_secret_{n}"),
            };
            if let Some(secret) = crate::config::get(&key) {
                if secret.len() < MIN_SECRET {
                    return Err(Error::internal(format!(
                        "config value {key} is shorter than {MIN_SECRET} bytes"
                    )));
                }
                keys.push((version, secret.into_bytes()));
            }
        }
        if keys.is_empty() {
            return Err(Error::internal(
                "signed cookies need a cookie_secret config value",
            ));
        }
        Ok(Signer { keys })
    }

    /// `value` signed for the cookie `name` with the newest key, now.
    pub fn sign(&self, name: &str, value: &str) -> String {
        self.sign_at(name, value, unix_now())
    }

    fn sign_at(&self, name: &str, value: &str, timestamp: u64) -> String {
        let Some((version, key)) = self.keys.last() else {
            return String::new();
        };
        let payload = format!(
            "{FORMAT}|{version}|{timestamp}|{}",
            URL_SAFE_NO_PAD.encode(value)
        );
        let mac = URL_SAFE_NO_PAD.encode(mac(key, name, &payload).finalize().into_bytes());
        format!("{payload}|{mac}")
    }

    /// A cookie `name` holding `value` signed: `Path=/`, `HttpOnly`,
    /// `SameSite=Lax` and 30 days (Tornado's `expires_days=30`); change
    /// what you like on the builder.
    ///
    /// ```
    /// use squall_sdk::cookie::{Signer, time::Duration};
    /// use squall_sdk::Response;
    ///
    /// let signer = Signer::new(1, "a secret of the app, 32 bytes long");
    /// let cookie = signer.cookie("user", "ada").secure(true).max_age(Duration::hours(12));
    /// let response = Response::redirect("/").set_cookie(cookie);
    /// # assert!(response.headers()["set-cookie"].to_str().unwrap().contains("Secure"));
    /// ```
    pub fn cookie(&self, name: &str, value: &str) -> CookieBuilder<'static> {
        Cookie::build((name.to_owned(), self.sign(name, value)))
            .path("/")
            .http_only(true)
            .same_site(SameSite::Lax)
            .max_age(time::Duration::seconds(SIGNED_FOR.as_secs() as i64))
    }

    /// The value of `signed` if one of the keys signed it for the cookie
    /// `name` at most `max_age` ago; `None` otherwise.
    pub fn verify(&self, name: &str, signed: &str, max_age: Duration) -> Option<String> {
        self.verify_at(name, signed, max_age, unix_now())
    }

    fn verify_at(&self, name: &str, signed: &str, max_age: Duration, now: u64) -> Option<String> {
        let (payload, signature) = signed.rsplit_once('|')?;
        let mut fields = payload.split('|');
        let (format, version, timestamp, value) = (
            fields.next()?,
            fields.next()?,
            fields.next()?,
            fields.next()?,
        );
        if format != FORMAT || fields.next().is_some() {
            return None;
        }
        let version: u32 = version.parse().ok()?;
        let (_, key) = self.keys.iter().find(|(known, _)| *known == version)?;
        let signature = URL_SAFE_NO_PAD.decode(signature).ok()?;
        // Constant time: the MAC's own comparison.
        mac(key, name, payload).verify_slice(&signature).ok()?;
        let timestamp: u64 = timestamp.parse().ok()?;
        let signed_ago = now.checked_sub(timestamp);
        match signed_ago {
            Some(ago) if ago > max_age.as_secs() => return None,
            None if timestamp - now > FUTURE_SKEW.as_secs() => return None,
            _ => {}
        }
        String::from_utf8(URL_SAFE_NO_PAD.decode(value).ok()?).ok()
    }

    /// The signed cookie `name` of `req`, verified, if signed at most 31
    /// days ago (Tornado's `max_age_days=31`); see [`Signer::get_within`].
    ///
    /// ```
    /// use squall_sdk::cookie::Signer;
    /// use squall_sdk::{Method, Request};
    ///
    /// let signer = Signer::new(1, "a secret of the app, 32 bytes long");
    /// let signed = signer.sign("user", "ada");
    /// let req = Request::new(Method::GET, "/").with_cookie("user", &signed);
    /// assert_eq!(signer.get(&req, "user").as_deref(), Some("ada"));
    ///
    /// let forged = Request::new(Method::GET, "/").with_cookie("user", "ada");
    /// assert_eq!(signer.get(&forged, "user"), None);
    /// ```
    pub fn get(&self, req: &Request, name: &str) -> Option<String> {
        self.get_within(req, name, SIGNED_FOR + Duration::from_secs(86_400))
    }

    /// The signed cookie `name` of `req`, verified, if signed at most
    /// `max_age` ago.
    pub fn get_within(&self, req: &Request, name: &str, max_age: Duration) -> Option<String> {
        self.verify(name, req.cookie(name)?, max_age)
    }
}

/// The MAC of a signed value: the cookie's name is part of what is signed,
/// so a value signed for one cookie is worthless in another.
fn mac(key: &[u8], name: &str, payload: &str) -> Hmac<Sha256> {
    // HMAC takes keys of any length.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key)
        .unwrap_or_else(|_| unreachable!("HMAC accepts any key length"));
    mac.update(name.as_bytes());
    mac.update(b"|");
    mac.update(payload.as_bytes());
    mac
}

/// Seconds since the Unix epoch, by the host's wall clock.
pub(crate) fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_secs())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;

    const DAY: Duration = Duration::from_secs(86_400);
    const NOW: u64 = 1_800_000_000;

    fn signer() -> Signer {
        Signer::new(1, "the first secret, long enough")
    }

    /// The Python SDK's `squall.security` signs to the same bytes
    /// (guest-sdk/python/tests pins the same value).
    #[test]
    fn the_format_is_the_one_the_python_sdk_signs() {
        let signed = signer().sign_at("user", "ada", NOW);
        assert_eq!(
            signed,
            "2|1|1800000000|YWRh|cCnG9Clm8oLl96ZP6EeN-pTNYcViunCRgXK86_16EEM"
        );
    }

    #[test]
    fn a_signed_value_verifies_and_keeps_any_text() {
        for value in ["ada", "", "a|b|c", "é ü ✓", "x=1; y=2"] {
            let signed = signer().sign_at("user", value, NOW);
            assert_eq!(
                signer().verify_at("user", &signed, DAY, NOW).as_deref(),
                Some(value)
            );
        }
    }

    #[test]
    fn tampering_of_any_part_reads_as_absent() {
        let signed = signer().sign_at("user", "ada", NOW);
        let parts: Vec<&str> = signed.split('|').collect();
        let value = URL_SAFE_NO_PAD.encode("eve");
        let tampered = [
            signed.replacen(parts[3], &value, 1),
            signed.replacen(&format!("|{NOW}|"), &format!("|{}|", NOW + 1), 1),
            format!("{}x", signed),
            signed.replacen("2|1|", "2|2|", 1),
            signed.replacen("2|", "1|", 1),
            "ada".to_owned(),
            String::new(),
            "2|1|x|y|z|w".to_owned(),
        ];
        for tampered in tampered {
            assert_eq!(
                signer().verify_at("user", &tampered, DAY, NOW),
                None,
                "{tampered}"
            );
        }
        assert_eq!(signer().verify_at("admin", &signed, DAY, NOW), None);
        let other = Signer::new(1, "another secret, just as long");
        assert_eq!(other.verify_at("user", &signed, DAY, NOW), None);
    }

    #[test]
    fn expired_or_far_future_signatures_read_as_absent() {
        let signed = signer().sign_at("user", "ada", NOW);
        assert!(
            signer()
                .verify_at("user", &signed, DAY, NOW + 86_400)
                .is_some()
        );
        assert_eq!(signer().verify_at("user", &signed, DAY, NOW + 86_401), None);
        assert!(
            signer()
                .verify_at("user", &signed, DAY, NOW - 300)
                .is_some()
        );
        assert_eq!(signer().verify_at("user", &signed, DAY, NOW - 301), None);
    }

    #[test]
    fn the_newest_key_signs_and_every_kept_key_verifies() {
        let old = signer().sign_at("user", "ada", NOW);
        let rotated = signer().with_key(3, "the third secret, long enough");
        let new = rotated.sign_at("user", "ada", NOW);
        assert!(new.starts_with("2|3|"), "{new}");
        assert!(rotated.verify_at("user", &old, DAY, NOW).is_some());
        assert!(rotated.verify_at("user", &new, DAY, NOW).is_some());
        // The old key retired: what it signed reads as absent.
        let retired = Signer::new(3, "the third secret, long enough");
        assert_eq!(retired.verify_at("user", &old, DAY, NOW), None);
        assert!(retired.verify_at("user", &new, DAY, NOW).is_some());
    }

    #[test]
    fn the_secret_never_shows_in_debug_output() {
        let shown = format!("{:?}", signer());
        assert!(!shown.contains("secret"), "{shown}");
        assert!(shown.contains("versions: [1]"), "{shown}");
    }
}

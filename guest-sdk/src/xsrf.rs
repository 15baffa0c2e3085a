//! Cross-site request forgery protection (Tornado's `xsrf_cookies`), on
//! with [`Router::xsrf_protection`](crate::Router::xsrf_protection).
//!
//! The browser keeps a random token in the `_xsrf` cookie; every request
//! that is not `GET`, `HEAD` or `OPTIONS` must send it back, in the form
//! field `_xsrf` (URL-encoded forms, or the first field of a multipart
//! form) or the `X-XSRFToken` / `X-CSRFToken` header, or it is answered
//! `403`. Another site can make a browser send the cookie but cannot read
//! it, so it cannot send the token. Tokens are masked afresh on every
//! page (Tornado's version 2 tokens), so a compressed page never repeats
//! the same secret bytes (the BREACH attack).

use crate::cookie::{Cookie, SameSite, unix_now};
use crate::{Error, Request, Response};
use ::http::{Method, StatusCode};
use subtle::ConstantTimeEq;

/// The name of the cookie and of the form field.
pub(crate) const FIELD: &str = "_xsrf";
const TOKEN_LEN: usize = 16;
const MASK_LEN: usize = 4;

/// A request's token: the one its cookie holds, or a new one to set.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Token {
    raw: [u8; TOKEN_LEN],
    /// Whether the response must set the cookie.
    pub(crate) is_new: bool,
}

impl Token {
    /// The token of `req`'s `_xsrf` cookie, or a new one; `None` if no
    /// random bytes could be had for a new one (the request then fails:
    /// a token anyone could guess protects nothing).
    pub(crate) fn of(req: &Request) -> Option<Token> {
        match req.cookie(FIELD).and_then(unmask) {
            Some(raw) => Some(Token { raw, is_new: false }),
            None => random().map(|raw| Token { raw, is_new: true }),
        }
    }

    /// The token masked afresh, as `2|mask|masked|timestamp` in hex (or,
    /// should no random mask be had, unmasked: still secret).
    pub(crate) fn masked(&self) -> String {
        let Some(mask) = random::<MASK_LEN>() else {
            return hex(&self.raw);
        };
        let masked: Vec<u8> = self
            .raw
            .iter()
            .zip(mask.iter().cycle())
            .map(|(byte, mask)| byte ^ mask)
            .collect();
        format!("2|{}|{}|{}", hex(&mask), hex(&masked), unix_now())
    }

    /// Whether `submitted` (masked or not) is this token.
    pub(crate) fn matches(&self, submitted: &str) -> bool {
        unmask(submitted).is_some_and(|raw| bool::from(raw.ct_eq(&self.raw)))
    }

    /// The cookie that gives the browser this token (readable by scripts,
    /// which send it back in a header).
    pub(crate) fn cookie(&self) -> Cookie<'static> {
        Cookie::build((FIELD, self.masked()))
            .path("/")
            .same_site(SameSite::Lax)
            .build()
    }
}

/// Methods that change nothing, and so need no token.
pub(crate) fn is_safe(method: &Method) -> bool {
    matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// Check `req` (a method that needs a token) against `token`: `Ok` with
/// the request (its body kept whole for the handler), or `403`.
pub(crate) async fn check(mut req: Request, token: &Token) -> Result<Request, Response> {
    let header_token = ["x-xsrftoken", "x-csrftoken"]
        .iter()
        .find_map(|name| req.header(*name).map(str::to_owned));
    let submitted = match header_token {
        Some(token) => Some(token),
        None => req.form_field_for_xsrf(FIELD).await,
    };
    match submitted {
        Some(submitted) if token.matches(&submitted) => Ok(req),
        Some(_) => Err(forbidden("the XSRF token does not match the _xsrf cookie")),
        None => Err(forbidden(
            "no XSRF token: send the _xsrf form field or the X-XSRFToken header",
        )),
    }
}

fn forbidden(why: &str) -> Response {
    use crate::IntoResponse;
    Error::new(StatusCode::FORBIDDEN, why).into_response()
}

/// The raw token in `text`: `2|mask|masked|timestamp` (hex), or a bare
/// unmasked token in hex (version 1).
fn unmask(text: &str) -> Option<[u8; TOKEN_LEN]> {
    let text = text.trim_matches('"');
    let mut fields = text.split('|');
    let first = fields.next()?;
    let (mask, masked) = if first == "2" {
        let mask = unhex(fields.next()?)?;
        (mask, unhex(fields.next()?)?)
    } else {
        (vec![0; MASK_LEN], unhex(first)?)
    };
    if mask.len() != MASK_LEN || masked.len() != TOKEN_LEN {
        return None;
    }
    let mut raw = [0; TOKEN_LEN];
    for (i, byte) in masked.iter().enumerate() {
        raw[i] = byte ^ mask[i % MASK_LEN];
    }
    Some(raw)
}

/// Random bytes from the host, or `None` if it has none to give.
fn random<const N: usize>() -> Option<[u8; N]> {
    let mut bytes = [0; N];
    getrandom::fill(&mut bytes).ok()?;
    Some(bytes)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) || !text.is_ascii() {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).ok())
        .collect()
}

/// Where the token goes in an HTML form.
pub(crate) fn form_html(masked: &str) -> String {
    format!(r#"<input type="hidden" name="{FIELD}" value="{masked}">"#)
}

/// Set the token's cookie on `response` if the request had none.
pub(crate) fn finish(token: &Token, response: Response) -> Response {
    if token.is_new {
        response.set_cookie(token.cookie())
    } else {
        response
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;

    #[test]
    fn a_masked_token_differs_each_time_and_matches() {
        let token = Token {
            raw: random().unwrap(),
            is_new: true,
        };
        let (a, b) = (token.masked(), token.masked());
        assert_ne!(a, b);
        assert!(token.matches(&a) && token.matches(&b));
        // Unmasked (version 1) tokens match too.
        assert!(token.matches(&hex(&token.raw)));
    }

    #[test]
    fn other_or_malformed_tokens_do_not_match() {
        let token = Token {
            raw: random().unwrap(),
            is_new: false,
        };
        let other = Token {
            raw: random().unwrap(),
            is_new: false,
        };
        for bad in [
            other.masked(),
            String::new(),
            "2".to_owned(),
            "2|zz|zz|1".to_owned(),
            "2|00000000|00|1".to_owned(),
            "é".repeat(16),
        ] {
            assert!(!token.matches(&bad), "{bad}");
        }
    }
}

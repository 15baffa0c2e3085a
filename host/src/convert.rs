//! Conversions between `squall:app` types and `http` types: methods,
//! header fields, request heads, and the headers a guest may not set.

use crate::bindings::types as wit;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, StatusCode};

/// Headers the connection owns; a guest may not set them.
pub(crate) fn is_connection_header(name: &HeaderName) -> bool {
    matches!(
        name.as_str(),
        "connection"
            | "content-length"
            | "keep-alive"
            | "proxy-connection"
            | "transfer-encoding"
            | "upgrade"
            | "te"
            | "trailer"
    )
}

/// A request's head as the guest sees it, with an empty body.
pub(crate) fn request_head_to_wit(parts: &http::request::Parts) -> wit::Request {
    wit::Request {
        method: method_to_wit(&parts.method),
        path: parts.uri.path().to_owned(),
        query: parts.uri.query().unwrap_or_default().to_owned(),
        authority: authority(parts),
        headers: fields_to_wit(&parts.headers),
        body: wit::Body::Empty,
    }
}

/// Most header fields a guest may send (a response, or a fetch).
pub(crate) const MAX_GUEST_HEADERS: usize = 100;
/// Most bytes of header names and values a guest may send.
pub(crate) const MAX_GUEST_HEADER_BYTES: usize = 64 << 10;

/// Whether guest header `fields` fit [`MAX_GUEST_HEADERS`] and
/// [`MAX_GUEST_HEADER_BYTES`]; the error says which they do not.
pub(crate) fn check_guest_fields(fields: &wit::Fields) -> Result<(), String> {
    if fields.len() > MAX_GUEST_HEADERS {
        return Err(format!(
            "{} header fields (at most {MAX_GUEST_HEADERS})",
            fields.len()
        ));
    }
    let bytes: usize = fields
        .iter()
        .map(|(name, value)| name.len() + value.len())
        .sum();
    if bytes > MAX_GUEST_HEADER_BYTES {
        return Err(format!(
            "{bytes} bytes of headers (at most {MAX_GUEST_HEADER_BYTES})"
        ));
    }
    Ok(())
}

/// A guest's status and headers, checked, without connection-level headers.
pub(crate) fn guest_response_head(
    status: u16,
    fields: wit::Fields,
) -> Result<(StatusCode, HeaderMap), String> {
    if !(100..=599).contains(&status) {
        return Err(format!("status {status} is not an HTTP status"));
    }
    let status = StatusCode::from_u16(status)
        .map_err(|_| format!("status {status} is not an HTTP status"))?;
    if status.is_informational() {
        return Err(format!("status {status} is informational"));
    }
    check_guest_fields(&fields)?;
    let mut headers = HeaderMap::with_capacity(fields.len());
    for (name, value) in fields {
        let name = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| format!("{name:?} is not a header name"))?;
        let value = HeaderValue::from_bytes(&value)
            .map_err(|_| format!("the value of header {name} is not valid"))?;
        if !is_connection_header(&name) {
            headers.append(name, value);
        }
    }
    Ok((status, headers))
}

/// The `host[:port]` the client asked for: HTTP/2's `:authority`, else `Host`.
pub(crate) fn authority(parts: &http::request::Parts) -> Option<String> {
    parts
        .uri
        .authority()
        .map(|authority| authority.as_str().to_owned())
        .or_else(|| {
            let host = parts.headers.get(header::HOST)?;
            host.to_str().ok().map(str::to_owned)
        })
}

/// Header fields as the guest sees them.
pub(crate) fn fields_to_wit(headers: &HeaderMap) -> wit::Fields {
    headers
        .iter()
        .map(|(name, value)| (name.as_str().to_owned(), value.as_bytes().to_vec()))
        .collect()
}

/// A method as the guest sees it.
pub(crate) fn method_to_wit(method: &Method) -> wit::Method {
    match *method {
        Method::GET => wit::Method::Get,
        Method::HEAD => wit::Method::Head,
        Method::POST => wit::Method::Post,
        Method::PUT => wit::Method::Put,
        Method::DELETE => wit::Method::Delete,
        Method::CONNECT => wit::Method::Connect,
        Method::OPTIONS => wit::Method::Options,
        Method::TRACE => wit::Method::Trace,
        Method::PATCH => wit::Method::Patch,
        ref other => wit::Method::Other(other.as_str().to_owned()),
    }
}

/// A guest's method; `None` if it is not a valid method token.
pub(crate) fn method_from_wit(method: wit::Method) -> Option<Method> {
    Some(match method {
        wit::Method::Get => Method::GET,
        wit::Method::Head => Method::HEAD,
        wit::Method::Post => Method::POST,
        wit::Method::Put => Method::PUT,
        wit::Method::Delete => Method::DELETE,
        wit::Method::Connect => Method::CONNECT,
        wit::Method::Options => Method::OPTIONS,
        wit::Method::Trace => Method::TRACE,
        wit::Method::Patch => Method::PATCH,
        wit::Method::Other(other) => Method::from_bytes(other.as_bytes()).ok()?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(request: http::Request<()>) -> http::request::Parts {
        request.into_parts().0
    }

    #[test]
    fn methods_round_trip() {
        for method in [
            Method::GET,
            Method::HEAD,
            Method::POST,
            Method::PUT,
            Method::DELETE,
            Method::CONNECT,
            Method::OPTIONS,
            Method::TRACE,
            Method::PATCH,
            Method::from_bytes(b"PURGE").expect("a token"),
        ] {
            assert_eq!(method_from_wit(method_to_wit(&method)), Some(method));
        }
        assert_eq!(
            method_from_wit(wit::Method::Other("BAD METHOD".into())),
            None
        );
    }

    #[test]
    fn the_request_head_keeps_path_query_and_host() {
        let request = http::Request::get("/items/7?sort=asc&x=%20")
            .header("host", "example.com:8080")
            .header("x-one", "1")
            .header("x-one", "2")
            .body(())
            .expect("request");
        let head = request_head_to_wit(&parts(request));
        assert_eq!(head.path, "/items/7");
        assert_eq!(head.query, "sort=asc&x=%20");
        assert_eq!(head.authority.as_deref(), Some("example.com:8080"));
        let ones: Vec<_> = head.headers.iter().filter(|(n, _)| n == "x-one").collect();
        assert_eq!(ones.len(), 2, "repeated headers stay separate");
    }

    #[test]
    fn the_uri_authority_wins_over_host() {
        let request = http::Request::get("http://a.example/x")
            .header("host", "b.example")
            .body(())
            .expect("request");
        assert_eq!(authority(&parts(request)).as_deref(), Some("a.example"));
        let no_host = http::Request::get("/x").body(()).expect("request");
        assert_eq!(authority(&parts(no_host)), None);
    }

    #[test]
    fn guest_heads_are_checked_and_connection_headers_dropped() {
        let fields = vec![
            ("content-type".to_owned(), b"text/plain".to_vec()),
            ("connection".to_owned(), b"close".to_vec()),
            ("transfer-encoding".to_owned(), b"chunked".to_vec()),
            ("set-cookie".to_owned(), b"a=1".to_vec()),
            ("set-cookie".to_owned(), b"b=2".to_vec()),
        ];
        let (status, headers) = guest_response_head(201, fields).expect("valid");
        assert_eq!(status, StatusCode::CREATED);
        assert_eq!(headers.len(), 3);
        assert!(!headers.contains_key("connection"));
        assert_eq!(headers.get_all("set-cookie").iter().count(), 2);
    }

    #[test]
    fn bad_guest_heads_are_explained() {
        let bad_status = guest_response_head(42, Vec::new()).expect_err("not a status");
        assert!(bad_status.contains("42"), "{bad_status}");
        assert!(
            guest_response_head(100, Vec::new()).is_err(),
            "informational"
        );
        assert!(guest_response_head(200, vec![("bad name".into(), b"x".to_vec())]).is_err());
        assert!(guest_response_head(200, vec![("x".into(), b"a\nb".to_vec())]).is_err());
    }

    #[test]
    fn statuses_outside_100_to_599_are_refused() {
        for status in [0, 99, 600, 999, 1000, u16::MAX] {
            assert!(guest_response_head(status, Vec::new()).is_err(), "{status}");
        }
        assert!(guest_response_head(599, Vec::new()).is_ok());
    }

    #[test]
    fn header_count_and_bytes_are_bounded_without_panicking() {
        let many: wit::Fields = (0..40_000)
            .map(|i| (format!("x-{i}"), b"v".to_vec()))
            .collect();
        let refused = guest_response_head(200, many).expect_err("too many");
        assert!(refused.contains("header fields"), "{refused}");
        let big = vec![("x-big".to_owned(), vec![b'a'; MAX_GUEST_HEADER_BYTES])];
        assert!(guest_response_head(200, big).is_err());
        let fine: wit::Fields = (0..MAX_GUEST_HEADERS)
            .map(|i| (format!("x-{i}"), b"v".to_vec()))
            .collect();
        assert!(guest_response_head(200, fine).is_ok());
    }

    #[test]
    fn hop_by_hop_headers_are_the_connections() {
        for name in ["connection", "content-length", "upgrade", "te", "trailer"] {
            assert!(
                is_connection_header(&HeaderName::from_static(name)),
                "{name}"
            );
        }
        assert!(!is_connection_header(&header::CONTENT_TYPE));
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            #[test]
            fn any_guest_answer_is_checked_without_panicking(
                status in any::<u16>(),
                fields in prop::collection::vec(("[ -~]{0,12}", prop::collection::vec(any::<u8>(), 0..16)), 0..140),
            ) {
                if let Ok((status, headers)) = guest_response_head(status, fields) {
                    prop_assert!((200..=599).contains(&status.as_u16()));
                    prop_assert!(headers.len() <= MAX_GUEST_HEADERS);
                    prop_assert!(headers.keys().all(|name| !is_connection_header(name)));
                }
            }
        }
    }
}

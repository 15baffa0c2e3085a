//! Response compression: gzip for a client that accepts it, on a complete
//! body of a compressible type that is large enough to gain from it. A
//! streamed body (SSE, a long poll, a download written as it goes) is left
//! as it is: it must reach the client chunk by chunk, when written.

use super::OutgoingBody;
use bytes::Bytes;
use flate2::Compression;
use flate2::write::GzEncoder;
use http::header::{self, HeaderValue};
use http::{HeaderMap, Response};
use std::io::Write;

/// Smaller bodies gain less than the header costs.
const MIN_SIZE: usize = 1024;
/// Larger bodies are sent as they are (compressing them would hold a
/// worker for too long).
const MAX_SIZE: usize = 4 << 20;
/// Bodies this large are compressed on a blocking thread.
const BLOCKING_FROM: usize = 64 << 10;

/// Whether `Accept-Encoding` in `request` accepts gzip (`q=0` refuses).
pub(crate) fn accepts_gzip(request: &HeaderMap) -> bool {
    request
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .any(|coding| {
            let mut parts = coding.split(';');
            let name = parts.next().unwrap_or_default().trim();
            let refused = parts.any(|param| {
                param
                    .trim()
                    .strip_prefix("q=")
                    .and_then(|q| q.trim().parse::<f32>().ok())
                    .is_some_and(|q| q <= 0.0)
            });
            (name.eq_ignore_ascii_case("gzip") || name == "*") && !refused
        })
}

/// `response` gzipped if it is worth it; `Vary: Accept-Encoding` on
/// every response that could have been.
pub(crate) async fn gzip(mut response: Response<OutgoingBody>) -> Response<OutgoingBody> {
    if !compressible(response.headers()) {
        return response;
    }
    let OutgoingBody::Full(Some(bytes)) = response.body() else {
        return response;
    };
    let bytes = bytes.clone();
    response
        .headers_mut()
        .append(header::VARY, HeaderValue::from_static("Accept-Encoding"));
    if !(MIN_SIZE..=MAX_SIZE).contains(&bytes.len()) {
        return response;
    }
    let compressed = if bytes.len() >= BLOCKING_FROM {
        tokio::task::spawn_blocking(move || encode(&bytes))
            .await
            .ok()
            .flatten()
    } else {
        encode(&bytes)
    };
    let Some(compressed) = compressed else {
        return response;
    };
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
    headers.remove(header::CONTENT_LENGTH);
    // A strong tag names the bytes sent: these are other bytes.
    if let Some(tag) = headers.get(header::ETAG).cloned()
        && let Ok(text) = tag.to_str()
        && !text.starts_with("W/")
        && let Ok(weak) = HeaderValue::from_str(&format!("W/{text}"))
    {
        headers.insert(header::ETAG, weak);
    }
    *response.body_mut() = OutgoingBody::full(compressed);
    response
}

fn encode(bytes: &[u8]) -> Option<Bytes> {
    let mut encoder = GzEncoder::new(Vec::with_capacity(bytes.len() / 3), Compression::fast());
    encoder.write_all(bytes).ok()?;
    let compressed = encoder.finish().ok()?;
    (compressed.len() < bytes.len()).then(|| Bytes::from(compressed))
}

/// Not encoded yet, and a type that compresses (text, JSON, JavaScript,
/// XML, SVG).
fn compressible(headers: &HeaderMap) -> bool {
    if headers.contains_key(header::CONTENT_ENCODING) || headers.contains_key(header::CONTENT_RANGE)
    {
        return false;
    }
    let Some(content_type) = headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
    else {
        return false;
    };
    let mime = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    mime.starts_with("text/")
        || matches!(
            mime.as_str(),
            "application/json"
                | "application/javascript"
                | "application/xml"
                | "application/xhtml+xml"
                | "image/svg+xml"
                | "application/manifest+json"
        )
        || mime.ends_with("+json")
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    fn accepts(value: &str) -> bool {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::ACCEPT_ENCODING,
            HeaderValue::from_str(value).expect("header"),
        );
        accepts_gzip(&headers)
    }

    #[test]
    fn accept_encoding_is_read_with_its_weights() {
        assert!(accepts("gzip, deflate, br"));
        assert!(accepts("br;q=1.0, gzip;q=0.5"));
        assert!(accepts("*"));
        assert!(!accepts("gzip;q=0"));
        assert!(!accepts("identity"));
        assert!(!accepts_gzip(&HeaderMap::new()));
    }

    fn response(content_type: &str, body: Vec<u8>) -> Response<OutgoingBody> {
        let mut response = Response::new(OutgoingBody::full(body));
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_str(content_type).expect("header"),
        );
        response
    }

    #[tokio::test]
    async fn large_text_is_gzipped_and_decodes_to_the_same_bytes() {
        let text = "hello, compressible world\n".repeat(200).into_bytes();
        let gzipped = gzip(response("text/html; charset=utf-8", text.clone())).await;
        assert_eq!(gzipped.headers()[header::CONTENT_ENCODING], "gzip");
        assert_eq!(gzipped.headers()[header::VARY], "Accept-Encoding");
        let body = gzipped
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes();
        assert!(body.len() < text.len() / 5);
        let mut decoded = Vec::new();
        std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&body[..]), &mut decoded)
            .expect("gzip");
        assert_eq!(decoded, text);
    }

    #[tokio::test]
    async fn small_binary_or_encoded_bodies_stay_as_they_are() {
        let small = gzip(response("text/plain", b"tiny".to_vec())).await;
        assert!(!small.headers().contains_key(header::CONTENT_ENCODING));
        let image = gzip(response("image/png", vec![0; 10_000])).await;
        assert!(!image.headers().contains_key(header::CONTENT_ENCODING));
        let mut encoded = response("text/plain", vec![b'a'; 10_000]);
        encoded
            .headers_mut()
            .insert(header::CONTENT_ENCODING, HeaderValue::from_static("br"));
        let encoded = gzip(encoded).await;
        assert_eq!(encoded.headers()[header::CONTENT_ENCODING], "br");
    }
}

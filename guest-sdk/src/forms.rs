//! Forms and arguments: Tornado's `get_argument` over the query and a
//! form body, and `multipart/form-data` bodies with their files streamed
//! (the [`multer`](https://docs.rs/multer) parser).

use crate::{Body, Error, Request};
use ::http::{StatusCode, header};
use bytes::Bytes;
use serde::de::DeserializeOwned;
use std::collections::HashMap;
use std::convert::Infallible;
use std::str::FromStr;
use std::sync::{Arc, Mutex, PoisonError};

/// The arguments of a request — its query, then its URL-encoded or
/// multipart form fields (not files) — by name, in order.
///
/// ```
/// use squall_sdk::{Error, Request};
/// # use squall_sdk::Method;
/// # use squall_sdk::futures::FutureExt;
///
/// async fn search(mut req: Request) -> Result<String, Error> {
///     let args = req.arguments().await?;
///     let query = args.require("q")?;               // 400 "missing argument: q" if absent
///     let page: u32 = args.get_as("page")?.unwrap_or(1);  // 400 if not a number
///     Ok(format!("{query}, page {page}, tags {:?}", args.all("tag")))
/// }
/// # let req = Request::new(Method::POST, "/search?q=rust&tag=a").with_form(&[("tag", "b")]);
/// # assert_eq!(search(req).now_or_never().unwrap().unwrap(), r#"rust, page 1, tags ["a", "b"]"#);
/// # let missing = search(Request::new(Method::GET, "/search")).now_or_never().unwrap().unwrap_err();
/// # assert_eq!(missing.status(), squall_sdk::StatusCode::BAD_REQUEST);
/// ```
#[derive(Debug, Clone, Default)]
pub struct Arguments {
    pairs: Vec<(String, String)>,
}

impl Arguments {
    /// The last value given for `name` (Tornado's `get_argument`).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.pairs
            .iter()
            .rev()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }

    /// The last value given for `name`, or `default`.
    pub fn get_or<'a>(&'a self, name: &str, default: &'a str) -> &'a str {
        self.get(name).unwrap_or(default)
    }

    /// The last value given for `name`; `400 Bad Request` naming it if
    /// there is none.
    pub fn require(&self, name: &str) -> Result<&str, Error> {
        self.get(name)
            .ok_or_else(|| Error::bad_request(format!("missing argument: {name}")))
    }

    /// Every value given for `name`, in order (Tornado's `get_arguments`).
    pub fn all(&self, name: &str) -> Vec<&str> {
        self.pairs
            .iter()
            .filter(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
            .collect()
    }

    /// The last value given for `name` parsed as `T`: `None` if there is
    /// none, `400 Bad Request` naming it if it does not parse.
    pub fn get_as<T: FromStr>(&self, name: &str) -> Result<Option<T>, Error> {
        self.get(name)
            .map(|value| {
                value
                    .parse()
                    .map_err(|_| Error::bad_request(format!("bad argument {name}: {value:?}")))
            })
            .transpose()
    }

    /// The arguments deserialized into `T` (a struct of named fields), the
    /// last value of each name as [`Arguments::get`] gives it; `400 Bad
    /// Request` if they do not fit.
    pub fn deserialize<T: DeserializeOwned>(&self) -> Result<T, Error> {
        let last_of: HashMap<&str, usize> = self
            .pairs
            .iter()
            .enumerate()
            .map(|(index, (key, _))| (key.as_str(), index))
            .collect();
        let last_values = self
            .pairs
            .iter()
            .enumerate()
            .filter(|(index, (key, _))| last_of.get(key.as_str()) == Some(index))
            .map(|(_, pair)| pair);
        let encoded = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(last_values)
            .finish();
        serde_urlencoded::from_str(&encoded)
            .map_err(|err| Error::bad_request(format!("bad arguments: {err}")))
    }

    /// Every `(name, value)` pair, in order.
    pub fn pairs(&self) -> &[(String, String)] {
        &self.pairs
    }

    /// The arguments of a raw query string.
    pub(crate) fn from_query(query: &str) -> Self {
        let pairs = form_urlencoded::parse(query.as_bytes())
            .map(|(key, value)| (key.into_owned(), value.into_owned()))
            .collect();
        Arguments { pairs }
    }
}

/// A `multipart/form-data` body, read field by field as it arrives.
///
/// ```no_run
/// use squall_sdk::{Error, Request};
///
/// async fn upload(mut req: Request) -> Result<String, Error> {
///     let mut form = req.multipart()?;
///     let mut saved = Vec::new();
///     while let Some(mut field) = form.next_field().await? {
///         let name = field.file_name().unwrap_or("unnamed").to_owned();
///         let mut size = 0;
///         while let Some(chunk) = field.chunk().await? {
///             size += chunk.len();                    // streamed: never all in memory
///         }
///         saved.push(format!("{name}: {size} bytes"));
///     }
///     Ok(saved.join("\n"))
/// }
/// ```
pub struct Multipart {
    inner: multer::Multipart<'static>,
}

impl std::fmt::Debug for Multipart {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Multipart").finish_non_exhaustive()
    }
}

impl Multipart {
    /// The next field, or `None` after the last; `400` if the body is not
    /// well-formed multipart.
    pub async fn next_field(&mut self) -> Result<Option<Field>, Error> {
        let field = self.inner.next_field().await.map_err(multipart_error)?;
        Ok(field.map(|inner| Field { inner }))
    }
}

/// One field of a multipart form: a value, or a file.
pub struct Field {
    inner: multer::Field<'static>,
}

impl std::fmt::Debug for Field {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Field")
            .field("name", &self.name())
            .field("file_name", &self.file_name())
            .finish_non_exhaustive()
    }
}

impl Field {
    /// The field's name in the form.
    pub fn name(&self) -> Option<&str> {
        self.inner.name()
    }

    /// The name of the uploaded file, for a file field.
    pub fn file_name(&self) -> Option<&str> {
        self.inner.file_name()
    }

    /// The content type the client gave the field.
    pub fn content_type(&self) -> Option<String> {
        self.inner.content_type().map(|mime| mime.to_string())
    }

    /// The next chunk of the field's content, as it arrives.
    pub async fn chunk(&mut self) -> Result<Option<Vec<u8>>, Error> {
        let chunk = self.inner.chunk().await.map_err(multipart_error)?;
        Ok(chunk.map(|bytes| bytes.to_vec()))
    }

    /// The whole content.
    pub async fn bytes(self) -> Result<Vec<u8>, Error> {
        let bytes = self.inner.bytes().await.map_err(multipart_error)?;
        Ok(bytes.to_vec())
    }

    /// The whole content as UTF-8 text.
    pub async fn text(self) -> Result<String, Error> {
        self.inner.text().await.map_err(multipart_error)
    }
}

fn multipart_error(err: multer::Error) -> Error {
    match err {
        multer::Error::FieldSizeExceeded { .. } | multer::Error::StreamSizeExceeded { .. } => {
            Error::new(StatusCode::PAYLOAD_TOO_LARGE, err.to_string())
        }
        _ => Error::bad_request(format!("bad multipart body: {err}")),
    }
}

/// What kind of form a request's body is.
enum FormKind {
    UrlEncoded,
    Multipart(String),
    Other,
}

fn form_kind(req: &Request) -> FormKind {
    let Some(content_type) = req.header(header::CONTENT_TYPE) else {
        return FormKind::Other;
    };
    if content_type.split(';').next().is_some_and(|mime| {
        mime.trim()
            .eq_ignore_ascii_case("application/x-www-form-urlencoded")
    }) {
        return FormKind::UrlEncoded;
    }
    match multer::parse_boundary(content_type) {
        Ok(boundary) => FormKind::Multipart(boundary),
        Err(_) => FormKind::Other,
    }
}

/// A body as the byte stream multer reads, recording what it hands out in
/// `seen` when asked to, and leaving the rest of the body in `rest`.
fn body_stream(
    rest: Arc<Mutex<Body>>,
    seen: Option<Arc<Mutex<Vec<u8>>>>,
) -> impl futures::Stream<Item = Result<Bytes, Infallible>> + Send + 'static {
    futures::stream::unfold((rest, seen), |(rest, seen)| async move {
        let mut body = std::mem::take(&mut *rest.lock().unwrap_or_else(PoisonError::into_inner));
        let chunk = body.chunk().await;
        *rest.lock().unwrap_or_else(PoisonError::into_inner) = body;
        let chunk = chunk?;
        if let Some(seen) = &seen {
            seen.lock()
                .unwrap_or_else(PoisonError::into_inner)
                .extend_from_slice(&chunk);
        }
        Some((Ok(Bytes::from(chunk)), (rest, seen)))
    })
}

impl Request {
    /// The request's arguments: its query, then the fields of a
    /// URL-encoded or multipart form body (files are skipped; read those
    /// with [`Request::multipart`]). Reads the body.
    pub async fn arguments(&mut self) -> Result<Arguments, Error> {
        let mut pairs = self.query_arguments().pairs().to_vec();
        match form_kind(self) {
            FormKind::UrlEncoded => {
                let body = self.bytes().await;
                pairs.extend(
                    form_urlencoded::parse(&body)
                        .map(|(key, value)| (key.into_owned(), value.into_owned())),
                );
            }
            FormKind::Multipart(_) => {
                let mut form = self.multipart()?;
                while let Some(field) = form.next_field().await? {
                    if field.file_name().is_some() {
                        continue;
                    }
                    let name = field.name().unwrap_or_default().to_owned();
                    pairs.push((name, field.text().await?));
                }
            }
            FormKind::Other => {}
        }
        Ok(Arguments { pairs })
    }

    /// The body as a multipart form; `400` if the request is not
    /// `multipart/form-data` with a boundary. Takes the body.
    pub fn multipart(&mut self) -> Result<Multipart, Error> {
        let FormKind::Multipart(boundary) = form_kind(self) else {
            return Err(Error::bad_request("the body is not multipart/form-data"));
        };
        let body = Arc::new(Mutex::new(self.take_body()));
        let inner = multer::Multipart::new(body_stream(body, None), boundary);
        Ok(Multipart { inner })
    }

    /// The form field `name` for the XSRF check, the body left whole for
    /// the handler: the last such field of a URL-encoded body, or the
    /// first field of a multipart one if it is `name`.
    pub(crate) async fn form_field_for_xsrf(&mut self, name: &str) -> Option<String> {
        match form_kind(self) {
            FormKind::UrlEncoded => {
                let body = self.take_body().bytes().await;
                let value = form_urlencoded::parse(&body)
                    .filter(|(key, _)| key == name)
                    .map(|(_, value)| value.into_owned())
                    .last();
                self.set_body(Body::from_bytes(body));
                value
            }
            FormKind::Multipart(boundary) => {
                let rest = Arc::new(Mutex::new(self.take_body()));
                let seen = Arc::new(Mutex::new(Vec::new()));
                let mut form =
                    multer::Multipart::new(body_stream(rest.clone(), Some(seen.clone())), boundary);
                let value = match form.next_field().await {
                    Ok(Some(field)) if field.name() == Some(name) => field.text().await.ok(),
                    _ => None,
                };
                drop(form);
                let seen =
                    std::mem::take(&mut *seen.lock().unwrap_or_else(PoisonError::into_inner));
                let rest =
                    std::mem::take(&mut *rest.lock().unwrap_or_else(PoisonError::into_inner));
                self.set_body(Body::prefixed(seen, rest));
                value
            }
            FormKind::Other => None,
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;
    use ::http::Method;
    use futures::FutureExt;

    const BOUNDARY: &str = "XyZ";

    fn multipart_body(parts: &[(&str, Option<&str>, &str)]) -> String {
        let mut body = String::new();
        for (name, file, content) in parts {
            body.push_str(&format!("--{BOUNDARY}\r\n"));
            match file {
                Some(file) => body.push_str(&format!(
                    "Content-Disposition: form-data; name=\"{name}\"; filename=\"{file}\"\r\nContent-Type: text/plain\r\n\r\n"
                )),
                None => body.push_str(&format!(
                    "Content-Disposition: form-data; name=\"{name}\"\r\n\r\n"
                )),
            }
            body.push_str(content);
            body.push_str("\r\n");
        }
        body.push_str(&format!("--{BOUNDARY}--\r\n"));
        body
    }

    fn multipart_request(parts: &[(&str, Option<&str>, &str)]) -> Request {
        Request::new(Method::POST, "/upload?from=query")
            .with_header(
                "content-type",
                &format!("multipart/form-data; boundary={BOUNDARY}"),
            )
            .with_body(multipart_body(parts))
    }

    #[test]
    fn arguments_come_from_the_query_then_the_form_fields_not_files() {
        let mut req = multipart_request(&[
            ("title", None, "notes"),
            ("file", Some("a.txt"), "file content"),
            ("tag", None, "x"),
        ]);
        let args = req.arguments().now_or_never().unwrap().unwrap();
        assert_eq!(args.get("from"), Some("query"));
        assert_eq!(args.get("title"), Some("notes"));
        assert_eq!(args.get("file"), None);
        assert_eq!(args.all("tag"), ["x"]);
        assert_eq!(args.get_or("missing", "d"), "d");
        assert_eq!(
            args.require("missing").unwrap_err().message(),
            "missing argument: missing"
        );
    }

    #[test]
    fn multipart_files_are_read_in_chunks_and_bad_bodies_are_400() {
        let mut req = multipart_request(&[("doc", Some("d.txt"), "hello file")]);
        let mut form = req.multipart().unwrap();
        let mut field = form.next_field().now_or_never().unwrap().unwrap().unwrap();
        assert_eq!(field.file_name(), Some("d.txt"));
        assert_eq!(field.content_type().as_deref(), Some("text/plain"));
        let mut content = Vec::new();
        while let Some(chunk) = field.chunk().now_or_never().unwrap().unwrap() {
            content.extend(chunk);
        }
        assert_eq!(content, b"hello file");

        let mut broken = Request::new(Method::POST, "/")
            .with_header("content-type", "multipart/form-data; boundary=XyZ")
            .with_body("not multipart at all");
        let mut form = broken.multipart().unwrap();
        let err = form.next_field().now_or_never().unwrap().unwrap_err();
        assert_eq!(err.status(), StatusCode::BAD_REQUEST);
        let mut plain = Request::new(Method::POST, "/").with_body("x");
        assert_eq!(
            plain.multipart().unwrap_err().status(),
            StatusCode::BAD_REQUEST
        );
    }

    #[test]
    fn the_xsrf_field_is_found_and_the_body_kept_whole() {
        let parts = [("_xsrf", None, "token"), ("file", Some("f"), "data")];
        let mut req = multipart_request(&parts);
        let found = req.form_field_for_xsrf("_xsrf").now_or_never().unwrap();
        assert_eq!(found.as_deref(), Some("token"));
        assert_eq!(
            req.bytes().now_or_never().unwrap(),
            multipart_body(&parts).into_bytes()
        );

        let mut req = Request::new(Method::POST, "/").with_form(&[("a", "1"), ("_xsrf", "t")]);
        let found = req.form_field_for_xsrf("_xsrf").now_or_never().unwrap();
        assert_eq!(found.as_deref(), Some("t"));
        assert_eq!(req.text().now_or_never().unwrap().unwrap(), "a=1&_xsrf=t");

        // Only the first multipart field is looked at.
        let mut late = multipart_request(&[("a", None, "1"), ("_xsrf", None, "t")]);
        assert_eq!(
            late.form_field_for_xsrf("_xsrf").now_or_never().unwrap(),
            None
        );
    }
}

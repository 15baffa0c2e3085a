//! Static files an app's manifest maps to URL prefixes, served by the host
//! without an instance (Tornado's `StaticFileHandler`): content types by
//! extension, `ETag` and `Last-Modified` with their conditional requests
//! (304; `If-Modified-Since` only without `If-None-Match`), byte ranges
//! (206, 416; at most [`MAX_RANGES`] that add up to no more than the file,
//! else the whole file), precompressed `.br` / `.gz` siblings for clients
//! that accept them (never for a range), and a long cache life for versioned URLs
//! (`?v=`, from [`StaticFiles::version`]). A path that leaves its
//! directory — `..`, encoded or not, or a symbolic link pointing out — is
//! not found.

use crate::config::StaticDir;
use crate::runtime::sha256_hex;
use anyhow::{Context, Result};
use bytes::Bytes;
use http::{HeaderValue, Method, Response, StatusCode, header};
use http_body_util::BodyExt;
use http_body_util::combinators::BoxBody;
use hyper_staticfile::util::FileResponseBuilder;
use hyper_staticfile::{AcceptEncoding, ResolveResult, Resolver};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::SystemTime;

/// A static file's body as hyper reads it.
pub(crate) type FileBody = BoxBody<Bytes, std::io::Error>;

/// A year: how long a versioned URL may be cached (it changes with the file).
const VERSIONED_MAX_AGE: u32 = 365 * 24 * 3600;
/// Files hashed for versions are read whole: larger ones get none.
const MAX_VERSIONED_FILE: u64 = 64 << 20;
/// Versions remembered per app before the cache starts afresh.
const MAX_VERSIONS: usize = 10_000;
/// Files hashed at once for one app (each read whole on a blocking thread).
const HASHING_AT_ONCE: usize = 4;
/// Ranges one request may ask for: more, and the whole file is sent.
pub(crate) const MAX_RANGES: usize = 16;

/// A file's version, with the size and time it was computed for.
type Known = (u64, Option<SystemTime>, String);

/// One app's static directories.
pub(crate) struct StaticFiles {
    mounts: Vec<Mount>,
    /// File versions by path.
    versions: Mutex<HashMap<PathBuf, Known>>,
    /// A place to hash a file: a guest asking for many at once waits.
    hashing: tokio::sync::Semaphore,
}

struct Mount {
    prefix: String,
    /// The directory, with symbolic links resolved.
    root: PathBuf,
    resolver: Resolver,
}

impl StaticFiles {
    /// The directories `dirs`, each of which must exist.
    pub(crate) fn new(dirs: &[StaticDir]) -> Result<StaticFiles> {
        let mounts = dirs
            .iter()
            .map(|dir| {
                let root = dir.dir.canonicalize().with_context(|| {
                    format!(
                        "static directory {} for {} cannot be used",
                        dir.dir.display(),
                        dir.prefix
                    )
                })?;
                if !root.is_dir() {
                    anyhow::bail!("static {} is not a directory", dir.dir.display());
                }
                let mut resolver = Resolver::new(&root);
                resolver.allowed_encodings = AcceptEncoding::all();
                Ok(Mount {
                    prefix: dir.prefix.trim_end_matches('/').to_owned(),
                    root,
                    resolver,
                })
            })
            .collect::<Result<_>>()?;
        Ok(StaticFiles {
            mounts,
            versions: Mutex::new(HashMap::new()),
            hashing: tokio::sync::Semaphore::new(HASHING_AT_ONCE),
        })
    }

    /// Whether `path` (as the app sees it) is under one of the prefixes.
    pub(crate) fn serves(&self, path: &str) -> bool {
        self.mount(path).is_some()
    }

    fn mount(&self, path: &str) -> Option<(&Mount, String)> {
        self.mounts
            .iter()
            .filter_map(|mount| {
                let rest = path.strip_prefix(&mount.prefix)?;
                (rest.is_empty() || rest.starts_with('/')).then(|| (mount, rest.to_owned()))
            })
            .max_by_key(|(mount, _)| mount.prefix.len())
    }

    /// Answer `request` from the files; 405 for a method other than GET
    /// and HEAD, 404 for a file that is not there (or is outside).
    pub(crate) async fn serve(&self, request: &http::request::Parts) -> Response<FileBody> {
        let Some((mount, rest)) = self.mount(request.uri.path()) else {
            return status(StatusCode::NOT_FOUND);
        };
        if !matches!(request.method, Method::GET | Method::HEAD) {
            let mut refused = status(StatusCode::METHOD_NOT_ALLOWED);
            refused
                .headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
            return refused;
        }
        let range = request
            .headers
            .get(header::RANGE)
            .and_then(|value| value.to_str().ok());
        // A range of a precompressed sibling would be a range of its
        // compressed bytes: ranges come from the file itself.
        let accept = match range {
            Some(_) => AcceptEncoding::none(),
            None => {
                mount.resolver.allowed_encodings
                    & request
                        .headers
                        .get(header::ACCEPT_ENCODING)
                        .map(AcceptEncoding::from_header_value)
                        .unwrap_or(AcceptEncoding::none())
            }
        };
        let file = match mount.resolver.resolve_path(&rest, accept).await {
            Ok(ResolveResult::Found(file)) => file,
            Ok(ResolveResult::IsDirectory { .. } | ResolveResult::NotFound) => {
                return status(StatusCode::NOT_FOUND);
            }
            Ok(ResolveResult::PermissionDenied) => return status(StatusCode::FORBIDDEN),
            Ok(ResolveResult::MethodNotMatched) => {
                return status(StatusCode::METHOD_NOT_ALLOWED);
            }
            Err(err) => {
                tracing::warn!("static file {rest}: {err}");
                return status(StatusCode::INTERNAL_SERVER_ERROR);
            }
        };
        if !inside(&mount.root, &mount.root.join(&file.path)) {
            return status(StatusCode::NOT_FOUND);
        }
        let versioned = request
            .uri
            .query()
            .is_some_and(|query| query.split('&').any(|pair| pair.starts_with("v=")));
        let mut builder = FileResponseBuilder::new();
        builder
            .request_parts(&request.method, &request.headers)
            .cache_headers(versioned.then_some(VERSIONED_MAX_AGE));
        // RFC 9110, 13.1.3: with If-None-Match, If-Modified-Since is ignored.
        if request.headers.contains_key(header::IF_NONE_MATCH) {
            builder.if_modified_since(None);
        }
        if range.is_some_and(|range| !ranges_fit(range, file.size)) {
            builder.range_header(None);
        }
        let built = builder.build(file);
        let Ok(response) = built else {
            return status(StatusCode::INTERNAL_SERVER_ERROR);
        };
        let mut response = not_modified_if_matched(request, response.map(|body| body.boxed()));
        let headers = response.headers_mut();
        headers.insert(header::VARY, HeaderValue::from_static("Accept-Encoding"));
        let cache = if versioned {
            "public, max-age=31536000, immutable"
        } else {
            // Revalidate each time: a 304 when nothing changed.
            "no-cache"
        };
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
        response
    }

    /// A short hash of the file at `path` (as the app sees it) for a
    /// versioned URL, or `None` if no prefix covers it or it is not a file
    /// inside its directory.
    pub(crate) async fn version(&self, path: &str) -> Option<String> {
        let (mount, rest) = self.mount(path)?;
        let relative = rest.trim_start_matches('/');
        if relative
            .split('/')
            .any(|part| part == ".." || part.contains('\\'))
        {
            return None;
        }
        let file = mount.root.join(relative);
        let root = mount.root.clone();
        let metadata = tokio::fs::metadata(&file).await.ok()?;
        if !metadata.is_file() || metadata.len() > MAX_VERSIONED_FILE {
            return None;
        }
        let (size, modified) = (metadata.len(), metadata.modified().ok());
        if let Some((known_size, known_modified, version)) = self.known(&file)
            && known_size == size
            && known_modified == modified
        {
            return Some(version);
        }
        let _place = self.hashing.acquire().await.ok()?;
        let hashed = file.clone();
        let version = tokio::task::spawn_blocking(move || {
            if !inside(&root, &hashed) {
                return None;
            }
            let bytes = std::fs::read(&hashed).ok()?;
            Some(sha256_hex(&bytes)[..16].to_owned())
        })
        .await
        .ok()??;
        let mut versions = self.versions.lock().unwrap_or_else(|p| p.into_inner());
        if versions.len() >= MAX_VERSIONS {
            versions.clear();
        }
        versions.insert(file, (size, modified, version.clone()));
        Some(version)
    }

    fn known(&self, file: &Path) -> Option<Known> {
        let versions = self.versions.lock().unwrap_or_else(|p| p.into_inner());
        versions.get(file).cloned()
    }
}

/// Whether `path`, with its symbolic links resolved, is inside `root`.
fn inside(root: &Path, path: &Path) -> bool {
    path.canonicalize()
        .is_ok_and(|resolved| resolved.starts_with(root))
}

/// Whether the byte ranges `range` asks of a file of `size` bytes may be
/// served as asked: at most [`MAX_RANGES`] of them, adding up to no more
/// than the file (RFC 9110, 14.2 lets a server ignore the rest). Otherwise
/// the answer is the whole file, so no `Range` header multiplies it. A
/// header that does not parse is left to the response builder (ignored).
pub(crate) fn ranges_fit(range: &str, size: u64) -> bool {
    if range.split(',').count() > MAX_RANGES {
        return false;
    }
    match http_range::HttpRange::parse(range, size) {
        Ok(ranges) => ranges
            .iter()
            .try_fold(0u64, |total, range| total.checked_add(range.length))
            .is_some_and(|total| total <= size),
        Err(_) => true,
    }
}

/// A 304 in place of `response` when the request's `If-None-Match` names
/// its `ETag` (or `*`).
fn not_modified_if_matched(
    request: &http::request::Parts,
    response: Response<FileBody>,
) -> Response<FileBody> {
    let Some(etag) = response.headers().get(header::ETAG).cloned() else {
        return response;
    };
    let matched = request
        .headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .map(str::trim)
        .any(|tag| tag == "*" || weakly_equal(tag, etag.to_str().unwrap_or_default()));
    if !matched || response.status() != StatusCode::OK {
        return response;
    }
    let mut not_modified = status(StatusCode::NOT_MODIFIED);
    for name in [header::ETAG, header::LAST_MODIFIED] {
        if let Some(value) = response.headers().get(&name) {
            not_modified.headers_mut().insert(name, value.clone());
        }
    }
    not_modified
}

/// `If-None-Match` compares entity tags weakly (RFC 9110, 13.1.2).
fn weakly_equal(a: &str, b: &str) -> bool {
    a.trim_start_matches("W/") == b.trim_start_matches("W/")
}

fn status(code: StatusCode) -> Response<FileBody> {
    let mut response = Response::new(
        http_body_util::Empty::new()
            .map_err(|never| match never {})
            .boxed(),
    );
    *response.status_mut() = code;
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entity_tags_compare_weakly() {
        assert!(weakly_equal("W/\"a\"", "\"a\""));
        assert!(weakly_equal("\"a\"", "W/\"a\""));
        assert!(!weakly_equal("\"a\"", "\"b\""));
    }

    #[test]
    fn ranges_that_add_up_past_the_file_are_not_served_as_asked() {
        assert!(ranges_fit("bytes=0-6", 100));
        assert!(ranges_fit("bytes=0-9,20-29", 100));
        assert!(ranges_fit("bytes=-10", 100));
        assert!(!ranges_fit("bytes=0-,0-", 100), "twice the file");
        assert!(
            !ranges_fit("bytes=0-60,40-99", 100),
            "overlapping past the size"
        );
        let many = format!("bytes={}", vec!["0-0"; MAX_RANGES + 1].join(","));
        assert!(!ranges_fit(&many, 100));
        let enough = format!("bytes={}", vec!["0-0"; MAX_RANGES].join(","));
        assert!(ranges_fit(&enough, 100));
        assert!(
            ranges_fit("pages=1-2", 100),
            "not bytes: ignored by the builder"
        );
    }

    #[test]
    fn a_missing_directory_is_refused_naming_it() {
        let missing = StaticDir {
            prefix: "/static".to_owned(),
            dir: PathBuf::from("/nowhere/at/all"),
        };
        let err = StaticFiles::new(&[missing]).err().expect("refused");
        assert!(format!("{err:#}").contains("/nowhere/at/all"), "{err:#}");
    }

    #[test]
    fn the_longest_prefix_serves() {
        let dir = tempfile::tempdir().expect("temp dir");
        let dirs = [
            StaticDir {
                prefix: "/static".to_owned(),
                dir: dir.path().to_owned(),
            },
            StaticDir {
                prefix: "/static/img/".to_owned(),
                dir: dir.path().to_owned(),
            },
        ];
        let files = StaticFiles::new(&dirs).expect("loaded");
        assert!(files.serves("/static/a.css"));
        assert!(files.serves("/static"));
        assert!(!files.serves("/staticky"));
        let (mount, rest) = files.mount("/static/img/a.png").expect("mounted");
        assert_eq!(
            (mount.prefix.as_str(), rest.as_str()),
            ("/static/img", "/a.png")
        );
    }
}

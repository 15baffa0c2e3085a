//! Tornado's web framework through real HTTP: cookies plain and signed
//! (tampering, expiry, key rotation), XSRF accepted and refused, arguments
//! and multipart uploads, error pages by `Accept`, templates (escaping,
//! errors), redirects, static files served by the host (304, 206, 416,
//! precompressed, traversal), compression and the current user.
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

mod support;

use reqwest::header::{self, HeaderMap};
use std::io::Read;
use std::path::Path;
use support::{Server, client, component, repo};

const SECRET_1: &str = "the first cookie secret, 32 bytes";
const SECRET_2: &str = "the second cookie secret, 32 byte";

/// The web test guest with `secrets` (`cookie_secret...` keys), its static
/// directory at `static_dir`, and `extra` lines.
fn serve(secrets: &[(&str, &str)], static_dir: &Path, extra: &str) -> Server {
    let mut config = String::new();
    for (key, value) in secrets {
        config.push_str(&format!("{key} = {value:?}\n"));
    }
    Server::with_manifest(&format!(
        "[app.web]\nsource = {:?}\n{extra}\n[[app.web.static]]\nprefix = \"/static\"\ndir = {:?}\n\n[app.web.config]\n{config}",
        component("tests/guests/web").display().to_string(),
        static_dir.display().to_string(),
    ))
}

fn static_dir() -> std::path::PathBuf {
    repo().join("tests/guests/web/static")
}

fn web() -> Server {
    serve(&[("cookie_secret", SECRET_1)], &static_dir(), "")
}

/// The `name=value` pairs a response sets, as a `Cookie` header would carry them.
fn set_cookies(headers: &HeaderMap) -> Vec<String> {
    headers
        .get_all(header::SET_COOKIE)
        .iter()
        .map(|value| value.to_str().unwrap().to_owned())
        .collect()
}

fn cookie_value(set: &[String], name: &str) -> String {
    set.iter()
        .find_map(|cookie| cookie.strip_prefix(&format!("{name}=")))
        .and_then(|rest| rest.split(';').next())
        .unwrap_or_else(|| panic!("no {name} in {set:?}"))
        .to_owned()
}

/// GET `path` with one more header.
async fn get_with(
    server: &Server,
    path: &str,
    name: impl AsRef<str>,
    value: impl AsRef<str>,
) -> reqwest::Response {
    client()
        .get(server.url(path))
        .header(name.as_ref(), value.as_ref())
        .send()
        .await
        .unwrap()
}

async fn get_with_cookie(server: &Server, path: &str, cookie: &str) -> (u16, String) {
    let response = get_with(server, path, header::COOKIE, cookie).await;
    (response.status().as_u16(), response.text().await.unwrap())
}

#[tokio::test(flavor = "multi_thread")]
async fn signed_cookies_survive_only_untouched_and_rotate_keys() {
    let server = web();
    let response = client()
        .get(server.url("/cookies/set"))
        .send()
        .await
        .unwrap();
    let set = set_cookies(response.headers());
    assert!(
        set.iter().any(|c| c.starts_with("theme=dark")
            && c.contains("SameSite=Strict")
            && c.contains("Max-Age=604800")),
        "{set:?}"
    );
    assert!(
        set.iter()
            .any(|c| c.starts_with("old=;") && c.contains("Max-Age=0")),
        "{set:?}"
    );
    let user = set.iter().find(|c| c.starts_with("user=")).unwrap();
    assert!(
        user.contains("HttpOnly") && user.contains("Path=/"),
        "{user}"
    );
    let signed = cookie_value(&set, "user");

    let read = |cookie: String| {
        let server = &server;
        async move { get_with_cookie(server, "/cookies/read", &cookie).await.1 }
    };
    assert_eq!(read(format!("user={signed}")).await, "ada");
    // Tampered value, tampered signature, unsigned: absent, never an error.
    let mut parts: Vec<String> = signed.split('|').map(str::to_owned).collect();
    parts[3] = "ZXZl".to_owned(); // "eve"
    assert_eq!(read(format!("user={}", parts.join("|"))).await, "absent");
    let mut flipped = signed.clone();
    let last = flipped.pop().unwrap();
    flipped.push(if last == 'A' { 'B' } else { 'A' });
    assert_eq!(read(format!("user={flipped}")).await, "absent");
    assert_eq!(read("user=ada".to_owned()).await, "absent");
    // Signed for another name.
    assert_eq!(read(format!("theme={signed}")).await, "absent");
    drop(server);

    // Rotation: version 2 signs now, version 1 still verifies.
    let rotated = serve(
        &[("cookie_secret", SECRET_1), ("cookie_secret_2", SECRET_2)],
        &static_dir(),
        "",
    );
    let (_, old_read) = get_with_cookie(&rotated, "/cookies/read", &format!("user={signed}")).await;
    assert_eq!(old_read, "ada");
    let response = client()
        .get(rotated.url("/cookies/set?user=grace"))
        .send()
        .await
        .unwrap();
    let newer = cookie_value(&set_cookies(response.headers()), "user");
    assert!(newer.starts_with("2|2|"), "{newer}");
    drop(rotated);

    // The old key retired: what it signed reads as absent, the new still reads.
    let retired = serve(&[("cookie_secret_2", SECRET_2)], &static_dir(), "");
    assert_eq!(
        get_with_cookie(&retired, "/cookies/read", &format!("user={signed}"))
            .await
            .1,
        "absent"
    );
    assert_eq!(
        get_with_cookie(&retired, "/cookies/read", &format!("user={newer}"))
            .await
            .1,
        "grace"
    );

    // No secret at all: a clear 500, the reason in the log.
    let none = serve(&[], &static_dir(), "");
    assert_eq!(get_with_cookie(&none, "/cookies/read", "").await.0, 500);
}

#[tokio::test(flavor = "multi_thread")]
async fn xsrf_accepts_the_token_and_refuses_forgeries() {
    let server = web();
    let page = client().get(server.url("/form")).send().await.unwrap();
    let set = set_cookies(page.headers());
    let cookie = cookie_value(&set, "_xsrf");
    let html = page.text().await.unwrap();
    let field = html
        .split(r#"name="_xsrf" value=""#)
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap()
        .to_owned();
    // The page's token is masked: not the cookie's text.
    assert_ne!(field, cookie);

    let post = |body: String, cookie: Option<String>, header: Option<String>| {
        let server = &server;
        async move {
            let mut request = client()
                .post(server.url("/form"))
                .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                .body(body);
            if let Some(cookie) = cookie {
                request = request.header(header::COOKIE, format!("_xsrf={cookie}"));
            }
            if let Some(token) = header {
                request = request.header("X-XSRFToken", token);
            }
            request.send().await.unwrap().status().as_u16()
        }
    };
    let encoded: String = url_encode(&field);
    assert_eq!(
        post(
            format!("note=hi&_xsrf={encoded}"),
            Some(cookie.clone()),
            None
        )
        .await,
        200
    );
    assert_eq!(
        post(
            "note=hi".to_owned(),
            Some(cookie.clone()),
            Some(field.clone())
        )
        .await,
        200
    );
    // Forgeries: no token, no cookie, another token.
    assert_eq!(
        post("note=hi".to_owned(), Some(cookie.clone()), None).await,
        403
    );
    assert_eq!(
        post(format!("note=hi&_xsrf={encoded}"), None, None).await,
        403
    );
    let other_page = client().get(server.url("/form")).send().await.unwrap();
    let other_cookie = cookie_value(&set_cookies(other_page.headers()), "_xsrf");
    assert_eq!(
        post(format!("note=hi&_xsrf={encoded}"), Some(other_cookie), None).await,
        403
    );

    // Multipart: the token as the first field.
    let boundary = "B0undary";
    let body = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"_xsrf\"\r\n\r\n{field}\r\n--{boundary}\r\nContent-Disposition: form-data; name=\"doc\"; filename=\"a.txt\"\r\n\r\nhello\r\n--{boundary}--\r\n"
    );
    let upload = client()
        .post(server.url("/upload"))
        .header(
            header::CONTENT_TYPE,
            format!("multipart/form-data; boundary={boundary}"),
        )
        .header(header::COOKIE, format!("_xsrf={cookie}"))
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(upload.status(), 200);
    assert_eq!(
        upload.text().await.unwrap(),
        format!("_xsrf={field}\ndoc: a.txt (5 bytes)")
    );
}

fn url_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            b => format!("%{b:02X}"),
        })
        .collect()
}

/// A POST to `path` that passes the XSRF check: the `_xsrf` cookie of a
/// page, and its token in the header.
async fn protected_post(server: &Server, path: &str) -> reqwest::RequestBuilder {
    let page = client().get(server.url("/form")).send().await.unwrap();
    let token = cookie_value(&set_cookies(page.headers()), "_xsrf");
    client()
        .post(server.url(path))
        .header(header::COOKIE, format!("_xsrf={token}"))
        .header("X-XSRFToken", token)
}

#[tokio::test(flavor = "multi_thread")]
async fn arguments_uploads_and_error_pages() {
    let server = web();
    let response = protected_post(&server, "/args?name=query&tag=a")
        .await
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body("color=red&tag=b&name=form")
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.text().await.unwrap(),
        "name=form color=red tags=a,b"
    );
    let missing = client().get(server.url("/args")).send().await.unwrap();
    assert_eq!(missing.status(), 400);
    assert_eq!(missing.text().await.unwrap(), "missing argument: name\n");

    // A 3 MiB upload streamed through, with a field beside it.
    let boundary = "XyZ";
    let mut body = format!("--{boundary}\r\nContent-Disposition: form-data; name=\"title\"\r\n\r\nbig one\r\n--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"big.bin\"\r\nContent-Type: application/octet-stream\r\n\r\n").into_bytes();
    body.extend(vec![7u8; 3 << 20]);
    body.extend(format!("\r\n--{boundary}--\r\n").into_bytes());
    let upload = protected_post(&server, "/upload")
        .await
        .header(
            header::CONTENT_TYPE,
            format!("multipart/form-data; boundary={boundary}"),
        )
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(
        upload.text().await.unwrap(),
        "title=big one\nfile: big.bin (3145728 bytes)"
    );
    // Broken multipart: 400, and over max_body: 413.
    let broken = protected_post(&server, "/upload")
        .await
        .header(header::CONTENT_TYPE, "multipart/form-data; boundary=nope")
        .body("garbage")
        .send()
        .await
        .unwrap();
    assert_eq!(broken.status(), 400);
    let small = serve(
        &[("cookie_secret", SECRET_1)],
        &static_dir(),
        "max_body = \"64KiB\"",
    );
    let too_big = protected_post(&small, "/upload")
        .await
        .header(header::CONTENT_TYPE, "multipart/form-data; boundary=XyZ")
        .body(vec![b'x'; 200 << 10])
        .send()
        .await
        .unwrap();
    assert_eq!(too_big.status(), 413);

    // Error pages by Accept: JSON, HTML (escaped), or plain text.
    let json = get_with(&server, "/error/409", header::ACCEPT, "application/json").await;
    assert_eq!(json.status(), 409);
    assert_eq!(json.headers()[header::CONTENT_TYPE], "application/json");
    let json: serde_json::Value = serde_json::from_str(&json.text().await.unwrap()).unwrap();
    assert_eq!(json["status"], 409);
    assert_eq!(json["message"], "a <custom> message");
    let html = get_with(
        &server,
        "/error/404",
        header::ACCEPT,
        "text/html,application/xhtml+xml,*/*;q=0.8",
    )
    .await;
    assert_eq!(html.status(), 404);
    let html = html.text().await.unwrap();
    assert!(
        html.contains("<h1>404 Not Found</h1>") && html.contains("a &lt;custom&gt; message"),
        "{html}"
    );
    let text = client().get(server.url("/error/418")).send().await.unwrap();
    assert_eq!(text.text().await.unwrap(), "a <custom> message\n");
    // The router's own 404 gets the page too.
    let unknown = get_with(&server, "/nowhere", header::ACCEPT, "application/json").await;
    assert_eq!(unknown.status(), 404);
    assert!(unknown.text().await.unwrap().contains("\"status\":404"));
}

#[tokio::test(flavor = "multi_thread")]
async fn templates_escape_and_fail_clearly_redirects_and_the_current_user() {
    let server = web();
    let page = client().get(server.url("/template")).send().await.unwrap();
    assert_eq!(
        page.headers()[header::CONTENT_TYPE],
        "text/html; charset=utf-8"
    );
    let page = page.text().await.unwrap();
    assert!(page.contains("<title>Greeting</title>"), "{page}");
    assert!(
        page.contains("Hello, &lt;script&gt;alert(1)&lt;&#x2f;script&gt;!"),
        "{page}"
    );
    assert!(page.contains("<b>bold</b>"), "{page}");
    // A template error: a plain 500 in production, the detail in the log.
    let broken = client()
        .get(server.url("/template-broken"))
        .send()
        .await
        .unwrap();
    assert_eq!(broken.status(), 500);
    assert_eq!(
        broken.text().await.unwrap(),
        "the page could not be rendered\n"
    );
    server.logged("template broken.html").await;
    let debug = serve(
        &[("cookie_secret", SECRET_1), ("debug", "true")],
        &static_dir(),
        "",
    );
    let detail = client()
        .get(debug.url("/template-broken"))
        .send()
        .await
        .unwrap();
    assert_eq!(detail.status(), 500);
    let detail = detail.text().await.unwrap();
    assert!(
        detail.contains("no_such_filter") && detail.contains("line 3"),
        "{detail}"
    );

    for code in [301, 302, 303, 307, 308] {
        let response = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap()
            .get(server.url(&format!("/redirect/{code}")))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), code);
        assert_eq!(response.headers()[header::LOCATION], "/target");
    }

    // Not logged in: GET goes to the login page, POST is refused.
    let no_redirects = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let private = no_redirects
        .get(server.url("/private?x=1"))
        .send()
        .await
        .unwrap();
    assert_eq!(private.status(), 302);
    assert_eq!(
        private.headers()[header::LOCATION],
        "/login?next=%2Fprivate%3Fx%3D1"
    );
    let post = protected_post(&server, "/private")
        .await
        .send()
        .await
        .unwrap();
    assert_eq!(post.status(), 403);
    // Logged in (a signed cookie): the page.
    let set = client()
        .get(server.url("/cookies/set?user=lin"))
        .send()
        .await
        .unwrap();
    let user = cookie_value(&set_cookies(set.headers()), "user");
    assert_eq!(
        get_with_cookie(&server, "/private", &format!("user={user}")).await,
        (200, "private page of lin".to_owned())
    );

    assert_eq!(
        get_with_cookie(&server, "/link", "").await.1,
        "/notes/a%20b"
    );
    assert_eq!(get_with_cookie(&server, "/whoami", "").await.1, "127.0.0.1");
    // A client cannot claim another address.
    let spoofed = get_with(&server, "/whoami", "squall-client-addr", "10.9.8.7").await;
    assert_eq!(spoofed.text().await.unwrap(), "127.0.0.1");
}

#[tokio::test(flavor = "multi_thread")]
async fn static_files_are_served_by_the_host_with_caching_and_ranges() {
    let dir = tempfile::tempdir().unwrap();
    let files = dir.path().join("static");
    std::fs::create_dir(&files).unwrap();
    for name in ["app.css", "app.css.gz", "app.js"] {
        std::fs::copy(static_dir().join(name), files.join(name)).unwrap();
    }
    std::fs::write(dir.path().join("secret.txt"), "outside").unwrap();
    std::os::unix::fs::symlink(dir.path().join("secret.txt"), files.join("leak.txt")).unwrap();
    let server = serve(&[("cookie_secret", SECRET_1)], &files, "");
    let css = std::fs::read_to_string(files.join("app.css")).unwrap();

    let plain = client()
        .get(server.url("/static/app.css"))
        .send()
        .await
        .unwrap();
    assert_eq!(plain.status(), 200);
    assert_eq!(plain.headers()[header::CONTENT_TYPE], "text/css");
    assert_eq!(plain.headers()[header::CACHE_CONTROL], "no-cache");
    let etag = plain.headers()[header::ETAG].to_str().unwrap().to_owned();
    let modified = plain.headers()[header::LAST_MODIFIED]
        .to_str()
        .unwrap()
        .to_owned();
    assert_eq!(plain.text().await.unwrap(), css);
    server.logged("loaded").await;
    assert!(
        !server
            .logs()
            .contains("path=\"/static/app.css\" status=200 ms"),
        "no instance: no request line"
    );

    let revalidated = get_with(&server, "/static/app.css", header::IF_NONE_MATCH, &etag).await;
    assert_eq!(revalidated.status(), 304);
    let since = get_with(
        &server,
        "/static/app.css",
        header::IF_MODIFIED_SINCE,
        &modified,
    )
    .await;
    assert_eq!(since.status(), 304);

    let range = get_with(&server, "/static/app.js", header::RANGE, "bytes=0-6").await;
    assert_eq!(range.status(), 206);
    assert_eq!(range.text().await.unwrap(), "console");
    let beyond = get_with(&server, "/static/app.js", header::RANGE, "bytes=5000-6000").await;
    assert_eq!(beyond.status(), 416);
    // Ranges that would multiply the file: the file once, as a 200.
    let js_len = std::fs::metadata(files.join("app.js")).unwrap().len();
    let multiplied = format!("bytes={}", vec!["0-"; 3000].join(","));
    let whole = get_with(&server, "/static/app.js", header::RANGE, &multiplied).await;
    assert_eq!(whole.status(), 200);
    assert_eq!(whole.bytes().await.unwrap().len() as u64, js_len);
    // A neighbour's request meanwhile is answered as ever.
    assert_eq!(get_with_cookie(&server, "/whoami", "").await.0, 200);
    // A range of a file with a precompressed sibling: the file's own bytes.
    let ranged = client()
        .get(server.url("/static/app.css"))
        .header(header::RANGE, "bytes=0-3")
        .header(header::ACCEPT_ENCODING, "gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(ranged.status(), 206);
    assert!(!ranged.headers().contains_key(header::CONTENT_ENCODING));
    assert_eq!(ranged.text().await.unwrap(), css[..4]);
    // If-None-Match decides alone: a stale tag is a 200 whatever the date.
    let stale = client()
        .get(server.url("/static/app.css"))
        .header(header::IF_NONE_MATCH, "\"stale\"")
        .header(header::IF_MODIFIED_SINCE, &modified)
        .send()
        .await
        .unwrap();
    assert_eq!(stale.status(), 200);

    // The precompressed sibling for a client that accepts gzip.
    let gz = get_with(&server, "/static/app.css", header::ACCEPT_ENCODING, "gzip").await;
    assert_eq!(gz.headers()[header::CONTENT_ENCODING], "gzip");
    let mut decoded = String::new();
    flate2::read::GzDecoder::new(&gz.bytes().await.unwrap()[..])
        .read_to_string(&mut decoded)
        .unwrap();
    assert_eq!(decoded, css);

    // A versioned URL from the app, cached for a year.
    let urls = client()
        .get(server.url("/static-url"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let (versioned, unserved) = urls.split_once('\n').unwrap();
    assert!(
        versioned.starts_with("/static/app.css?v=")
            && versioned.len() == "/static/app.css?v=".len() + 16,
        "{versioned}"
    );
    assert_eq!(unserved, "/elsewhere.css");
    let cached = client().get(server.url(versioned)).send().await.unwrap();
    assert_eq!(
        cached.headers()[header::CACHE_CONTROL],
        "public, max-age=31536000, immutable"
    );
    // A changed file gets a new version.
    std::fs::write(files.join("app.css"), "body { color: red; }\n").unwrap();
    let changed = client()
        .get(server.url("/static-url"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_ne!(changed.split('\n').next().unwrap(), versioned);

    // Leaving the directory: never served.
    for path in [
        "/static/../secret.txt",
        "/static/%2e%2e/secret.txt",
        "/static/..%2fsecret.txt",
        "/static/%2e%2e%2fsecret.txt",
        "/static/leak.txt",
        "/static/nothing.css",
    ] {
        let response = client().get(server.url(path)).send().await.unwrap();
        let status = response.status().as_u16();
        let body = response.text().await.unwrap();
        assert!(!body.contains("outside"), "{path}: {status} {body}");
        assert!(status == 404 || status == 400, "{path}: {status}");
    }
    let post = client()
        .post(server.url("/static/app.js"))
        .send()
        .await
        .unwrap();
    assert_eq!(post.status(), 405);
}

#[tokio::test(flavor = "multi_thread")]
async fn responses_are_compressed_for_clients_that_accept_it() {
    let server = web();
    let gz = get_with(&server, "/big", header::ACCEPT_ENCODING, "gzip, br").await;
    assert_eq!(gz.headers()[header::CONTENT_ENCODING], "gzip");
    assert_eq!(gz.headers()[header::VARY], "Accept-Encoding");
    let bytes = gz.bytes().await.unwrap();
    let mut decoded = String::new();
    flate2::read::GzDecoder::new(&bytes[..])
        .read_to_string(&mut decoded)
        .unwrap();
    assert_eq!(decoded, "<p>compress me</p>\n".repeat(500));
    assert!(bytes.len() < decoded.len() / 10);

    let identity = client().get(server.url("/big")).send().await.unwrap();
    assert!(!identity.headers().contains_key(header::CONTENT_ENCODING));
    let refused = get_with(&server, "/big", header::ACCEPT_ENCODING, "gzip;q=0").await;
    assert!(!refused.headers().contains_key(header::CONTENT_ENCODING));
    let small = get_with(&server, "/whoami", header::ACCEPT_ENCODING, "gzip").await;
    assert!(!small.headers().contains_key(header::CONTENT_ENCODING));

    let off = serve(
        &[("cookie_secret", SECRET_1)],
        &static_dir(),
        "compress = false",
    );
    let plain = get_with(&off, "/big", header::ACCEPT_ENCODING, "gzip").await;
    assert!(!plain.headers().contains_key(header::CONTENT_ENCODING));
}

#[test]
fn a_missing_static_directory_is_refused_at_start() {
    let stderr = support::refused_manifest(&format!(
        "[app.web]\nsource = {:?}\n\n[[app.web.static]]\nprefix = \"/static\"\ndir = \"missing\"\n",
        component("tests/guests/web").display().to_string()
    ));
    assert!(stderr.contains("missing"), "{stderr}");
}

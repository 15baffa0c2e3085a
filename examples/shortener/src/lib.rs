//! A URL shortener on the key-value store: `squall serve examples/shortener`,
//! then open http://127.0.0.1:8080/.
//!
//! - `POST /links` (form or JSON field `url`) stores a link under a short
//!   code taken from an atomic counter; `201` with the short link as JSON,
//!   or a redirect to the page for a browser's form.
//! - `GET /{code}` redirects to the link and counts the hit atomically.
//! - `GET /links/{code}` and `GET /links?cursor=…` describe links, a page
//!   at a time; `GET /` shows them with the form.
//!
//! Short links start with the `base_url` config value.

use squall_sdk::serde::{Deserialize, Serialize};
use squall_sdk::{
    Error, Html, IntoResponse, Json, Request, Response, Router, StatusCode, header, kv,
};

/// Longest link accepted.
const MAX_URL: usize = 2048;
/// Links per page.
const PAGE: u32 = 20;

fn app() -> Router {
    Router::new()
        .get("/", home)
        .post("/links", create)
        .get("/links", list)
        .get("/links/{code}", describe)
        .get("/{code}", follow)
}

#[derive(Deserialize)]
#[serde(crate = "squall_sdk::serde")]
struct NewLink {
    url: String,
}

#[derive(Serialize, Deserialize)]
#[serde(crate = "squall_sdk::serde")]
struct Stored {
    url: String,
}

#[derive(Serialize)]
#[serde(crate = "squall_sdk::serde")]
struct Link {
    code: String,
    url: String,
    short_url: String,
    hits: i64,
}

#[derive(Serialize)]
#[serde(crate = "squall_sdk::serde")]
struct Links {
    links: Vec<Link>,
    cursor: Option<String>,
}

/// Store a link under a fresh code.
async fn create(mut req: Request) -> Result<Response, Error> {
    let wants_html = req
        .header(header::ACCEPT)
        .is_some_and(|accept| accept.contains("text/html"));
    let is_json = req
        .header(header::CONTENT_TYPE)
        .is_some_and(|kind| kind.starts_with("application/json"));
    let new: NewLink = if is_json {
        req.json().await?
    } else {
        req.form().await?
    };
    let url = new.url.trim().to_owned();
    let printable = url.bytes().all(|byte| byte.is_ascii_graphic());
    if url.len() > MAX_URL
        || !printable
        || !(url.starts_with("http://") || url.starts_with("https://"))
    {
        return Err(Error::bad_request(format!(
            "the link must be an http:// or https:// URL of at most {MAX_URL} bytes, \
             without spaces (percent-encode them)"
        )));
    }
    let id = kv::increment("next-id", 1).await?;
    let code = base62(id as u64);
    let stored = squall_sdk::serde_json::to_vec(&Stored { url: url.clone() })
        .map_err(|err| Error::internal(err.to_string()))?;
    // The counter never hands out a code twice; the swap makes sure.
    if !kv::compare_and_swap(&link_key(&code), None, Some(&stored)).await? {
        return Err(Error::new(StatusCode::CONFLICT, "that code is taken"));
    }
    if wants_html {
        return Ok(Response::new(StatusCode::SEE_OTHER, "")
            .with_header(header::LOCATION, &format!("/?created={code}")));
    }
    let short_url = short_url(&req, &code);
    let link = Link {
        code,
        url,
        short_url: short_url.clone(),
        hits: 0,
    };
    Ok(Json(link)
        .into_response()
        .with_status(StatusCode::CREATED)
        .with_header(header::LOCATION, &short_url))
}

/// Redirect to the link, counting the hit.
async fn follow(req: Request) -> Result<Response, Error> {
    let code = req.param("code").unwrap_or_default();
    let stored: Stored = kv::get_json(&link_key(code))
        .await?
        .ok_or_else(Error::not_found)?;
    kv::increment(&hits_key(code), 1).await?;
    Ok(Response::new(StatusCode::FOUND, "").with_header(header::LOCATION, &stored.url))
}

/// One link, with its hits.
async fn describe(req: Request) -> Result<Json<Link>, Error> {
    let code = req.param("code").unwrap_or_default();
    let mut links = links(&req, vec![code.to_owned()]).await?;
    links.pop().map(Json).ok_or_else(Error::not_found)
}

/// A page of links, in code order.
async fn list(req: Request) -> Result<Json<Links>, Error> {
    let cursor = req.query_arguments().get("cursor");
    Ok(Json(page(&req, cursor).await?))
}

async fn page(req: &Request, cursor: Option<&str>) -> Result<Links, Error> {
    let cursor = cursor.map(link_key);
    let page = kv::list_keys("link:", cursor.as_deref(), PAGE).await?;
    let codes = page
        .keys
        .iter()
        .filter_map(|key| key.strip_prefix("link:"))
        .map(str::to_owned)
        .collect();
    Ok(Links {
        links: links(req, codes).await?,
        cursor: page
            .cursor
            .and_then(|key| key.strip_prefix("link:").map(str::to_owned)),
    })
}

/// The links of `codes` that exist, with their hits: two reads in all.
async fn links(req: &Request, codes: Vec<String>) -> Result<Vec<Link>, Error> {
    let stored = kv::get_many(&codes.iter().map(|code| link_key(code)).collect::<Vec<_>>()).await?;
    let hits = kv::get_many(&codes.iter().map(|code| hits_key(code)).collect::<Vec<_>>()).await?;
    Ok(codes
        .into_iter()
        .zip(stored.into_iter().zip(hits))
        .filter_map(|(code, (stored, hits))| {
            let stored: Stored = squall_sdk::serde_json::from_slice(&stored?).ok()?;
            let hits = hits
                .and_then(|bytes| String::from_utf8(bytes).ok()?.parse().ok())
                .unwrap_or(0);
            Some(Link {
                short_url: short_url(req, &code),
                code,
                url: stored.url,
                hits,
            })
        })
        .collect())
}

/// The form and a page of links.
async fn home(req: Request) -> Result<Html<String>, Error> {
    let cursor = req.query_arguments().get("cursor");
    let page = page(&req, cursor).await?;
    let mut rows = String::new();
    for link in &page.links {
        rows.push_str(&format!(
            "<tr><td><a href=\"{short}\">{short}</a></td><td>{url}</td><td>{hits}</td></tr>\n",
            short = escape(&link.short_url),
            url = escape(&link.url),
            hits = link.hits
        ));
    }
    let created = req
        .query_arguments()
        .get("created")
        .map(|code| {
            format!(
                "<p id=\"created\">Created <a href=\"{0}\">{0}</a></p>",
                escape(&short_url(&req, code))
            )
        })
        .unwrap_or_default();
    let next = page
        .cursor
        .map(|cursor| {
            format!(
                "<p><a href=\"/?cursor={}\">Next page</a></p>",
                escape(&cursor)
            )
        })
        .unwrap_or_default();
    Ok(Html(
        TEMPLATE
            .replace("{created}", &created)
            .replace("{rows}", &rows)
            .replace("{next}", &next),
    ))
}

fn link_key(code: &str) -> String {
    format!("link:{code}")
}

fn hits_key(code: &str) -> String {
    format!("hits:{code}")
}

/// `base_url` from the config, else the address the request came to.
fn short_url(req: &Request, code: &str) -> String {
    let base = squall_sdk::config::get("base_url")
        .unwrap_or_else(|| format!("http://{}", req.authority().unwrap_or("localhost")));
    format!("{}/{code}", base.trim_end_matches('/'))
}

fn base62(mut n: u64) -> String {
    const DIGITS: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
    let mut code = Vec::new();
    loop {
        code.push(DIGITS[(n % 62) as usize]);
        n /= 62;
        if n == 0 {
            break;
        }
    }
    code.reverse();
    String::from_utf8(code).unwrap_or_default()
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

const TEMPLATE: &str = r#"<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>Shortener</title>
<style>body{font-family:sans-serif;max-width:50em;margin:2em auto}td{padding:.2em .8em}</style></head>
<body>
<h1>Shortener</h1>
<form method="post" action="/links">
  <input name="url" type="url" placeholder="https://example.com/a/long/path" size="50" required>
  <button>Shorten</button>
</form>
{created}
<table>
<tr><th>Short link</th><th>Goes to</th><th>Hits</th></tr>
{rows}</table>
{next}
</body>
</html>
"#;

squall_sdk::export!(app);

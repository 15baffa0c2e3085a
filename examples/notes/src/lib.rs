//! A multi-user notes app in the spirit of Tornado's blog demo:
//! `squall serve examples/notes`, then open http://127.0.0.1:8080/.
//!
//! - Sign up and log in: passwords hashed with Argon2id, the session in a
//!   signed cookie (`cookie_secret` in its config).
//! - Every form carries an XSRF token; pages are MiniJinja templates with
//!   a base layout; the stylesheet and script are static files the host
//!   serves, at URLs versioned by their content.
//! - Notes live in the app's key-value store, under their author's name.

use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use argon2::{Algorithm, Argon2, Params, Version};
use squall_sdk::cookie::{Cookie, Signer};
use squall_sdk::serde::{Deserialize, Serialize};
// `load_templates!` names the `minijinja` crate: the SDK's, here.
use squall_sdk::template::{Templates, Value, context, minijinja};
use squall_sdk::web::{authenticated, static_url};
use squall_sdk::{Error, Html, Request, Response, Router, StatusCode, kv};

/// Notes shown on the list page, newest first.
const LIST: u32 = 100;
const MAX_TITLE: usize = 200;
const MAX_BODY: usize = 10_000;

fn app() -> Router {
    Router::new()
        .xsrf_protection()
        .login_url("/login")
        .prepare(|mut req: Request| async move {
            if let Some(user) = Signer::from_config()?.get(&req, SESSION) {
                req.set_current_user(user);
            }
            Ok::<_, Error>(req)
        })
        .get("/", home)
        .get("/signup", |req: Request| async move {
            account_page(&req, Account::SignUp, "", "", StatusCode::OK).await
        })
        .post("/signup", sign_up)
        .get("/login", |req: Request| async move {
            account_page(&req, Account::LogIn, "", "", StatusCode::OK).await
        })
        .post("/login", log_in)
        .post("/logout", log_out)
        .get("/notes", authenticated(list_notes))
        .post("/notes", authenticated(create_note))
        .get("/notes/{id}", authenticated(show_note))
        .named("note")
}

/// The session cookie: the user's name, signed.
const SESSION: &str = "user";

#[derive(Serialize, Deserialize)]
#[serde(crate = "squall_sdk::serde")]
struct Note {
    title: String,
    body: String,
}

#[derive(Serialize, Deserialize)]
#[serde(crate = "squall_sdk::serde")]
struct User {
    /// The Argon2id hash of the password, as a PHC string.
    password: String,
}

fn templates() -> Templates {
    let mut env = minijinja::Environment::new();
    minijinja_embed::load_templates!(&mut env);
    let debug = squall_sdk::config::get("debug").as_deref() == Some("true");
    Templates::new(env).debug(debug)
}

/// What every page needs: the user, the XSRF field, the static URLs.
async fn page_context(req: &Request) -> Value {
    context! {
        user => req.current_user(),
        xsrf => req.xsrf_form_html(),
        css => static_url("/static/style.css").await,
        js => static_url("/static/app.js").await,
    }
}

async fn render(req: &Request, name: &str, extra: Value) -> Result<Html<String>, Error> {
    let base = page_context(req).await;
    templates().render(name, context! { ..extra, ..base })
}

async fn home(req: Request) -> Result<Response, Error> {
    if req.current_user().is_some() {
        return Ok(Response::redirect_with(StatusCode::FOUND, "/notes"));
    }
    Ok(html_response(
        StatusCode::OK,
        render(&req, "index.html", context! {}).await?,
    ))
}

fn html_response(status: StatusCode, page: Html<String>) -> Response {
    use squall_sdk::IntoResponse;
    page.into_response().with_status(status)
}

#[derive(Clone, Copy)]
enum Account {
    SignUp,
    LogIn,
}

async fn account_page(
    req: &Request,
    account: Account,
    username: &str,
    error: &str,
    status: StatusCode,
) -> Result<Response, Error> {
    let (heading, action, autocomplete) = match account {
        Account::SignUp => ("Sign up", "/signup", "new-password"),
        Account::LogIn => ("Log in", "/login", "current-password"),
    };
    let next = req.query_arguments().get("next").unwrap_or_default();
    let page = render(
        req,
        "account.html",
        context! { heading, action, autocomplete, username, error, next },
    )
    .await?;
    Ok(html_response(status, page))
}

fn hasher() -> Result<Argon2<'static>, Error> {
    // Modest parameters: 8 MiB and two passes, well within the app's limits.
    let params = Params::new(8 * 1024, 2, 1, None)
        .map_err(|err| Error::internal(format!("argon2 parameters: {err}")))?;
    Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
}

fn valid_name(name: &str) -> bool {
    (3..=32).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

async fn sign_up(mut req: Request) -> Result<Response, Error> {
    let args = req.arguments().await?;
    let username = args.get_or("username", "").trim().to_lowercase();
    let password = args.get_or("password", "").to_owned();
    let refuse = |why: &'static str| (username.clone(), why);
    let problem = if !valid_name(&username) {
        Some(refuse("A user name is 3 to 32 letters, digits, - or _."))
    } else if password.len() < 8 {
        Some(refuse("A password has at least 8 characters."))
    } else {
        None
    };
    if let Some((username, why)) = problem {
        return account_page(
            &req,
            Account::SignUp,
            &username,
            why,
            StatusCode::BAD_REQUEST,
        )
        .await;
    }
    let hash = hasher()?
        .hash_password(password.as_bytes())
        .map_err(|err| Error::internal(format!("hashing the password: {err}")))?
        .to_string();
    let user = squall_sdk::serde_json::to_vec(&User { password: hash })
        .map_err(|err| Error::internal(err.to_string()))?;
    // Created only if the name is free: two sign-ups racing get one winner.
    let created = kv::compare_and_swap(&user_key(&username), None, Some(&user)).await?;
    if !created {
        return account_page(
            &req,
            Account::SignUp,
            &username,
            "That user name is taken.",
            StatusCode::CONFLICT,
        )
        .await;
    }
    logged_in(&username, "/notes")
}

async fn log_in(mut req: Request) -> Result<Response, Error> {
    let args = req.arguments().await?;
    let username = args.get_or("username", "").trim().to_lowercase();
    let password = args.get_or("password", "");
    let next = args.get_or("next", "/notes").to_owned();
    let stored: Option<User> = kv::get_json(&user_key(&username)).await?;
    let verified = stored.is_some_and(|user| {
        hasher().is_ok_and(|hasher| {
            hasher
                .verify_password(password.as_bytes(), user.password.as_str())
                .is_ok()
        })
    });
    if !verified {
        return account_page(
            &req,
            Account::LogIn,
            &username,
            "Wrong user name or password.",
            StatusCode::UNAUTHORIZED,
        )
        .await;
    }
    // Only a path of this site: never an open redirect.
    let next = if next.starts_with('/') && !next.starts_with("//") {
        next
    } else {
        "/notes".to_owned()
    };
    logged_in(&username, &next)
}

fn logged_in(username: &str, next: &str) -> Result<Response, Error> {
    let session = Signer::from_config()?.cookie(SESSION, username);
    Ok(Response::redirect_with(StatusCode::SEE_OTHER, next).set_cookie(session))
}

async fn log_out(_req: Request) -> Response {
    Response::redirect_with(StatusCode::SEE_OTHER, "/")
        .set_cookie(Cookie::build(SESSION).path("/").removal())
}

fn user_key(username: &str) -> String {
    format!("user:{username}")
}

/// Notes are kept as `note:{user}:{id}`, the id zero-padded so keys sort
/// in creation order.
fn note_key(user: &str, id: u64) -> String {
    format!("note:{user}:{id:012}")
}

async fn list_notes(req: Request) -> Result<Html<String>, Error> {
    let user = req.current_user().unwrap_or_default().to_owned();
    let prefix = format!("note:{user}:");
    let page = kv::list_keys(&prefix, None, LIST).await?;
    let values = kv::get_many(&page.keys).await?;
    let mut notes = Vec::new();
    for (key, value) in page.keys.iter().zip(values) {
        let Some(note) =
            value.and_then(|bytes| squall_sdk::serde_json::from_slice::<Note>(&bytes).ok())
        else {
            continue;
        };
        let id = key
            .rsplit(':')
            .next()
            .unwrap_or_default()
            .trim_start_matches('0');
        let url = req.url_for("note", &[("id", id)]).unwrap_or_default();
        notes.push(context! { title => note.title, body => note.body, url });
    }
    notes.reverse();
    render(&req, "notes.html", context! { notes }).await
}

async fn create_note(mut req: Request) -> Result<Response, Error> {
    let user = req.current_user().unwrap_or_default().to_owned();
    let args = req.arguments().await?;
    let title = args.require("title")?.trim();
    let body = args.get_or("body", "");
    if title.is_empty() || title.len() > MAX_TITLE || body.len() > MAX_BODY {
        return Err(Error::bad_request(format!(
            "a note has a title of 1 to {MAX_TITLE} bytes and a body of at most {MAX_BODY}"
        )));
    }
    let id = kv::increment(&format!("seq:{user}"), 1).await?;
    let id = u64::try_from(id).map_err(|_| Error::internal("note counter out of range"))?;
    kv::set_json(
        &note_key(&user, id),
        &Note {
            title: title.to_owned(),
            body: body.to_owned(),
        },
    )
    .await?;
    Ok(Response::redirect_with(StatusCode::SEE_OTHER, "/notes"))
}

async fn show_note(req: Request) -> Result<Html<String>, Error> {
    let user = req.current_user().unwrap_or_default().to_owned();
    let id: u64 = req
        .param("id")
        .and_then(|id| id.parse().ok())
        .ok_or_else(Error::not_found)?;
    // Only the author's own notes: another user's id is simply not found.
    let note: Note = kv::get_json(&note_key(&user, id))
        .await?
        .ok_or_else(Error::not_found)?;
    render(
        &req,
        "note.html",
        context! { note => context! { title => note.title, body => note.body } },
    )
    .await
}

squall_sdk::export!(app);

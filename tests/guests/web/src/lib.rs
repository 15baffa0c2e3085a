//! Tornado's web framework in the SDK, route by route, for the framework
//! tests: cookies plain and signed, XSRF, arguments and multipart uploads,
//! error pages, templates, redirects, static URLs, the client's address,
//! compression, the current user and named routes.

use squall_sdk::cookie::{Cookie, SameSite, Signer, time::Duration};
// `load_templates!` names the `minijinja` crate: the SDK's, here.
use squall_sdk::template::{Environment, Templates, context, minijinja};
use squall_sdk::web::{authenticated, static_url};
use squall_sdk::{Error, Html, Request, Response, Router, StatusCode};

fn app() -> Router {
    Router::new()
        .xsrf_protection()
        .login_url("/login")
        .prepare(|mut req: Request| async move {
            if let Ok(signer) = Signer::from_config()
                && let Some(user) = signer.get(&req, "user")
            {
                req.set_current_user(user);
            }
            Ok::<_, Error>(req)
        })
        .get("/cookies/set", set_cookies)
        .get("/cookies/read", read_cookie)
        .get("/form", form)
        .post("/form", |_req: Request| async { "accepted" })
        .post("/upload", upload)
        .get("/args", args)
        .post("/args", args)
        .get("/error/{code}", error)
        .get("/template", template)
        .get("/template-broken", broken_template)
        .get("/redirect/{code}", redirect)
        .get("/static-url", |_req: Request| async {
            format!(
                "{}\n{}",
                static_url("/static/app.css").await,
                static_url("/elsewhere.css").await
            )
        })
        .get("/whoami", |req: Request| async move {
            req.client_addr().unwrap_or("unknown").to_owned()
        })
        .get("/big", |_req: Request| async {
            Html("<p>compress me</p>\n".repeat(500))
        })
        .get(
            "/private",
            authenticated(|req: Request| async move {
                format!("private page of {}", req.current_user().unwrap_or_default())
            }),
        )
        .post(
            "/private",
            authenticated(|_req: Request| async { "posted" }),
        )
        .get("/notes/{id}", |req: Request| async move {
            format!("note {}", req.param("id").unwrap_or_default())
        })
        .named("note")
        .get("/link", |req: Request| async move {
            req.url_for("note", &[("id", "a b")]).unwrap_or_default()
        })
}

/// A plain cookie from the builder and a signed `user` cookie.
async fn set_cookies(req: Request) -> Result<Response, Error> {
    let signer = Signer::from_config()?;
    let user = req.query_arguments().get_or("user", "ada");
    Ok(Response::new(StatusCode::OK, "set")
        .set_cookie(
            Cookie::build(("theme", "dark"))
                .path("/")
                .max_age(Duration::days(7))
                .same_site(SameSite::Strict),
        )
        .set_cookie(signer.cookie("user", user))
        .set_cookie(Cookie::build("old").path("/").removal()))
}

async fn read_cookie(req: Request) -> Result<String, Error> {
    let signer = Signer::from_config()?;
    Ok(signer
        .get(&req, "user")
        .unwrap_or_else(|| "absent".to_owned()))
}

async fn form(req: Request) -> Html<String> {
    Html(format!(
        r#"<form method="post" action="/form">{}<input name="note"><button>Send</button></form>"#,
        req.xsrf_form_html()
    ))
}

/// Every field of a multipart form: `name=value`, or `name: file (bytes)`.
async fn upload(mut req: Request) -> Result<String, Error> {
    let mut form = req.multipart()?;
    let mut lines = Vec::new();
    while let Some(mut field) = form.next_field().await? {
        let name = field.name().unwrap_or_default().to_owned();
        match field.file_name().map(str::to_owned) {
            Some(file) => {
                let mut size = 0;
                while let Some(chunk) = field.chunk().await? {
                    size += chunk.len();
                }
                lines.push(format!("{name}: {file} ({size} bytes)"));
            }
            None => lines.push(format!("{name}={}", field.text().await?)),
        }
    }
    Ok(lines.join("\n"))
}

async fn args(mut req: Request) -> Result<String, Error> {
    let args = req.arguments().await?;
    let name = args.require("name")?;
    Ok(format!(
        "name={name} color={} tags={}",
        args.get_or("color", "none"),
        args.all("tag").join(",")
    ))
}

async fn error(req: Request) -> Error {
    let code = req
        .param("code")
        .and_then(|code| code.parse::<u16>().ok())
        .and_then(|code| StatusCode::from_u16(code).ok())
        .unwrap_or(StatusCode::IM_A_TEAPOT);
    Error::new(code, "a <custom> message")
}

fn templates() -> Templates {
    let mut env = Environment::new();
    minijinja_embed::load_templates!(&mut env);
    let debug = squall_sdk::config::get("debug").as_deref() == Some("true");
    Templates::new(env).debug(debug)
}

async fn template(req: Request) -> Result<Html<String>, Error> {
    let name = req
        .query_arguments()
        .get_or("name", "<script>alert(1)</script>");
    templates().render("greet.html", context! { name, trusted => "<b>bold</b>" })
}

async fn broken_template(_req: Request) -> Result<Html<String>, Error> {
    templates().render("broken.html", context! { items => vec![1, 2] })
}

async fn redirect(req: Request) -> Response {
    let code = req
        .param("code")
        .and_then(|code| code.parse::<u16>().ok())
        .and_then(|code| StatusCode::from_u16(code).ok())
        .unwrap_or(StatusCode::FOUND);
    Response::redirect_with(code, "/target")
}

squall_sdk::export!(app);

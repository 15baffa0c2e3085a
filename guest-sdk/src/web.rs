//! What runs around every handler of a [`Router`]: `prepare` hooks
//! (Tornado's `prepare`), XSRF protection, error pages chosen by `Accept`
//! (Tornado's `write_error`), named routes (`reverse_url`), and the
//! `authenticated` guard.

use crate::router::Router;
use crate::xsrf::{self, Token};
use crate::{Error, Handler, IntoResponse, Request, Response};
use ::http::{HeaderValue, Method, StatusCode, header};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

type BoxFuture<T> = Pin<Box<dyn Future<Output = T>>>;

/// A hook run before every handler: it may change the request (set its
/// current user, say) or answer in the handler's place.
///
/// Implemented for every `Fn(Request) -> impl Future<Output = Result<Request, impl IntoResponse>>`.
pub trait Prepare: 'static {
    /// Run the hook.
    fn call(&self, request: Request) -> BoxFuture<Result<Request, Response>>;
}

impl<F, Fut, E> Prepare for F
where
    F: Fn(Request) -> Fut + 'static,
    Fut: Future<Output = Result<Request, E>> + 'static,
    E: IntoResponse,
{
    fn call(&self, request: Request) -> BoxFuture<Result<Request, Response>> {
        let future = self(request);
        Box::pin(async move { future.await.map_err(IntoResponse::into_response) })
    }
}

/// An error about to be answered, for an app's own error page.
#[derive(Debug)]
pub struct ErrorPage<'a> {
    /// The status the response has.
    pub status: StatusCode,
    /// The error's message (what `Error::new` was given).
    pub message: &'a str,
    /// The request's `Accept` header, if any.
    pub accept: Option<&'a str>,
}

/// Renders an error page: [`Router::error_page`].
pub type ErrorRenderer = fn(&ErrorPage<'_>) -> Response;

/// Routes known by name, for [`Request::url_for`].
pub(crate) type RouteNames = Arc<Vec<(String, String)>>;

/// The settings of a router that apply around every handler.
#[derive(Default)]
pub(crate) struct Around {
    prepare: Vec<Box<dyn Prepare>>,
    xsrf: bool,
    error_page: Option<ErrorRenderer>,
    pub(crate) names: RouteNames,
    login_url: Option<Arc<str>>,
}

/// What a request carries from its router (set before its handler runs).
#[derive(Debug, Default, Clone)]
pub(crate) struct RequestContext {
    pub(crate) xsrf: Option<Token>,
    pub(crate) names: RouteNames,
    pub(crate) login_url: Option<Arc<str>>,
    pub(crate) current_user: Option<String>,
}

impl Router {
    /// Run `hook` before every handler, in the order hooks were added: it
    /// gets the request and gives it back (changed, perhaps), or answers
    /// instead of the handler.
    ///
    /// ```
    /// use squall_sdk::{Error, Request, Router};
    /// # use squall_sdk::futures::FutureExt;
    /// # use squall_sdk::{Method, StatusCode};
    ///
    /// let router = Router::new()
    ///     .prepare(|req: Request| async move {
    ///         if req.header("x-maintenance").is_some() {
    ///             return Err(Error::new(StatusCode::SERVICE_UNAVAILABLE, "back soon"));
    ///         }
    ///         Ok(req)
    ///     })
    ///     .get("/", |_req: Request| async { "home" });
    /// # let answer = router.handle(Request::new(Method::GET, "/").with_header("x-maintenance", "1")).now_or_never().unwrap();
    /// # assert_eq!(answer.status(), StatusCode::SERVICE_UNAVAILABLE);
    /// ```
    pub fn prepare(mut self, hook: impl Prepare) -> Self {
        self.around.prepare.push(Box::new(hook));
        self
    }

    /// Protect every route against cross-site request forgery (Tornado's
    /// `xsrf_cookies`): see [`crate::xsrf`]. Forms carry
    /// [`Request::xsrf_form_html`]; scripts send the `_xsrf` cookie's
    /// value in an `X-XSRFToken` header.
    ///
    /// ```
    /// use squall_sdk::{Html, Request, Router, StatusCode};
    /// # use squall_sdk::futures::FutureExt;
    /// # use squall_sdk::Method;
    ///
    /// let router = Router::new()
    ///     .xsrf_protection()
    ///     .get("/", |req: Request| async move {
    ///         Html(format!(r#"<form method="post">{}<button>Go</button></form>"#, req.xsrf_form_html()))
    ///     })
    ///     .post("/", |_req: Request| async { "done" });
    /// # let forged = router.handle(Request::new(Method::POST, "/").with_form(&[("a", "1")])).now_or_never().unwrap();
    /// # assert_eq!(forged.status(), StatusCode::FORBIDDEN);
    /// ```
    pub fn xsrf_protection(mut self) -> Self {
        self.around.xsrf = true;
        self
    }

    /// Render error answers with `render` instead of the default page
    /// (Tornado's `write_error`): every [`Error`] a handler or hook
    /// returns, and the router's own 404 and 405.
    ///
    /// ```
    /// use squall_sdk::web::ErrorPage;
    /// use squall_sdk::{Html, IntoResponse, Response, Router};
    ///
    /// fn page(error: &ErrorPage<'_>) -> Response {
    ///     let html = format!("<h1>{}</h1><p>{}</p>", error.status, error.message);
    ///     (error.status, Html(html)).into_response()
    /// }
    ///
    /// let router = Router::new().error_page(page);
    /// ```
    pub fn error_page(mut self, render: ErrorRenderer) -> Self {
        self.around.error_page = Some(render);
        self
    }

    /// Where [`authenticated`] sends a visitor who is not logged in
    /// (`/login` unless set).
    pub fn login_url(mut self, url: &str) -> Self {
        self.around.login_url = Some(Arc::from(url));
        self
    }

    /// Name the route added last, for [`Request::url_for`] (Tornado's
    /// `reverse_url`). An empty name, or a name before any route, is a bug
    /// in the app: the host refuses to load it.
    ///
    /// ```
    /// use squall_sdk::{Request, Router};
    /// # use squall_sdk::futures::FutureExt;
    /// # use squall_sdk::Method;
    ///
    /// let router = Router::new()
    ///     .get("/notes/{id}", |req: Request| async move { format!("note {}", req.param("id").unwrap_or_default()) })
    ///     .named("note")
    ///     .get("/", |req: Request| async move {
    ///         req.url_for("note", &[("id", "7")]).unwrap_or_default()
    ///     });
    /// # let answer = router.handle(Request::new(Method::GET, "/")).now_or_never().unwrap();
    /// # assert_eq!(answer.body(), Some(&b"/notes/7"[..]));
    /// ```
    pub fn named(mut self, name: &str) -> Self {
        match self.last_pattern() {
            Some(pattern) if !name.is_empty() => {
                let mut names = self.around.names.as_ref().clone();
                names.retain(|(known, _)| known != name);
                names.push((name.to_owned(), pattern));
                self.around.names = Arc::new(names);
            }
            Some(_) => self.refuse("a route name must not be empty".to_owned()),
            None => self.refuse(format!("named({name:?}) follows no route")),
        }
        self
    }

    /// Run the XSRF check, the hooks, `dispatch` (the matched handler),
    /// then render an error page and set the XSRF cookie if needed.
    pub(crate) async fn around<F>(&self, mut request: Request, dispatch: F) -> Response
    where
        F: AsyncFnOnce(Request) -> Response,
    {
        // Kept for an error page (a shared copy, no allocation).
        let accept = request.headers().get(header::ACCEPT).cloned();
        let token = match self.around.xsrf.then(|| Token::of(&request)) {
            None => None,
            Some(Some(token)) => Some(token),
            Some(None) => {
                let failed = Error::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "no random bytes for an XSRF token",
                )
                .into_response();
                return self.render_error(failed, accept.as_ref().and_then(|v| v.to_str().ok()));
            }
        };
        *request.context_mut() = RequestContext {
            xsrf: token,
            names: self.around.names.clone(),
            login_url: self.around.login_url.clone(),
            current_user: None,
        };
        let response = self.guarded(request, token, dispatch).await;
        let accept = accept.as_ref().and_then(|value| value.to_str().ok());
        let response = self.render_error(response, accept);
        match &token {
            Some(token) => xsrf::finish(token, response),
            None => response,
        }
    }

    async fn guarded<F>(&self, mut request: Request, token: Option<Token>, dispatch: F) -> Response
    where
        F: AsyncFnOnce(Request) -> Response,
    {
        // The XSRF check first, as Tornado does: no hook runs for a forgery.
        if let Some(token) = &token
            && !xsrf::is_safe(request.method())
        {
            request = match xsrf::check(request, token).await {
                Ok(request) => request,
                Err(refused) => return refused,
            };
        }
        for hook in &self.around.prepare {
            request = match hook.call(request).await {
                Ok(request) => request,
                Err(answer) => return answer,
            };
        }
        dispatch(request).await
    }

    fn render_error(&self, mut response: Response, accept: Option<&str>) -> Response {
        let Some(message) = response.take_error() else {
            return response;
        };
        let page = ErrorPage {
            status: response.status(),
            message: &message,
            accept,
        };
        let rendered = match self.around.error_page {
            Some(render) => render(&page),
            None => default_error_page(&page),
        };
        // Headers the error came with (`Allow`, `Retry-After`) stay, and so
        // does one it could not take: the router still answers 500 for it.
        let mut rendered = rendered.with_status(page.status);
        for (name, value) in response.headers() {
            if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
                rendered.headers_mut().append(name, value.clone());
            }
        }
        if let Some(why) = response.take_refused_header() {
            rendered.refuse_header(why);
        }
        rendered
    }
}

/// The default error page: JSON for a client that asks for JSON, HTML for
/// one that asks for HTML (a browser), else plain text.
fn default_error_page(page: &ErrorPage<'_>) -> Response {
    match preferred(page.accept) {
        Some(Preferred::Json) => {
            let body = crate::serde_json::json!({
                "status": page.status.as_u16(),
                "error": page.status.canonical_reason().unwrap_or("Error"),
                "message": page.message,
            });
            crate::Json(body).into_response().with_status(page.status)
        }
        Some(Preferred::Html) => {
            let reason = page.status.canonical_reason().unwrap_or("Error");
            let html = format!(
                "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{code} {reason}</title></head>\n<body><h1>{code} {reason}</h1>\n<p>{message}</p></body></html>\n",
                code = page.status.as_u16(),
                reason = escape_html(reason),
                message = escape_html(page.message),
            );
            crate::Html(html).into_response().with_status(page.status)
        }
        None => {
            let mut response = Response::new(page.status, format!("{}\n", page.message));
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; charset=utf-8"),
            );
            response
        }
    }
}

enum Preferred {
    Json,
    Html,
}

/// What `Accept` asks for first, among JSON and HTML (order of appearance;
/// `q=0` excluded).
fn preferred(accept: Option<&str>) -> Option<Preferred> {
    accept?.split(',').find_map(|range| {
        let mut parts = range.split(';');
        let mime = parts.next()?.trim().to_ascii_lowercase();
        let refused = parts.any(|param| {
            let param = param.trim().replace(' ', "");
            param == "q=0" || param == "q=0.0" || param == "q=0.00" || param == "q=0.000"
        });
        match mime.as_str() {
            _ if refused => None,
            "application/json" => Some(Preferred::Json),
            "text/html" | "application/xhtml+xml" => Some(Preferred::Html),
            _ => None,
        }
    })
}

/// Text made safe to put in HTML.
pub fn escape_html(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&#x27;"),
            c => escaped.push(c),
        }
    }
    escaped
}

impl Request {
    /// The XSRF token, masked afresh, for a form field or a header;
    /// `None` unless the router has [`Router::xsrf_protection`].
    pub fn xsrf_token(&self) -> Option<String> {
        self.context().xsrf.map(|token| token.masked())
    }

    /// The hidden form field carrying the XSRF token
    /// (`<input type="hidden" name="_xsrf" value="...">`), for every form
    /// that posts; empty unless the router has [`Router::xsrf_protection`].
    pub fn xsrf_form_html(&self) -> String {
        self.xsrf_token()
            .map(|token| xsrf::form_html(&token))
            .unwrap_or_default()
    }

    /// The path of the route named `name` with `params` filled in, each
    /// percent-encoded (Tornado's `reverse_url`); `None` if no route has
    /// that name or a parameter is missing.
    pub fn url_for(&self, name: &str, params: &[(&str, &str)]) -> Option<String> {
        let (_, pattern) = self
            .context()
            .names
            .iter()
            .find(|(known, _)| known == name)?;
        fill_pattern(pattern, params)
    }

    /// Who is logged in, as a prepare hook said with
    /// [`Request::set_current_user`] (Tornado's `current_user`).
    ///
    /// ```
    /// use squall_sdk::cookie::Signer;
    /// use squall_sdk::{Error, Request, Router};
    /// # use squall_sdk::futures::FutureExt;
    /// # use squall_sdk::Method;
    ///
    /// let signer = Signer::new(1, "a secret of the app, 32 bytes long");
    /// let hook_signer = signer.clone();
    /// let router = Router::new()
    ///     .prepare(move |mut req: Request| {
    ///         let user = hook_signer.get(&req, "user");
    ///         async move {
    ///             if let Some(user) = user {
    ///                 req.set_current_user(user);
    ///             }
    ///             Ok::<_, Error>(req)
    ///         }
    ///     })
    ///     .get("/", |req: Request| async move {
    ///         format!("hello, {}", req.current_user().unwrap_or("stranger"))
    ///     });
    /// # let req = Request::new(Method::GET, "/").with_cookie("user", &signer.sign("user", "ada"));
    /// # assert_eq!(router.handle(req).now_or_never().unwrap().body(), Some(&b"hello, ada"[..]));
    /// ```
    pub fn current_user(&self) -> Option<&str> {
        self.context().current_user.as_deref()
    }

    /// Say who is logged in, for [`Request::current_user`] and
    /// [`authenticated`].
    pub fn set_current_user(&mut self, user: impl Into<String>) {
        self.context_mut().current_user = Some(user.into());
    }
}

/// `pattern` (`/notes/{id}`, `/files/{*path}`) with `params` filled in.
fn fill_pattern(pattern: &str, params: &[(&str, &str)]) -> Option<String> {
    use percent_encoding::{AsciiSet, CONTROLS, utf8_percent_encode};
    const SEGMENT: &AsciiSet = &CONTROLS
        .add(b' ')
        .add(b'"')
        .add(b'#')
        .add(b'%')
        .add(b'/')
        .add(b'<')
        .add(b'>')
        .add(b'?')
        .add(b'`')
        .add(b'{')
        .add(b'}');
    const REST: &AsciiSet = &CONTROLS
        .add(b' ')
        .add(b'"')
        .add(b'#')
        .add(b'%')
        .add(b'<')
        .add(b'>')
        .add(b'?')
        .add(b'`')
        .add(b'{')
        .add(b'}');
    let mut path = String::new();
    for (i, segment) in pattern.split('/').enumerate() {
        if i > 0 {
            path.push('/');
        }
        let Some(name) = segment.strip_prefix('{').and_then(|s| s.strip_suffix('}')) else {
            path.push_str(segment);
            continue;
        };
        let (name, set) = match name.strip_prefix('*') {
            Some(rest) => (rest, REST),
            None => (name, SEGMENT),
        };
        let (_, value) = params.iter().find(|(key, _)| *key == name)?;
        path.extend(utf8_percent_encode(value, set));
    }
    Some(path)
}

/// The URL of the static file at `path` (as the app sees its paths, under
/// a `[[app.NAME.static]]` prefix) with a version of its content, such as
/// `/static/app.css?v=5d41402abc4b2a76` (Tornado's `static_url`): browsers
/// may keep it for a year, and a changed file gets a new URL. A path no
/// static directory serves comes back as it is.
///
/// ```no_run
/// use squall_sdk::web::static_url;
/// use squall_sdk::{Html, Request};
///
/// async fn page(_req: Request) -> Html<String> {
///     let css = static_url("/static/app.css").await;
///     Html(format!(r#"<link rel="stylesheet" href="{css}">"#))
/// }
/// ```
pub async fn static_url(path: &str) -> String {
    match crate::sys::static_version(path).await {
        Some(version) => format!("{path}?v={version}"),
        None => path.to_owned(),
    }
}

/// Guard `handler` so only a logged-in visitor reaches it (Tornado's
/// `@authenticated`): others are redirected to the router's
/// [`Router::login_url`] with `?next=` the page they wanted (`GET` and
/// `HEAD`), or answered `403` (other methods).
///
/// ```
/// use squall_sdk::web::authenticated;
/// use squall_sdk::{Request, Router};
/// # use squall_sdk::futures::FutureExt;
/// # use squall_sdk::{Method, header};
///
/// let router = Router::new()
///     .login_url("/login")
///     .get("/notes", authenticated(|req: Request| async move {
///         format!("notes of {}", req.current_user().unwrap_or_default())
///     }));
/// # let answer = router.handle(Request::new(Method::GET, "/notes?page=2")).now_or_never().unwrap();
/// # assert_eq!(answer.headers()[header::LOCATION], "/login?next=%2Fnotes%3Fpage%3D2");
/// ```
pub fn authenticated(handler: impl Handler) -> impl Handler {
    let handler: Arc<dyn Handler> = Arc::new(handler);
    move |req: Request| {
        let handler = handler.clone();
        async move {
            if req.current_user().is_some() {
                return handler.call(req).await;
            }
            if matches!(*req.method(), Method::GET | Method::HEAD) {
                let login = req.context().login_url.as_deref().unwrap_or("/login");
                let wanted = match req.query() {
                    "" => req.path().to_owned(),
                    query => format!("{}?{query}", req.path()),
                };
                let next: String = form_urlencoded::byte_serialize(wanted.as_bytes()).collect();
                let separator = if login.contains('?') { '&' } else { '?' };
                return Response::redirect_with(
                    StatusCode::FOUND,
                    &format!("{login}{separator}next={next}"),
                );
            }
            Error::forbidden().into_response()
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;

    #[test]
    fn naming_nothing_is_refused_like_a_bad_pattern() {
        let before_any_route = Router::new()
            .named("home")
            .get("/", |_req: Request| async { "home" });
        assert_eq!(
            before_any_route.errors(),
            [r#"named("home") follows no route"#]
        );
        let empty = Router::new()
            .get("/", |_req: Request| async { "home" })
            .named("");
        assert_eq!(empty.errors(), ["a route name must not be empty"]);
        let fine = Router::new()
            .get("/", |_req: Request| async { "home" })
            .named("home");
        assert!(fine.errors().is_empty());
    }

    #[test]
    fn a_forgery_is_refused_before_any_prepare_hook_runs() {
        use futures::FutureExt;
        use std::sync::atomic::{AtomicUsize, Ordering};
        static PREPARED: AtomicUsize = AtomicUsize::new(0);
        let router = Router::new()
            .xsrf_protection()
            .prepare(|req: Request| async move {
                PREPARED.fetch_add(1, Ordering::Relaxed);
                Ok::<_, Error>(req)
            })
            .post("/", |_req: Request| async { "done" });
        let forged = Request::new(Method::POST, "/").with_form(&[("a", "1")]);
        let answer = router.handle(forged).now_or_never().unwrap();
        assert_eq!(answer.status(), StatusCode::FORBIDDEN);
        assert_eq!(PREPARED.load(Ordering::Relaxed), 0, "no hook ran");
        let safe = router
            .handle(Request::new(Method::GET, "/"))
            .now_or_never()
            .unwrap();
        assert_eq!(safe.status(), StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(PREPARED.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn accept_picks_json_html_or_neither() {
        assert!(matches!(
            preferred(Some("application/json")),
            Some(Preferred::Json)
        ));
        assert!(matches!(
            preferred(Some("text/html,application/xhtml+xml,*/*;q=0.8")),
            Some(Preferred::Html)
        ));
        assert!(preferred(Some("*/*")).is_none());
        assert!(preferred(None).is_none());
        assert!(matches!(
            preferred(Some("text/html;q=0, application/json")),
            Some(Preferred::Json)
        ));
    }

    #[test]
    fn patterns_are_filled_and_encoded() {
        assert_eq!(
            fill_pattern("/notes/{id}", &[("id", "a b/c")]).as_deref(),
            Some("/notes/a%20b%2Fc")
        );
        assert_eq!(
            fill_pattern("/files/{*path}", &[("path", "x/y z")]).as_deref(),
            Some("/files/x/y%20z")
        );
        assert_eq!(fill_pattern("/notes/{id}", &[]), None);
    }

    #[test]
    fn html_is_escaped() {
        assert_eq!(
            escape_html(r#"<a href="x">'&'</a>"#),
            "&lt;a href=&quot;x&quot;&gt;&#x27;&amp;&#x27;&lt;/a&gt;"
        );
    }
}

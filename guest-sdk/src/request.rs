//! The incoming request as a handler sees it.

use crate::{Arguments, Body, Error};
use ::http::header::{self, HeaderMap, HeaderName, HeaderValue};
use ::http::{Method, StatusCode};
use serde::de::DeserializeOwned;
use std::str::FromStr;

/// An HTTP request, with the path parameters its route matched.
///
/// ```
/// use squall_sdk::Request;
///
/// async fn whoami(req: Request) -> String {
///     let agent = req.header("user-agent").unwrap_or("an unknown client");
///     format!("{} {} from {agent}", req.method(), req.path())
/// }
/// ```
#[derive(Debug)]
pub struct Request {
    method: Method,
    path: String,
    query: String,
    /// The query, decoded once.
    query_arguments: Arguments,
    authority: Option<String>,
    headers: HeaderMap,
    params: Vec<(String, String)>,
    body: Body,
    /// What its router set around the handler.
    context: crate::web::RequestContext,
}

impl Request {
    /// A request as a backend received it.
    pub(crate) fn from_parts(
        method: Method,
        path: String,
        query: String,
        authority: Option<String>,
        headers: HeaderMap,
        body: Body,
    ) -> Self {
        Request {
            method,
            path,
            query_arguments: Arguments::from_query(&query),
            query,
            authority,
            headers,
            params: Vec::new(),
            body,
            context: Default::default(),
        }
    }

    /// Build a request by hand, e.g. to unit-test a handler.
    ///
    /// ```
    /// use squall_sdk::{Method, Request};
    ///
    /// let request = Request::new(Method::GET, "/search?q=rust");
    /// assert_eq!((request.path(), request.query()), ("/search", "q=rust"));
    /// ```
    pub fn new(method: Method, path_and_query: &str) -> Self {
        let (path, query) = path_and_query
            .split_once('?')
            .unwrap_or((path_and_query, ""));
        Request {
            method,
            path: path.to_owned(),
            query: query.to_owned(),
            query_arguments: Arguments::from_query(query),
            authority: None,
            headers: HeaderMap::new(),
            params: Vec::new(),
            body: Body::default(),
            context: Default::default(),
        }
    }

    pub(crate) fn context(&self) -> &crate::web::RequestContext {
        &self.context
    }

    pub(crate) fn context_mut(&mut self) -> &mut crate::web::RequestContext {
        &mut self.context
    }

    /// Put a body (read and rebuilt by the SDK) back in place.
    pub(crate) fn set_body(&mut self, body: Body) {
        self.body = body;
    }

    pub(crate) fn set_params(&mut self, params: Vec<(String, String)>) {
        self.params = params;
    }

    /// The request method.
    ///
    /// ```
    /// use squall_sdk::{Method, Request};
    ///
    /// let request = Request::new(Method::DELETE, "/items/3");
    /// assert_eq!(request.method(), Method::DELETE);
    /// ```
    pub fn method(&self) -> &Method {
        &self.method
    }

    /// The path as received, percent-encoded, starting with `/`.
    ///
    /// ```
    /// use squall_sdk::{Method, Request};
    ///
    /// let request = Request::new(Method::GET, "/files/a%20b.txt?download=1");
    /// assert_eq!(request.path(), "/files/a%20b.txt");
    /// ```
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The raw query string, without its `?`.
    ///
    /// ```
    /// use squall_sdk::{Method, Request};
    ///
    /// let request = Request::new(Method::GET, "/search?q=rust&page=2");
    /// assert_eq!(request.query(), "q=rust&page=2");
    /// ```
    pub fn query(&self) -> &str {
        &self.query
    }

    /// The `host[:port]` the client asked for, if it said.
    ///
    /// ```
    /// use squall_sdk::Request;
    ///
    /// async fn origin(req: Request) -> String {
    ///     format!("https://{}", req.authority().unwrap_or("localhost"))
    /// }
    /// ```
    pub fn authority(&self) -> Option<&str> {
        self.authority.as_deref()
    }

    /// The client's IP address, as the host saw the connection (a proxy
    /// in front of the host shows as the client: read its
    /// `X-Forwarded-For` if you trust it). `None` outside a host.
    ///
    /// ```
    /// use squall_sdk::Request;
    ///
    /// async fn whoami(req: Request) -> String {
    ///     format!("you are {}", req.client_addr().unwrap_or("unknown"))
    /// }
    /// ```
    pub fn client_addr(&self) -> Option<&str> {
        self.header("squall-client-addr")
    }

    /// All request headers.
    ///
    /// ```
    /// use squall_sdk::{Method, Request};
    ///
    /// let request = Request::new(Method::GET, "/").with_header("accept", "text/html");
    /// assert_eq!(request.headers().len(), 1);
    /// ```
    pub fn headers(&self) -> &HeaderMap {
        &self.headers
    }

    /// The request headers, to change (e.g. to append a second value).
    ///
    /// ```
    /// use squall_sdk::{Method, Request, header};
    ///
    /// let mut request = Request::new(Method::GET, "/").with_header(header::ACCEPT, "text/html");
    /// request.headers_mut().append(header::ACCEPT, "application/json".parse().expect("valid"));
    /// assert_eq!(request.headers().get_all(header::ACCEPT).iter().count(), 2);
    /// ```
    pub fn headers_mut(&mut self) -> &mut HeaderMap {
        &mut self.headers
    }

    /// One header as text; `None` if absent or not visible ASCII.
    ///
    /// ```
    /// use squall_sdk::{Method, Request, header};
    ///
    /// let request = Request::new(Method::GET, "/").with_header("accept", "text/html");
    /// assert_eq!(request.header(header::ACCEPT), Some("text/html"));
    /// assert_eq!(request.header("x-missing"), None);
    /// ```
    pub fn header(&self, name: impl header::AsHeaderName) -> Option<&str> {
        self.headers.get(name)?.to_str().ok()
    }

    /// A path parameter by name: `{name}` in the route, percent-decoded.
    ///
    /// ```
    /// use squall_sdk::{Request, Router};
    /// # use squall_sdk::Method;
    /// # use squall_sdk::futures::FutureExt;
    ///
    /// let router = Router::new().get("/users/{id}", |req: Request| async move {
    ///     format!("user {}", req.param("id").unwrap_or_default())
    /// });
    /// # let response = router.handle(Request::new(Method::GET, "/users/7")).now_or_never().expect("ready");
    /// # assert_eq!(response.body(), Some(&b"user 7"[..]));
    /// ```
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }

    /// All path parameters, in route order.
    ///
    /// ```
    /// use squall_sdk::{Request, Router};
    /// # use squall_sdk::Method;
    /// # use squall_sdk::futures::FutureExt;
    ///
    /// let router = Router::new().get("/{org}/{repo}", |req: Request| async move {
    ///     let names: Vec<&str> = req.params().iter().map(|(_, value)| value.as_str()).collect();
    ///     names.join("/")
    /// });
    /// # let response = router.handle(Request::new(Method::GET, "/squall/sdk")).now_or_never().expect("ready");
    /// # assert_eq!(response.body(), Some(&b"squall/sdk"[..]));
    /// ```
    pub fn params(&self) -> &[(String, String)] {
        &self.params
    }

    /// A path parameter parsed as `T`: `400 Bad Request` naming it if it
    /// does not parse, `500` if the route has no such parameter.
    ///
    /// ```
    /// use squall_sdk::{Error, Request, Router, StatusCode};
    /// # use squall_sdk::Method;
    /// # use squall_sdk::futures::FutureExt;
    ///
    /// async fn user(req: Request) -> Result<String, Error> {
    ///     let id: u64 = req.param_as("id")?;
    ///     Ok(format!("user {id}"))
    /// }
    /// let router = Router::new().get("/users/{id}", user);
    /// # let answer = router.handle(Request::new(Method::GET, "/users/7")).now_or_never().expect("ready");
    /// # assert_eq!(answer.body(), Some(&b"user 7"[..]));
    /// # let answer = router.handle(Request::new(Method::GET, "/users/seven")).now_or_never().expect("ready");
    /// # assert_eq!(answer.status(), StatusCode::BAD_REQUEST);
    /// ```
    pub fn param_as<T: FromStr>(&self, name: &str) -> Result<T, Error> {
        let value = self
            .param(name)
            .ok_or_else(|| Error::internal(format!("the route has no path parameter {name:?}")))?;
        value
            .parse()
            .map_err(|_| Error::bad_request(format!("bad path parameter {name}: {value:?}")))
    }

    /// The query's arguments, decoded (Tornado's `get_query_argument`);
    /// [`Request::arguments`] adds a form body's fields to them.
    ///
    /// ```
    /// use serde::Deserialize;
    /// use squall_sdk::{Error, Method, Request};
    ///
    /// let request = Request::new(Method::GET, "/search?q=first&q=hello+world&tag=a&tag=b&page=2");
    /// let args = request.query_arguments();
    /// assert_eq!(args.get("q"), Some("hello world"));
    /// assert_eq!(args.all("tag"), ["a", "b"]);
    /// assert_eq!(args.get_as::<u32>("page")?, Some(2));
    ///
    /// #[derive(Deserialize)]
    /// struct Search {
    ///     q: String,
    ///     page: Option<u32>,
    /// }
    /// let search: Search = args.deserialize()?;
    /// assert_eq!((search.q.as_str(), search.page), ("hello world", Some(2)));
    /// # Ok::<(), Error>(())
    /// ```
    pub fn query_arguments(&self) -> &Arguments {
        &self.query_arguments
    }

    /// A cookie sent by the client, by name.
    ///
    /// ```
    /// use squall_sdk::{Method, Request};
    ///
    /// let request = Request::new(Method::GET, "/").with_header("cookie", "theme=dark; lang=en");
    /// assert_eq!(request.cookie("lang"), Some("en"));
    /// ```
    pub fn cookie(&self, name: &str) -> Option<&str> {
        self.headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(';'))
            .filter_map(|pair| pair.trim().split_once('='))
            .find(|(key, _)| *key == name)
            .map(|(_, value)| value.trim_matches('"'))
    }

    /// Take the body out of the request, to read it as a stream.
    ///
    /// ```
    /// use squall_sdk::Request;
    /// # use squall_sdk::Method;
    /// # use squall_sdk::futures::FutureExt;
    ///
    /// async fn chunks(mut req: Request) -> String {
    ///     let mut body = req.take_body();
    ///     let mut count = 0;
    ///     while body.chunk().await.is_some() {
    ///         count += 1;
    ///     }
    ///     format!("{count} chunks")
    /// }
    /// # let request = Request::new(Method::POST, "/").with_body("abc");
    /// # assert_eq!(chunks(request).now_or_never().expect("ready"), "1 chunks");
    /// ```
    pub fn take_body(&mut self) -> Body {
        std::mem::take(&mut self.body)
    }

    /// The whole body as bytes.
    ///
    /// ```
    /// use squall_sdk::Request;
    /// # use squall_sdk::Method;
    /// # use squall_sdk::futures::FutureExt;
    ///
    /// async fn size(mut req: Request) -> String {
    ///     format!("{} bytes", req.bytes().await.len())
    /// }
    /// # let request = Request::new(Method::POST, "/").with_body(vec![0u8; 5]);
    /// # assert_eq!(size(request).now_or_never().expect("ready"), "5 bytes");
    /// ```
    pub async fn bytes(&mut self) -> Vec<u8> {
        self.take_body().bytes().await
    }

    /// The whole body as UTF-8 text; `400 Bad Request` if it is not.
    ///
    /// ```
    /// use squall_sdk::{Error, Request};
    /// # use squall_sdk::Method;
    /// # use squall_sdk::futures::FutureExt;
    ///
    /// async fn shout(mut req: Request) -> Result<String, Error> {
    ///     Ok(req.text().await?.to_uppercase())
    /// }
    /// # let request = Request::new(Method::POST, "/").with_body("hi");
    /// # assert_eq!(shout(request).now_or_never().expect("ready"), Ok("HI".to_owned()));
    /// ```
    pub async fn text(&mut self) -> Result<String, Error> {
        self.take_body().text().await
    }

    /// The body parsed as JSON; `400 Bad Request` if it does not parse into `T`.
    ///
    /// ```
    /// use serde::Deserialize;
    /// use squall_sdk::{Error, Request};
    /// # use squall_sdk::Method;
    /// # use squall_sdk::futures::FutureExt;
    ///
    /// #[derive(Deserialize)]
    /// struct NewTodo {
    ///     title: String,
    /// }
    ///
    /// async fn create(mut req: Request) -> Result<String, Error> {
    ///     let todo: NewTodo = req.json().await?;
    ///     Ok(format!("created {:?}", todo.title))
    /// }
    /// # let request = Request::new(Method::POST, "/").with_body(r#"{"title":"milk"}"#);
    /// # assert_eq!(create(request).now_or_never().expect("ready"), Ok(r#"created "milk""#.to_owned()));
    /// ```
    pub async fn json<T: DeserializeOwned>(&mut self) -> Result<T, Error> {
        let bytes = self.bytes().await;
        serde_json::from_slice(&bytes)
            .map_err(|err| Error::new(StatusCode::BAD_REQUEST, format!("bad JSON body: {err}")))
    }

    /// The request with header `name` set to `value`, replacing any value
    /// it had (built by hand, e.g. in a test), as
    /// [`Response::with_header`](crate::Response::with_header) does. A name
    /// or value that is not valid is ignored.
    ///
    /// ```
    /// use squall_sdk::{Method, Request, Router};
    /// # use squall_sdk::futures::FutureExt;
    ///
    /// let router = Router::new().post("/echo", |mut req: Request| async move {
    ///     let who = req.cookie("user").unwrap_or("nobody").to_owned();
    ///     format!("{who}: {}", req.text().await.unwrap_or_default())
    /// });
    /// let request = Request::new(Method::POST, "/echo")
    ///     .with_cookie("user", "ada")
    ///     .with_header("x-trace", "1")
    ///     .with_body("hello");
    /// let response = router.handle(request).now_or_never().expect("ready");
    /// assert_eq!(response.body(), Some(&b"ada: hello"[..]));
    /// ```
    pub fn with_header(mut self, name: impl TryInto<HeaderName>, value: &str) -> Self {
        if let (Ok(name), Ok(value)) = (name.try_into(), HeaderValue::from_str(value)) {
            self.headers.insert(name, value);
        }
        self
    }

    /// Sets config value `key` for handlers run on this thread, as the
    /// manifest's `[app.NAME.config]` would: for native tests (`cargo
    /// test`) of handlers that call [`config::get`](crate::config::get),
    /// or read it through it (`Signer::from_config` reads `cookie_secret`).
    /// The value is set at once and stays for the rest of the thread (a
    /// test's own, under `cargo test`): run the handler on the same thread
    /// (`now_or_never`, `block_on`). Only outside wasm; under a host the
    /// manifest is the only source.
    ///
    /// ```
    /// use squall_sdk::{Method, Request, Router, config};
    /// # use squall_sdk::futures::FutureExt;
    ///
    /// let router = Router::new().get("/", |_req: Request| async move {
    ///     config::get("greeting").unwrap_or_else(|| "hello".into())
    /// });
    /// let request = Request::new(Method::GET, "/").with_config("greeting", "ahoy");
    /// let response = router.handle(request).now_or_never().expect("ready");
    /// assert_eq!(response.body(), Some(&b"ahoy"[..]));
    /// ```
    #[cfg(not(target_arch = "wasm32"))]
    pub fn with_config(self, key: &str, value: &str) -> Self {
        crate::sys::config_set(key, value);
        self
    }

    /// The request with a cookie added to its `Cookie` header.
    ///
    /// ```
    /// use squall_sdk::{Method, Request};
    ///
    /// let request = Request::new(Method::GET, "/")
    ///     .with_cookie("session", "abc")
    ///     .with_cookie("theme", "dark");
    /// assert_eq!(request.header("cookie"), Some("session=abc; theme=dark"));
    /// ```
    pub fn with_cookie(mut self, name: &str, value: &str) -> Self {
        let pair = format!("{name}={value}");
        let cookies = match self
            .headers
            .get(header::COOKIE)
            .and_then(|v| v.to_str().ok())
        {
            Some(existing) => format!("{existing}; {pair}"),
            None => pair,
        };
        if let Ok(value) = ::http::HeaderValue::from_str(&cookies) {
            self.headers.insert(header::COOKIE, value);
        }
        self
    }

    /// The request with `bytes` as its body.
    ///
    /// ```
    /// use squall_sdk::{Method, Request};
    /// # use squall_sdk::futures::FutureExt;
    ///
    /// let mut request = Request::new(Method::POST, "/upload").with_body(vec![1, 2, 3]);
    /// assert_eq!(request.bytes().now_or_never(), Some(vec![1, 2, 3]));
    /// ```
    pub fn with_body(mut self, bytes: impl Into<Vec<u8>>) -> Self {
        self.body = Body::from_bytes(bytes);
        self
    }

    /// The request with `value` as a JSON body (and its content type).
    ///
    /// ```
    /// use squall_sdk::{Method, Request};
    /// # use squall_sdk::futures::FutureExt;
    ///
    /// let mut request = Request::new(Method::POST, "/todos")
    ///     .with_json(&squall_sdk::serde_json::json!({ "title": "milk" }));
    /// assert_eq!(request.header("content-type"), Some("application/json"));
    /// # let value: squall_sdk::serde_json::Value = request.json().now_or_never().expect("ready").expect("JSON");
    /// # assert_eq!(value["title"], "milk");
    /// ```
    pub fn with_json<T: serde::Serialize + ?Sized>(self, value: &T) -> Self {
        let body = serde_json::to_vec(value).unwrap_or_default();
        self.with_header("content-type", "application/json")
            .with_body(body)
    }

    /// The request with `fields` as a URL-encoded form body (and its
    /// content type).
    ///
    /// ```
    /// use squall_sdk::{Method, Request};
    /// # use squall_sdk::futures::FutureExt;
    ///
    /// let mut request = Request::new(Method::POST, "/login")
    ///     .with_form(&[("user", "ada"), ("remember", "on")]);
    /// assert_eq!(request.text().now_or_never(), Some(Ok("user=ada&remember=on".to_owned())));
    /// ```
    pub fn with_form(self, fields: &[(&str, &str)]) -> Self {
        let body = serde_urlencoded::to_string(fields).unwrap_or_default();
        self.with_header("content-type", "application/x-www-form-urlencoded")
            .with_body(body)
    }

    /// A URL-encoded form body deserialized into `T`; `400 Bad Request` if it does not fit.
    ///
    /// ```
    /// use serde::Deserialize;
    /// use squall_sdk::{Error, Request};
    /// # use squall_sdk::Method;
    /// # use squall_sdk::futures::FutureExt;
    ///
    /// #[derive(Deserialize)]
    /// struct Login {
    ///     user: String,
    /// }
    ///
    /// async fn login(mut req: Request) -> Result<String, Error> {
    ///     let form: Login = req.form().await?;
    ///     Ok(format!("welcome, {}", form.user))
    /// }
    /// # let request = Request::new(Method::POST, "/login").with_form(&[("user", "ada")]);
    /// # assert_eq!(login(request).now_or_never().expect("ready"), Ok("welcome, ada".to_owned()));
    /// ```
    pub async fn form<T: DeserializeOwned>(&mut self) -> Result<T, Error> {
        let bytes = self.bytes().await;
        serde_urlencoded::from_bytes(&bytes)
            .map_err(|err| Error::new(StatusCode::BAD_REQUEST, format!("bad form body: {err}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ::http::HeaderValue;
    use futures::FutureExt;
    use serde::Deserialize;
    use std::collections::HashMap;

    fn with_headers(path: &str, headers: &[(&'static str, &'static str)]) -> Request {
        let mut request = Request::new(Method::GET, path);
        for (name, value) in headers {
            request
                .headers
                .append(*name, HeaderValue::from_static(value));
        }
        request
    }

    #[test]
    fn built_requests_carry_json_forms_and_cookies() {
        #[derive(Deserialize)]
        struct Login {
            user: String,
            remember: bool,
        }
        let mut json = Request::new(Method::POST, "/login")
            .with_json(&serde_json::json!({"user": "ada", "remember": true}));
        assert_eq!(json.header("content-type"), Some("application/json"));
        let login: Login = json.json().now_or_never().expect("ready").expect("parses");
        assert_eq!((login.user.as_str(), login.remember), ("ada", true));

        let mut form = Request::new(Method::POST, "/login")
            .with_form(&[("user", "grace hopper"), ("remember", "true")]);
        let login: Login = form.form().now_or_never().expect("ready").expect("parses");
        assert_eq!(login.user, "grace hopper");

        let cookies = Request::new(Method::GET, "/")
            .with_cookie("a", "1")
            .with_cookie("b", "2");
        assert_eq!(
            (cookies.cookie("a"), cookies.cookie("b")),
            (Some("1"), Some("2"))
        );
        let mut empty = Request::new(Method::GET, "/").with_body("");
        assert!(empty.bytes().now_or_never().expect("ready").is_empty());
    }

    #[test]
    fn new_splits_the_path_from_the_query() {
        let request = Request::new(Method::POST, "/search?q=rust&page=2");
        assert_eq!(request.method(), Method::POST);
        assert_eq!(request.path(), "/search");
        assert_eq!(request.query(), "q=rust&page=2");
        assert_eq!(request.authority(), None);
        assert!(request.headers().is_empty());
        assert!(request.params().is_empty());

        let request = Request::new(Method::GET, "/plain");
        assert_eq!((request.path(), request.query()), ("/plain", ""));
        // Only the first `?` separates; the rest belongs to the query.
        let request = Request::new(Method::GET, "/a?b=c?d");
        assert_eq!((request.path(), request.query()), ("/a", "b=c?d"));
    }

    #[test]
    fn query_arguments_are_decoded_and_repeatable() {
        let request = Request::new(
            Method::GET,
            "/?tag=a&tag=b+c&name=caf%C3%A9&amp=%26%3D&empty=&flag",
        );
        let args = request.query_arguments();
        assert_eq!(args.all("tag"), ["a", "b c"]);
        assert_eq!(args.get("tag"), Some("b c"));
        assert_eq!(args.get("name"), Some("café"));
        assert_eq!(args.get("amp"), Some("&="));
        assert_eq!(args.get("empty"), Some(""));
        assert_eq!(args.get("flag"), Some(""));
        assert_eq!(args.get("missing"), None);
        assert!(args.all("missing").is_empty());
    }

    #[test]
    fn query_pairs_keep_order_and_repeats() {
        let request = Request::new(Method::GET, "/?b=2&a=1&b=3&sp%20ace=x%20y");
        let pairs: Vec<(String, String)> = [("b", "2"), ("a", "1"), ("b", "3"), ("sp ace", "x y")]
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        assert_eq!(request.query_arguments().pairs(), pairs);
        let bare = Request::new(Method::GET, "/");
        assert!(bare.query_arguments().pairs().is_empty());
    }

    #[derive(Debug, Deserialize, PartialEq)]
    struct Page {
        q: String,
        page: Option<u32>,
    }

    #[test]
    fn arguments_deserialize_or_answer_400() {
        let request = Request::new(Method::GET, "/?q=hello+world&page=3");
        let page: Page = request
            .query_arguments()
            .deserialize()
            .expect("a valid query");
        assert_eq!(
            page,
            Page {
                q: "hello world".into(),
                page: Some(3)
            }
        );

        let missing = Request::new(Method::GET, "/?page=3");
        let error = missing
            .query_arguments()
            .deserialize::<Page>()
            .expect_err("q is required");
        assert_eq!(error.status(), StatusCode::BAD_REQUEST);
        assert!(error.message().starts_with("bad arguments: "), "{error}");

        let not_a_number = Request::new(Method::GET, "/?q=x&page=two");
        assert_eq!(
            not_a_number
                .query_arguments()
                .deserialize::<Page>()
                .map_err(|err| err.status()),
            Err(StatusCode::BAD_REQUEST)
        );
    }

    #[test]
    fn typed_arguments_and_path_parameters_answer_400_when_they_do_not_parse() {
        let request = Request::new(Method::GET, "/?page=2&size=big");
        let args = request.query_arguments();
        assert_eq!(
            args.get_as::<u32>("page").map_err(|e| e.status()),
            Ok(Some(2))
        );
        assert_eq!(
            args.get_as::<u32>("absent").map_err(|e| e.status()),
            Ok(None)
        );
        let bad = args.get_as::<u32>("size").expect_err("not a number");
        assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
        assert_eq!(bad.message(), r#"bad argument size: "big""#);

        let mut request = Request::new(Method::GET, "/users/x");
        request.set_params(vec![("id".into(), "x".into())]);
        let bad = request.param_as::<u64>("id").expect_err("not a number");
        assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
        assert_eq!(bad.message(), r#"bad path parameter id: "x""#);
        let missing = request
            .param_as::<u64>("other")
            .expect_err("no such parameter");
        assert_eq!(missing.status(), StatusCode::INTERNAL_SERVER_ERROR);
    }

    #[test]
    fn cookies_are_found_across_pairs_and_headers() {
        let request = with_headers(
            "/",
            &[
                ("cookie", "theme=dark; session=abc123"),
                ("cookie", "quoted=\"hello world\";last=1"),
            ],
        );
        assert_eq!(request.cookie("theme"), Some("dark"));
        assert_eq!(request.cookie("session"), Some("abc123"));
        assert_eq!(request.cookie("quoted"), Some("hello world"));
        assert_eq!(request.cookie("last"), Some("1"));
        assert_eq!(request.cookie("missing"), None);
        // Names are matched whole.
        assert_eq!(request.cookie("sess"), None);
    }

    #[test]
    fn the_first_cookie_of_a_name_wins() {
        let request = with_headers("/", &[("cookie", "id=1; id=2"), ("cookie", "id=3")]);
        assert_eq!(request.cookie("id"), Some("1"));
        assert_eq!(with_headers("/", &[]).cookie("id"), None);
    }

    #[test]
    fn header_reads_visible_ascii_text_only() {
        let mut request = with_headers("/", &[("x-token", "abc"), ("accept", "text/html")]);
        request.headers.append(
            "x-binary",
            HeaderValue::from_bytes(b"caf\xc3\xa9").expect("a valid byte value"),
        );
        assert_eq!(request.header("x-token"), Some("abc"));
        assert_eq!(request.header("X-Token"), Some("abc"));
        assert_eq!(request.header(header::ACCEPT), Some("text/html"));
        assert_eq!(request.header("x-binary"), None);
        assert!(request.headers().contains_key("x-binary"));
        assert_eq!(request.header("x-missing"), None);
    }

    #[test]
    fn params_are_looked_up_by_name() {
        let mut request = Request::new(Method::GET, "/users/7/posts/9");
        request.set_params(vec![
            ("user".into(), "7".into()),
            ("post".into(), "9".into()),
        ]);
        assert_eq!(request.param("user"), Some("7"));
        assert_eq!(request.param("post"), Some("9"));
        assert_eq!(request.param("other"), None);
        assert_eq!(request.params().len(), 2);
    }

    #[test]
    fn a_hand_built_request_has_an_empty_body() {
        let mut request = Request::new(Method::POST, "/upload");
        let mut body = request.take_body();
        assert_eq!(body.chunk().now_or_never().expect("ready"), None);
        assert!(request.bytes().now_or_never().expect("ready").is_empty());
        let text = request.text().now_or_never().expect("ready");
        assert_eq!(text, Ok(String::new()));
    }

    #[test]
    fn json_of_an_empty_body_is_a_400() {
        let mut request = Request::new(Method::POST, "/api");
        let result = request
            .json::<serde_json::Value>()
            .now_or_never()
            .expect("ready");
        let error = result.expect_err("an empty body is not JSON");
        assert_eq!(error.status(), StatusCode::BAD_REQUEST);
        assert!(error.message().starts_with("bad JSON body: "), "{error}");
    }

    #[test]
    fn form_of_an_empty_body_is_an_empty_form() {
        let mut request = Request::new(Method::POST, "/form");
        let form = request
            .form::<HashMap<String, String>>()
            .now_or_never()
            .expect("ready")
            .expect("an empty form");
        assert!(form.is_empty());

        let mut request = Request::new(Method::POST, "/form");
        let result = request.form::<Page>().now_or_never().expect("ready");
        let error = result.expect_err("q is required");
        assert_eq!(error.status(), StatusCode::BAD_REQUEST);
        assert!(error.message().starts_with("bad form body: "), "{error}");
    }
}

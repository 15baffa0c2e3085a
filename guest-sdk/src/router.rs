//! Routing by path pattern and method.

use crate::response::{IntoResponse, Response};
use crate::websocket::WebSocket;
use crate::{Error, Request};
use ::http::header::{self, HeaderValue};
use ::http::{Method, StatusCode};
use std::future::Future;
use std::pin::Pin;

/// A boxed future as the router stores it (guests are single-threaded).
type BoxFuture = Pin<Box<dyn Future<Output = Response>>>;

/// An async function from a [`Request`] to anything that is [`IntoResponse`].
///
/// Implemented for every `Fn(Request) -> impl Future<Output = impl IntoResponse>`,
/// so plain `async fn`s and closures returning `async` blocks are handlers.
///
/// ```
/// use squall_sdk::{Handler, Request, Router};
/// # use squall_sdk::futures::FutureExt;
/// # use squall_sdk::Method;
///
/// // The same handler under a versioned and an unversioned path.
/// fn versioned(router: Router, path: &str, handler: impl Handler + Clone) -> Router {
///     router.get(path, handler.clone()).get(&format!("/v1{path}"), handler)
/// }
///
/// async fn status(_req: Request) -> &'static str {
///     "ok"
/// }
///
/// let router = versioned(Router::new(), "/status", status);
/// # let response = router.handle(Request::new(Method::GET, "/v1/status")).now_or_never().expect("ready");
/// # assert_eq!(response.body(), Some(&b"ok"[..]));
/// ```
pub trait Handler: 'static {
    /// Run the handler.
    ///
    /// ```
    /// use squall_sdk::{Handler, Method, Request};
    /// use squall_sdk::futures::FutureExt;
    ///
    /// async fn ping(_req: Request) -> &'static str {
    ///     "pong"
    /// }
    ///
    /// let request = Request::new(Method::GET, "/ping");
    /// let response = Handler::call(&ping, request).now_or_never().expect("ready");
    /// assert_eq!(response.body(), Some(&b"pong"[..]));
    /// ```
    fn call(&self, request: Request) -> BoxFuture;
}

impl<F, Fut, R> Handler for F
where
    F: Fn(Request) -> Fut + 'static,
    Fut: Future<Output = R> + 'static,
    R: IntoResponse,
{
    fn call(&self, request: Request) -> BoxFuture {
        let future = self(request);
        Box::pin(async move { future.await.into_response() })
    }
}

/// Routes requests to handlers by path pattern and method.
///
/// Patterns are literal segments, `{name}` for one segment and `{*name}` as
/// the last segment for the rest of the path. When several patterns match,
/// the one with the most literal segments wins. A path that matches no
/// pattern answers `404`, a known path with another method `405`.
///
/// ```
/// use squall_sdk::{Request, Router};
/// # use squall_sdk::futures::FutureExt;
/// # use squall_sdk::{Method, StatusCode};
///
/// async fn index(_req: Request) -> &'static str {
///     "Welcome"
/// }
///
/// async fn hello(req: Request) -> String {
///     format!("Hello, {}!", req.param("name").unwrap_or("stranger"))
/// }
///
/// async fn echo(mut req: Request) -> Vec<u8> {
///     req.bytes().await
/// }
///
/// let router = Router::new()
///     .get("/", index)
///     .get("/hello/{name}", hello)
///     .post("/echo", echo);
/// # let answer = |method, path| {
/// #     router.handle(Request::new(method, path)).now_or_never().expect("ready")
/// # };
/// # assert_eq!(answer(Method::GET, "/hello/world").body(), Some(&b"Hello, world!"[..]));
/// # assert_eq!(answer(Method::GET, "/nowhere").status(), StatusCode::NOT_FOUND);
/// # assert_eq!(answer(Method::GET, "/echo").status(), StatusCode::METHOD_NOT_ALLOWED);
/// ```
#[derive(Default)]
pub struct Router {
    routes: Vec<Route>,
    fallback: Option<Box<dyn Handler>>,
    websockets: Vec<(String, Vec<Segment>, WebSocket)>,
    /// What serves the TCP connections of the app's listeners.
    tcp: Option<crate::tcp::TcpHandler>,
    /// What handles the events of hibernate-mode TCP listeners.
    tcp_events: Option<crate::tcp::TcpEvents>,
    /// The handlers of the manifest's schedules, by name.
    schedules: Vec<(String, crate::schedule::ScheduleHandler)>,
    /// The handlers of the app's jobs, by name.
    jobs: Vec<(String, crate::jobs::JobHandler)>,
    /// The consumers of the manifest's queues, by queue.
    consumers: Vec<(String, crate::queue::ConsumerHandler)>,
    /// Malformed patterns: the host refuses to load the app, naming them.
    errors: Vec<String>,
    /// The pattern of the route added last, for [`Router::named`].
    last_pattern: Option<String>,
    /// Hooks, XSRF, error pages and names around every handler.
    pub(crate) around: crate::web::Around,
}

struct Route {
    segments: Vec<Segment>,
    handlers: Vec<(Method, Box<dyn Handler>)>,
}

#[derive(Debug, PartialEq, Eq)]
enum Segment {
    Literal(String),
    Param(String),
    Rest(String),
}

impl Router {
    /// An empty router: every request answers `404`.
    ///
    /// ```
    /// use squall_sdk::{Method, Request, Router, StatusCode};
    /// use squall_sdk::futures::FutureExt;
    ///
    /// let router = Router::new();
    /// let response = router.handle(Request::new(Method::GET, "/")).now_or_never().expect("ready");
    /// assert_eq!(response.status(), StatusCode::NOT_FOUND);
    /// ```
    pub fn new() -> Self {
        Router::default()
    }

    /// Route `method` requests for `pattern` to `handler`.
    ///
    /// A pattern that does not start with `/`, has an unclosed `{`, or puts
    /// `{*rest}` anywhere but last is a bug in the app: the host refuses to
    /// load it, naming the pattern (and [`Router::handle`] answers `500`
    /// naming it).
    ///
    /// ```
    /// use squall_sdk::{Method, Request, Router};
    /// # use squall_sdk::futures::FutureExt;
    ///
    /// let router = Router::new().route(Method::OPTIONS, "/api/{*rest}", |_req: Request| async {
    ///     "GET, POST, OPTIONS"
    /// });
    /// # let response = router.handle(Request::new(Method::OPTIONS, "/api/items/3")).now_or_never().expect("ready");
    /// # assert_eq!(response.body(), Some(&b"GET, POST, OPTIONS"[..]));
    /// ```
    pub fn route(mut self, method: Method, pattern: &str, handler: impl Handler) -> Self {
        let segments = match parse_pattern(pattern) {
            Ok(segments) => segments,
            Err(err) => {
                self.errors.push(err);
                return self;
            }
        };
        self.last_pattern = Some(pattern.to_owned());
        // The same paths under other parameter names: the later route
        // could never be reached (axum refuses this too).
        if let Some(earlier) = self
            .routes
            .iter()
            .find(|r| r.segments != segments && same_shape(&r.segments, &segments))
        {
            self.errors.push(format!(
                "route pattern {pattern:?} matches the same paths as {:?} under other \
                 parameter names: name them alike",
                render_pattern(&earlier.segments)
            ));
            return self;
        }
        let handler: Box<dyn Handler> = Box::new(handler);
        match self.routes.iter_mut().find(|r| r.segments == segments) {
            Some(route) => route.handlers.push((method, handler)),
            None => self.routes.push(Route {
                segments,
                handlers: vec![(method, handler)],
            }),
        }
        self
    }

    /// Route `GET` (and `HEAD`) requests.
    ///
    /// ```
    /// use squall_sdk::{Json, Request, Router};
    /// # use squall_sdk::futures::FutureExt;
    /// # use squall_sdk::{Method, StatusCode};
    ///
    /// let router = Router::new().get("/todos/{id}", |req: Request| async move {
    ///     let id = req.param("id").unwrap_or_default().to_owned();
    ///     Json(squall_sdk::serde_json::json!({ "id": id, "done": false }))
    /// });
    /// # let answer = |method| router.handle(Request::new(method, "/todos/3")).now_or_never().expect("ready");
    /// # let json: squall_sdk::serde_json::Value = squall_sdk::serde_json::from_slice(answer(Method::GET).body().expect("in memory")).expect("JSON");
    /// # assert_eq!(json["id"], "3");
    /// # assert_eq!(answer(Method::HEAD).status(), StatusCode::OK);
    /// ```
    pub fn get(self, pattern: &str, handler: impl Handler) -> Self {
        self.route(Method::GET, pattern, handler)
    }

    /// Route `POST` requests.
    ///
    /// ```
    /// use serde::Deserialize;
    /// use squall_sdk::{Error, Request, Router, StatusCode};
    /// # use squall_sdk::futures::FutureExt;
    /// # use squall_sdk::Method;
    ///
    /// #[derive(Deserialize)]
    /// struct NewTodo {
    ///     title: String,
    /// }
    ///
    /// async fn create(mut req: Request) -> Result<(StatusCode, String), Error> {
    ///     let todo: NewTodo = req.json().await?;
    ///     Ok((StatusCode::CREATED, format!("created {}", todo.title)))
    /// }
    ///
    /// let router = Router::new().post("/todos", create);
    /// # let request = Request::new(Method::POST, "/todos").with_body(r#"{"title":"milk"}"#);
    /// # let response = router.handle(request).now_or_never().expect("ready");
    /// # assert_eq!((response.status(), response.body()), (StatusCode::CREATED, Some(&b"created milk"[..])));
    /// ```
    pub fn post(self, pattern: &str, handler: impl Handler) -> Self {
        self.route(Method::POST, pattern, handler)
    }

    /// Route `PUT` requests.
    ///
    /// ```
    /// use squall_sdk::{Request, Router, StatusCode};
    /// # use squall_sdk::futures::FutureExt;
    /// # use squall_sdk::Method;
    ///
    /// async fn replace(mut req: Request) -> StatusCode {
    ///     let _document = req.bytes().await;
    ///     StatusCode::NO_CONTENT
    /// }
    ///
    /// let router = Router::new().put("/documents/{name}", replace);
    /// # let request = Request::new(Method::PUT, "/documents/a.txt").with_body("text");
    /// # assert_eq!(router.handle(request).now_or_never().expect("ready").status(), StatusCode::NO_CONTENT);
    /// ```
    pub fn put(self, pattern: &str, handler: impl Handler) -> Self {
        self.route(Method::PUT, pattern, handler)
    }

    /// Route `PATCH` requests.
    ///
    /// ```
    /// use squall_sdk::serde_json::Value;
    /// use squall_sdk::{Error, Request, Router};
    /// # use squall_sdk::futures::FutureExt;
    /// # use squall_sdk::Method;
    ///
    /// async fn rename(mut req: Request) -> Result<String, Error> {
    ///     let changes: Value = req.json().await?;
    ///     let title = changes["title"].as_str().ok_or_else(|| Error::bad_request("no title"))?;
    ///     Ok(format!("todo {} is now {title:?}", req.param("id").unwrap_or_default()))
    /// }
    ///
    /// let router = Router::new().patch("/todos/{id}", rename);
    /// # let request = Request::new(Method::PATCH, "/todos/3").with_body(r#"{"title":"eggs"}"#);
    /// # let response = router.handle(request).now_or_never().expect("ready");
    /// # assert_eq!(response.body(), Some(&br#"todo 3 is now "eggs""#[..]));
    /// ```
    pub fn patch(self, pattern: &str, handler: impl Handler) -> Self {
        self.route(Method::PATCH, pattern, handler)
    }

    /// Route `DELETE` requests.
    ///
    /// ```
    /// use squall_sdk::{Request, Router, StatusCode};
    /// # use squall_sdk::futures::FutureExt;
    /// # use squall_sdk::Method;
    ///
    /// let router = Router::new()
    ///     .get("/todos/{id}", |_req: Request| async { "milk" })
    ///     .delete("/todos/{id}", |_req: Request| async { StatusCode::NO_CONTENT });
    /// # let response = router.handle(Request::new(Method::DELETE, "/todos/3")).now_or_never().expect("ready");
    /// # assert_eq!(response.status(), StatusCode::NO_CONTENT);
    /// ```
    pub fn delete(self, pattern: &str, handler: impl Handler) -> Self {
        self.route(Method::DELETE, pattern, handler)
    }

    /// Handle WebSocket connections opened on `pattern`. The host learns
    /// the route when it loads the app; a `[[app.NAME.websocket]]` table in
    /// the manifest only sets its mode and limits. A malformed pattern is
    /// refused at load, as for [`Router::route`].
    ///
    /// ```
    /// use squall_sdk::Router;
    /// use squall_sdk::websocket::{Connection, Message, WebSocket};
    ///
    /// let router = Router::new().websocket(
    ///     "/echo",
    ///     WebSocket::new().on_message(|ws: Connection, message: Message| async move {
    ///         let _ = ws.send(message);
    ///     }),
    /// );
    /// ```
    pub fn websocket(mut self, pattern: &str, handler: WebSocket) -> Self {
        match parse_pattern(pattern) {
            Ok(segments) => self
                .websockets
                .push((pattern.to_owned(), segments, handler)),
            Err(err) => self.errors.push(err),
        }
        self
    }

    /// Serve the TCP connections of the app's listeners
    /// (`[[app.NAME.tcp]]` in the manifest) with `handler`, each in an
    /// instance of its own for the connection's life (see [`crate::tcp`]).
    /// The handler returns `()` or a `Result`, whose error is logged.
    ///
    /// ```no_run
    /// use squall_sdk::Router;
    /// use squall_sdk::tcp::TcpStream;
    ///
    /// async fn greet(mut stream: TcpStream) {
    ///     let hello = format!("hello, {}\n", stream.peer());
    ///     let _ = stream.write(hello).await;
    /// }
    ///
    /// let router = Router::new().tcp(greet);
    /// ```
    pub fn tcp<F, Fut>(mut self, handler: F) -> Self
    where
        F: Fn(crate::tcp::TcpStream) -> Fut + 'static,
        Fut: std::future::Future + 'static,
        Fut::Output: crate::tcp::Finished,
    {
        self.tcp = Some(crate::tcp::TcpHandler::new(handler));
        self
    }

    /// Handle the connections of the app's hibernate-mode TCP listeners
    /// (`mode = "hibernate"`) with `events`: each line a client sends goes
    /// to a fresh instance (see [`crate::tcp::TcpEvents`]).
    pub fn tcp_events(mut self, events: crate::tcp::TcpEvents) -> Self {
        self.tcp_events = Some(events);
        self
    }

    /// Run `handler` at each tick of the manifest's schedule `name`
    /// (`[[app.NAME.schedule]]`; see [`crate::schedule`]). The host refuses
    /// to load an app whose manifest has a schedule no handler names.
    ///
    /// ```
    /// use squall_sdk::schedule::Tick;
    /// use squall_sdk::{Error, Router, log};
    ///
    /// let router = Router::new().on_schedule("cleanup", |tick: Tick| async move {
    ///     log::info(format!("cleaning up ({})", tick.payload_text()));
    ///     Ok::<_, Error>(())
    /// });
    /// # let _ = router;
    /// ```
    pub fn on_schedule<F, Fut>(mut self, name: &str, handler: F) -> Self
    where
        F: Fn(crate::schedule::Tick) -> Fut + 'static,
        Fut: std::future::Future<Output = Result<(), crate::Error>> + 'static,
    {
        if self.schedules.iter().any(|(known, _)| known == name) {
            self.errors
                .push(format!("schedule {name:?} has two handlers (on_schedule)"));
        } else {
            let handler = crate::schedule::ScheduleHandler::new(handler);
            self.schedules.push((name.to_owned(), handler));
        }
        self
    }

    /// Run the handler of `tick`'s schedule as the host would (natively
    /// too: a test of a schedule's handler); `404` if it has none.
    ///
    /// ```
    /// use squall_sdk::futures::FutureExt;
    /// use squall_sdk::schedule::Tick;
    /// use squall_sdk::{Error, Router};
    ///
    /// let router = Router::new().on_schedule("noop", |_tick: Tick| async { Ok::<_, Error>(()) });
    /// let tick = |name| Tick::new(name, "", 1_800_000_000_000);
    /// assert!(router.run_schedule(tick("noop")).now_or_never().expect("ready").is_ok());
    /// assert!(router.run_schedule(tick("other")).now_or_never().expect("ready").is_err());
    /// ```
    pub async fn run_schedule(&self, tick: crate::schedule::Tick) -> Result<(), crate::Error> {
        let name = tick.name();
        let Some((_, handler)) = self.schedules.iter().find(|(known, _)| known == name) else {
            return Err(crate::Error::new(
                crate::StatusCode::NOT_FOUND,
                format!("no handler for schedule {name:?}"),
            ));
        };
        handler.run(tick).await
    }

    /// Run `handler` for each job kept under `name` ([`crate::jobs::after`],
    /// [`crate::jobs::at`]) once it is due. A name is 1 to 64 letters,
    /// digits, `.`, `_` or `-`; the host refuses to keep a job no handler
    /// names.
    ///
    /// ```
    /// use squall_sdk::jobs::Job;
    /// use squall_sdk::{Error, Router, log};
    ///
    /// let router = Router::new().on_job("remind", |job: Job| async move {
    ///     log::info(format!("reminding {} (attempt {})", job.payload_text(), job.attempt()));
    ///     Ok::<_, Error>(())
    /// });
    /// # let _ = router;
    /// ```
    pub fn on_job<F, Fut>(mut self, name: &str, handler: F) -> Self
    where
        F: Fn(crate::jobs::Job) -> Fut + 'static,
        Fut: std::future::Future<Output = Result<(), crate::Error>> + 'static,
    {
        if self.jobs.iter().any(|(known, _)| known == name) {
            self.errors
                .push(format!("job {name:?} has two handlers (on_job)"));
        } else {
            let handler = crate::jobs::JobHandler::new(handler);
            self.jobs.push((name.to_owned(), handler));
        }
        self
    }

    /// Run the handler of `job`'s name as the host would (natively too: a
    /// test of a job's handler); `404` if it has none.
    ///
    /// ```
    /// use squall_sdk::futures::FutureExt;
    /// use squall_sdk::jobs::Job;
    /// use squall_sdk::{Error, Router};
    ///
    /// let router = Router::new().on_job("noop", |_job: Job| async { Ok::<_, Error>(()) });
    /// let job = |name| Job::new("0123", name, "", 1);
    /// assert!(router.run_job(job("noop")).now_or_never().expect("ready").is_ok());
    /// assert!(router.run_job(job("other")).now_or_never().expect("ready").is_err());
    /// ```
    pub async fn run_job(&self, job: crate::jobs::Job) -> Result<(), crate::Error> {
        let name = job.name();
        let Some((_, handler)) = self.jobs.iter().find(|(known, _)| known == name) else {
            return Err(crate::Error::new(
                crate::StatusCode::NOT_FOUND,
                format!("no handler for job {name:?}"),
            ));
        };
        handler.run(job).await
    }

    /// Consume the messages of `queue` with `handler`, a batch at a time
    /// (the manifest's `[[app.NAME.consumer]]` says how; see
    /// [`crate::queue`]). The host refuses to load an app whose manifest
    /// has a consumer no handler names.
    ///
    /// ```
    /// use squall_sdk::queue::Batch;
    /// use squall_sdk::{Error, Router, log};
    ///
    /// let router = Router::new().consumer("emails", |batch: Batch| async move {
    ///     for message in batch.messages() {
    ///         log::info(format!("sending {}", message.payload_text()));
    ///     }
    ///     Ok::<_, Error>(())
    /// });
    /// # let _ = router;
    /// ```
    pub fn consumer<F, Fut>(mut self, queue: &str, handler: F) -> Self
    where
        F: Fn(crate::queue::Batch) -> Fut + 'static,
        Fut: std::future::Future<Output = Result<(), crate::Error>> + 'static,
    {
        if self.consumers.iter().any(|(known, _)| known == queue) {
            self.errors.push(format!(
                "queue {queue:?} has two consumers (Router::consumer)"
            ));
        } else {
            let handler = crate::queue::ConsumerHandler::new(handler);
            self.consumers.push((queue.to_owned(), handler));
        }
        self
    }

    /// Run the consumer of `batch`'s queue as the host would (natively
    /// too: a test of a consumer): whether each message is done; `404` if
    /// the queue has no consumer.
    ///
    /// ```
    /// use squall_sdk::futures::FutureExt;
    /// use squall_sdk::queue::{Batch, Message};
    /// use squall_sdk::{Error, Router};
    ///
    /// let router = Router::new().consumer("q", |batch: Batch| async move {
    ///     batch.retry(&batch.messages()[1]);
    ///     Ok::<_, Error>(())
    /// });
    /// let batch = Batch::new("q", vec![Message::new("a", "one", 1), Message::new("b", "two", 1)]);
    /// let done = router.run_consumer(batch).now_or_never().expect("ready");
    /// assert_eq!(done.expect("consumed"), [true, false]);
    /// ```
    pub async fn run_consumer(
        &self,
        batch: crate::queue::Batch,
    ) -> Result<Vec<bool>, crate::Error> {
        let queue = batch.queue();
        let Some((_, handler)) = self.consumers.iter().find(|(known, _)| known == queue) else {
            return Err(crate::Error::new(
                crate::StatusCode::NOT_FOUND,
                format!("no consumer for queue {queue:?}"),
            ));
        };
        handler.run(batch).await
    }

    /// The queues it has consumers for (the host asks at load).
    #[cfg_attr(feature = "wasi-http", allow(dead_code))]
    pub(crate) fn consumer_queues(&self) -> Vec<String> {
        self.consumers
            .iter()
            .map(|(queue, _)| queue.clone())
            .collect()
    }

    /// The jobs it has handlers for (the host asks at load).
    #[cfg_attr(feature = "wasi-http", allow(dead_code))]
    pub(crate) fn job_names(&self) -> Vec<String> {
        self.jobs.iter().map(|(name, _)| name.clone()).collect()
    }

    /// The schedules it has handlers for (the host asks at load).
    #[cfg_attr(feature = "wasi-http", allow(dead_code))]
    pub(crate) fn schedule_names(&self) -> Vec<String> {
        self.schedules
            .iter()
            .map(|(name, _)| name.clone())
            .collect()
    }

    /// Its hibernate-mode TCP handlers, if it has them.
    #[cfg_attr(feature = "wasi-http", allow(dead_code))]
    pub(crate) fn tcp_event_handlers(&self) -> Option<&crate::tcp::TcpEvents> {
        self.tcp_events.as_ref()
    }

    /// Its TCP connection handler, if it has one.
    #[cfg_attr(feature = "wasi-http", allow(dead_code))]
    pub(crate) fn tcp_handler(&self) -> Option<&crate::tcp::TcpHandler> {
        self.tcp.as_ref()
    }

    /// The patterns of its WebSocket routes, as given (the host asks at load).
    #[cfg_attr(feature = "wasi-http", allow(dead_code))]
    pub(crate) fn websocket_patterns(&self) -> Vec<String> {
        self.websockets
            .iter()
            .map(|(pattern, _, _)| pattern.clone())
            .collect()
    }

    /// Its malformed patterns, each with why (the host refuses to load it).
    #[cfg_attr(feature = "wasi-http", allow(dead_code))]
    pub(crate) fn errors(&self) -> &[String] {
        &self.errors
    }

    /// The WebSocket handler for `path` and the path parameters.
    pub(crate) fn websocket_for(&self, path: &str) -> Option<(&WebSocket, Vec<(String, String)>)> {
        self.websockets
            .iter()
            .enumerate()
            .filter_map(|(index, (_, segments, handler))| {
                let params = match_path(segments, path)?;
                Some((
                    literal_count(segments),
                    std::cmp::Reverse(index),
                    handler,
                    params,
                ))
            })
            .max_by_key(|(literals, index, _, _)| (*literals, *index))
            .map(|(_, _, handler, params)| (handler, params))
    }

    /// Answer requests that match no pattern with `handler` instead of `404`.
    ///
    /// ```
    /// use squall_sdk::{Html, Request, Router, StatusCode};
    /// # use squall_sdk::futures::FutureExt;
    /// # use squall_sdk::Method;
    ///
    /// async fn not_found(req: Request) -> (StatusCode, Html<String>) {
    ///     (StatusCode::NOT_FOUND, Html(format!("<h1>No page at {}</h1>", req.path())))
    /// }
    ///
    /// let router = Router::new().get("/", |_req: Request| async { "home" }).fallback(not_found);
    /// # let response = router.handle(Request::new(Method::GET, "/nope")).now_or_never().expect("ready");
    /// # assert_eq!(response.status(), StatusCode::NOT_FOUND);
    /// # assert_eq!(response.body(), Some(&b"<h1>No page at /nope</h1>"[..]));
    /// ```
    pub fn fallback(mut self, handler: impl Handler) -> Self {
        self.fallback = Some(Box::new(handler));
        self
    }

    /// Dispatch one request to its handler (`500` naming the pattern if
    /// any route is malformed; the host does not load such an app).
    ///
    /// Handlers that await no host capability finish on the first poll, so a
    /// test can drive them with `now_or_never`:
    ///
    /// ```
    /// use squall_sdk::futures::FutureExt;
    /// use squall_sdk::{Method, Request, Router, StatusCode};
    ///
    /// let router = Router::new().get("/hello/{name}", |req: Request| async move {
    ///     format!("Hello, {}!", req.param("name").unwrap_or("stranger"))
    /// });
    /// let request = Request::new(Method::GET, "/hello/ada");
    /// let response = router.handle(request).now_or_never().expect("ready");
    /// assert_eq!(response.status(), StatusCode::OK);
    /// assert_eq!(response.body(), Some(&b"Hello, ada!"[..]));
    /// ```
    pub async fn handle(&self, request: Request) -> Response {
        if let Some(error) = self.errors.first() {
            return Error::internal(error.clone()).into_response();
        }
        let mut response = self
            .around(request, async |request| self.dispatch(request).await)
            .await;
        match response.take_refused_header() {
            None => response,
            // Sending it without the header would hide the mistake (a
            // redirect without its Location): say so, in the log.
            Some(why) => {
                crate::log::error(format!("the response was not sent: {why}"));
                Error::internal("the app's response had an invalid header").into_response()
            }
        }
    }

    /// The pattern of the route added last.
    pub(crate) fn last_pattern(&self) -> Option<String> {
        self.last_pattern.clone()
    }

    /// Record a mistake in how the app built its routes: the host refuses
    /// to load the app, naming it.
    pub(crate) fn refuse(&mut self, why: String) {
        self.errors.push(why);
    }

    /// The handler of the best-matching route (or the fallback, a 404, a 405).
    async fn dispatch(&self, mut request: Request) -> Response {
        let best = self
            .routes
            .iter()
            .enumerate()
            .filter_map(|(index, route)| {
                let params = match_path(&route.segments, request.path())?;
                Some((
                    literal_count(&route.segments),
                    std::cmp::Reverse(index),
                    route,
                    params,
                ))
            })
            // Most literal segments wins; on a tie, the earliest route.
            .max_by_key(|(literals, index, _, _)| (*literals, *index))
            .map(|(_, _, route, params)| (route, params));
        let Some((route, params)) = best else {
            return match &self.fallback {
                Some(fallback) => fallback.call(request).await,
                None => Error::not_found().into_response(),
            };
        };
        let method = request.method().clone();
        let handler = route.find(&method).or_else(|| {
            (method == Method::HEAD)
                .then(|| route.find(&Method::GET))
                .flatten()
        });
        match handler {
            Some(handler) => {
                request.set_params(params);
                handler.call(request).await
            }
            None => method_not_allowed(route),
        }
    }
}

fn literal_count(segments: &[Segment]) -> usize {
    segments
        .iter()
        .filter(|s| matches!(s, Segment::Literal(_)))
        .count()
}

impl Route {
    fn find(&self, method: &Method) -> Option<&dyn Handler> {
        self.handlers
            .iter()
            .find(|(m, _)| m == method)
            .map(|(_, handler)| handler.as_ref())
    }
}

fn method_not_allowed(route: &Route) -> Response {
    let allow: Vec<&str> = route.handlers.iter().map(|(m, _)| m.as_str()).collect();
    let mut response = Error::from(StatusCode::METHOD_NOT_ALLOWED).into_response();
    if let Ok(value) = HeaderValue::from_str(&allow.join(", ")) {
        response.headers_mut().insert(header::ALLOW, value);
    }
    response
}

fn parse_pattern(pattern: &str) -> Result<Vec<Segment>, String> {
    let Some(rest) = pattern.strip_prefix('/') else {
        return Err(format!("route pattern {pattern:?} must start with '/'"));
    };
    let parts: Vec<&str> = rest.split('/').collect();
    let last = parts.len() - 1;
    parts
        .iter()
        .enumerate()
        .map(|(i, part)| match part.strip_prefix('{') {
            None if part.contains(['{', '}']) => Err(format!(
                "route pattern {pattern:?}: braces must enclose a whole segment"
            )),
            None => Ok(Segment::Literal((*part).to_owned())),
            Some(inner) => {
                let name = inner
                    .strip_suffix('}')
                    .ok_or_else(|| format!("route pattern {pattern:?}: unclosed '{{'"))?;
                match name.strip_prefix('*') {
                    Some(name) if i == last => Ok(Segment::Rest(name.to_owned())),
                    Some(_) => Err(format!(
                        "route pattern {pattern:?}: {{*{name}}} must be the last segment"
                    )),
                    None => Ok(Segment::Param(name.to_owned())),
                }
            }
        })
        .collect()
}

/// Whether two patterns match the same paths, whatever their parameters' names.
fn same_shape(a: &[Segment], b: &[Segment]) -> bool {
    a.len() == b.len()
        && a.iter().zip(b).all(|pair| match pair {
            (Segment::Literal(x), Segment::Literal(y)) => x == y,
            (Segment::Param(_), Segment::Param(_)) | (Segment::Rest(_), Segment::Rest(_)) => true,
            _ => false,
        })
}

/// A pattern as written.
fn render_pattern(segments: &[Segment]) -> String {
    segments
        .iter()
        .map(|segment| match segment {
            Segment::Literal(literal) => format!("/{literal}"),
            Segment::Param(name) => format!("/{{{name}}}"),
            Segment::Rest(name) => format!("/{{*{name}}}"),
        })
        .collect()
}

/// The parameters if `path` matches `segments`.
fn match_path(segments: &[Segment], path: &str) -> Option<Vec<(String, String)>> {
    let mut parts = path.strip_prefix('/')?.split('/');
    let mut params = Vec::new();
    for segment in segments {
        match segment {
            Segment::Literal(literal) => {
                if decode(parts.next()?) != *literal {
                    return None;
                }
            }
            Segment::Param(name) => {
                let part = parts.next()?;
                if part.is_empty() {
                    return None;
                }
                params.push((name.clone(), decode(part)));
            }
            Segment::Rest(name) => {
                let rest: Vec<&str> = parts.by_ref().collect();
                params.push((name.clone(), decode(&rest.join("/"))));
            }
        }
    }
    parts.next().is_none().then_some(params)
}

fn decode(part: &str) -> String {
    percent_encoding::percent_decode_str(part)
        .decode_utf8_lossy()
        .into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::FutureExt;

    /// `router`'s answer to `method path`; handlers here never wait on the host.
    fn answer(router: &Router, method: Method, path: &str) -> Response {
        router
            .handle(Request::new(method, path))
            .now_or_never()
            .expect("the handler finished without the host")
    }

    fn text(response: &Response) -> &str {
        std::str::from_utf8(response.body().expect("an in-memory body")).expect("UTF-8")
    }

    /// A handler answering its path parameters as `name=value` lines.
    async fn show_params(req: Request) -> String {
        req.params()
            .iter()
            .map(|(name, value)| format!("{name}={value}\n"))
            .collect()
    }

    fn params(pattern: &str, path: &str) -> Option<Vec<(String, String)>> {
        match_path(&parse_pattern(pattern).expect("valid pattern"), path)
    }

    #[test]
    fn a_response_header_that_is_not_valid_is_a_500_not_a_silent_drop() {
        let router = Router::new()
            .get("/away", |_req: Request| async {
                Response::redirect("https://example.com/\r\nset-cookie: x=1")
            })
            .get("/crlf", |_req: Request| async {
                Response::new(StatusCode::OK, "x").with_header("x-note", "a\r\nset-cookie: b")
            })
            .get("/fine", |_req: Request| async {
                Response::redirect("/home")
            })
            // An error's own page keeps the refusal.
            .get("/gone", |_req: Request| async {
                crate::Error::not_found()
                    .into_response()
                    .with_header("retry-after", "1\r\nx: y")
            });
        for path in ["/away", "/crlf", "/gone"] {
            let response = answer(&router, Method::GET, path);
            assert_eq!(
                response.status(),
                StatusCode::INTERNAL_SERVER_ERROR,
                "{path}"
            );
            assert!(response.headers().get(header::LOCATION).is_none());
            assert!(
                !text(&response).contains("example.com"),
                "the detail is for the log"
            );
        }
        let fine = answer(&router, Method::GET, "/fine");
        assert_eq!(fine.status(), StatusCode::SEE_OTHER);
        assert_eq!(fine.headers()[header::LOCATION], "/home");
    }

    #[test]
    fn literal_and_param_segments() {
        assert_eq!(params("/", "/"), Some(vec![]));
        assert_eq!(params("/", "/x"), None);
        assert_eq!(
            params("/hello/{name}", "/hello/w%C3%B6rld"),
            Some(vec![("name".into(), "wörld".into())])
        );
        assert_eq!(params("/hello/{name}", "/hello/"), None);
        assert_eq!(params("/hello/{name}", "/hello/a/b"), None);
    }

    #[test]
    fn rest_segment_takes_the_remainder() {
        assert_eq!(
            params("/files/{*path}", "/files/a/b.txt"),
            Some(vec![("path".into(), "a/b.txt".into())])
        );
        assert_eq!(
            params("/files/{*path}", "/files/"),
            Some(vec![("path".into(), "".into())])
        );
    }

    #[test]
    fn bad_patterns_are_rejected() {
        assert!(parse_pattern("no-slash").is_err());
        assert!(parse_pattern("/{open").is_err());
        assert!(parse_pattern("/a{b}").is_err());
        assert!(parse_pattern("/{*rest}/more").is_err());
    }

    #[test]
    fn params_reach_the_handler_percent_decoded() {
        let router = Router::new().get("/hello/{name}", |req: Request| async move {
            format!("Hello, {}!", req.param("name").unwrap_or("stranger"))
        });
        let response = answer(&router, Method::GET, "/hello/w%C3%B6rld%20x");
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(text(&response), "Hello, wörld x!");
    }

    #[test]
    fn an_encoded_slash_stays_inside_its_segment() {
        let router = Router::new().get("/files/{name}", show_params);
        assert_eq!(
            text(&answer(&router, Method::GET, "/files/a%2Fb")),
            "name=a/b\n"
        );
        assert_eq!(
            answer(&router, Method::GET, "/files/a/b").status(),
            StatusCode::NOT_FOUND
        );
    }

    #[test]
    fn several_params_arrive_in_route_order() {
        let router = Router::new().get("/{org}/repos/{repo}/{*path}", show_params);
        let response = answer(&router, Method::GET, "/squall/repos/sdk/src/lib.rs");
        assert_eq!(text(&response), "org=squall\nrepo=sdk\npath=src/lib.rs\n");
    }

    #[test]
    fn rest_segment_is_decoded_as_a_whole() {
        let router = Router::new().get("/static/{*path}", show_params);
        let response = answer(&router, Method::GET, "/static/a%20b/c%2Fd.txt");
        assert_eq!(text(&response), "path=a b/c/d.txt\n");
        assert_eq!(text(&answer(&router, Method::GET, "/static/")), "path=\n");
    }

    #[test]
    fn a_literal_segment_matches_its_percent_encoded_form() {
        let router = Router::new().get("/café", |_req| async { "coffee" });
        assert_eq!(text(&answer(&router, Method::GET, "/caf%C3%A9")), "coffee");
    }

    #[test]
    fn literal_segments_beat_params_whatever_the_order() {
        let router = Router::new()
            .get("/users/{id}", |_req| async { "by id" })
            .get("/users/me", |_req| async { "me" });
        assert_eq!(text(&answer(&router, Method::GET, "/users/me")), "me");
        assert_eq!(text(&answer(&router, Method::GET, "/users/42")), "by id");
    }

    #[test]
    fn on_a_tie_the_earliest_route_wins() {
        let router = Router::new()
            .get("/{a}/x", |_req| async { "first" })
            .get("/x/{b}", |_req| async { "second" });
        assert_eq!(text(&answer(&router, Method::GET, "/x/x")), "first");
        assert_eq!(text(&answer(&router, Method::GET, "/y/x")), "first");
        assert_eq!(text(&answer(&router, Method::GET, "/x/y")), "second");
    }

    #[test]
    fn a_trailing_slash_is_another_path() {
        let router = Router::new().get("/hello/{name}", show_params);
        assert_eq!(
            answer(&router, Method::GET, "/hello/bob/").status(),
            StatusCode::NOT_FOUND
        );
    }

    #[test]
    fn an_unknown_path_is_a_plain_text_404() {
        let router = Router::new().get("/", |_req| async { "home" });
        let response = answer(&router, Method::GET, "/missing");
        assert_eq!(response.status(), StatusCode::NOT_FOUND);
        assert_eq!(text(&response), "Not Found\n");
        assert_eq!(
            response.headers()[header::CONTENT_TYPE],
            "text/plain; charset=utf-8"
        );
        let empty = Router::new();
        assert_eq!(
            answer(&empty, Method::GET, "/").status(),
            StatusCode::NOT_FOUND
        );
    }

    #[test]
    fn another_method_on_a_known_path_is_405_with_allow() {
        let router = Router::new()
            .get("/items", |_req| async { "list" })
            .post("/items", |_req| async { StatusCode::CREATED })
            .delete("/items/{id}", |_req| async { StatusCode::NO_CONTENT });
        let response = answer(&router, Method::PUT, "/items");
        assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(response.headers()[header::ALLOW], "GET, POST");
        assert_eq!(
            answer(&router, Method::POST, "/items").status(),
            StatusCode::CREATED
        );
        let response = answer(&router, Method::GET, "/items/3");
        assert_eq!(response.headers()[header::ALLOW], "DELETE");
    }

    #[test]
    fn every_method_helper_routes_its_method() {
        let router = Router::new()
            .get("/r", |_req| async { "get" })
            .post("/r", |_req| async { "post" })
            .put("/r", |_req| async { "put" })
            .patch("/r", |_req| async { "patch" })
            .delete("/r", |_req| async { "delete" })
            .route(Method::OPTIONS, "/r", |_req| async { "options" });
        for (method, expected) in [
            (Method::GET, "get"),
            (Method::POST, "post"),
            (Method::PUT, "put"),
            (Method::PATCH, "patch"),
            (Method::DELETE, "delete"),
            (Method::OPTIONS, "options"),
        ] {
            assert_eq!(text(&answer(&router, method, "/r")), expected);
        }
    }

    #[test]
    fn head_falls_back_to_get_but_not_to_other_methods() {
        let router = Router::new()
            .get(
                "/page",
                |req: Request| async move { req.method().to_string() },
            )
            .post("/form", |_req| async { "posted" });
        let response = answer(&router, Method::HEAD, "/page");
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(text(&response), "HEAD");
        let response = answer(&router, Method::HEAD, "/form");
        assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(response.headers()[header::ALLOW], "POST");
    }

    #[test]
    fn an_explicit_head_route_wins_over_get() {
        let router = Router::new().get("/page", |_req| async { "get" }).route(
            Method::HEAD,
            "/page",
            |_req| async { "head" },
        );
        assert_eq!(text(&answer(&router, Method::HEAD, "/page")), "head");
    }

    #[test]
    fn the_fallback_answers_unmatched_paths_only() {
        let router =
            Router::new()
                .get("/", |_req| async { "home" })
                .fallback(|req: Request| async move {
                    (StatusCode::IM_A_TEAPOT, format!("no {}", req.path()))
                });
        let response = answer(&router, Method::GET, "/elsewhere");
        assert_eq!(response.status(), StatusCode::IM_A_TEAPOT);
        assert_eq!(text(&response), "no /elsewhere");
        assert_eq!(
            answer(&router, Method::POST, "/").status(),
            StatusCode::METHOD_NOT_ALLOWED
        );
    }

    #[test]
    fn malformed_patterns_are_listed_and_answer_500() {
        let router = Router::new()
            .get("hello", |_req| async { "" })
            .get("/fine", |_req| async { "fine" })
            .websocket("/{*rest}/x", WebSocket::new());
        assert_eq!(router.errors().len(), 2);
        assert!(router.errors()[0].contains("must start with '/'"));
        assert!(router.errors()[1].contains("must be the last segment"));
        let response = answer(&router, Method::GET, "/fine");
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert!(router.websocket_patterns().is_empty());
    }

    #[test]
    fn the_same_paths_under_other_parameter_names_are_refused() {
        let router = Router::new()
            .post("/jobs/{name}", |_req| async { "kept" })
            .delete("/jobs/{id}", |_req| async { "cancelled" })
            .get("/jobs/{name}", |_req| async { "listed" });
        assert_eq!(router.errors().len(), 1, "{:?}", router.errors());
        assert!(
            router.errors()[0]
                .contains("\"/jobs/{id}\" matches the same paths as \"/jobs/{name}\""),
            "{:?}",
            router.errors()
        );
    }

    #[test]
    fn websocket_patterns_are_listed_as_given() {
        let router = Router::new()
            .websocket("/ws/{room}", WebSocket::new())
            .websocket("/chat", WebSocket::new());
        assert_eq!(router.websocket_patterns(), ["/ws/{room}", "/chat"]);
        assert!(router.errors().is_empty());
    }

    #[test]
    fn websocket_routes_match_like_http_routes() {
        let router = Router::new()
            .websocket("/ws/{room}", WebSocket::new())
            .websocket("/ws/lobby", WebSocket::new());
        let (_, params) = router.websocket_for("/ws/kitchen").expect("a route");
        assert_eq!(params, vec![("room".to_owned(), "kitchen".to_owned())]);
        let (_, params) = router.websocket_for("/ws/lobby").expect("a route");
        assert!(params.is_empty(), "the literal route wins");
        assert!(router.websocket_for("/other").is_none());
    }
}

//! Templates with [MiniJinja](https://docs.rs/minijinja) (Jinja2's
//! syntax: inheritance, blocks, macros, filters), bundled into the
//! component when it is built, HTML-escaped by default. Enable the SDK's
//! `templates` feature.
//!
//! Bundle a folder of templates with a build script, as
//! [`minijinja-embed`](https://docs.rs/minijinja-embed) does it
//! (`minijinja-embed` as a dependency and a build-dependency):
//!
//! ```text
//! // build.rs
//! fn main() {
//!     minijinja_embed::embed_templates!("templates");
//! }
//! ```
//!
//! then load them once per request and render (`load_templates!` names
//! the `minijinja` crate: bring the SDK's into scope with
//! `use squall_sdk::template::minijinja;`):
//!
//! ```
//! use squall_sdk::template::{Environment, Templates, context};
//! use squall_sdk::{Error, Request};
//!
//! fn templates() -> Templates {
//!     let mut env = Environment::new();
//!     // In an app: minijinja_embed::load_templates!(&mut env);
//!     env.add_template("hello.html", "<p>Hello, {{ name }}!</p>").unwrap();
//!     Templates::new(env)
//! }
//!
//! async fn hello(req: Request) -> Result<squall_sdk::Html<String>, Error> {
//!     let name = req.param("name").unwrap_or("<stranger>");
//!     templates().render("hello.html", context! { name })
//! }
//! # use squall_sdk::futures::FutureExt;
//! # let page = hello(squall_sdk::Request::new(squall_sdk::Method::GET, "/")).now_or_never().unwrap().unwrap();
//! # assert_eq!(page.0, "<p>Hello, &lt;stranger&gt;!</p>");
//! ```
//!
//! Templates named `*.html`, `*.htm` and `*.xml` escape what they print
//! (MiniJinja's default); `{{ value|safe }}` prints HTML as it is.

use crate::{Error, Html};
use serde::Serialize;

pub use minijinja::{self, Environment, Value, context};

/// The app's templates, and how their errors are answered.
#[derive(Debug)]
pub struct Templates {
    env: Environment<'static>,
    debug: bool,
}

impl Templates {
    /// Templates from `env`, their errors answered with a plain `500`.
    pub fn new(env: Environment<'static>) -> Self {
        Templates { env, debug: false }
    }

    /// In debug mode a template error answers `500` with the error, the
    /// template's name and the line (for development only: it shows the
    /// template's source to whoever asks).
    ///
    /// ```
    /// use squall_sdk::template::{Environment, Templates, context};
    ///
    /// let mut env = Environment::new();
    /// env.add_template("page.html", "line one\n{{ items|lenght }}").unwrap();
    /// let error = Templates::new(env).debug(true).render("page.html", context! {}).unwrap_err();
    /// assert!(error.message().contains("line 2"), "{}", error.message());
    /// ```
    pub fn debug(mut self, on: bool) -> Self {
        self.debug = on;
        self
    }

    /// Render the template `name` with `context` as an HTML page.
    pub fn render(&self, name: &str, context: impl Serialize) -> Result<Html<String>, Error> {
        self.render_text(name, context).map(Html)
    }

    /// Render the template `name` with `context` as text.
    pub fn render_text(&self, name: &str, context: impl Serialize) -> Result<String, Error> {
        let rendered = self
            .env
            .get_template(name)
            .and_then(|template| template.render(Value::from(minijinja::value::Serde(context))));
        rendered.map_err(|err| {
            let detail = describe(&err);
            // Guest stderr reaches the host's log, with the request.
            eprintln!("template {name}: {detail}");
            if self.debug {
                Error::internal(detail)
            } else {
                Error::internal("the page could not be rendered")
            }
        })
    }

    /// The environment, to add filters, functions or globals.
    pub fn environment_mut(&mut self) -> &mut Environment<'static> {
        &mut self.env
    }
}

/// An error with what MiniJinja knows of where it happened.
fn describe(err: &minijinja::Error) -> String {
    let mut text = err.to_string();
    if let Some(line) = err.line() {
        text.push_str(&format!(" (line {line})"));
    }
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        text.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    text
}

//! `squall new NAME`: scaffold a handler crate (or a Python app) that builds
//! and serves as is.

use anyhow::{Context, Result, bail};
use clap::Args;
use std::path::{Path, PathBuf};

/// Create a new handler crate.
#[derive(Debug, Args)]
pub(super) struct NewArgs {
    /// Directory to create; its last component names the crate.
    path: PathBuf,
    /// What the crate starts as: a plain HTTP app, a WebSocket echo, or a
    /// chat room (pub/sub, the key-value store and a WebSocket).
    #[arg(long, value_enum, default_value = "http")]
    template: Template,
    /// The language of the handlers: Rust (a crate) or Python (an `app.py`
    /// built with componentize-py).
    #[arg(long, value_enum, default_value = "rust")]
    lang: Lang,
}

/// The languages `squall new` writes apps in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Lang {
    Rust,
    Python,
}

/// The starting points `squall new` offers.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum Template {
    Http,
    Websocket,
    Chat,
}

impl Template {
    fn app_py(self) -> &'static str {
        match self {
            Template::Http => include_str!("templates/http.py"),
            Template::Websocket => include_str!("templates/websocket.py"),
            Template::Chat => include_str!("templates/chat.py"),
        }
    }

    /// `tests/served.rs`: the app served by the real host, through squall-test.
    fn served_rs(self) -> &'static str {
        match self {
            Template::Http => include_str!("templates/served_http.rs"),
            Template::Websocket => include_str!("templates/served_websocket.rs"),
            Template::Chat => include_str!("templates/served_chat.rs"),
        }
    }

    fn lib_rs(self) -> &'static str {
        match self {
            Template::Http => include_str!("templates/http.rs"),
            Template::Websocket => include_str!("templates/websocket.rs"),
            Template::Chat => include_str!("templates/chat.rs"),
        }
    }

    /// The manifest lines that grant what the template uses.
    fn grants(self) -> &'static str {
        match self {
            Template::Http | Template::Websocket => "",
            Template::Chat => "pubsub = [\"room\"]\nkv = true\n",
        }
    }
}

/// Where the SDK was when this binary was built.
const SDK_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../guest-sdk");

/// Where the test kit was when this binary was built.
const TEST_KIT_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../test-kit");

pub(super) fn run(args: NewArgs) -> Result<()> {
    let name = args
        .path
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .filter(|name| is_crate_name(name))
        .with_context(|| {
            format!(
                "{} does not end in a valid crate name (letters, digits, '-' or '_', starting with a letter)",
                args.path.display()
            )
        })?;
    if args.path.exists() {
        bail!("{} already exists", args.path.display());
    }
    if args.lang == Lang::Python {
        return new_python_app(&args.path, &name, args.template);
    }
    let found = |dir: &str, what: &str| {
        Path::new(dir).canonicalize().with_context(|| {
            format!("cannot find {what} at {dir}: run `squall new` from a Squall checkout's build")
        })
    };
    let local = LocalPaths {
        sdk: found(SDK_DIR, "squall-sdk")?,
        test_kit: found(TEST_KIT_DIR, "squall-test")?,
        squall: std::env::current_exe().context("cannot find the squall binary running")?,
    };
    for dir in ["src", "tests", ".cargo"] {
        std::fs::create_dir_all(args.path.join(dir))
            .with_context(|| format!("cannot create {}", args.path.join(dir).display()))?;
    }
    write(&args.path.join("Cargo.toml"), &cargo_toml(&name))?;
    write(&args.path.join(".cargo/config.toml"), &cargo_config(&local))?;
    write(&args.path.join("src/lib.rs"), args.template.lib_rs())?;
    write(
        &args.path.join("tests/served.rs"),
        args.template.served_rs(),
    )?;
    write(
        &args.path.join("squall.toml"),
        &squall_toml(&name, args.template.grants()),
    )?;
    write(
        &args.path.join(".gitignore"),
        // `.squall/`: the app's store and compile cache when served from here.
        "/target\n/.cargo/config.toml\n/.squall/\n",
    )?;
    println!(
        "created {path}\n  serve it: squall serve {path}\n  test it:  cd {path} && cargo test",
        path = args.path.display()
    );
    Ok(())
}

/// A Python app: `app.py`, its test, a manifest, and the pinned build tool.
fn new_python_app(path: &Path, name: &str, template: Template) -> Result<()> {
    std::fs::create_dir_all(path).with_context(|| format!("cannot create {}", path.display()))?;
    write(&path.join("app.py"), template.app_py())?;
    write(
        &path.join("test_app.py"),
        include_str!("templates/test_app.py"),
    )?;
    write(
        &path.join("squall.toml"),
        &squall_toml_for_python(name, template.grants()),
    )?;
    write(
        &path.join("requirements.txt"),
        &format!(
            "# What `squall build` builds app.py with (installed into squall's cache if missing);\n\
             # list pure-Python packages the app needs below it (wheels only).\n\
             componentize-py=={}\n",
            crate::python_build::COMPONENTIZE_PY_VERSION
        ),
    )?;
    write(
        &path.join(".gitignore"),
        "/.squall/\n/.venv/\n__pycache__/\n",
    )?;
    println!(
        "created {path}\n  serve it: squall serve {path}\n  test it:  squall test {path}",
        path = path.display()
    );
    Ok(())
}

fn write(path: &Path, contents: &str) -> Result<()> {
    std::fs::write(path, contents).with_context(|| format!("cannot write {}", path.display()))
}

fn is_crate_name(name: &str) -> bool {
    name.starts_with(|c: char| c.is_ascii_alphabetic())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

fn cargo_toml(name: &str) -> String {
    format!(
        r#"[package]
name = "{name}"
version = "0.1.0"
edition = "2024"
publish = false

[lib]
crate-type = ["cdylib"]

[dependencies]
# Found through .cargo/config.toml, which `squall new` points at the SDK of
# the squall that made this crate (see the README's "A 20-line tour").
squall-sdk = "0.1"
# `#[derive(Serialize, Deserialize)]` for typed JSON bodies and state.
serde = {{ version = "1", features = ["derive"] }}

[dev-dependencies]
# tests/served.rs: the app served by the real host (the squall binary that
# .cargo/config.toml names), with real clients. Found like squall-sdk.
squall-test = "0.1"
tokio = {{ version = "1", features = ["macros", "rt"] }}
anyhow = "1"
serde_json = "1"

[profile.release]
opt-level = "s"
lto = true
strip = true

# A crate of its own, even inside another workspace.
[workspace]
"#
    )
}

/// What this machine's crate finds outside itself.
struct LocalPaths {
    sdk: PathBuf,
    test_kit: PathBuf,
    /// The squall that wrote the crate, which its tests run.
    squall: PathBuf,
}

/// Where cargo finds the SDK, the test kit and squall on this machine: the
/// crate's own cargo config, so `Cargo.toml` names no path and the crate
/// can move.
fn cargo_config(local: &LocalPaths) -> String {
    format!(
        r#"# Written by `squall new`: where this machine's squall-sdk, squall-test
# and squall live. It is machine-local (ignored by git); another checkout or
# machine writes its own (`squall new` a scratch crate and copy its
# .cargo/config.toml).
[patch.crates-io]
squall-sdk = {{ path = {sdk:?} }}
squall-test = {{ path = {test_kit:?} }}

[env]
# The squall that squall-test runs to serve the app in tests
# (`squall test` gives its own instead).
SQUALL = {squall:?}
"#,
        sdk = local.sdk.display().to_string(),
        test_kit = local.test_kit.display().to_string(),
        squall = local.squall.display().to_string(),
    )
}

/// A manifest serving a Python app, with the grants it most often needs
/// written out, commented.
fn squall_toml_for_python(name: &str, grants: &str) -> String {
    let app = name;
    format!(
        r#"# `squall serve .` reads this file. Every key is optional; squall's
# docs/manifest.md and docs/limits.md list them all with their defaults.
[server]
listen = "127.0.0.1:8080"

[app.{app}]
source = "."          # this app.py, built with componentize-py on `squall serve`
routes = ["/"]
timeout = "30s"       # per request, a streamed body included
memory = "64MiB"      # a CPython instance starts at about 18 MiB
{grants}
# Nothing outside the sandbox is reachable until granted here:
# outbound = ["https://api.example.com"]   # what squall.fetch may reach
# pubsub = ["chat", "room.*"]              # topics for squall.pubsub and WebSocket subscriptions
# kv = true                                # this app's own key-value store (squall.kv)

# Values read with squall.config_value; secrets from the environment or a file.
# [app.{app}.config]
# cookie_secret = {{ env = "COOKIE_SECRET" }}   # for set_signed_cookie
# greeting = "hello"

# WebSocket routes are declared in app.py (a WebSocketHandler's route); a
# table only changes how one runs:
# [[app.{app}.websocket]]
# routes = ["/socket"]
# mode = "live"        # one instance per connection (default "hibernate": one per event)
"#
    )
}

/// A manifest serving the crate, with the grants a new app most often
/// needs written out, commented: nothing is granted until it is uncommented.
fn squall_toml(name: &str, grants: &str) -> String {
    let app = name;
    format!(
        r#"# `squall serve .` reads this file. Every key is optional; squall's
# docs/manifest.md and docs/limits.md list them all with their defaults.
[server]
listen = "127.0.0.1:8080"

[app.{app}]
source = "."          # this crate, built for wasm32-wasip2 on `squall serve`
routes = ["/"]
timeout = "30s"       # per request, a streamed body included
memory = "64MiB"
{grants}
# Nothing outside the sandbox is reachable until granted here:
# outbound = ["https://api.example.com"]   # what squall_sdk::http::fetch may reach
# pubsub = ["chat", "room.*"]              # topics for pubsub and WebSocket subscriptions
# kv = true                                # this app's own key-value store (squall_sdk::kv)

# Values read with squall_sdk::config::get; secrets from the environment or a file.
# [app.{app}.config]
# greeting = "hello"
# api_token = {{ env = "API_TOKEN" }}

# WebSocket routes are declared in src/lib.rs (`Router::websocket`); a table
# only changes how one runs:
# [[app.{app}.websocket]]
# routes = ["/socket"]
# mode = "live"        # one instance per connection (default "hibernate": one per event)
"#
    )
}

//! `squall new NAME`: scaffold a handler crate that builds and serves as is.

use anyhow::{Context, Result, bail};
use clap::Args;
use std::path::{Path, PathBuf};

/// Create a new handler crate.
#[derive(Debug, Args)]
pub(super) struct NewArgs {
    /// Directory to create; its last component names the crate.
    path: PathBuf,
}

/// Where the SDK was when this binary was built.
const SDK_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../guest-sdk");

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
    let sdk = Path::new(SDK_DIR).canonicalize().with_context(|| {
        format!(
            "cannot find squall-sdk at {SDK_DIR}: run `squall new` from a Squall checkout's build"
        )
    })?;
    std::fs::create_dir_all(args.path.join("src"))
        .with_context(|| format!("cannot create {}", args.path.display()))?;
    write(&args.path.join("Cargo.toml"), &cargo_toml(&name, &sdk))?;
    write(&args.path.join("src/lib.rs"), LIB_RS)?;
    write(&args.path.join("squall.toml"), &squall_toml(&name))?;
    write(&args.path.join(".gitignore"), "/target\n")?;
    println!(
        "created {path}\n  serve it: squall serve {path}\n  then:     curl http://127.0.0.1:8080/hello/you",
        path = args.path.display()
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

fn cargo_toml(name: &str, sdk: &Path) -> String {
    format!(
        r#"[package]
name = "{name}"
version = "0.1.0"
edition = "2024"
publish = false

[lib]
crate-type = ["cdylib"]

[dependencies]
squall-sdk = {{ path = {sdk:?} }}

[profile.release]
opt-level = "s"
lto = true
strip = true

# A crate of its own, even inside another workspace.
[workspace]
"#,
        sdk = sdk.display().to_string()
    )
}

/// A manifest serving the crate, with the grants a new app most often
/// needs written out, commented: nothing is granted until it is uncommented.
fn squall_toml(name: &str) -> String {
    let app = name;
    format!(
        r#"# `squall serve .` reads this file. Every key is optional; the README's
# "Manifest" and "Limits" sections list them all with their defaults.
[server]
listen = "127.0.0.1:8080"

[app.{app}]
source = "."          # this crate, built for wasm32-wasip2 on `squall serve`
routes = ["/"]
timeout = "30s"       # per request, a streamed body included
memory = "64MiB"

# Nothing outside the sandbox is reachable until granted here:
# outbound = ["https://api.example.com"]   # what squall_sdk::http::fetch may reach
# pubsub = ["chat", "room.*"]              # topics for pubsub and WebSocket subscriptions
# kv = true                                # this app's own key-value store (squall_sdk::kv)

# Values read with squall_sdk::config::get; secrets from the environment or a file.
# [app.{app}.config]
# greeting = "hello"
# api_token = {{ env = "API_TOKEN" }}

# A WebSocket route (its handler is `Router::websocket` in src/lib.rs):
# [[app.{app}.websocket]]
# routes = ["/socket"]
# mode = "hibernate"   # an instance per event; "live": one per connection
"#
    )
}

const LIB_RS: &str = r#"//! A Squall app: `squall serve .` then `curl http://127.0.0.1:8080/hello/you`.

use squall_sdk::{Request, Router};

fn app() -> Router {
    Router::new()
        .get("/", |_req| async { "Hello from Squall!" })
        .get("/hello/{name}", hello)
}

async fn hello(req: Request) -> String {
    format!("Hello, {}!", req.param("name").unwrap_or("stranger"))
}

squall_sdk::export!(app);
"#;

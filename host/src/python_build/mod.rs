//! Building a Python app (a directory with `app.py`) into a component with
//! componentize-py, the Python SDK and the WIT embedded in this binary.
//!
//! The app's directory is the tenant's: the build reads it but writes
//! nothing there and runs nothing from it. Its outputs live in a build
//! directory of squall's own (under the user's cache, named by the app's
//! path), locked while a build runs; the tools come from the operator (the
//! `PATH`, `SQUALL_COMPONENTIZE_PY`) or a virtualenv squall makes.

mod inputs;
mod tools;

use anyhow::{Context, Result, bail};
use std::path::{Path, PathBuf};
use std::process::Command;

pub(crate) use tools::{COMPONENTIZE_PY_VERSION, componentize_py};

/// The Python SDK, file by file, as `squall build` lays it out.
const SDK_FILES: &[(&str, &str)] = &[
    (
        "squall/__init__.py",
        include_str!("../../../guest-sdk/python/squall/__init__.py"),
    ),
    (
        "squall/_export.py",
        include_str!("../../../guest-sdk/python/squall/_export.py"),
    ),
    (
        "squall/gen.py",
        include_str!("../../../guest-sdk/python/squall/gen.py"),
    ),
    (
        "squall/host.py",
        include_str!("../../../guest-sdk/python/squall/host.py"),
    ),
    (
        "squall/httpclient.py",
        include_str!("../../../guest-sdk/python/squall/httpclient.py"),
    ),
    (
        "squall/httputil.py",
        include_str!("../../../guest-sdk/python/squall/httputil.py"),
    ),
    (
        "squall/jobs.py",
        include_str!("../../../guest-sdk/python/squall/jobs.py"),
    ),
    (
        "squall/kv.py",
        include_str!("../../../guest-sdk/python/squall/kv.py"),
    ),
    (
        "squall/pubsub.py",
        include_str!("../../../guest-sdk/python/squall/pubsub.py"),
    ),
    (
        "squall/queues.py",
        include_str!("../../../guest-sdk/python/squall/queues.py"),
    ),
    (
        "squall/security.py",
        include_str!("../../../guest-sdk/python/squall/security.py"),
    ),
    (
        "squall/template.py",
        include_str!("../../../guest-sdk/python/squall/template.py"),
    ),
    (
        "squall/testing.py",
        include_str!("../../../guest-sdk/python/squall/testing.py"),
    ),
    (
        "squall/web.py",
        include_str!("../../../guest-sdk/python/squall/web.py"),
    ),
    (
        "squall/websocket.py",
        include_str!("../../../guest-sdk/python/squall/websocket.py"),
    ),
];

const WIT: &str = include_str!("../../../wit/squall.wit");

/// The module componentize-py starts from: it wires the app's module to
/// the component's exports.
const ENTRY: &str = "import app\n\
from squall._export import exports_for\n\
\n\
Handler, WebsocketHandler, TcpHandler, Background, AppInfo = exports_for(app)\n";

/// Whether `dir` holds a Python app rather than a Rust crate.
pub(crate) fn is_python_app(dir: &Path) -> bool {
    dir.join("app.py").is_file() && !dir.join("Cargo.toml").exists()
}

/// Squall's build directory for the app in `dir`: under the user's cache,
/// named by the app's canonical path (never inside the app).
fn build_dir_of(dir: &Path) -> Result<PathBuf> {
    use sha2::{Digest, Sha256};
    let canonical = dir
        .canonicalize()
        .with_context(|| format!("cannot resolve {}", dir.display()))?;
    let digest = Sha256::digest(canonical.to_string_lossy().as_bytes());
    let name = format!("{:x}", digest);
    Ok(tools::squall_cache()?
        .join("python-builds")
        .join(&name[..32]))
}

/// The Python SDK laid out in the app's build directory, for tests run
/// under plain CPython: its path.
pub(crate) fn python_sdk_dir(dir: &Path) -> Result<PathBuf> {
    let sdk = build_dir_of(dir)?.join("sdk");
    for (relative, text) in SDK_FILES {
        write_if_changed(&sdk.join(relative), text)?;
    }
    Ok(sdk)
}

/// Build the Python app in `dir` and return its component; a build whose
/// inputs have not changed since the last one is reused.
pub(crate) fn build_python_app(dir: &Path) -> Result<PathBuf> {
    let dir = &dir
        .canonicalize()
        .with_context(|| format!("cannot resolve {}", dir.display()))?;
    let build = build_dir_of(dir)?;
    // One build of an app at a time (apps load on parallel threads).
    let _lock = tools::locked(&build, "lock")?;

    let sdk = python_sdk_dir(dir)?;
    let wit = build.join("wit");
    write_if_changed(&sdk.join("_squall_entry.py"), ENTRY)?;
    write_if_changed(&wit.join("squall.wit"), WIT)?;
    let output = build.join("app.wasm");
    let stamp_path = build.join("app.stamp");
    let stamp = inputs::stamp(dir, SDK_FILES, WIT)?;
    if output.is_file() && std::fs::read_to_string(&stamp_path).ok().as_deref() == Some(&stamp) {
        return Ok(output);
    }
    // Whatever happens next, the old stamp no longer vouches for the output.
    let _ = std::fs::remove_file(&stamp_path);
    let source = build.join("app");
    inputs::copy_app(dir, &source)?;
    let stamp = inputs::stamp(&source, SDK_FILES, WIT)?;
    let tool = tools::componentize_py()?;
    let requirements = inputs::requirements(&source)?;
    let packages = build.join("site-packages");
    if packages.exists() {
        std::fs::remove_dir_all(&packages)
            .with_context(|| format!("cannot clear {}", packages.display()))?;
    }
    if !requirements.is_empty() {
        tools::install_packages(&tool, &requirements, &packages)?;
        if let Some(native) = inputs::native_extension(&packages)? {
            bail!(
                "{} is a native extension: a component can bundle pure-Python packages only \
                 (remove the package from requirements.txt, or use a pure-Python one)",
                native.strip_prefix(&packages).unwrap_or(&native).display()
            );
        }
    }
    let partial = build.join("app.wasm.partial");
    let mut componentize = Command::new(&tool);
    componentize
        .arg("-d")
        .arg(&wit)
        .args(["-w", "app", "componentize", "_squall_entry", "-p"])
        .arg(&source)
        .arg("-p")
        .arg(&sdk);
    if packages.exists() {
        componentize.arg("-p").arg(&packages);
    }
    componentize.arg("-o").arg(&partial).current_dir(&build);
    if let Err(err) = tools::run_bounded(&mut componentize, "componentize-py") {
        let _ = std::fs::remove_file(&partial);
        return Err(err.context(format!("cannot build {}", dir.join("app.py").display())));
    }
    std::fs::rename(&partial, &output)
        .with_context(|| format!("cannot move the component to {}", output.display()))?;
    std::fs::write(&stamp_path, stamp)
        .with_context(|| format!("cannot write {}", stamp_path.display()))?;
    Ok(output)
}

fn write_if_changed(path: &Path, text: &str) -> Result<()> {
    if std::fs::read_to_string(path).ok().as_deref() == Some(text) {
        return Ok(());
    }
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("cannot create {}", parent.display()))?;
    }
    std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_file_of_the_python_sdk_is_embedded() {
        let sdk = Path::new(env!("CARGO_MANIFEST_DIR")).join("../guest-sdk/python/squall");
        let mut on_disk: Vec<String> = std::fs::read_dir(&sdk)
            .expect("the SDK's directory")
            .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
            .filter(|name| name.ends_with(".py"))
            .map(|name| format!("squall/{name}"))
            .collect();
        on_disk.sort();
        let mut embedded: Vec<String> = SDK_FILES
            .iter()
            .map(|(name, _)| (*name).to_owned())
            .collect();
        embedded.sort();
        assert_eq!(embedded, on_disk, "SDK_FILES lists the SDK's files");
    }

    #[test]
    fn a_python_app_is_a_directory_with_app_py_and_no_cargo_toml() {
        let dir = tempfile::tempdir().expect("temp dir");
        assert!(!is_python_app(dir.path()));
        std::fs::write(dir.path().join("app.py"), "").expect("write");
        assert!(is_python_app(dir.path()));
        std::fs::write(dir.path().join("Cargo.toml"), "").expect("write");
        assert!(!is_python_app(dir.path()));
    }

    #[test]
    fn the_build_directory_is_outside_the_app() {
        let dir = tempfile::tempdir().expect("temp dir");
        let build = build_dir_of(dir.path()).expect("a build directory");
        assert!(!build.starts_with(dir.path()), "{}", build.display());
    }
}

//! Building a Python app (a directory with `app.py`) into a component with
//! componentize-py, the Python SDK and the WIT embedded in this binary.

use anyhow::{Context, Result, bail};
use sha2::{Digest, Sha256};
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The componentize-py this host's SDK is written and tested against.
pub(crate) const COMPONENTIZE_PY_VERSION: &str = "0.25.1";

/// The Python SDK, file by file, as `squall build` lays it out.
const SDK_FILES: &[(&str, &str)] = &[
    (
        "squall/__init__.py",
        include_str!("../../guest-sdk/python/squall/__init__.py"),
    ),
    (
        "squall/_export.py",
        include_str!("../../guest-sdk/python/squall/_export.py"),
    ),
    (
        "squall/gen.py",
        include_str!("../../guest-sdk/python/squall/gen.py"),
    ),
    (
        "squall/host.py",
        include_str!("../../guest-sdk/python/squall/host.py"),
    ),
    (
        "squall/httpclient.py",
        include_str!("../../guest-sdk/python/squall/httpclient.py"),
    ),
    (
        "squall/httputil.py",
        include_str!("../../guest-sdk/python/squall/httputil.py"),
    ),
    (
        "squall/kv.py",
        include_str!("../../guest-sdk/python/squall/kv.py"),
    ),
    (
        "squall/pubsub.py",
        include_str!("../../guest-sdk/python/squall/pubsub.py"),
    ),
    (
        "squall/security.py",
        include_str!("../../guest-sdk/python/squall/security.py"),
    ),
    (
        "squall/template.py",
        include_str!("../../guest-sdk/python/squall/template.py"),
    ),
    (
        "squall/testing.py",
        include_str!("../../guest-sdk/python/squall/testing.py"),
    ),
    (
        "squall/web.py",
        include_str!("../../guest-sdk/python/squall/web.py"),
    ),
    (
        "squall/websocket.py",
        include_str!("../../guest-sdk/python/squall/websocket.py"),
    ),
];

const WIT: &str = include_str!("../../wit/squall.wit");

/// The module componentize-py starts from: it wires the app's module to
/// the component's exports.
const ENTRY: &str = "import app\n\
from squall._export import exports_for\n\
\n\
Handler, WebsocketHandler, TcpHandler, AppInfo = exports_for(app)\n";

/// Where a build's inputs and output live, inside the app directory.
const BUILD_DIR: &str = ".squall/python-build";

/// Whether `dir` holds a Python app rather than a Rust crate.
pub(crate) fn is_python_app(dir: &Path) -> bool {
    dir.join("app.py").is_file() && !dir.join("Cargo.toml").exists()
}

/// The Python SDK laid out in `dir`'s build directory, for tests run under
/// plain CPython; its path.
pub(crate) fn python_sdk_dir(dir: &Path) -> Result<PathBuf> {
    let sdk = dir.join(BUILD_DIR).join("sdk");
    for (relative, text) in SDK_FILES {
        write_if_changed(&sdk.join(relative), text)?;
    }
    sdk.canonicalize()
        .with_context(|| format!("cannot resolve {}", sdk.display()))
}

/// Build the Python app in `dir` and return its component; a build whose
/// inputs have not changed since the last one is reused.
pub(crate) fn build_python_app(dir: &Path) -> Result<PathBuf> {
    let dir = &dir
        .canonicalize()
        .with_context(|| format!("cannot resolve {}", dir.display()))?;
    let build = dir.join(BUILD_DIR);
    let sdk = python_sdk_dir(dir)?;
    let wit = build.join("wit");
    write_if_changed(&sdk.join("_squall_entry.py"), ENTRY)?;
    write_if_changed(&wit.join("squall.wit"), WIT)?;

    let output = build.join("app.wasm");
    let stamp_path = build.join("app.stamp");
    let stamp = input_stamp(dir)?;
    if output.is_file() && std::fs::read_to_string(&stamp_path).ok().as_deref() == Some(&stamp) {
        return Ok(output);
    }
    let tool = componentize_py(dir)?;
    let packages = install_dependencies(dir, &build, &pip_python(&tool))?;
    // A unique name, then a rename: builds of one app at once do not mix.
    let partial = build.join(format!("app.wasm.{}.partial", std::process::id()));
    let mut command = Command::new(&tool);
    command
        .arg("-d")
        .arg(&wit)
        .args(["-w", "app", "componentize", "_squall_entry", "-p"])
        .arg(dir)
        .arg("-p")
        .arg(&sdk);
    if let Some(packages) = &packages {
        command.arg("-p").arg(packages);
    }
    let status = command
        .arg("-o")
        .arg(&partial)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .status()
        .with_context(|| format!("cannot run {}", tool.to_string_lossy()))?;
    if !status.success() {
        let _ = std::fs::remove_file(&partial);
        bail!(
            "componentize-py could not build {} (its errors are above)",
            dir.join("app.py").display()
        );
    }
    std::fs::rename(&partial, &output)
        .with_context(|| format!("cannot move the component to {}", output.display()))?;
    std::fs::write(&stamp_path, stamp)
        .with_context(|| format!("cannot write {}", stamp_path.display()))?;
    Ok(output)
}

/// The packages `requirements.txt` names (componentize-py, the build tool,
/// aside), installed with pip into the build directory: that directory, or
/// `None` if the app needs none. A package with a native extension cannot
/// run in a component, and is refused by name.
fn install_dependencies(dir: &Path, build: &Path, python: &OsString) -> Result<Option<PathBuf>> {
    let Ok(listed) = std::fs::read_to_string(dir.join("requirements.txt")) else {
        return Ok(None);
    };
    let wanted: Vec<&str> = listed
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        // Requirements only: no pip options (another index, other files).
        .filter(|line| !line.starts_with('-'))
        .filter(|line| {
            let name = line.to_ascii_lowercase().replace('_', "-");
            !name.starts_with("componentize-py")
        })
        .collect();
    if wanted.is_empty() {
        return Ok(None);
    }
    let packages = build.join("site-packages");
    if packages.exists() {
        std::fs::remove_dir_all(&packages)
            .with_context(|| format!("cannot clear {}", packages.display()))?;
    }
    let status = Command::new(python)
        .args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "--target",
        ])
        .arg(&packages)
        .args(&wanted)
        .current_dir(dir)
        .stdin(Stdio::null())
        .status()
        .context("cannot run `python3 -m pip`: is Python 3 with pip installed?")?;
    if !status.success() {
        bail!(
            "pip could not install what {} lists (its errors are above)",
            dir.join("requirements.txt").display()
        );
    }
    if let Some(native) = native_extension(&packages)? {
        bail!(
            "{} is a native extension: a component can bundle pure-Python packages only \
             (remove the package from requirements.txt, or use a pure-Python one)",
            native.strip_prefix(&packages).unwrap_or(&native).display()
        );
    }
    Ok(Some(packages))
}

/// The Python whose pip installs an app's packages: the one of
/// componentize-py's virtualenv if it has one, else `python3`.
fn pip_python(tool: &OsString) -> OsString {
    let beside = Path::new(tool).with_file_name("python3");
    if beside.is_file() {
        beside.into_os_string()
    } else {
        "python3".into()
    }
}

/// The first compiled extension module under `dir`, if any.
fn native_extension(dir: &Path) -> Result<Option<PathBuf>> {
    let mut files = Vec::new();
    app_files(dir, &mut files)?;
    Ok(files.into_iter().find(|file| {
        file.extension()
            .is_some_and(|ext| ext == "so" || ext == "pyd" || ext == "dylib")
    }))
}

/// A digest of everything a build reads: the app's files (its Python, and
/// the templates and static files it reads when built), the SDK, the WIT
/// and the tool's version.
fn input_stamp(dir: &Path) -> Result<String> {
    let mut hasher = Sha256::new();
    hasher.update(COMPONENTIZE_PY_VERSION);
    for (relative, text) in SDK_FILES {
        hasher.update(relative);
        hasher.update(text);
    }
    hasher.update(WIT);
    let mut files = Vec::new();
    app_files(dir, &mut files)?;
    files.sort();
    for file in files {
        let relative = file.strip_prefix(dir).unwrap_or(&file);
        hasher.update(relative.to_string_lossy().as_bytes());
        let mut content = std::fs::File::open(&file)
            .with_context(|| format!("cannot read {}", file.display()))?;
        // Streamed: a large static file is not held in memory.
        let length = std::io::copy(&mut content, &mut hasher)
            .with_context(|| format!("cannot read {}", file.display()))?;
        hasher.update(length.to_le_bytes());
    }
    Ok(format!("{:x}", hasher.finalize()))
}

/// The app's files, not those of hidden directories (`.venv`, `.squall`)
/// or caches.
fn app_files(dir: &Path, found: &mut Vec<PathBuf>) -> Result<()> {
    let entries =
        std::fs::read_dir(dir).with_context(|| format!("cannot read {}", dir.display()))?;
    for entry in entries {
        let entry = entry.with_context(|| format!("cannot read {}", dir.display()))?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        let path = entry.path();
        let kind = entry.file_type()?;
        if kind.is_dir() {
            if !name.starts_with('.') && name != "__pycache__" {
                app_files(&path, found)?;
            }
        } else if kind.is_file() && !name.starts_with('.') {
            // Regular files only: a link could point anywhere (/dev/zero).
            found.push(path);
        }
    }
    Ok(())
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

/// componentize-py: `SQUALL_COMPONENTIZE_PY`, the app's `.venv`, the PATH,
/// or else installed into the app's `.venv` with pip.
fn componentize_py(dir: &Path) -> Result<OsString> {
    if let Some(tool) = std::env::var_os("SQUALL_COMPONENTIZE_PY") {
        return Ok(tool);
    }
    let local = dir.join(".venv/bin/componentize-py");
    if local.is_file() {
        return Ok(local.into_os_string());
    }
    if let Some(on_path) = on_path("componentize-py") {
        return Ok(on_path.into_os_string());
    }
    install_into_venv(dir)?;
    Ok(local.into_os_string())
}

fn on_path(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|candidate| candidate.is_file())
}

fn install_into_venv(dir: &Path) -> Result<()> {
    let venv = dir.join(".venv");
    let pin = format!("componentize-py=={COMPONENTIZE_PY_VERSION}");
    let by_hand = format!(
        "python3 -m venv {venv} && {venv}/bin/pip install {pin}",
        venv = venv.display()
    );
    eprintln!("squall: installing {pin} into {}", venv.display());
    let made = Command::new("python3")
        .arg("-m")
        .arg("venv")
        .arg(&venv)
        .stdin(Stdio::null())
        .status();
    let installed = made.ok().filter(|status| status.success()).and_then(|_| {
        Command::new(venv.join("bin/pip"))
            .args(["install", "--quiet", &pin])
            .stdin(Stdio::null())
            .status()
            .ok()
    });
    if installed.is_some_and(|status| status.success()) {
        return Ok(());
    }
    bail!(
        "componentize-py is needed to build a Python app and could not be installed; \
         install it with `{by_hand}` (or put it on PATH, or name it in SQUALL_COMPONENTIZE_PY)"
    )
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
    fn a_link_in_the_app_is_not_followed_when_its_files_are_hashed() {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::write(dir.path().join("app.py"), "a = 1").expect("write");
        std::os::unix::fs::symlink("/dev/zero", dir.path().join("endless")).expect("link");
        let mut files = Vec::new();
        app_files(dir.path(), &mut files).expect("listed");
        assert_eq!(files, [dir.path().join("app.py")]);
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
    fn the_stamp_changes_with_the_apps_python_and_not_with_hidden_files() {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::write(dir.path().join("app.py"), "a = 1").expect("write");
        let first = input_stamp(dir.path()).expect("stamp");
        std::fs::create_dir_all(dir.path().join(".venv/lib")).expect("mkdir");
        std::fs::write(dir.path().join(".venv/lib/x.py"), "b = 2").expect("write");
        assert_eq!(input_stamp(dir.path()).expect("stamp"), first);
        std::fs::create_dir_all(dir.path().join("lib")).expect("mkdir");
        std::fs::write(dir.path().join("lib/helpers.py"), "c = 3").expect("write");
        assert_ne!(input_stamp(dir.path()).expect("stamp"), first);
    }
}

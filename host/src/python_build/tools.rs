//! The programs a Python build runs — componentize-py and pip — found
//! where the operator put them (never in the app's directory), or
//! installed into a virtualenv of squall's own; each run under a time limit.

use anyhow::{Context, Result, bail};
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The componentize-py this host's SDK is written and tested against.
pub(crate) const COMPONENTIZE_PY_VERSION: &str = "0.25.1";

/// How long one step of a build (pip, componentize-py) may take, unless
/// `SQUALL_BUILD_TIMEOUT` (seconds) says otherwise: an `app.py` that loops
/// when it is imported must not hang a start or a reload.
const BUILD_STEP_TIMEOUT: Duration = Duration::from_secs(600);

/// Squall's own cache directory: `$XDG_CACHE_HOME/squall`, else
/// `~/.cache/squall`.
pub(super) fn squall_cache() -> Result<PathBuf> {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .filter(|path| path.is_absolute())
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cache")))
        .context(
            "neither XDG_CACHE_HOME nor HOME is set: squall has nowhere to build Python apps",
        )?;
    Ok(base.join("squall"))
}

/// componentize-py: `SQUALL_COMPONENTIZE_PY`, the `PATH`, or squall's own
/// virtualenv (installed with pip on first use).
pub(crate) fn componentize_py() -> Result<OsString> {
    if let Some(tool) = std::env::var_os("SQUALL_COMPONENTIZE_PY") {
        return Ok(tool);
    }
    if let Some(on_path) = on_path("componentize-py") {
        return Ok(on_path.into_os_string());
    }
    let cache = squall_cache()?;
    let venv = cache.join(format!("componentize-py-{COMPONENTIZE_PY_VERSION}"));
    let tool = venv.join("bin/componentize-py");
    if !tool.is_file() {
        // One install at a time: builds of several apps may start together.
        let _lock = locked(&cache, "componentize-py.lock")?;
        if !tool.is_file() {
            install_into_venv(&venv)?;
        }
    }
    Ok(tool.into_os_string())
}

/// `dir/name`, made if missing, held with an exclusive lock until the
/// returned file is dropped (other squall processes wait for it).
pub(super) fn locked(dir: &Path, name: &str) -> Result<std::fs::File> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let lock = std::fs::File::create(dir.join(name))
        .with_context(|| format!("cannot lock {}", dir.display()))?;
    lock.lock()
        .with_context(|| format!("cannot lock {}", dir.display()))?;
    Ok(lock)
}

fn on_path(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|candidate| candidate.is_file())
}

fn install_into_venv(venv: &Path) -> Result<()> {
    let pin = format!("componentize-py=={COMPONENTIZE_PY_VERSION}");
    let by_hand = format!(
        "python3 -m venv {venv} && {venv}/bin/pip install {pin}",
        venv = venv.display()
    );
    eprintln!("squall: installing {pin} into {}", venv.display());
    let installed = run_bounded(
        Command::new("python3").arg("-m").arg("venv").arg(venv),
        "python3 -m venv",
    )
    .and_then(|()| {
        run_bounded(
            Command::new(venv.join("bin/pip")).args(["install", "--quiet", &pin]),
            "pip",
        )
    });
    if let Err(err) = installed {
        let _ = std::fs::remove_dir_all(venv);
        bail!(
            "componentize-py is needed to build a Python app and could not be installed ({err:#}); \
             install it with `{by_hand}` (or put it on PATH, or name it in SQUALL_COMPONENTIZE_PY)"
        );
    }
    Ok(())
}

/// Install `requirements` into `target` with the pip of componentize-py's
/// Python (its virtualenv's, else `python3`): wheels only, so no package's
/// build code runs on this host.
pub(super) fn install_packages(
    tool: &OsString,
    requirements: &[String],
    target: &Path,
) -> Result<()> {
    let beside = Path::new(tool).with_file_name("python3");
    let python: OsString = if beside.is_file() {
        beside.into_os_string()
    } else {
        "python3".into()
    };
    let mut pip = Command::new(python);
    pip.args([
        "-m",
        "pip",
        "install",
        "--quiet",
        "--disable-pip-version-check",
        "--no-input",
    ])
    .args(["--only-binary", ":all:", "--target"])
    .arg(target)
    .arg("--")
    .args(requirements);
    run_bounded(&mut pip, "pip").context("cannot install what requirements.txt lists")
}

/// Run `command` (its output to our stderr), failing if it fails or takes
/// longer than a build step may.
pub(super) fn run_bounded(command: &mut Command, what: &str) -> Result<()> {
    let limit = std::env::var("SQUALL_BUILD_TIMEOUT")
        .ok()
        .and_then(|seconds| seconds.parse().ok())
        .map_or(BUILD_STEP_TIMEOUT, Duration::from_secs);
    run_bounded_for(command, what, limit)
}

fn run_bounded_for(command: &mut Command, what: &str, limit: Duration) -> Result<()> {
    let mut child = command
        // No bytecode caches written beside the app's sources.
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .with_context(|| format!("cannot run {what}"))?;
    let started = Instant::now();
    loop {
        if let Some(status) = child
            .try_wait()
            .with_context(|| format!("waiting for {what}"))?
        {
            if status.success() {
                return Ok(());
            }
            bail!("{what} failed ({status}; its errors are above)");
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            bail!(
                "{what} ran for more than {} s and was stopped (SQUALL_BUILD_TIMEOUT raises it)",
                limit.as_secs()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_step_that_runs_too_long_is_stopped() {
        let mut sleeper = Command::new("sleep");
        sleeper.arg("3600");
        let err = run_bounded_for(&mut sleeper, "sleep", Duration::from_millis(200))
            .expect_err("stopped");
        assert!(err.to_string().contains("was stopped"), "{err}");
    }
}

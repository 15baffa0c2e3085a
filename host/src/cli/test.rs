//! `squall test DIR`: run an app's own tests — `cargo test` for a crate,
//! `unittest` with the Python SDK on the path for a Python app.

use crate::python_build::{is_python_app, python_sdk_dir};
use anyhow::{Context, Result, bail};
use clap::Args;
use std::path::PathBuf;
use std::process::Command;

/// Run the tests of a handler crate or a Python app.
#[derive(Debug, Args)]
pub(super) struct TestArgs {
    /// The crate's (or Python app's) directory.
    #[arg(default_value = ".")]
    dir: PathBuf,
}

pub(super) fn run(args: TestArgs) -> Result<()> {
    let status = if is_python_app(&args.dir) {
        let sdk = python_sdk_dir(&args.dir)?;
        // The SDK, and the packages the last build installed, if any.
        let packages = sdk.with_file_name("site-packages");
        let path = std::env::join_paths([sdk, packages])?;
        Command::new("python3")
            .args(["-m", "unittest", "discover", "-s", "."])
            .env("PYTHONPATH", path)
            .current_dir(&args.dir)
            .status()
            .context("cannot run python3: is Python 3 installed?")?
    } else {
        let mut cargo = Command::new(crate::cargo_build::cargo());
        // The squall-test kit serves the app with this squall.
        if let Ok(squall) = std::env::current_exe() {
            cargo.env("SQUALL", squall);
        }
        cargo
            .arg("test")
            .current_dir(&args.dir)
            .status()
            .context("cannot run cargo: is Rust installed (https://rustup.rs)?")?
    };
    if !status.success() {
        bail!("the tests of {} failed", args.dir.display());
    }
    Ok(())
}

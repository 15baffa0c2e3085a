//! `squall build DIR`: compile a guest crate, or a Python app, into a component.

use crate::cargo_build::{Flavor, build_crate_as};
use crate::python_build::{build_python_app, is_python_app};
use anyhow::{Result, bail};
use clap::Args;
use std::path::PathBuf;

/// Build a guest crate for wasm32-wasip2 (release), or a Python app (`app.py`)
/// with componentize-py, and print the component's path.
#[derive(Debug, Args)]
pub(super) struct BuildArgs {
    /// The guest crate's (or Python app's) directory.
    #[arg(default_value = ".")]
    krate: PathBuf,
    /// Build a standard wasi:http (WASI 0.3) component instead, for
    /// `wasmtime serve` and other hosts (squall-sdk's `wasi-http` feature).
    #[arg(long)]
    wasi_http: bool,
}

pub(super) fn run(args: BuildArgs) -> Result<()> {
    let flavor = if args.wasi_http {
        Flavor::WasiHttp
    } else {
        Flavor::Squall
    };
    let wasm = if is_python_app(&args.krate) {
        if args.wasi_http {
            bail!("--wasi-http is for Rust crates: a Python app builds as a squall:app component");
        }
        build_python_app(&args.krate)?
    } else {
        build_crate_as(&args.krate, flavor)?
    };
    println!("{}", wasm.display());
    Ok(())
}

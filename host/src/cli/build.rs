//! `squall build CRATE`: compile a guest crate into a component.

use crate::cargo_build::{Flavor, build_crate_as};
use anyhow::Result;
use clap::Args;
use std::path::PathBuf;

/// Build a guest crate for wasm32-wasip2 (release) and print the component's path.
#[derive(Debug, Args)]
pub(super) struct BuildArgs {
    /// The guest crate's directory.
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
    let wasm = build_crate_as(&args.krate, flavor)?;
    println!("{}", wasm.display());
    Ok(())
}

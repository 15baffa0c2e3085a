//! `squall build CRATE`: compile a guest crate into a component.

use crate::builder::build_crate;
use anyhow::Result;
use clap::Args;
use std::path::PathBuf;

/// Build a guest crate for wasm32-wasip2 (release) and print the component's path.
#[derive(Debug, Args)]
pub struct BuildArgs {
    /// The guest crate's directory.
    #[arg(default_value = ".")]
    krate: PathBuf,
}

pub fn run(args: BuildArgs) -> Result<()> {
    let wasm = build_crate(&args.krate)?;
    println!("{}", wasm.display());
    Ok(())
}

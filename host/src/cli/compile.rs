//! `squall compile APP`: fill the compile cache ahead of `squall serve`, so
//! that the host's next start skips compiling.

use crate::cargo_build::component_for;
use crate::deploy::precompile;
use anyhow::Result;
use clap::Args;
use std::path::PathBuf;

/// Compile an app (or every app of a manifest) into the compile cache.
#[derive(Debug, Args)]
pub(super) struct CompileArgs {
    /// A guest crate directory (built first), a .wasm component, or a squall.toml.
    app: PathBuf,
    /// The compile cache [default: the manifest's `cache_dir`, else
    /// .squall/cache beside the manifest].
    #[arg(long)]
    cache_dir: Option<PathBuf>,
}

pub(super) fn run(args: CompileArgs) -> Result<()> {
    let mut manifest = crate::config::Manifest::for_app(&args.app)?;
    if let Some(dir) = args.cache_dir {
        manifest.server.cache_dir = dir;
    }
    for (app, was_cached) in precompile(&manifest, &|app| component_for(&app.source))? {
        println!(
            "squall: app {app:?} {} in {}",
            if was_cached {
                "was cached already"
            } else {
                "compiled"
            },
            manifest.server.cache_dir.display()
        );
    }
    Ok(())
}

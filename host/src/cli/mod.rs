//! The `squall` command line, one file per subcommand.

mod build;
mod compile;
mod new;
mod serve;
mod watch;

pub(crate) use serve::manifest_for;

use anyhow::Result;
use clap::{Parser, Subcommand};

/// Serve sandboxed WebAssembly request handlers, Tornado-style.
#[derive(Debug, Parser)]
#[command(name = "squall", version, about)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    Serve(serve::ServeArgs),
    Build(build::BuildArgs),
    Compile(compile::CompileArgs),
    New(new::NewArgs),
}

impl Cli {
    /// Run the command.
    pub fn run(self) -> Result<()> {
        match self.command {
            Command::Serve(args) => serve::run(args),
            Command::Build(args) => build::run(args),
            Command::Compile(args) => compile::run(args),
            Command::New(args) => new::run(args),
        }
    }
}

//! The `squall` command line, one file per subcommand.

mod build;
mod compile;
mod new;
mod serve;
mod test;
mod test_server;
mod watch;

use anyhow::Result;
use clap::{Parser, Subcommand};

/// Serve sandboxed WebAssembly request handlers, Tornado-style.
#[derive(Debug, Parser)]
#[command(name = "squall", version, about)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
    /// How log lines (request lines among them) are written to stderr:
    /// `text`, or `json` for one JSON object per line.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// For people: one line per event.
    Text,
    /// For machines: one JSON object per line, with the request's fields.
    Json,
}

#[derive(Debug, Subcommand)]
enum Command {
    Serve(serve::ServeArgs),
    Build(build::BuildArgs),
    Compile(compile::CompileArgs),
    New(new::NewArgs),
    Test(test::TestArgs),
    #[command(hide = true)]
    TestServer(test_server::TestServerArgs),
}

impl Cli {
    /// How log lines should be written.
    pub fn log_format(&self) -> LogFormat {
        self.log_format
    }

    /// Run the command.
    pub fn run(self) -> Result<()> {
        match self.command {
            Command::Serve(args) => serve::run(args),
            Command::Build(args) => build::run(args),
            Command::Compile(args) => compile::run(args),
            Command::New(args) => new::run(args),
            Command::Test(args) => test::run(args),
            Command::TestServer(args) => test_server::run(args),
        }
    }
}

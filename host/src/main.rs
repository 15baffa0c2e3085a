//! The `squall` binary.

use clap::Parser;
use squall::cli::LogFormat;
use std::io::IsTerminal;
use std::process::ExitCode;
use tracing_subscriber::EnvFilter;

// Instances come and go with every request: mimalloc keeps the churn of
// their small allocations off the page-fault path (measured: 8.8 faults per
// request with glibc malloc, none with mimalloc). The `system-allocator`
// feature leaves it out, so heap profilers that hook malloc see everything.
#[cfg(not(feature = "system-allocator"))]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = squall::cli::Cli::parse();
    // Log lines (a request line each, at the default level) are written by
    // a thread of their own, in batches: a request never waits on stderr.
    // When the queue is full, writers wait rather than lines being lost.
    let (writer, _flushed_at_exit) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .lossy(false)
        .thread_name("squall-log")
        .finish(std::io::BufWriter::with_capacity(
            64 << 10,
            std::io::stderr(),
        ));
    let logging = tracing_subscriber::fmt()
        .with_env_filter(
            // notify's INFO lines (a watch descriptor it could not remove,
            // dozens per rebuild) are its own business, not the operator's.
            EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| EnvFilter::new("info,notify=warn")),
        )
        .with_writer(writer)
        // Colours only for a terminal: a log file gets plain text (and the
        // escape codes cost time on every line).
        .with_ansi(std::io::stderr().is_terminal());
    match cli.log_format() {
        LogFormat::Text => logging.init(),
        LogFormat::Json => logging.json().with_span_list(false).init(),
    }
    match cli.run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err}");
            for cause in err.chain().skip(1) {
                eprintln!("  caused by: {cause}");
            }
            ExitCode::FAILURE
        }
    }
}

//! `reset-pipeline`: parse the command line, set up logging, run.

use clap::Parser;
use reset_pipeline::cli::{self, Cli, LogFormat};

#[global_allocator]
static ALLOCATOR: reset_pipeline::Allocator = reset_pipeline::Allocator;

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Colours only for a person at a terminal, not for files and log shippers.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    match cli.log_format {
        LogFormat::Human => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
    match cli::run(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        // `| head` had what it wanted: no message, the status of `cat`.
        Err(e) if reset_pipeline::output_file::reader_gone(&e) => std::process::ExitCode::from(141),
        Err(e) => {
            let chain: Vec<String> = e.chain().map(|c| c.to_string()).collect();
            eprintln!("error: {}", chain.join(": "));
            std::process::ExitCode::FAILURE
        }
    }
}

//! The `raftfs` command: parses arguments, sets up logging, and hands over to the library.

use std::process::ExitCode;

use clap::Parser;
use server::cli::Cli;

fn main() -> ExitCode {
    let cli = Cli::parse();
    server::cli::init_logging();
    match server::cli::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            // One line, as SPEC asks: the reason and its causes.
            eprintln!("raftfs: error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

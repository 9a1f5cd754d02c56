//! The `raftfs` command: parses arguments, sets up logging, and hands over to the library.

use std::process::ExitCode;

use clap::Parser;
use raftfs::cli::Cli;

fn main() -> ExitCode {
    let cli = Cli::parse();
    raftfs::cli::init_logging();
    match raftfs::cli::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            // One line, as docs/protocol.md asks: the reason and its causes.
            eprintln!("raftfs: error: {}", raftfs::cli::one_line(&*err));
            ExitCode::FAILURE
        }
    }
}

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
            eprintln!("raftfs: error: {}", one_line(&err));
            ExitCode::FAILURE
        }
    }
}

/// The error and its causes on one line, each cause once: library errors often name their
/// source in their own message too, and saying "No such file or directory" twice helps nobody.
fn one_line(err: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in err.chain() {
        let text = cause.to_string().replace('\n', " ");
        if line.ends_with(&text) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&text);
    }
    line
}

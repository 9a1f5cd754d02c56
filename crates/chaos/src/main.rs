//! `raftfs-chaos`: a Jepsen-style fault run of real raftfs processes (see docs/chaos.md).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use clap::Parser;

/// Runs 5 real raftfs members behind fault proxies, clients recording a history, a nemesis
/// injecting faults; then heals, checks linearizability and convergence, and prints a report.
#[derive(Parser, Debug)]
#[command(name = "raftfs-chaos", version)]
struct Args {
    /// The raftfs binary to run (default: `raftfs` next to this binary).
    #[arg(long)]
    raftfs: Option<PathBuf>,
    /// Minutes of faults.
    #[arg(long, conflicts_with = "seconds")]
    minutes: Option<u64>,
    /// Seconds of faults (default 120).
    #[arg(long)]
    seconds: Option<u64>,
    /// Seed of the fault schedule and the clients (default: from the clock; printed).
    #[arg(long)]
    seed: Option<u64>,
    /// Concurrent clients.
    #[arg(long, default_value_t = 10)]
    clients: usize,
    /// Files in use at a time.
    #[arg(long, default_value_t = 3)]
    files: usize,
    /// Where to put member data, logs, and on failure the history and report (default: a new
    /// temporary directory, removed if the run passes).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Keep the run directory (and save the history and report) even if the run passes.
    #[arg(long)]
    keep: bool,
}

fn main() -> ExitCode {
    match run() {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(err) => {
            eprintln!("raftfs-chaos: {err:#}");
            ExitCode::from(2)
        }
    }
}

fn run() -> anyhow::Result<bool> {
    let args = Args::parse();
    let raftfs = match args.raftfs {
        Some(path) => path,
        None => std::env::current_exe()
            .context("locate this binary")?
            .with_file_name("raftfs"),
    };
    anyhow::ensure!(
        raftfs.exists(),
        "no raftfs binary at {} (build it with `cargo build --release -p raftfs`, or pass --raftfs)",
        raftfs.display()
    );
    let seconds = match (args.minutes, args.seconds) {
        (Some(m), _) => m * 60,
        (None, Some(s)) => s,
        (None, None) => 120,
    };
    let seed = args.seed.unwrap_or_else(chaos::seed_from_clock);
    let mut options = chaos::Options::new(raftfs, Duration::from_secs(seconds), seed);
    options.workload.clients = args.clients;
    options.workload.files = args.files.max(1);
    options.dir = args.dir;
    options.keep = args.keep;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("start the async runtime")?;
    let report = runtime.block_on(chaos::run(options))?;
    println!("{report}");
    Ok(report.verdict.passed())
}

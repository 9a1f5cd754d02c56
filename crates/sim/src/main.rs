//! The simulator's command line: run many seeds (`--seeds N`), or replay one (`--seed S
//! --trace`). Exits non-zero if any run fails.

use std::process::ExitCode;
use std::time::Instant;

use sim::disk::CrashOrder;
use sim::trace::TraceMode;
use sim::{Profile, RunOptions, Sabotage, run, run_seeds};

/// Client commands per run unless `--commands` says otherwise: about what the test suite uses.
const COMMANDS_DEFAULT: usize = 500;

/// Seeds run when neither `--seeds` nor `--seed` is given.
const SEEDS_DEFAULT: u64 = 100;

const USAGE: &str = "usage: cargo run --profile sim -p sim -- [--seeds N] [--start S] [--seed S] \
                     [--trace] [--profile P] [--commands C] [--threads T] [--sabotage K] \
                     [--black-box] [--wal-order] [--without-assertions]
  --seeds N      run seeds START..START+N (default 100) and print totals
  --start S      first seed of --seeds (default 0)
  --seed S       run one seed and report it (add --trace to print every event)
  --trace        with --seed: print one line per event (time, node, what happened)
  --profile P    mixed (default), three-nodes, five-nodes, partitions, crashes, chaos, quiet,
                 figure8 (leaders struck right after they append: Raft figure 8)
  --commands C   client commands per run (default 500)
  --threads T    threads for --seeds (default: available cores)
  --sabotage K   break the cluster on purpose to see the checks bite: forged-acks, lying-disk
  --black-box    only client-visible outcomes and Raft's published safety properties: no
                 check of disks or of a node's truncations (see the other checks bite)
  --wal-order    crashes keep what the production WAL writer's batch order allows, instead of
                 a prefix of the writes in flight
  --without-assertions
                 run although built without debug assertions (they are checks a campaign
                 relies on: build with --profile sim, not --release)";

/// The parsed command line.
#[derive(Debug)]
struct Args {
    seeds: u64,
    start: u64,
    seed: Option<u64>,
    trace: bool,
    profile: Profile,
    commands: usize,
    threads: usize,
    sabotage: Sabotage,
    black_box: bool,
    wal_order: bool,
    without_assertions: bool,
}

/// Why the command line was refused.
#[derive(Debug, thiserror::Error)]
enum ArgError {
    #[error("{0} needs a value")]
    Missing(String),
    #[error("{flag}: {value:?} is not a number")]
    NotANumber { flag: String, value: String },
    #[error(transparent)]
    Profile(#[from] sim::scenario::UnknownProfile),
    #[error(transparent)]
    Sabotage(#[from] sim::scenario::UnknownSabotage),
    #[error("unknown argument {0:?}")]
    Unknown(String),
    #[error("help requested")]
    Help,
}

fn parse(mut argv: impl Iterator<Item = String>) -> Result<Args, ArgError> {
    let mut args = Args {
        seeds: SEEDS_DEFAULT,
        start: 0,
        seed: None,
        trace: false,
        profile: Profile::Mixed,
        commands: COMMANDS_DEFAULT,
        threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
        sabotage: Sabotage::None,
        black_box: false,
        wal_order: false,
        without_assertions: false,
    };
    while let Some(flag) = argv.next() {
        let mut value = |flag: &str| -> Result<u64, ArgError> {
            let v = argv
                .next()
                .ok_or_else(|| ArgError::Missing(flag.to_owned()))?;
            v.parse().map_err(|_| ArgError::NotANumber {
                flag: flag.to_owned(),
                value: v,
            })
        };
        match flag.as_str() {
            "--seeds" => args.seeds = value("--seeds")?,
            "--start" => args.start = value("--start")?,
            "--seed" => args.seed = Some(value("--seed")?),
            "--commands" => args.commands = value("--commands")? as usize,
            "--threads" => args.threads = value("--threads")? as usize,
            "--trace" => args.trace = true,
            "--black-box" => args.black_box = true,
            "--wal-order" => args.wal_order = true,
            "--without-assertions" => args.without_assertions = true,
            "--profile" => {
                let v = argv
                    .next()
                    .ok_or_else(|| ArgError::Missing("--profile".to_owned()))?;
                args.profile = v.parse()?;
            }
            "--sabotage" => {
                let v = argv
                    .next()
                    .ok_or_else(|| ArgError::Missing("--sabotage".to_owned()))?;
                args.sabotage = v.parse()?;
            }
            "-h" | "--help" => return Err(ArgError::Help),
            other => return Err(ArgError::Unknown(other.to_owned())),
        }
    }
    Ok(args)
}

fn main() -> ExitCode {
    let args = match parse(std::env::args().skip(1)) {
        Ok(args) => args,
        Err(ArgError::Help) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("sim: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    if !cfg!(debug_assertions) {
        // The core's, the driver's and the store's assertions are checks too: a campaign
        // without them can pass a run that breaks one.
        if !args.without_assertions {
            eprintln!(
                "sim: this build has debug assertions off, so the assertions in raft, replica \
                 and fs would not run.\nsim: build with `cargo run --profile sim -p sim -- ...` \
                 (release speed, assertions on), or pass --without-assertions to run anyway."
            );
            return ExitCode::from(2);
        }
        eprintln!("sim: WARNING: debug assertions are off; failures they would catch pass.");
    }
    let started = Instant::now();
    match args.seed {
        Some(seed) => replay(&args, seed),
        None => many(&args, started),
    }
}

/// The run options the flags describe, for `seed`.
fn options(args: &Args, seed: u64) -> RunOptions {
    let mut options = RunOptions::new(args.profile, seed, args.commands);
    options.sabotage = args.sabotage;
    options.check_durability = !args.black_box;
    if args.wal_order {
        options.crash_order = CrashOrder::WalBatch;
    }
    options
}

/// `--seed S`: one run, its trace if asked, its report.
fn replay(args: &Args, seed: u64) -> ExitCode {
    let mut options = options(args, seed);
    if args.trace {
        options.trace = TraceMode::Print;
    }
    let report = run(options);
    print!("{}", report.stats);
    match report.failure {
        Some(failure) => {
            println!("{failure}");
            ExitCode::FAILURE
        }
        None => {
            println!("seed {seed} (profile {}): ok", args.profile);
            ExitCode::SUCCESS
        }
    }
}

/// `--seeds N`: many runs over every core, totals, failures.
fn many(args: &Args, started: Instant) -> ExitCode {
    let seeds = args.start..args.start.saturating_add(args.seeds);
    println!(
        "profile {}, seeds {}..{}, {} commands per run, {} threads",
        args.profile, seeds.start, seeds.end, args.commands, args.threads
    );
    let totals = run_seeds(options(args, 0), seeds, args.threads);
    print!("{}", totals.stats);
    if let Some((seed, elections)) = totals.slowest_heal {
        println!("slowest healing:   seed {seed}, {elections:.1} election timeouts to converge");
    }
    println!(
        "wall time:         {:.1} s",
        started.elapsed().as_secs_f64()
    );
    for failure in &totals.failures {
        println!("{failure}");
    }
    let seeds: Vec<String> = totals.failures.iter().map(|f| f.seed.to_string()).collect();
    println!(
        "failures:          {} [{}]",
        totals.failures.len(),
        seeds.join(" ")
    );
    if totals.failures.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

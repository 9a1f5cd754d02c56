//! The load generator behind `raftfs bench write|read|cas|delete|mix`: connections with
//! pipelined operations, closed loop or open loop at a fixed rate, warm-up, HDR latency, errors
//! by kind, a progress bar, JSON and an SVG plot. The same generator drives etcd and ZooKeeper
//! (feature `compare`), so every system gets the same load from the same code.

#[cfg(feature = "compare")]
mod etcd;
mod plot;
mod progress;
mod raftfs;
pub mod report;
#[cfg(feature = "compare")]
mod slots;
#[cfg(feature = "compare")]
mod zookeeper;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use anyhow::Context;
use bytes::Bytes;
use clap::{Args, ValueEnum};
use hdrhistogram::Histogram;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tokio::time::Instant;

pub use report::{Latency, Report, Second};

/// The system a load run talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Target {
    /// raftfs's text protocol (connections go to the leader, redirects followed).
    Raftfs,
    /// etcd's v3 gRPC API (linearizable ranges, txn for cas); needs the `compare` feature.
    Etcd,
    /// ZooKeeper (sync + getData for linearizable reads, setData with a version for cas);
    /// needs the `compare` feature.
    Zookeeper,
}

/// The workloads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, ValueEnum)]
pub enum Workload {
    /// Writes of whole files.
    Write,
    /// Linearizable reads of files written before the run.
    Read,
    /// Compare-and-swap against the version last seen.
    Cas,
    /// Deletes, each after an unmeasured write of the same file.
    Delete,
    /// A mix of the above, in the proportions of `--mix`.
    Mix,
}

/// Options of one load run.
#[derive(Debug, Clone, Args)]
pub struct LoadArgs {
    /// The system to load.
    #[arg(long, value_enum, default_value = "raftfs")]
    pub target: Target,
    /// Client addresses of the members (comma-separated; any one is enough for raftfs).
    #[arg(
        long,
        alias = "addrs",
        value_delimiter = ',',
        default_value = "127.0.0.1:8080"
    )]
    pub endpoints: Vec<String>,
    /// Connections, each its own client session.
    #[arg(short = 'c', long, default_value_t = 16)]
    pub connections: usize,
    /// Operations in flight per connection (pipelined on raftfs, concurrent requests on one
    /// client for etcd and ZooKeeper).
    #[arg(short = 'P', long, default_value_t = 1)]
    pub pipeline: usize,
    /// Bytes per value written.
    #[arg(long, default_value_t = 256)]
    pub size: usize,
    /// Distinct files the operations spread over.
    #[arg(long, default_value_t = 1000)]
    pub files: usize,
    /// Seconds to measure (after the warm-up).
    #[arg(short = 'd', long, default_value_t = 10.0)]
    pub duration: f64,
    /// Stop after this many measured operations instead of after `--duration`.
    #[arg(short = 'n', long)]
    pub ops: Option<u64>,
    /// Seconds of load before measuring starts.
    #[arg(long, default_value_t = 1.0)]
    pub warmup: f64,
    /// Open loop: start operations at this fixed rate per second, whatever the answers; latency
    /// counts from each operation's intended start, so a stall shows in it.
    #[arg(long)]
    pub rate: Option<f64>,
    /// Proportions of the `mix` workload in percent, e.g. `read=90,write=10` (kinds: read,
    /// write, cas, delete).
    #[arg(long, default_value = "read=90,write=10", value_parser = parse_mix)]
    pub mix: BTreeMap<String, u32>,
    /// Print the report as JSON on standard output instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Draw throughput and p99 latency per second to this SVG file.
    #[arg(long, value_name = "FILE.svg")]
    pub plot: Option<std::path::PathBuf>,
    /// Seed of the choice of files and operations.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}

/// Parses `read=90,write=10`.
fn parse_mix(text: &str) -> Result<BTreeMap<String, u32>, String> {
    let mut mix = BTreeMap::new();
    for part in text.split(',').filter(|p| !p.is_empty()) {
        let (kind, weight) = part
            .split_once('=')
            .ok_or_else(|| format!("{part:?} is not KIND=PERCENT"))?;
        if !["read", "write", "cas", "delete"].contains(&kind) {
            return Err(format!(
                "unknown operation {kind:?} (read, write, cas, delete)"
            ));
        }
        let weight = weight
            .parse::<u32>()
            .map_err(|_| format!("{weight:?} is not a whole number"))?;
        mix.insert(kind.to_owned(), weight);
    }
    if mix.values().sum::<u32>() == 0 {
        return Err("the mix has no operation with a weight above 0".to_owned());
    }
    Ok(mix)
}

impl Default for LoadArgs {
    /// The command line's defaults.
    fn default() -> LoadArgs {
        #[derive(clap::Parser)]
        struct Wrapper {
            #[command(flatten)]
            args: LoadArgs,
        }
        <Wrapper as clap::Parser>::parse_from(["load"]).args
    }
}

/// Runs `workload` as `args` say and returns what it measured, after printing it (a table, or
/// JSON with `--json`) and drawing the plot if one was asked for. A progress bar shows on a
/// terminal.
pub async fn run(workload: Workload, args: &LoadArgs) -> anyhow::Result<Report> {
    let report = measure(workload, args).await?;
    present(&report, args)?;
    Ok(report)
}

/// Prints `report` (a table, or JSON with `--json`) and draws its plot if `args` ask for one.
pub fn present(report: &Report, args: &LoadArgs) -> anyhow::Result<()> {
    if args.json {
        println!("{}", serde_json::to_string_pretty(report)?);
    } else {
        print!("{}", report.table());
    }
    if let Some(path) = &args.plot {
        plot::draw(report, path)?;
    }
    Ok(())
}

/// Runs `workload` and returns its report, printing nothing.
pub async fn measure(workload: Workload, args: &LoadArgs) -> anyhow::Result<Report> {
    anyhow::ensure!(args.connections > 0, "--connections must be at least 1");
    anyhow::ensure!(args.pipeline > 0, "--pipeline must be at least 1");
    anyhow::ensure!(args.files > 0, "--files must be at least 1");
    anyhow::ensure!(
        args.duration > 0.0 && args.warmup >= 0.0,
        "--duration must be above 0 and --warmup not below 0"
    );
    if let Some(rate) = args.rate {
        anyhow::ensure!(rate > 0.0, "--rate must be above 0");
    }
    let mix = match workload {
        Workload::Mix => args.mix.clone(),
        other => BTreeMap::from([(OpKind::from_workload(other).name().to_owned(), 100)]),
    };
    let shared = Arc::new(Shared::new(args, &mix)?);
    let prefill = workload != Workload::Write;
    let workers = match args.target {
        Target::Raftfs => raftfs::start(&shared, args, prefill).await?,
        #[cfg(feature = "compare")]
        Target::Etcd => slots::start::<etcd::Etcd>(&shared, args, prefill).await?,
        #[cfg(feature = "compare")]
        Target::Zookeeper => slots::start::<zookeeper::Zookeeper>(&shared, args, prefill).await?,
        #[cfg(not(feature = "compare"))]
        Target::Etcd | Target::Zookeeper => {
            anyhow::bail!("loading etcd or ZooKeeper needs raftfs built with `--features compare`")
        }
    };
    shared.schedule.begin();
    let progress = progress::show(&shared, args);
    for worker in workers {
        worker.await.context("a load worker panicked")??;
    }
    progress.finish();
    let recorder = shared
        .recorder
        .lock()
        .map_err(|_| anyhow::anyhow!("a load worker panicked"))?;
    Ok(recorder.report(args, workload, mix, &shared.schedule))
}

/// One kind of operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum OpKind {
    Read,
    Write,
    Cas,
    Delete,
}

impl OpKind {
    const ALL: [OpKind; 4] = [OpKind::Read, OpKind::Write, OpKind::Cas, OpKind::Delete];

    fn name(self) -> &'static str {
        match self {
            OpKind::Read => "read",
            OpKind::Write => "write",
            OpKind::Cas => "cas",
            OpKind::Delete => "delete",
        }
    }

    fn from_workload(workload: Workload) -> OpKind {
        match workload {
            Workload::Read => OpKind::Read,
            Workload::Cas => OpKind::Cas,
            Workload::Delete => OpKind::Delete,
            Workload::Write | Workload::Mix => OpKind::Write,
        }
    }
}

/// One operation to run: its kind, its file, and for cas the version it expects.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Op {
    pub kind: OpKind,
    pub file: usize,
    pub version: u64,
}

/// A definite answer.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Outcome {
    /// Done; with the file's new or current version where the system tells it.
    Ok(Option<u64>),
    /// No such file.
    NotFound,
    /// The cas expected another version (the current one, where the system tells it).
    Conflict(Option<u64>),
}

/// What every worker shares: the schedule, the versions last seen, and the recorder.
pub(crate) struct Shared {
    pub schedule: Schedule,
    /// The version last seen of each file (0: none known), which cas expects.
    pub versions: Vec<AtomicU64>,
    pub recorder: Mutex<Recorder>,
    /// Answers so far, measured or not, for the progress bar.
    pub answered: AtomicU64,
    /// The value every write writes.
    pub value: Bytes,
    /// The operations to choose from, with cumulative weights.
    choices: Vec<(OpKind, u32)>,
    seed: u64,
    files: usize,
}

impl Shared {
    fn new(args: &LoadArgs, mix: &BTreeMap<String, u32>) -> anyhow::Result<Shared> {
        let mut choices = Vec::new();
        let mut total = 0;
        for kind in OpKind::ALL {
            let weight = mix.get(kind.name()).copied().unwrap_or(0);
            if weight > 0 {
                total += weight;
                choices.push((kind, total));
            }
        }
        anyhow::ensure!(!choices.is_empty(), "the mix has no operation");
        Ok(Shared {
            schedule: Schedule::new(args),
            versions: (0..args.files).map(|_| AtomicU64::new(0)).collect(),
            recorder: Mutex::new(Recorder::new()?),
            answered: AtomicU64::new(0),
            value: Bytes::from(vec![b'x'; args.size]),
            choices,
            seed: args.seed,
            files: args.files,
        })
    }

    /// The key of file `file`.
    pub fn key(file: usize) -> String {
        format!("bench-{file}")
    }

    /// A chooser of operations for worker `worker` (each its own seeded stream).
    pub fn chooser(&self, worker: usize) -> Chooser {
        Chooser {
            rng: ChaCha8Rng::seed_from_u64(
                self.seed
                    .wrapping_mul(0x9e37_79b9)
                    .wrapping_add(worker as u64),
            ),
            choices: self.choices.clone(),
            files: self.files,
        }
    }

    /// The next operation of a chooser, with the version it expects.
    pub fn next_op(&self, chooser: &mut Chooser) -> Op {
        let (kind, file) = chooser.next();
        Op {
            kind,
            file,
            version: self.versions[file].load(Ordering::Relaxed),
        }
    }

    /// Records an answer to `op`, sent at `sent` for `ticket` and answered now.
    pub fn answer(&self, op: Op, ticket: Ticket, sent: Instant, outcome: Outcome) {
        match (op.kind, outcome) {
            (OpKind::Delete, Outcome::Ok(_)) => self.versions[op.file].store(0, Ordering::Relaxed),
            (_, Outcome::Ok(Some(version)) | Outcome::Conflict(Some(version))) => {
                self.versions[op.file].store(version, Ordering::Relaxed)
            }
            _ => {}
        }
        self.answered.fetch_add(1, Ordering::Relaxed);
        if ticket.measured {
            // Open loop: from the intended start, so that a stall is not hidden (coordinated
            // omission). Closed loop: from the send.
            let from = if self.schedule.open_loop() {
                ticket.intended
            } else {
                sent
            };
            if let Ok(mut recorder) = self.recorder.lock() {
                recorder.answer(&self.schedule, op.kind, from, outcome);
            }
        }
    }

    /// Records that `ticket`'s operation got no definite answer, for the reason `kind`.
    pub fn error(&self, ticket: Ticket, kind: &str) {
        if ticket.measured
            && let Ok(mut recorder) = self.recorder.lock()
        {
            *recorder.errors.entry(kind.to_owned()).or_default() += 1;
        }
    }
}

/// Picks operations and files from a seeded stream.
pub(crate) struct Chooser {
    rng: ChaCha8Rng,
    choices: Vec<(OpKind, u32)>,
    files: usize,
}

impl Chooser {
    fn next(&mut self) -> (OpKind, usize) {
        let total = self.choices.last().map_or(1, |&(_, total)| total);
        let roll = self.rng.random_range(0..total);
        let kind = self
            .choices
            .iter()
            .find(|&&(_, upto)| roll < upto)
            .map_or(OpKind::Write, |&(kind, _)| kind);
        (kind, self.rng.random_range(0..self.files))
    }
}

/// A permission to start one operation: when it was meant to start, and whether it counts.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Ticket {
    pub intended: Instant,
    pub measured: bool,
}

/// When operations start and when the run ends: tickets handed out one per operation.
pub(crate) struct Schedule {
    /// Set by [`Schedule::begin`] once every worker is connected (and files prefilled).
    times: OnceLock<(Instant, Instant, Option<Instant>)>,
    /// Wakes the workers waiting in [`Schedule::begun`].
    begin: tokio::sync::Notify,
    warmup: Duration,
    duration: Duration,
    ops: Option<u64>,
    /// Open loop: nanoseconds between intended starts.
    interval_ns: Option<f64>,
    issued: AtomicU64,
    measured_issued: AtomicU64,
    stopped: AtomicBool,
}

impl Schedule {
    fn new(args: &LoadArgs) -> Schedule {
        Schedule {
            times: OnceLock::new(),
            begin: tokio::sync::Notify::new(),
            warmup: Duration::from_secs_f64(args.warmup),
            duration: Duration::from_secs_f64(args.duration),
            ops: args.ops,
            interval_ns: args.rate.map(|rate| 1e9 / rate),
            issued: AtomicU64::new(0),
            measured_issued: AtomicU64::new(0),
            stopped: AtomicBool::new(false),
        }
    }

    /// Starts the clock: warm-up now, measurement after it.
    fn begin(&self) {
        let start = Instant::now();
        let measure_from = start + self.warmup;
        let end = self.ops.is_none().then(|| measure_from + self.duration);
        let _ = self.times.set((start, measure_from, end));
        self.begin.notify_waiters();
    }

    /// Waits until [`Schedule::begin`] started the clock.
    pub async fn begun(&self) {
        loop {
            let notified = self.begin.notified();
            if self.times.get().is_some() {
                return;
            }
            notified.await;
        }
    }

    fn open_loop(&self) -> bool {
        self.interval_ns.is_some()
    }

    /// When the load started, measuring started, and measuring ends (by time). Before
    /// [`Schedule::begin`], all three are now: nothing is measured.
    pub fn times(&self) -> (Instant, Instant, Option<Instant>) {
        self.times.get().copied().unwrap_or_else(|| {
            let now = Instant::now();
            (now, now, Some(now))
        })
    }

    /// The next ticket, or none once the run is over. Call only after [`Schedule::begun`].
    pub fn next(&self) -> Option<Ticket> {
        if self.stopped.load(Ordering::Relaxed) {
            return None;
        }
        let (start, measure_from, end) = self.times();
        let intended = match self.interval_ns {
            Some(interval) => {
                let n = self.issued.fetch_add(1, Ordering::Relaxed);
                start + Duration::from_nanos((n as f64 * interval) as u64)
            }
            None => Instant::now(),
        };
        if end.is_some_and(|end| intended >= end) {
            self.stopped.store(true, Ordering::Relaxed);
            return None;
        }
        let measured = intended >= measure_from;
        if measured
            && let Some(limit) = self.ops
            && self.measured_issued.fetch_add(1, Ordering::Relaxed) >= limit
        {
            self.stopped.store(true, Ordering::Relaxed);
            return None;
        }
        Some(Ticket { intended, measured })
    }
}

/// The measured answers: latency histograms overall, per operation and per second.
pub(crate) struct Recorder {
    all: Histogram<u64>,
    by_op: BTreeMap<OpKind, Histogram<u64>>,
    seconds: Vec<Histogram<u64>>,
    outcomes: BTreeMap<&'static str, u64>,
    errors: BTreeMap<String, u64>,
    last_answer: Option<Instant>,
}

/// The largest latency a histogram holds (an hour, in µs); longer ones count as this.
const LATENCY_MAX_US: u64 = 3_600_000_000;

impl Recorder {
    fn new() -> anyhow::Result<Recorder> {
        Ok(Recorder {
            all: Histogram::new_with_bounds(1, LATENCY_MAX_US, 3)?,
            by_op: BTreeMap::new(),
            seconds: Vec::new(),
            outcomes: BTreeMap::new(),
            errors: BTreeMap::new(),
            last_answer: None,
        })
    }

    fn answer(&mut self, schedule: &Schedule, kind: OpKind, from: Instant, outcome: Outcome) {
        let now = Instant::now();
        let us = now.saturating_duration_since(from).as_micros() as u64;
        let us = us.clamp(1, LATENCY_MAX_US);
        self.all.saturating_record(us);
        if let Some(h) = self.by_op.get_mut(&kind) {
            h.saturating_record(us);
        } else if let Ok(mut h) = Histogram::new_with_bounds(1, LATENCY_MAX_US, 3) {
            h.saturating_record(us);
            self.by_op.insert(kind, h);
        }
        let (_, measure_from, end) = schedule.times();
        let mut second = now.saturating_duration_since(measure_from).as_secs() as usize;
        if let Some(end) = end {
            // An answer to an operation started before the end, arriving after it, counts in
            // the last second rather than opening a nearly empty one.
            let last = (end - measure_from).as_secs_f64().ceil() as usize;
            second = second.min(last.saturating_sub(1));
        }
        while self.seconds.len() <= second {
            match Histogram::new_with_bounds(1, LATENCY_MAX_US, 2) {
                Ok(h) => self.seconds.push(h),
                Err(_) => return,
            }
        }
        self.seconds[second].saturating_record(us);
        let name = match outcome {
            Outcome::Ok(_) => "ok",
            Outcome::NotFound => "not_found",
            Outcome::Conflict(_) => "conflict",
        };
        *self.outcomes.entry(name).or_default() += 1;
        self.last_answer = Some(now);
    }

    /// Measured answers so far.
    fn measured(&self) -> u64 {
        self.all.len()
    }

    fn report(
        &self,
        args: &LoadArgs,
        workload: Workload,
        mix: BTreeMap<String, u32>,
        schedule: &Schedule,
    ) -> Report {
        let (_, measure_from, end) = schedule.times();
        let elapsed = match end {
            Some(end) => end - measure_from,
            None => self.last_answer.map_or(Duration::ZERO, |last| {
                last.saturating_duration_since(measure_from)
            }),
        }
        .as_secs_f64();
        let ops = self.all.len();
        Report {
            system: args.target.name().to_owned(),
            workload: workload.name().to_owned(),
            mix,
            connections: args.connections,
            pipeline: args.pipeline,
            value_size: args.size,
            files: args.files,
            rate: args.rate,
            warmup_s: args.warmup,
            elapsed_s: elapsed,
            ops,
            ops_per_s: if elapsed > 0.0 {
                ops as f64 / elapsed
            } else {
                0.0
            },
            outcomes: self
                .outcomes
                .iter()
                .map(|(k, v)| ((*k).to_owned(), *v))
                .collect(),
            errors: self.errors.clone(),
            latency: Latency::of(&self.all),
            latency_by_op: self
                .by_op
                .iter()
                .map(|(kind, h)| (kind.name().to_owned(), Latency::of(h)))
                .collect(),
            timeline: self
                .seconds
                .iter()
                .enumerate()
                .map(|(second, h)| Second {
                    second: second as u64,
                    ops: h.len(),
                    p99_us: h.value_at_quantile(0.99),
                })
                .collect(),
        }
    }
}

impl Target {
    /// The system's name in reports.
    pub fn name(self) -> &'static str {
        match self {
            Target::Raftfs => "raftfs",
            Target::Etcd => "etcd",
            Target::Zookeeper => "zookeeper",
        }
    }
}

impl Workload {
    /// The workload's name in reports.
    pub fn name(self) -> &'static str {
        match self {
            Workload::Write => "write",
            Workload::Read => "read",
            Workload::Cas => "cas",
            Workload::Delete => "delete",
            Workload::Mix => "mix",
        }
    }
}

//! A Jepsen-style fault run of real raftfs processes.
//!
//! [`run`] starts a cluster of `raftfs serve` processes on loopback, each behind a
//! fault-injecting proxy on its peer port ([`proxy`]), runs concurrent clients on a few
//! contended files ([`client`]) that record every operation in the simulator's
//! [`History`](sim::history::History), and lets a [`nemesis`] kill, pause, partition, slow,
//! skew and tear members on a seeded schedule. Then it heals everything and judges:
//!
//! - the history, final reads of every file included, is linearizable (the project's checker,
//!   [`sim::linearizability`], with a clock bound covering the skews used); a final read that
//!   misses an acknowledged write is a violation, so that is where lost writes show;
//! - every member converges to the same store digest at the same applied index;
//! - no member exited on its own or failed to restart, and no reply broke the protocol.
//!
//! The [`Report`] says what was done and what was found; on a failure the history and report
//! are saved next to the members' logs.

pub mod client;
pub mod cluster;
pub mod nemesis;
pub mod proxy;
pub mod report;
pub mod status;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use sim::history::ClockBound;

use crate::client::{Recorder, Shared, UNITS_PER_MS, Workload};
use crate::cluster::{Cluster, PortPicker};
use crate::nemesis::Nemesis;
pub use crate::report::{Convergence, Report, Verdict};

/// Why a run could not be carried out (as opposed to a run that found a bug, which is a
/// [`Report`] whose verdict fails).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An operating-system call failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// What the OS said.
        source: std::io::Error,
    },
    /// A member could not be started or handled.
    #[error("{0}")]
    Member(String),
}

impl Error {
    fn io(what: impl Into<String>, source: std::io::Error) -> Error {
        Error::Io {
            what: what.into(),
            source,
        }
    }
}

/// How to run.
#[derive(Clone, Debug)]
pub struct Options {
    /// The `raftfs` binary.
    pub raftfs: PathBuf,
    /// How long faults are injected (the run takes longer: start, healing, checks).
    pub duration: Duration,
    /// Seed of the fault schedule and the clients' choices.
    pub seed: u64,
    /// Members (odd).
    pub members: usize,
    /// The clients' workload.
    pub workload: Workload,
    /// Where member data, logs and (on failure) the history go; a fresh temporary directory
    /// if `None`.
    pub dir: Option<PathBuf>,
    /// Keep the directory even when the run passes.
    pub keep: bool,
    /// Extra top-level settings for the cluster file.
    pub settings: String,
}

impl Options {
    /// Defaults for a run of `raftfs` for `duration`: 5 members, 10 clients, small snapshot
    /// thresholds (so snapshots are made and sent under faults too).
    pub fn new(raftfs: PathBuf, duration: Duration, seed: u64) -> Options {
        Options {
            raftfs,
            duration,
            seed,
            members: 5,
            workload: Workload::default(),
            dir: None,
            keep: false,
            settings: "snapshot_entries = 2000\nsnapshot_trailing_entries = 200\n".into(),
        }
    }
}

/// How long after healing the cluster may take to elect a leader, answer the final reads and
/// converge.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(90);

/// Runs the fault run and judges it. `Err` only when the run could not be carried out.
pub async fn run(options: Options) -> Result<Report, Error> {
    let (dir, tempdir) = match &options.dir {
        Some(dir) => {
            std::fs::create_dir_all(dir).map_err(|e| Error::io("create the run directory", e))?;
            (dir.clone(), None)
        }
        None => {
            let temp = tempfile::Builder::new()
                .prefix("raftfs-chaos-")
                .tempdir()
                .map_err(|e| Error::io("create a temporary directory", e))?;
            (temp.path().to_owned(), Some(temp))
        }
    };
    eprintln!(
        "[chaos] seed {} ({}s of faults, {} members, {} clients), run directory {}",
        options.seed,
        options.duration.as_secs(),
        options.members,
        options.workload.clients,
        dir.display()
    );
    let salt = u32::try_from(options.seed % 1000).unwrap_or(0);
    let mut ports = PortPicker::new(salt);
    let mut cluster = Cluster::start(
        &options.raftfs,
        &dir,
        options.members,
        &options.settings,
        &mut ports,
    )
    .await?;
    let skew_note = (!cluster.can_skew())
        .then_some("clock skew SKIPPED: libfaketime is not installed (apt-get install faketime)");
    if let Some(note) = skew_note {
        eprintln!("[chaos] {note}");
    }
    let leader = cluster.stable_leader(SETTLE_TIMEOUT).await;
    eprintln!("[chaos] cluster up, leader {leader:?}");

    let recorder = Recorder::new();
    let shared = Arc::new(Shared::default());
    let mut workers = Vec::new();
    for id in 0..options.workload.clients {
        workers.push(tokio::spawn(client::worker(
            id as u64 + 1,
            options.seed,
            cluster.client_addrs(),
            options.workload.clone(),
            recorder.clone(),
            shared.clone(),
        )));
    }

    let mut nemesis = Nemesis::new(options.seed, tokio::time::Instant::now());
    let progress = {
        let shared = shared.clone();
        tokio::spawn(async move {
            let mut every = tokio::time::interval(Duration::from_secs(30));
            every.tick().await;
            loop {
                every.tick().await;
                eprintln!(
                    "[chaos] {} operations sent",
                    shared.sent.load(Ordering::Relaxed)
                );
            }
        })
    };
    nemesis.run(&mut cluster, options.duration).await;
    nemesis.heal_all(&mut cluster).await;
    let faults_end = recorder.elapsed();
    eprintln!("[chaos] faults over, everything healed; stopping clients");
    shared.stop.store(true, Ordering::SeqCst);
    for worker in workers {
        let _ = worker.await;
    }
    progress.abort();

    // Final reads of every file ever written, through a fresh client, part of the history:
    // each must show the last acknowledged write (or a later unknown one, or expiry).
    let leader = cluster.stable_leader(SETTLE_TIMEOUT).await;
    let mut reader = client::Client::new(0, cluster.client_addrs(), 0, recorder.clone());
    let files = shared.files();
    let mut unread = Vec::new();
    for file in &files {
        if client::final_read(&mut reader, file, SETTLE_TIMEOUT)
            .await
            .is_none()
        {
            unread.push(file.clone());
        }
    }
    let convergence = report::converge(&cluster, SETTLE_TIMEOUT).await;
    nemesis.check_exits(&mut cluster);
    cluster.shutdown().await;

    let mut history = recorder.history();
    // The members' clocks read up to the largest offset used ahead or behind; a margin covers
    // the scheduling of a loaded machine between a stamp and the history's clock.
    let margin_ms = 250;
    let bound = ClockBound {
        units_per_ms: UNITS_PER_MS,
        ahead_ms: nemesis.skew_range.0 * 1000 + margin_ms,
        behind_ms: nemesis.skew_range.1 * 1000 + margin_ms,
    };
    history.set_clock_bound(bound);
    eprintln!(
        "[chaos] checking {} operations on {} files",
        history.len(),
        files.len()
    );
    let check_started = std::time::Instant::now();
    let checked = tokio::task::spawn_blocking({
        let history = history.clone();
        move || sim::linearizability::check_with_budget(&history, 2_000_000)
    })
    .await
    .map_err(|e| Error::Member(format!("the checker panicked: {e}")))?;
    let check_time = check_started.elapsed();

    let report = Report::new(report::Inputs {
        seed: options.seed,
        duration: options.duration,
        faults_end,
        members: options.members,
        clients: options.workload.clients,
        history: &history,
        bound,
        faults: &nemesis.faults,
        trouble: &nemesis.trouble,
        anomalies: recorder.anomalies(),
        unread,
        files: files.len(),
        leader_after_heal: leader,
        convergence,
        checked,
        check_time,
        strangers: cluster.links.strangers(),
        skew_note: skew_note.map(str::to_owned),
        dir: dir.clone(),
    });
    if report.verdict.passed() && !options.keep {
        drop(tempdir);
    } else {
        report.save(&dir, &history);
        if let Some(temp) = tempdir {
            // Kept for the post-mortem: the report names it.
            let _ = temp.keep();
        }
    }
    Ok(report)
}

/// A seed from the clock, for runs that were not given one (it is printed, so any run can be
/// replayed).
pub fn seed_from_clock() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

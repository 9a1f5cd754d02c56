//! `raftfs bench snapshots`: does log compaction behind snapshots keep a busy store's memory and
//! disk bounded, does a follower that missed everything catch up (by snapshot) to the same store,
//! and does a restart stay fast however long the store's history is?
//!
//! - Soak: a local cluster of `raftfs serve` processes with the default snapshot settings, one
//!   follower stopped throughout, many small writes; at checkpoints every running member's
//!   resident memory, data directory size, snapshot index and first log index are printed. Then
//!   the stopped follower starts and is timed until its applied index and store digest match
//!   the leader's.
//! - Restart: a single-node store is restarted after a short and after a long history and timed
//!   from process spawn until it serves and has applied its whole log.
//!
//! It measures and prints; nothing in `cargo test` runs it.

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{Context, bail};
use bytes::Bytes;
use clap::{Args, ValueEnum};
use fs::Reply;
use serde_json::Value;
use tokio::time::Instant;

use crate::local_cluster::{LocalCluster, member_log, member_ports, stop_all};
use client::{Client, ClientError, Connection};

/// Arguments of `raftfs bench snapshots`.
#[derive(Debug, Args)]
pub struct SnapshotsArgs {
    /// Which part to run: `soak` (cluster under writes, memory and disk at checkpoints, then a
    /// stopped follower's catch-up), `restart` (single-node restart time after a short and a
    /// long history) or `all`.
    #[arg(long, value_enum, default_value_t = Part::All)]
    pub part: Part,
    /// Soak: writes in all; the stopped follower is started after the last one.
    #[arg(long, default_value_t = 200_000)]
    pub writes: u64,
    /// Soak: write counts at which every running member is measured (comma-separated, each at
    /// most --writes; --writes itself is always measured).
    #[arg(long, value_delimiter = ',', default_value = "20000,200000")]
    pub checkpoints: Vec<u64>,
    /// Soak: cluster size (odd, at least 3; one follower is kept stopped).
    #[arg(long, default_value_t = 5)]
    pub nodes: u64,
    /// Client port of member 1 of the soak's cluster; member i uses base-port + i - 1 for
    /// clients, 1000 more for peers, 1000 less for status. The restart part's single node
    /// listens for clients on a port of the system's choosing and for status on the status
    /// port after the cluster's (base-port - 1000 + nodes).
    #[arg(long, default_value_t = 18180)]
    pub base_port: u16,
    /// Soak: seconds the restarted follower may take to catch up before the benchmark fails.
    #[arg(long, default_value_t = 300)]
    pub catch_up_timeout: u64,
    /// Restart: writes before the first restart measurement.
    #[arg(long, default_value_t = 10_000)]
    pub short_history: u64,
    /// Restart: writes in all before the second restart measurement.
    #[arg(long, default_value_t = 1_000_000)]
    pub history: u64,
    /// Restart: restarts timed per measurement (the median is reported).
    #[arg(long, default_value_t = 3)]
    pub restarts: usize,
    /// Distinct file names the writes cycle through.
    #[arg(long, default_value_t = 1000)]
    pub files: u64,
    /// File size in bytes.
    #[arg(long, default_value_t = 256)]
    pub size: usize,
    /// Client connections writing at once (each follows redirects to the leader).
    #[arg(long, default_value_t = 16)]
    pub connections: usize,
    /// Writes each connection keeps in flight (pipelined).
    #[arg(long, default_value_t = 8)]
    pub pipeline: usize,
    /// Directory for the data directories, cluster file and server logs; must be empty or not
    /// exist, and is kept afterwards [default: a new directory under the system temp dir,
    /// removed afterwards unless the benchmark failed].
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
}

/// The parts of the benchmark.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Part {
    /// Memory and disk of a cluster under writes, and a stopped follower's catch-up.
    Soak,
    /// Single-node restart time after a short and a long history.
    Restart,
    /// Both.
    All,
}

/// A bounded figure may grow at most this much from the first checkpoint to the last.
const GROWTH_BOUND: f64 = 3.0;
/// A restart after the long history may take at most this many times the short one's.
const RESTART_RATIO_BOUND: f64 = 2.0;
/// How long a server may take to say it is serving, or one status request to be answered.
const START_TIMEOUT: Duration = Duration::from_secs(120);
const STATUS_TIMEOUT: Duration = Duration::from_secs(10);
/// Pause between polls of `/status` while timing.
const POLL: Duration = Duration::from_millis(5);
/// Consecutive failed attempts of one writer before the benchmark gives up.
const WRITER_FAILURES_MAX: u32 = 50;
/// The line a server logs once it serves clients (it names the client address).
const READY_MARKER: &str = "raftfs serving";
const MIB: f64 = 1024.0 * 1024.0;

/// Runs the selected parts and prints their tables; fails if a check fails.
pub async fn run(args: SnapshotsArgs) -> anyhow::Result<()> {
    check_args(&args)?;
    let (root, keep) = match &args.data_dir {
        Some(dir) => {
            let empty = match std::fs::read_dir(dir) {
                Ok(mut entries) => entries.next().is_none(),
                Err(err) if err.kind() == std::io::ErrorKind::NotFound => true,
                Err(err) => {
                    return Err(err).with_context(|| format!("cannot read {}", dir.display()));
                }
            };
            anyhow::ensure!(
                empty,
                "--data-dir {} is not empty: the benchmark needs fresh data directories",
                dir.display()
            );
            (dir.clone(), true)
        }
        None => (
            std::env::temp_dir().join(format!("raftfs-bench-snapshots-{}", std::process::id())),
            false,
        ),
    };
    std::fs::create_dir_all(&root).with_context(|| format!("cannot create {}", root.display()))?;
    println!(
        "raftfs bench snapshots: data and server logs under {}",
        root.display()
    );
    let policy = replica::SnapshotPolicy::default();
    println!(
        "snapshot settings: the defaults (snapshot_entries {}, snapshot_bytes {}, \
         snapshot_trailing_entries {})",
        policy.entries, policy.bytes, policy.trailing_entries
    );
    let load = Load {
        files: args.files,
        size: args.size,
        connections: args.connections,
        pipeline: args.pipeline,
    };
    let result = async {
        let mut problems = Vec::new();
        if matches!(args.part, Part::Soak | Part::All) {
            problems.extend(soak(&args, &load, &root.join("soak")).await?);
        }
        if matches!(args.part, Part::Restart | Part::All) {
            problems.extend(restart(&args, &load, &root.join("restart")).await?);
        }
        anyhow::Ok(problems)
    }
    .await;
    let failed = !matches!(&result, Ok(problems) if problems.is_empty());
    if keep || failed {
        println!("\ndata and server logs kept in {}", root.display());
    } else {
        let _ = std::fs::remove_dir_all(&root);
    }
    let problems = result?;
    if problems.is_empty() {
        println!("\nall checks passed");
        return Ok(());
    }
    println!("\nPROBLEMS:");
    for problem in &problems {
        println!("  - {problem}");
    }
    bail!(
        "{} check(s) failed: {}",
        problems.len(),
        problems.join("; ")
    )
}

fn check_args(args: &SnapshotsArgs) -> anyhow::Result<()> {
    anyhow::ensure!(args.files > 0, "--files must be at least 1");
    anyhow::ensure!(args.connections > 0, "--connections must be at least 1");
    anyhow::ensure!(args.pipeline > 0, "--pipeline must be at least 1");
    anyhow::ensure!(
        args.size > 0 && args.size as u64 <= server::config::FILE_BYTES_MAX_DEFAULT,
        "--size must be between 1 and {}",
        server::config::FILE_BYTES_MAX_DEFAULT
    );
    if matches!(args.part, Part::Soak | Part::All) {
        anyhow::ensure!(
            args.nodes >= 3 && args.nodes % 2 == 1,
            "--nodes must be odd and at least 3 (one follower is kept stopped)"
        );
        anyhow::ensure!(args.writes > 0, "--writes must be at least 1");
        if let Some(c) = args
            .checkpoints
            .iter()
            .find(|&&c| c == 0 || c > args.writes)
        {
            bail!(
                "checkpoint {c} is not between 1 and --writes ({})",
                args.writes
            );
        }
    }
    if matches!(args.part, Part::Restart | Part::All) {
        anyhow::ensure!(args.restarts > 0, "--restarts must be at least 1");
        anyhow::ensure!(
            args.short_history > 0 && args.short_history < args.history,
            "--short-history must be at least 1 and less than --history"
        );
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Soak

/// One member's figures at a checkpoint.
struct MemberFigures {
    id: u64,
    role: String,
    rss: u64,
    dir_bytes: u64,
    snapshot_index: u64,
    first_index: u64,
    applied_index: u64,
    snapshots_made: u64,
}

/// Runs the soak part; returns the checks that failed.
async fn soak(args: &SnapshotsArgs, load: &Load, dir: &Path) -> anyhow::Result<Vec<String>> {
    let mut checkpoints = args.checkpoints.clone();
    checkpoints.push(args.writes);
    checkpoints.sort_unstable();
    checkpoints.dedup();
    println!(
        "\n== soak: {} members, one follower stopped throughout; {} writes of {} B over {} \
         files, {} connections x {} pipelined",
        args.nodes, args.writes, args.size, args.files, args.connections, args.pipeline
    );
    check_ports_free(args.base_port, args.nodes)?;
    let mut cluster = LocalCluster::create(dir, args.nodes, args.base_port)?;
    for id in 1..=args.nodes {
        cluster.start(id, member_log(dir, id)?)?;
    }
    let leader = cluster.settled_leader().await?;
    let stopped = (1..=args.nodes)
        .rev()
        .find(|&id| id != leader)
        .context("no follower to stop")?;
    cluster.stop(stopped)?;
    println!("leader: member {leader}; stopped follower: member {stopped}");

    let mut problems = Vec::new();
    let mut maxima: Vec<(u64, u64, u64)> = Vec::new();
    let mut written = 0;
    for &checkpoint in &checkpoints {
        let done = write_range(&cluster.clients, written, checkpoint, load).await?;
        println!();
        done.print(written, checkpoint);
        written = checkpoint;
        let leader = cluster.settled_leader().await?;
        let leader_applied = status(cluster.http(leader)?).await?["applied_index"]
            .as_u64()
            .unwrap_or(0);
        // Let the followers apply what the leader has, so every row describes the same point.
        for id in cluster.running() {
            wait_applied(cluster.http(id)?, leader_applied).await?;
        }
        let mut rows = Vec::new();
        for id in cluster.running() {
            rows.push(member_figures(&cluster, id).await?);
        }
        println!("checkpoint {checkpoint} writes:");
        print_members(&rows);
        let max_rss = rows.iter().map(|r| r.rss).max().unwrap_or(0);
        let max_dir = rows.iter().map(|r| r.dir_bytes).max().unwrap_or(0);
        println!(
            "  max RSS {:.1} MiB, max data dir {} bytes ({:.1} MiB)",
            max_rss as f64 / MIB,
            max_dir,
            max_dir as f64 / MIB
        );
        maxima.push((checkpoint, max_rss, max_dir));
    }
    if let (Some(first), Some(last)) = (maxima.first(), maxima.last())
        && last.0 > first.0
    {
        let rss_growth = last.1 as f64 / first.1.max(1) as f64;
        let dir_growth = last.2 as f64 / first.2.max(1) as f64;
        println!(
            "\nbound: from {} to {} writes ({:.0}x the writes) neither maximum may grow more \
             than {GROWTH_BOUND}x (an uncompacted log grows with the writes)",
            first.0,
            last.0,
            last.0 as f64 / first.0 as f64
        );
        println!(
            "  max RSS {:.1} -> {:.1} MiB ({rss_growth:.2}x), max data dir {:.1} -> {:.1} MiB \
             ({dir_growth:.2}x): {}",
            first.1 as f64 / MIB,
            last.1 as f64 / MIB,
            first.2 as f64 / MIB,
            last.2 as f64 / MIB,
            if rss_growth <= GROWTH_BOUND && dir_growth <= GROWTH_BOUND {
                "within the bound"
            } else {
                "OUTSIDE the bound"
            }
        );
        for (what, growth, from, to) in [
            ("max RSS", rss_growth, first.1, last.1),
            ("max data dir", dir_growth, first.2, last.2),
        ] {
            if growth > GROWTH_BOUND {
                problems.push(format!(
                    "{what} grew {growth:.2}x from {} to {} writes ({:.1} -> {:.1} MiB)",
                    first.0,
                    last.0,
                    from as f64 / MIB,
                    to as f64 / MIB
                ));
            }
        }
    }

    problems.extend(catch_up(args, &mut cluster, dir, stopped, maxima.last()).await?);
    cluster.stop_all();
    Ok(problems)
}

/// Starts the stopped follower and times it until its applied index and store digest equal
/// the leader's; returns the checks that failed.
async fn catch_up(
    args: &SnapshotsArgs,
    cluster: &mut LocalCluster,
    dir: &Path,
    id: u64,
    bound: Option<&(u64, u64, u64)>,
) -> anyhow::Result<Vec<String>> {
    let leader = cluster.settled_leader().await?;
    let leader_http = cluster.http(leader)?.to_owned();
    let http = cluster.http(id)?.to_owned();
    println!("\ncatch-up: starting member {id} (stopped since before the first write)");
    let started = Instant::now();
    cluster.start(id, member_log(dir, id)?)?;
    let deadline = started + Duration::from_secs(args.catch_up_timeout);
    let mut mismatch_seen = None;
    let (took, target) = loop {
        let now = Instant::now();
        if now > deadline {
            let theirs = try_status(&http).await;
            let applied = theirs.as_ref().and_then(|s| s["applied_index"].as_u64());
            bail!(
                "member {id} did not catch up within {} s (its applied_index {applied:?}); see {}",
                args.catch_up_timeout,
                dir.join(format!("node-{id}.log")).display()
            );
        }
        let (Some(mine), Some(lead)) = (try_status(&http).await, try_status(&leader_http).await)
        else {
            tokio::time::sleep(POLL).await;
            continue;
        };
        let applied = mine["applied_index"].as_u64();
        let lead_applied = lead["applied_index"].as_u64();
        if applied.is_some() && applied == lead_applied {
            let digest = mine["store_digest"].as_str();
            let lead_digest = lead["store_digest"].as_str();
            if digest.is_some() && digest == lead_digest {
                break (now - started, lead);
            }
            // Same index, different store: look once more before calling it a divergence.
            if mismatch_seen == applied {
                bail!(
                    "member {id} caught up to applied_index {} but its store digest {} differs \
                     from the leader's {}: the replicas diverged",
                    applied.unwrap_or(0),
                    digest.unwrap_or("(none)"),
                    lead_digest.unwrap_or("(none)")
                );
            }
            mismatch_seen = applied;
            tokio::time::sleep(Duration::from_millis(500)).await;
            continue;
        }
        tokio::time::sleep(POLL).await;
    };
    let figures = member_figures(cluster, id).await?;
    let installed = status(&http).await?["snapshots_installed"]
        .as_u64()
        .unwrap_or(0);
    println!(
        "  member {id} caught up in {:.0} ms: applied_index {} and store_digest {} equal the \
         leader's (member {leader})",
        took.as_secs_f64() * 1e3,
        target["applied_index"].as_u64().unwrap_or(0),
        target["store_digest"].as_str().unwrap_or("?")
    );
    println!(
        "  snapshots_installed {installed}, RSS {:.1} MiB, data dir {} bytes ({:.1} MiB), \
         snapshot_index {}, first_index {}",
        figures.rss as f64 / MIB,
        figures.dir_bytes,
        figures.dir_bytes as f64 / MIB,
        figures.snapshot_index,
        figures.first_index
    );
    let mut problems = Vec::new();
    if installed == 0 {
        println!("  note: it caught up from the log alone (no snapshot installed)");
    }
    if let Some(&(checkpoint, max_rss, max_dir)) = bound {
        println!(
            "  against the running members at {checkpoint} writes: max RSS {:.1} MiB, max data \
             dir {:.1} MiB",
            max_rss as f64 / MIB,
            max_dir as f64 / MIB
        );
        if figures.dir_bytes as f64 > GROWTH_BOUND * max_dir as f64 {
            problems.push(format!(
                "the caught-up member's data dir ({:.1} MiB) is over {GROWTH_BOUND}x the \
                 running members' maximum ({:.1} MiB)",
                figures.dir_bytes as f64 / MIB,
                max_dir as f64 / MIB
            ));
        }
    }
    Ok(problems)
}

async fn member_figures(cluster: &LocalCluster, id: u64) -> anyhow::Result<MemberFigures> {
    let pid = cluster
        .pid(id)
        .with_context(|| format!("member {id} is not running"))?;
    let s = status(cluster.http(id)?).await?;
    let field = |name: &str| s[name].as_u64().unwrap_or(0);
    Ok(MemberFigures {
        id,
        role: s["role"].as_str().unwrap_or("?").to_owned(),
        rss: crate::bench::proc_status_kib(pid, "VmRSS")? * 1024,
        dir_bytes: dir_bytes(&cluster.data_dir(id))?,
        snapshot_index: field("snapshot_index"),
        first_index: field("first_index"),
        applied_index: field("applied_index"),
        snapshots_made: field("snapshots_made"),
    })
}

fn print_members(rows: &[MemberFigures]) {
    println!(
        "  {:>6} {:<9} {:>8} {:>14} {:>9} {:>14} {:>11} {:>13} {:>14}",
        "member",
        "role",
        "RSS MiB",
        "data dir bytes",
        "dir MiB",
        "snapshot_index",
        "first_index",
        "applied_index",
        "snapshots_made"
    );
    for r in rows {
        println!(
            "  {:>6} {:<9} {:>8.1} {:>14} {:>9.1} {:>14} {:>11} {:>13} {:>14}",
            r.id,
            r.role,
            r.rss as f64 / MIB,
            r.dir_bytes,
            r.dir_bytes as f64 / MIB,
            r.snapshot_index,
            r.first_index,
            r.applied_index,
            r.snapshots_made
        );
    }
}

/// Fails early, and clearly, if a port the cluster needs is taken.
fn check_ports_free(base_port: u16, nodes: u64) -> anyhow::Result<()> {
    for i in 1..=nodes {
        let (client, peer, http) = member_ports(base_port, i)?;
        for port in [client, peer, http] {
            std::net::TcpListener::bind(("127.0.0.1", port))
                .with_context(|| format!("port {port} is taken: choose another --base-port"))?;
        }
    }
    Ok(())
}

/// Waits until the member at `http` has applied `index`.
async fn wait_applied(http: &str, index: u64) -> anyhow::Result<()> {
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        if let Some(s) = try_status(http).await
            && s["applied_index"].as_u64().unwrap_or(0) >= index
        {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("the member at {http} did not apply index {index} in {START_TIMEOUT:?}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

// ---------------------------------------------------------------------------------------------
// Restart

/// One restart measurement: the figures of the data directory restarted, and the times.
struct RestartFigures {
    history: u64,
    dir_bytes: u64,
    snapshot_index: u64,
    last_index: u64,
    /// Spawn until the server logged that it serves, per restart.
    serving: Vec<Duration>,
    /// Spawn until it had applied its whole log and answered a read, per restart.
    ready: Vec<Duration>,
}

/// Runs the restart part; returns the checks that failed.
async fn restart(args: &SnapshotsArgs, load: &Load, dir: &Path) -> anyhow::Result<Vec<String>> {
    println!(
        "\n== restart: a single-node store, writes of {} B over {} files, restarted {} times \
         after {} and after {} writes",
        args.size, args.files, args.restarts, args.short_history, args.history
    );
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let (_, _, http_port) = member_ports(args.base_port, args.nodes + 1)?;
    let single = Single {
        exe: std::env::current_exe().context("cannot find the raftfs executable")?,
        data_dir: dir.join("data"),
        http: format!("127.0.0.1:{http_port}"),
        log: dir.join("server.log"),
    };
    std::net::TcpListener::bind(&single.http)
        .with_context(|| format!("{} is taken: choose another --base-port", single.http))?;

    let mut figures = Vec::new();
    let mut written = 0;
    for history in [args.short_history, args.history] {
        let (mut child, client) = single.spawn().await?;
        let done = write_range(std::slice::from_ref(&client), written, history, load).await;
        stop_all(std::slice::from_mut(&mut child));
        done?.print(written, history);
        println!("  stopped with SIGTERM");
        written = history;
        figures.push(single.measure(history, args.restarts).await?);
    }

    println!(
        "\n  {:>9} {:>14} {:>9} {:>14} {:>10} {:>12} {:>20} {:>22}",
        "history",
        "data dir bytes",
        "dir MiB",
        "snapshot_index",
        "last_index",
        "log replayed",
        "serving ms (median)",
        "applied+read ms: runs"
    );
    for f in &figures {
        let runs = f.ready.iter().fold(String::new(), |mut s, d| {
            let _ = write!(s, " {:.0}", d.as_secs_f64() * 1e3);
            s
        });
        println!(
            "  {:>9} {:>14} {:>9.1} {:>14} {:>10} {:>12} {:>20.0} {:>22}",
            f.history,
            f.dir_bytes,
            f.dir_bytes as f64 / MIB,
            f.snapshot_index,
            f.last_index,
            f.last_index.saturating_sub(f.snapshot_index),
            median(&f.serving).as_secs_f64() * 1e3,
            runs
        );
    }
    let mut problems = Vec::new();
    if let [short, long] = &figures[..] {
        let (a, b) = (median(&short.ready), median(&long.ready));
        let ratio = b.as_secs_f64() / a.as_secs_f64().max(1e-9);
        println!(
            "  restart to applied+read, median of {}: {:.0} ms after {} writes, {:.0} ms after {} \
             writes: ratio {ratio:.2} (bound {RESTART_RATIO_BOUND}x)",
            args.restarts,
            a.as_secs_f64() * 1e3,
            short.history,
            b.as_secs_f64() * 1e3,
            long.history
        );
        if ratio > RESTART_RATIO_BOUND {
            problems.push(format!(
                "restart after {} writes took {ratio:.2}x the one after {} ({:.0} ms vs {:.0} ms)",
                long.history,
                short.history,
                b.as_secs_f64() * 1e3,
                a.as_secs_f64() * 1e3
            ));
        }
    }
    Ok(problems)
}

/// How to start the single-node store.
struct Single {
    exe: PathBuf,
    data_dir: PathBuf,
    http: String,
    log: PathBuf,
}

impl Single {
    /// Starts the store and waits until it logs that it serves; returns it and its client
    /// address. Its log is appended to `self.log`.
    async fn spawn(&self) -> anyhow::Result<(Child, String)> {
        let mut child = Command::new(&self.exe)
            .arg("serve")
            .arg("--listen")
            .arg("127.0.0.1:0")
            .arg("--data-dir")
            .arg(&self.data_dir)
            .arg("--http")
            .arg(&self.http)
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .context("cannot start the single-node store")?;
        let ready = match child.stderr.take() {
            Some(stderr) => self.follow_log(stderr),
            None => {
                stop_all(std::slice::from_mut(&mut child));
                bail!("the server's log is not piped");
            }
        };
        match tokio::time::timeout(START_TIMEOUT, ready).await {
            Ok(Ok(client)) => Ok((child, client)),
            Ok(Err(_)) => {
                stop_all(std::slice::from_mut(&mut child));
                bail!(
                    "the single-node store exited before serving; see {}",
                    self.log.display()
                )
            }
            Err(_) => {
                stop_all(std::slice::from_mut(&mut child));
                bail!(
                    "the single-node store did not serve within {START_TIMEOUT:?}; see {}",
                    self.log.display()
                )
            }
        }
    }

    /// Copies the server's log into the log file on a thread; the receiver gets the client
    /// address from its ready line.
    fn follow_log(
        &self,
        stderr: std::process::ChildStderr,
    ) -> tokio::sync::oneshot::Receiver<String> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .ok();
        std::thread::spawn(move || {
            let mut tx = Some(tx);
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if let Some(file) = file.as_mut() {
                    let _ = writeln!(file, "{line}");
                }
                if line.contains(READY_MARKER)
                    && let Some(addr) = line
                        .split_whitespace()
                        .find_map(|field| field.strip_prefix("client="))
                    && let Some(tx) = tx.take()
                {
                    let _ = tx.send(addr.to_owned());
                }
            }
        });
        rx
    }

    /// Restarts the stopped store `restarts` times, timing each, and stops it again.
    async fn measure(&self, history: u64, restarts: usize) -> anyhow::Result<RestartFigures> {
        let mut figures = RestartFigures {
            history,
            dir_bytes: dir_bytes(&self.data_dir)?,
            snapshot_index: 0,
            last_index: 0,
            serving: Vec::new(),
            ready: Vec::new(),
        };
        let probe = fs::Command::Read {
            name: file_name(0)?,
        };
        for _ in 0..restarts {
            let started = Instant::now();
            let (mut child, client) = self.spawn().await?;
            let serving = started.elapsed();
            let result = self.until_applied(&client, &probe).await;
            let ready = started.elapsed();
            stop_all(std::slice::from_mut(&mut child));
            let s = result?;
            figures.snapshot_index = s["snapshot_index"].as_u64().unwrap_or(0);
            figures.last_index = s["last_index"].as_u64().unwrap_or(0);
            figures.serving.push(serving);
            figures.ready.push(ready);
        }
        Ok(figures)
    }

    /// Polls `/status` until the applied index reaches the last index, then reads a file;
    /// returns that status.
    async fn until_applied(&self, client: &str, probe: &fs::Command) -> anyhow::Result<Value> {
        let deadline = Instant::now() + START_TIMEOUT;
        let s = loop {
            if let Some(s) = try_status(&self.http).await {
                let applied = s["applied_index"].as_u64();
                if applied.is_some() && applied == s["last_index"].as_u64() {
                    break s;
                }
            }
            if Instant::now() > deadline {
                bail!("the restarted store did not apply its log within {START_TIMEOUT:?}");
            }
            tokio::time::sleep(POLL).await;
        };
        let mut conn = Connection::connect(client).await?;
        match conn.call(probe).await? {
            Reply::Contents { .. } => Ok(s),
            reply => bail!("a read after the restart answered {reply:?}"),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Load, status and measurements

/// The shape of the write load.
#[derive(Debug, Clone)]
struct Load {
    files: u64,
    size: usize,
    connections: usize,
    pipeline: usize,
}

/// Writes acknowledged per stretch whose rate is reported on its own, so a rate that falls as
/// the history grows shows.
const STRETCH: u64 = 100_000;

/// How a range of writes went.
struct Written {
    /// All of them.
    took: Duration,
    /// Writes/s over each whole stretch of [`STRETCH`] writes, in order.
    stretch_rates: Vec<f64>,
}

impl Written {
    /// Prints the range's rate, and each stretch's when there are several.
    fn print(&self, from: u64, to: u64) {
        println!(
            "wrote {from} .. {to} in {:.1} s ({:.0} writes/s)",
            self.took.as_secs_f64(),
            (to - from) as f64 / self.took.as_secs_f64().max(1e-9)
        );
        if self.stretch_rates.len() > 1 {
            let rates = self.stretch_rates.iter().fold(String::new(), |mut s, r| {
                let _ = write!(s, " {r:.0}");
                s
            });
            println!("  writes/s per {STRETCH} writes:{rates}");
        }
    }
}

/// Makes writes number `from .. to` (write `n` goes to file `n % files`) over pipelined
/// connections to the leader, each acknowledged once.
async fn write_range(addrs: &[String], from: u64, to: u64, load: &Load) -> anyhow::Result<Written> {
    let next = Arc::new(AtomicU64::new(from));
    let acked = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..load.connections {
        tasks.push(tokio::spawn(writer(
            addrs.to_vec(),
            next.clone(),
            acked.clone(),
            to,
            load.clone(),
        )));
    }
    let total = to.saturating_sub(from);
    let monitor = tokio::spawn(async move {
        let mut marks = vec![started];
        let mut k = 1;
        while k * STRETCH <= total {
            tokio::time::sleep(Duration::from_millis(10)).await;
            while k * STRETCH <= total && acked.load(Ordering::Relaxed) >= k * STRETCH {
                marks.push(Instant::now());
                k += 1;
            }
        }
        marks
    });
    let mut result = Ok(());
    for task in tasks {
        let outcome = task.await.context("a writer panicked").and_then(|r| r);
        if result.is_ok() {
            result = outcome;
        }
    }
    let took = started.elapsed();
    if let Err(err) = result {
        monitor.abort();
        return Err(err);
    }
    let marks = monitor.await.context("the progress monitor panicked")?;
    let stretch_rates = marks
        .windows(2)
        .map(|w| STRETCH as f64 / (w[1] - w[0]).as_secs_f64().max(1e-9))
        .collect();
    Ok(Written {
        took,
        stretch_rates,
    })
}

/// One connection's writes: numbers taken from `next` until `to`, up to `load.pipeline` in
/// flight. A write redirected or left without an answer (leader change, lost connection) is
/// sent again through [`Client`], which finds the leader; writing a file twice is harmless here.
async fn writer(
    addrs: Vec<String>,
    next: Arc<AtomicU64>,
    acked: Arc<AtomicU64>,
    to: u64,
    load: Load,
) -> anyhow::Result<()> {
    let take = || {
        let n = next.fetch_add(1, Ordering::Relaxed);
        (n < to).then_some(n)
    };
    let mut client = Client::new(addrs);
    let mut conn: Option<Connection> = None;
    let mut window: VecDeque<u64> = VecDeque::new();
    let mut resend: Vec<u64> = Vec::new();
    let mut failures = 0;
    loop {
        if failures > WRITER_FAILURES_MAX {
            bail!("a writer failed {WRITER_FAILURES_MAX} times in a row");
        }
        let Some(c) = conn.as_mut() else {
            // One write through the cluster client finds the leader; the rest are pipelined on
            // a connection of our own to it.
            let Some(n) = resend.pop().or_else(take) else {
                return Ok(());
            };
            match client.call(&write_command(n, &load)?).await {
                Ok(Reply::Written { .. }) => {
                    acked.fetch_add(1, Ordering::Relaxed);
                }
                Ok(reply) => bail!("write {n} answered {reply:?}"),
                Err(ClientError::Unknown(_)) => {
                    failures += 1;
                    resend.push(n);
                    continue;
                }
                Err(err) => return Err(err).context("the store stopped taking writes"),
            }
            if let Some(addr) = client.connected_to() {
                conn = Connection::connect(addr).await.ok();
            }
            continue;
        };
        while window.len() < load.pipeline {
            let Some(n) = resend.pop().or_else(take) else {
                break;
            };
            c.queue(&write_command(n, &load)?);
            window.push_back(n);
        }
        let Some(&n) = window.front() else {
            return Ok(());
        };
        match c.recv().await {
            Ok(Reply::Written { .. }) => {
                window.pop_front();
                acked.fetch_add(1, Ordering::Relaxed);
                failures = 0;
            }
            Ok(Reply::Redirect(_) | Reply::Internal) | Err(_) => {
                failures += 1;
                resend.extend(window.drain(..));
                conn = None;
            }
            Ok(reply) => bail!("write {n} answered {reply:?}"),
        }
    }
}

/// Write number `n`: file `n % files`, content `n` padded to `size` bytes.
fn write_command(n: u64, load: &Load) -> anyhow::Result<fs::Command> {
    let mut content = format!("{n:020} ").into_bytes();
    content.resize(load.size, b'x');
    Ok(fs::Command::Write {
        name: file_name(n % load.files)?,
        content: Bytes::from(content),
        exptime_s: 0,
    })
}

fn file_name(i: u64) -> anyhow::Result<fs::Name> {
    Ok(fs::Name::new(Bytes::from(format!("snap-{i}")))?)
}

/// A member's `/status`, or an error naming it.
async fn status(http: &str) -> anyhow::Result<Value> {
    try_status(http)
        .await
        .with_context(|| format!("no /status answer from {http}"))
}

/// A member's `/status`, if it answers in time.
async fn try_status(http: &str) -> Option<Value> {
    tokio::time::timeout(STATUS_TIMEOUT, crate::status::fetch(http))
        .await
        .ok()
        .flatten()
}

/// The sum of the lengths of every file under `dir` (files that vanish meanwhile count 0).
fn dir_bytes(dir: &Path) -> anyhow::Result<u64> {
    let mut total = 0;
    let mut pending = vec![dir.to_owned()];
    while let Some(dir) = pending.pop() {
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => continue,
            Err(err) => return Err(err).with_context(|| format!("cannot read {}", dir.display())),
        };
        for entry in entries {
            let Ok(entry) = entry else { continue };
            let Ok(meta) = entry.path().symlink_metadata() else {
                continue;
            };
            if meta.is_dir() {
                pending.push(entry.path());
            } else if meta.is_file() {
                total += meta.len();
            }
        }
    }
    Ok(total)
}

/// The median of some durations (the upper one of an even count).
fn median(times: &[Duration]) -> Duration {
    let mut sorted = times.to_vec();
    sorted.sort();
    sorted.get(sorted.len() / 2).copied().unwrap_or_default()
}

//! `raftfs bench`: load against a running store (writes/s and latency at several connection
//! counts) and the disk's own fsync rate, so the two can be compared in one run; leader
//! failover ([`failover`]), linearizable reads ([`read`]) and snapshots ([`snapshot`]).

#[cfg(feature = "compare")]
pub mod compare;
pub mod failover;
pub mod load;
pub mod read;
pub mod snapshot;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::{Args, Subcommand};
use hdrhistogram::Histogram;

use client::Client;

/// Arguments of `raftfs bench`.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// What to measure.
    #[command(subcommand)]
    pub what: BenchKind,
}

/// The benchmarks.
#[derive(Debug, Subcommand)]
pub enum BenchKind {
    /// Load a running store with writes (follows redirects to the leader).
    Write(load::LoadArgs),
    /// Load a running store with linearizable reads of files written before the run.
    Read(load::LoadArgs),
    /// Load a running store with compare-and-swaps against the version last seen.
    Cas(load::LoadArgs),
    /// Load a running store with deletes (each after an unmeasured write of the file).
    Delete(load::LoadArgs),
    /// Load a running store with a mix of operations (`--mix read=90,write=10`).
    Mix(load::LoadArgs),
    /// The disk's rate of small write+fdatasync pairs, for comparison with write throughput.
    Fsync(FsyncArgs),
    /// Leader failover time: start a local cluster, SIGKILL its leader repeatedly under load,
    /// and time each kill until a write is acknowledged again, counting each failover's
    /// elections.
    Failover(crate::bench::failover::FailoverArgs),
    /// Snapshots and log compaction: memory and disk of a local cluster under many writes, a
    /// stopped follower's catch-up, and single-node restart time after a short and a long
    /// history.
    Snapshots(crate::bench::snapshot::SnapshotsArgs),
    /// Linearizable reads/s of a local cluster with ReadIndex, with lease reads, and with
    /// follower reads, one after the other in one run.
    #[command(alias = "reads")]
    ReadModes(crate::bench::read::ReadsArgs),
    /// etcd, ZooKeeper and raftfs under the same load, each as a local 5-member cluster, one
    /// after the other; writes BENCHMARKS.md.
    #[cfg(feature = "compare")]
    Compare(crate::bench::compare::CompareArgs),
}

/// Arguments of `raftfs bench fsync`.
#[derive(Debug, Args)]
pub struct FsyncArgs {
    /// Directory to write the test file in (the data directory's disk is the one that matters).
    #[arg(long, default_value = ".")]
    pub dir: PathBuf,
    /// Seconds to run.
    #[arg(long, default_value_t = 3)]
    pub seconds: u64,
}

/// Runs a benchmark and prints its results.
pub fn run(args: BenchArgs) -> anyhow::Result<()> {
    let runtime = || tokio::runtime::Runtime::new().context("cannot start the runtime");
    let load = |workload, args| -> anyhow::Result<()> {
        runtime()?.block_on(load::run(workload, &args))?;
        Ok(())
    };
    match args.what {
        BenchKind::Write(args) => load(load::Workload::Write, args),
        BenchKind::Read(args) => load(load::Workload::Read, args),
        BenchKind::Cas(args) => load(load::Workload::Cas, args),
        BenchKind::Delete(args) => load(load::Workload::Delete, args),
        BenchKind::Mix(args) => load(load::Workload::Mix, args),
        BenchKind::Fsync(args) => fsync_bench(args),
        BenchKind::Failover(args) => runtime()?.block_on(crate::bench::failover::run(args)),
        BenchKind::Snapshots(args) => runtime()?.block_on(crate::bench::snapshot::run(args)),
        BenchKind::ReadModes(args) => runtime()?.block_on(crate::bench::read::run(args)),
        #[cfg(feature = "compare")]
        BenchKind::Compare(args) => runtime()?.block_on(crate::bench::compare::run(args)),
    }
}

/// Runs one task per client for `seconds`, each sending `command(client, n)` for n = 0, 1, ...
/// one at a time and checking every reply with `ok`. Returns every latency (µs) and how many
/// seconds the clients ran.
pub(crate) async fn closed_loop(
    clients: Vec<Client>,
    seconds: u64,
    command: impl Fn(usize, usize) -> anyhow::Result<fs::Command> + Clone + Send + 'static,
    ok: impl Fn(&fs::Reply) -> bool + Copy + Send + 'static,
) -> anyhow::Result<(Histogram<u64>, f64)> {
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for (c, mut client) in clients.into_iter().enumerate() {
        let stop = stop.clone();
        let command = command.clone();
        tasks.push(tokio::spawn(async move {
            let mut latencies = Histogram::<u64>::new(3)?;
            let mut n = 0usize;
            while !stop.load(Ordering::Relaxed) {
                let request = command(c, n)?;
                let started = Instant::now();
                let reply = client.call(&request).await?;
                anyhow::ensure!(ok(&reply), "unexpected reply {reply:?} to {request:?}");
                latencies.record(started.elapsed().as_micros() as u64)?;
                n += 1;
            }
            anyhow::Ok(latencies)
        }));
    }
    let started = Instant::now();
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    stop.store(true, Ordering::Relaxed);
    let mut all = Histogram::<u64>::new(3)?;
    for task in tasks {
        all.add(task.await.context("bench client panicked")??)?;
    }
    Ok((all, started.elapsed().as_secs_f64()))
}

/// A figure of process `pid`'s `/proc/PID/status` given in KiB, such as `VmRSS` (resident
/// memory) or `VmHWM` (its peak).
pub fn proc_status_kib(pid: u32, field: &str) -> anyhow::Result<u64> {
    let path = format!("/proc/{pid}/status");
    let text = std::fs::read_to_string(&path).with_context(|| format!("cannot read {path}"))?;
    text.lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|rest| rest.trim().strip_suffix("kB"))
        .and_then(|n| n.trim().parse::<u64>().ok())
        .with_context(|| format!("no {field} in {path}"))
}

fn fsync_bench(args: FsyncArgs) -> anyhow::Result<()> {
    let (count, rate) = fsync_rate(&args.dir, Duration::from_secs(args.seconds))?;
    println!(
        "fsync: {count} write+fdatasync of 256 bytes in {}s: {rate:.0}/s",
        args.seconds
    );
    Ok(())
}

/// Appends 256 bytes and calls fdatasync in a loop for `time` in a file in `dir` (removed
/// afterwards); returns how many pairs it did and how many per second.
pub fn fsync_rate(dir: &std::path::Path, time: Duration) -> anyhow::Result<(u64, f64)> {
    use std::io::Write;
    let path = dir.join(".raftfs-fsync-bench");
    let mut file = std::fs::File::create(&path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    let block = [b'x'; 256];
    let deadline = Instant::now() + time;
    let started = Instant::now();
    let mut count = 0u64;
    while Instant::now() < deadline {
        file.write_all(&block)?;
        file.sync_data()?;
        count += 1;
    }
    let rate = count as f64 / started.elapsed().as_secs_f64();
    drop(file);
    let _ = std::fs::remove_file(&path);
    Ok((count, rate))
}

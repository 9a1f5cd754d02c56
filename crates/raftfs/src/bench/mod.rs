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
use bytes::Bytes;
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
    /// Writes/s of a running store (follows redirects to the leader).
    Write(WriteArgs),
    /// The disk's rate of small write+fdatasync pairs, for comparison with write throughput.
    Fsync(FsyncArgs),
    /// Leader failover time: start a local cluster, SIGKILL its leader repeatedly under load,
    /// and time each kill until a write is acknowledged again.
    Failover(crate::bench::failover::FailoverArgs),
    /// Snapshots and log compaction: memory and disk of a local cluster under many writes, a
    /// stopped follower's catch-up, and single-node restart time after a short and a long
    /// history.
    Snapshots(crate::bench::snapshot::SnapshotsArgs),
    /// Linearizable reads/s of a local cluster with ReadIndex, with lease reads, and with
    /// follower reads, one after the other in one run.
    Reads(crate::bench::read::ReadsArgs),
    /// etcd, ZooKeeper and raftfs under the same load, each as a local 5-member cluster, one
    /// after the other; writes BENCHMARKS.md.
    #[cfg(feature = "compare")]
    Compare(crate::bench::compare::CompareArgs),
}

/// Arguments of `raftfs bench write`.
#[derive(Debug, Args)]
pub struct WriteArgs {
    /// Client addresses of the store's members (any one is enough; comma-separated).
    #[arg(long, value_delimiter = ',', default_value = "127.0.0.1:8080")]
    pub addrs: Vec<String>,
    /// Connection counts to measure, one run each (comma-separated).
    #[arg(long, value_delimiter = ',', default_value = "1,16,64")]
    pub connections: Vec<usize>,
    /// Seconds per run.
    #[arg(long, default_value_t = 5)]
    pub seconds: u64,
    /// File size in bytes.
    #[arg(long, default_value_t = 256)]
    pub size: usize,
    /// Distinct file names per connection (writes cycle through them).
    #[arg(long, default_value_t = 100)]
    pub files: usize,
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
    match args.what {
        BenchKind::Write(args) => {
            let runtime = tokio::runtime::Runtime::new().context("cannot start the runtime")?;
            runtime.block_on(write_bench(args))
        }
        BenchKind::Fsync(args) => fsync_bench(args),
        BenchKind::Failover(args) => {
            let runtime = tokio::runtime::Runtime::new().context("cannot start the runtime")?;
            runtime.block_on(crate::bench::failover::run(args))
        }
        BenchKind::Snapshots(args) => {
            let runtime = tokio::runtime::Runtime::new().context("cannot start the runtime")?;
            runtime.block_on(crate::bench::snapshot::run(args))
        }
        BenchKind::Reads(args) => {
            let runtime = tokio::runtime::Runtime::new().context("cannot start the runtime")?;
            runtime.block_on(crate::bench::read::run(args))
        }
        #[cfg(feature = "compare")]
        BenchKind::Compare(args) => {
            let runtime = tokio::runtime::Runtime::new().context("cannot start the runtime")?;
            runtime.block_on(crate::bench::compare::run(args))
        }
    }
}

/// One run's figures.
#[derive(Debug)]
pub struct WriteFigures {
    /// Connections used.
    pub connections: usize,
    /// Acknowledged writes.
    pub writes: u64,
    /// Writes per second.
    pub per_second: f64,
    /// Latency percentiles in microseconds: p50, p99, max.
    pub latency_us: (u64, u64, u64),
}

async fn write_bench(args: WriteArgs) -> anyhow::Result<()> {
    println!(
        "{:>11} {:>10} {:>10} {:>10} {:>10} {:>10}",
        "connections", "writes", "writes/s", "p50 us", "p99 us", "max us"
    );
    for &connections in &args.connections {
        let f = measure_writes(&args, connections).await?;
        println!(
            "{:>11} {:>10} {:>10.0} {:>10} {:>10} {:>10}",
            f.connections, f.writes, f.per_second, f.latency_us.0, f.latency_us.1, f.latency_us.2
        );
    }
    Ok(())
}

/// Runs `connections` clients, each writing `size`-byte files in a loop for the given time.
pub async fn measure_writes(args: &WriteArgs, connections: usize) -> anyhow::Result<WriteFigures> {
    let content = Bytes::from(vec![b'x'; args.size]);
    let files = args.files.max(1);
    let clients = (0..connections)
        .map(|_| Client::new(args.addrs.clone()))
        .collect();
    let write = move |c: usize, n: usize| {
        Ok(fs::Command::Write {
            name: fs::Name::new(Bytes::from(format!("bench-{c}-{}", n % files)))?,
            content: content.clone(),
            exptime_s: 0,
        })
    };
    let written = |reply: &fs::Reply| matches!(reply, fs::Reply::Written { .. });
    let (all, elapsed) = closed_loop(clients, args.seconds, write, written).await?;
    Ok(WriteFigures {
        connections,
        writes: all.len(),
        per_second: all.len() as f64 / elapsed,
        latency_us: (
            all.value_at_quantile(0.5),
            all.value_at_quantile(0.99),
            all.max(),
        ),
    })
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

//! The load generator behind `raftfs bench write|read|cas|delete|mix`: connections with
//! pipelined operations, closed loop or open loop at a fixed rate, warm-up, HDR latency, errors
//! by kind, a progress bar, JSON and an SVG plot. The same generator drives etcd and ZooKeeper
//! (feature `compare`), so every system gets the same load from the same code.

pub mod report;

use std::collections::BTreeMap;

use clap::{Args, ValueEnum};

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
    #[arg(long, alias = "addrs", value_delimiter = ',', default_value = "127.0.0.1:8080")]
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
            return Err(format!("unknown operation {kind:?} (read, write, cas, delete)"));
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

/// Runs `workload` as `args` say and returns what it measured (also printing it, drawing the
/// plot, and showing a progress bar on a terminal).
pub async fn run(workload: Workload, args: &LoadArgs) -> anyhow::Result<Report> {
    let _ = (workload, args);
    anyhow::bail!("not built yet")
}

//! What a comparison measured, as saved to `bench/results.json` and rendered into
//! BENCHMARKS.md (also from the file alone, with `--render-only`).

use std::path::Path;

use anyhow::Context;
use serde::{Deserialize, Serialize};

use super::machine::Machine;
use crate::bench::load::Report;

/// Everything one comparison measured.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Results {
    /// When it ran, `YYYY-MM-DD HH:MM UTC`.
    pub date: String,
    /// Where it ran and what it compared.
    pub machine: Machine,
    /// The disk's fsync rate in the work directory.
    pub fsync: Fsync,
    /// Seconds measured per run.
    pub duration_s: f64,
    /// Seconds of warm-up before each run.
    pub warmup_s: f64,
    /// How many times every system ran every case, the systems taking turns (1 in results
    /// from before rounds).
    #[serde(default = "one_round")]
    pub rounds: usize,
    /// Bytes per value written.
    pub value_size: usize,
    /// Distinct files (keys) the operations spread over.
    pub files: usize,
    /// ZooKeeper's maximum heap per member (`-Xmx`).
    #[serde(default)]
    pub zookeeper_heap: String,
    /// One entry per system, in the order they ran.
    pub systems: Vec<SystemResult>,
}

/// The disk's rate of 256-byte write+fdatasync pairs.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Fsync {
    /// Pairs per second, if it could be measured.
    pub per_s: Option<f64>,
    /// The directory it was measured in.
    pub dir: String,
    /// Why it could not be measured.
    pub error: Option<String>,
}

/// One system's cluster and its runs.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SystemResult {
    /// `etcd`, `zookeeper` or `raftfs`.
    pub system: String,
    /// Seconds from starting the members until the cluster was healthy.
    pub start_s: Option<f64>,
    /// Why the cluster could not be started, or stopped cleanly.
    pub error: Option<String>,
    /// One entry per workload, in the order they ran.
    pub runs: Vec<RunResult>,
}

/// One workload against one system.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunResult {
    /// The case's name (see [`super::CASES`]), e.g. `write-64`.
    pub case: String,
    /// What the load generator measured, if the run succeeded.
    pub report: Option<Report>,
    /// Why it failed.
    pub error: Option<String>,
    /// CPU seconds (user + system) the members used while it was measured.
    pub cpu_s: Option<f64>,
    /// The members' resident memory summed at the end of the run, in KiB.
    pub rss_kib: Option<u64>,
    /// The members' peak resident memory (VmHWM, since they started) summed, in KiB.
    pub hwm_kib: Option<u64>,
    /// The plot of the run, the path the load generator was given (relative paths are from
    /// the directory the comparison ran in, the repository's root for bench/compare.sh).
    pub plot: Option<String>,
    /// Every round's figures of this case, in the order they ran; the rest of this entry is
    /// the median round's (by throughput). Empty in results from before rounds.
    #[serde(default)]
    pub rounds: Vec<RoundFigures>,
}

/// What one round of a case measured, beside the median round's whole entry.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RoundFigures {
    /// Answered operations per second; `None` if the round failed.
    pub ops_per_s: Option<f64>,
    /// The members' CPU seconds per 1,000 answered operations.
    pub cpu_s_per_1k_ops: Option<f64>,
    /// The 99th percentile of latency, in microseconds.
    #[serde(default)]
    pub p99_us: Option<u64>,
}

fn one_round() -> usize {
    1
}

impl RunResult {
    /// CPU seconds the members used per 1,000 answered operations.
    pub fn cpu_s_per_1k_ops(&self) -> Option<f64> {
        let ops = self.report.as_ref()?.ops;
        (ops > 0).then(|| self.cpu_s.map(|cpu| cpu * 1000.0 / ops as f64))?
    }

    /// Answered operations per second, if the run succeeded.
    pub fn ops_per_s(&self) -> Option<f64> {
        self.report.as_ref().map(|r| r.ops_per_s)
    }

    /// The 99th percentile of latency in microseconds, if the run succeeded.
    pub fn p99_us(&self) -> Option<u64> {
        self.report.as_ref().map(|r| r.latency.p99_us)
    }
}

/// One result per system from `rounds` (each round's systems in the same order): per case,
/// the median round by throughput (the lower of the two middle ones for an even count), with
/// every round's figures in [`RunResult::rounds`]. A case no round of which succeeded keeps
/// its first round's entry, error and all; a system keeps its first round's start time and
/// its first error.
pub fn merge_rounds(rounds: Vec<Vec<SystemResult>>) -> Vec<SystemResult> {
    let mut rounds = rounds.into_iter();
    let Some(first) = rounds.next() else {
        return Vec::new();
    };
    // systems[i][c]: every round's run of case c of system i, in round order.
    let mut merged: Vec<(SystemResult, Vec<Vec<RunResult>>)> = first
        .into_iter()
        .map(|mut system| {
            let runs = std::mem::take(&mut system.runs)
                .into_iter()
                .map(|run| vec![run])
                .collect();
            (system, runs)
        })
        .collect();
    for round in rounds {
        for ((system, runs), later) in merged.iter_mut().zip(round) {
            if system.error.is_none() {
                system.error = later.error;
            }
            for run in later.runs {
                match runs.iter_mut().find(|r| r[0].case == run.case) {
                    Some(same_case) => same_case.push(run),
                    None => runs.push(vec![run]),
                }
            }
        }
    }
    merged
        .into_iter()
        .map(|(mut system, runs)| {
            system.runs = runs.into_iter().map(median_round).collect();
            system
        })
        .collect()
}

/// The median of one case's rounds by throughput, carrying every round's figures.
fn median_round(mut runs: Vec<RunResult>) -> RunResult {
    let figures: Vec<RoundFigures> = runs
        .iter()
        .map(|run| RoundFigures {
            ops_per_s: run.ops_per_s(),
            cpu_s_per_1k_ops: run.cpu_s_per_1k_ops(),
            p99_us: run.p99_us(),
        })
        .collect();
    let mut ok: Vec<(usize, f64)> = runs
        .iter()
        .enumerate()
        .filter_map(|(i, run)| run.ops_per_s().map(|ops| (i, ops)))
        .collect();
    ok.sort_by(|a, b| a.1.total_cmp(&b.1));
    let chosen = ok
        .get(ok.len().saturating_sub(1) / 2)
        .map_or(0, |&(i, _)| i);
    // A case has at least one round, and `chosen` indexes one of them.
    let mut run = runs.swap_remove(chosen);
    run.rounds = figures;
    run
}

impl Results {
    /// Reads results saved by [`Results::save`].
    pub fn load(path: &Path) -> anyhow::Result<Results> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        serde_json::from_str(&text).with_context(|| format!("cannot parse {}", path.display()))
    }

    /// Writes the results as JSON, creating the directory if needed.
    pub fn save(&self, path: &Path) -> anyhow::Result<()> {
        write_creating_dir(path, &serde_json::to_string_pretty(self)?)
    }
}

/// Writes `text` to `path`, creating its directory first.
pub fn write_creating_dir(path: &Path, text: &str) -> anyhow::Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))
}

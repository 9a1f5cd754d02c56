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
}

impl RunResult {
    /// CPU seconds the members used per 1,000 answered operations.
    pub fn cpu_s_per_1k_ops(&self) -> Option<f64> {
        let ops = self.report.as_ref()?.ops;
        (ops > 0).then(|| self.cpu_s.map(|cpu| cpu * 1000.0 / ops as f64))?
    }
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

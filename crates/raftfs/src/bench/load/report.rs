//! What one load run measured ([`Report`]): serialised by `--json`, printed as a table, drawn by
//! `--plot`, and read back by `raftfs bench compare`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The figures of one run of the load generator.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Report {
    /// The system measured: `raftfs`, `etcd` or `zookeeper`.
    pub system: String,
    /// The workload: `write`, `read`, `cas`, `delete` or `mix`.
    pub workload: String,
    /// The operation mix in percent (one operation at 100 unless the workload is `mix`).
    pub mix: BTreeMap<String, u32>,
    /// Connections (one client session each).
    pub connections: usize,
    /// Operations in flight per connection.
    pub pipeline: usize,
    /// Bytes per value written.
    pub value_size: usize,
    /// Distinct files (keys) the operations spread over.
    pub files: usize,
    /// The fixed arrival rate in operations per second (open loop), or none (closed loop).
    pub rate: Option<f64>,
    /// Seconds of warm-up, not measured.
    pub warmup_s: f64,
    /// Seconds measured.
    pub elapsed_s: f64,
    /// Operations measured that got an answer (including not-found and cas conflicts).
    pub ops: u64,
    /// Answered operations per second.
    pub ops_per_s: f64,
    /// Answers by outcome: `ok`, `not_found`, `conflict` (cas on a stale version).
    pub outcomes: BTreeMap<String, u64>,
    /// Operations that got no answer, by kind of failure (`ERR_INTERNAL`, `io`, `redirect`, ...).
    pub errors: BTreeMap<String, u64>,
    /// Latency over all answered operations (from the intended send time when open loop).
    pub latency: Latency,
    /// Latency per operation kind (`read`, `write`, `cas`, `delete`).
    pub latency_by_op: BTreeMap<String, Latency>,
    /// One entry per second of the measured run.
    pub timeline: Vec<Second>,
}

/// Latency percentiles in microseconds.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub struct Latency {
    /// Samples.
    pub count: u64,
    /// Mean.
    pub mean_us: f64,
    /// Median.
    pub p50_us: u64,
    /// 90th percentile.
    pub p90_us: u64,
    /// 99th percentile.
    pub p99_us: u64,
    /// 99.9th percentile.
    pub p999_us: u64,
    /// The slowest.
    pub max_us: u64,
}

/// One second of a run.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct Second {
    /// Seconds since the measurement started.
    pub second: u64,
    /// Operations answered in that second.
    pub ops: u64,
    /// Their 99th percentile latency in microseconds.
    pub p99_us: u64,
}

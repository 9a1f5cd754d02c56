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

impl Latency {
    /// The percentiles of a histogram of microseconds.
    pub fn of(h: &hdrhistogram::Histogram<u64>) -> Latency {
        if h.is_empty() {
            return Latency::default();
        }
        Latency {
            count: h.len(),
            mean_us: h.mean(),
            p50_us: h.value_at_quantile(0.5),
            p90_us: h.value_at_quantile(0.9),
            p99_us: h.value_at_quantile(0.99),
            p999_us: h.value_at_quantile(0.999),
            max_us: h.max(),
        }
    }

    /// `p50 1.23 ms  p90 ...`, in milliseconds.
    fn line(&self) -> String {
        let ms = |us: u64| us as f64 / 1e3;
        format!(
            "p50 {:.3}  p90 {:.3}  p99 {:.3}  p99.9 {:.3}  max {:.3} ms",
            ms(self.p50_us),
            ms(self.p90_us),
            ms(self.p99_us),
            ms(self.p999_us),
            ms(self.max_us)
        )
    }
}

impl Report {
    /// The report as a few lines of text.
    pub fn table(&self) -> String {
        let mut out = String::new();
        let mix = self
            .mix
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(",");
        let arrival = match self.rate {
            Some(rate) => format!("open loop at {rate:.0}/s"),
            None => "closed loop".to_owned(),
        };
        out.push_str(&format!(
            "{} {} ({mix}): {} connections x {} in flight, {}-byte values over {} files, {arrival}, {:.1} s after {:.1} s of warm-up\n",
            self.system,
            self.workload,
            self.connections,
            self.pipeline,
            self.value_size,
            self.files,
            self.elapsed_s,
            self.warmup_s
        ));
        out.push_str(&format!(
            "  {:<9} {} answered, {:.0}/s\n",
            "ops", self.ops, self.ops_per_s
        ));
        let counts = |map: &std::collections::BTreeMap<String, u64>| {
            if map.is_empty() {
                "none".to_owned()
            } else {
                map.iter()
                    .map(|(k, v)| format!("{k} {v}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            }
        };
        out.push_str(&format!("  {:<9} {}\n", "outcomes", counts(&self.outcomes)));
        out.push_str(&format!("  {:<9} {}\n", "errors", counts(&self.errors)));
        out.push_str(&format!("  {:<9} {}\n", "latency", self.latency.line()));
        if self.latency_by_op.len() > 1 {
            for (op, latency) in &self.latency_by_op {
                out.push_str(&format!("  {op:<9} {}\n", latency.line()));
            }
        }
        out
    }
}

//! Guards against a cluster that is safe only because it does nothing: with no faults at all,
//! every command gets a definite answer within milliseconds of simulated time, one election
//! suffices, and the cluster converges.

use sim::{Profile, RunOptions, run};

/// Commands in the throughput runs.
const COMMANDS: usize = 1_000;

/// Mean simulated time from a command's first send to its answer on a healthy cluster, at most.
/// A write is a client hop, a leader fsync and a follower round trip with its fsync (a few ms
/// each at worst); a read is a heartbeat round. Measured means are 3 to 8 ms; a cluster that
/// waits for heartbeats to commit or serve reads (10 to 100 ms here) would blow this.
const MEAN_LATENCY_US_MAX: u64 = 15_000;

/// Longest simulated time for one command: the first ones wait for the first election (up to
/// two 400 ms timeouts plus a prevote and a vote round); nothing later should come close.
const MAX_LATENCY_US_MAX: u64 = 2_000_000;

#[test]
fn a_healthy_cluster_answers_every_command_promptly() {
    for seed in 0..12 {
        let report = run(RunOptions::new(Profile::Quiet, seed, COMMANDS));
        assert!(
            report.failure.is_none(),
            "seed {seed}: {:?}",
            report.failure
        );
        let s = report.stats;
        assert!(s.commands >= COMMANDS as u64);
        assert_eq!(s.unknown, 0, "seed {seed}: no command may time out or fail");
        assert_eq!(s.definite, s.commands, "seed {seed}");
        assert_eq!(
            s.leaders, 1,
            "seed {seed}: one election, then a stable leader"
        );
        let mean = s.latency_us_sum / s.definite;
        assert!(
            mean <= MEAN_LATENCY_US_MAX,
            "seed {seed}: mean latency {mean} us"
        );
        assert!(
            s.latency_us_max <= MAX_LATENCY_US_MAX,
            "seed {seed}: max latency {} us",
            s.latency_us_max
        );
        assert!(
            s.committed >= s.commands / 2,
            "seed {seed}: writes committed"
        );
    }
}

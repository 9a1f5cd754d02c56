//! Guards against a cluster that is safe only because it does nothing: with no faults at all,
//! every command gets a definite answer, quickly in simulated time, and the cluster converges.

use sim::{Profile, RunOptions, run};

/// Commands in the throughput runs.
const COMMANDS: usize = 1_000;

/// Simulated time one command may take on a healthy cluster on top of the client's think time:
/// a few network round trips and an fsync are a few milliseconds; 25 ms is a generous bound that
/// an election storm or a stuck proposal would blow.
const COMMAND_LATENCY_US_MAX: u64 = 25_000;

/// Longest think time a scenario draws, microseconds (see `scenario.rs`).
const THINK_MAX_US: u64 = 80_000;

/// First-leader election: at most two minimum election timeouts (400 ms each at most) plus
/// messages, with room to spare.
const FIRST_ELECTION_US_MAX: u64 = 2_000_000;

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
        assert_eq!(s.unknown, 0, "seed {seed}: no command may time out or fail");
        assert!(s.commands >= COMMANDS as u64);
        assert_eq!(s.definite, s.commands, "seed {seed}");
        assert_eq!(
            s.leaders, 1,
            "seed {seed}: one election, then a stable leader"
        );
        // Clients run in parallel: the busiest one issues at most its share plus one.
        let at = report.final_phase_at.expect("the workload finished").0;
        let per_client = COMMANDS as u64 / 3 + 1;
        let bound = FIRST_ELECTION_US_MAX + per_client * (THINK_MAX_US + COMMAND_LATENCY_US_MAX);
        assert!(
            at <= bound,
            "seed {seed}: {COMMANDS} commands took {at} us of simulated time (bound {bound})"
        );
    }
}

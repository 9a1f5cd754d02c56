//! Guards against a simulator that cannot replay a failure: one seed must give the same run
//! byte for byte (every trace line, the whole client history, every count), whatever else runs
//! beside it, and spreading seeds over threads must not change any total.

use sim::trace::TraceMode;
use sim::{Profile, RunOptions, run, run_seeds};

/// Commands per run here: enough for elections, faults and retries to show up in the trace.
const COMMANDS: usize = 200;

fn collected(profile: Profile, seed: u64) -> sim::RunReport {
    let mut options = RunOptions::new(profile, seed, COMMANDS);
    options.trace = TraceMode::Collect;
    run(options)
}

#[test]
fn one_seed_gives_the_same_trace_history_and_counts_twice() {
    for (profile, seed) in [
        (Profile::Mixed, 7),
        (Profile::Crashes, 11),
        (Profile::Chaos, 3),
    ] {
        let a = collected(profile, seed);
        let b = collected(profile, seed);
        assert!(a.failure.is_none(), "{:?}", a.failure);
        assert!(
            a.trace.len() > 1_000,
            "a run this long traces more than {} lines",
            a.trace.len()
        );
        assert_eq!(a.trace, b.trace, "{profile} seed {seed}: traces differ");
        assert_eq!(
            a.history, b.history,
            "{profile} seed {seed}: histories differ"
        );
        assert_eq!(a.stats, b.stats, "{profile} seed {seed}: counts differ");
        assert!(
            a.stats.faults.total() > 0,
            "{profile} seed {seed} injected faults"
        );
    }
}

#[test]
fn different_seeds_give_different_runs() {
    let a = collected(Profile::Mixed, 1);
    let b = collected(Profile::Mixed, 2);
    assert_ne!(a.trace, b.trace);
}

#[test]
fn tracing_does_not_change_the_run() {
    let traced = collected(Profile::Partitions, 5);
    let quiet = run(RunOptions::new(Profile::Partitions, 5, COMMANDS));
    assert_eq!(traced.stats, quiet.stats);
}

#[test]
fn threads_do_not_change_the_totals() {
    let template = RunOptions::new(Profile::Mixed, 0, 100);
    let one = run_seeds(template, 100..106, 1);
    let two = run_seeds(template, 100..106, 2);
    assert_eq!(one.stats, two.stats);
    assert_eq!(one.failures, two.failures);
}

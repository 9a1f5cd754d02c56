//! The Jepsen-style fault run (crates/chaos, docs/chaos.md) for two minutes: five real members
//! killed, paused, partitioned, slowed, skewed and torn while ten clients record a history;
//! after healing, the history must be linearizable, every member must hold the same store and
//! nothing may have crashed. `RAFTFS_CHAOS_SEED` replays a seed, `RAFTFS_CHAOS_SECONDS` changes
//! the length.
#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests fail loudly on purpose.

use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_minutes_of_faults_leave_a_linearizable_history_and_identical_stores() {
    let seed = std::env::var("RAFTFS_CHAOS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(chaos::seed_from_clock);
    let seconds = std::env::var("RAFTFS_CHAOS_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(120);
    eprintln!("chaos seed {seed} (RAFTFS_CHAOS_SEED={seed} replays its schedule)");
    let options = chaos::Options::new(
        env!("CARGO_BIN_EXE_raftfs").into(),
        Duration::from_secs(seconds),
        seed,
    );
    let report = chaos::run(options)
        .await
        .expect("the run could be carried out");
    eprintln!("{report}");
    assert!(
        report.verdict.passed(),
        "chaos run failed (seed {seed}):\n{}",
        report.verdict.failures.join("\n")
    );
    // Every kind of fault was injected (clock skew only where libfaketime is installed).
    for kind in chaos::nemesis::FaultKind::ALL {
        let skippable = kind == chaos::nemesis::FaultKind::ClockSkew
            && chaos::cluster::find_libfaketime().is_none();
        assert!(
            skippable || report.faults_by_kind.get(&kind).copied().unwrap_or(0) > 0,
            "no {kind} fault was injected"
        );
    }
}

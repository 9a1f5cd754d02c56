//! Guards against any safety or liveness bug the simulator can provoke: about 2,200 seeded runs
//! of 3- and 5-node clusters (about a million client commands) under every kind of fault, split
//! over several tests so the harness runs them on both cores. Every run checks election safety,
//! log matching, leader completeness, state-machine safety, commit monotonicity and durability
//! of committed entries after every step, linearizability of the client history at the end,
//! and convergence once every fault has healed. Snapshot thresholds are drawn small, so most
//! runs compact their logs and install snapshots on nodes that fell behind: each sweep checks
//! that more than half of its runs installed one. Most runs give writes and cas exptimes of a
//! few seconds, judged by members' clocks up to 2 s ahead of or behind true time, so files
//! expire among reads, cas and deletes across changes of leader. Most runs also remove a member
//! (sometimes the leader), add it back as a learner and promote it, hand leadership over, and
//! read on leases or on followers.

use sim::disk::CrashOrder;
use sim::{FaultKind, Profile, RunOptions};

use crate::common::{COMMANDS_PER_RUN, sweep_with};

/// Runs `seeds` under `profile` and checks that most runs installed a snapshot, that files
/// expired among the commands, and that members came and went, leadership was handed over and
/// reads were served on leases and by followers.
fn sweep(profile: Profile, seeds: std::ops::Range<u64>) -> sim::Totals {
    let totals = compacting(crate::common::sweep(profile, seeds));
    let stats = totals.stats;
    // Clock entries are appended only while a file is due to expire by the leader's clock.
    assert!(
        stats.expiring * 20 > stats.commands && stats.clock_entries > 0,
        "{} of {} commands with an exptime, {} clock entries",
        stats.expiring,
        stats.commands,
        stats.clock_entries
    );
    // Members removed (the leader among them), added back as learners, promoted; leadership
    // handed over; leases and follower reads.
    let faults = stats.faults;
    assert!(
        faults.get(FaultKind::MemberRemoved) > 0
            && faults.get(FaultKind::LearnerAdded) > 0
            && faults.get(FaultKind::LeaderTransferred) > 0
            && stats.lease_runs > 0
            && stats.follower_read_requests > 0,
        "membership changes, transfers, lease or follower reads missing: {stats}"
    );
    totals
}

/// Fails unless more than half the runs of `totals` installed a snapshot somewhere.
fn compacting(totals: sim::Totals) -> sim::Totals {
    let stats = totals.stats;
    assert!(
        stats.runs_with_install * 2 > stats.runs,
        "only {} of {} runs installed a snapshot",
        stats.runs_with_install,
        stats.runs
    );
    totals
}

#[test]
fn mixed_faults_three_or_five_nodes() {
    sweep(Profile::Mixed, 0..360);
}

#[test]
fn mixed_faults_three_nodes() {
    sweep(Profile::ThreeNodes, 0..360);
}

#[test]
fn mixed_faults_five_nodes() {
    sweep(Profile::FiveNodes, 0..300);
}

#[test]
fn heavy_partitions() {
    sweep(Profile::Partitions, 0..340);
}

#[test]
fn crash_heavy_with_torn_writes_stalls_and_pauses() {
    sweep(Profile::Crashes, 0..340);
}

#[test]
fn hostile_network_loss_duplication_delay() {
    sweep(Profile::Chaos, 0..320);
}

/// Leaders struck right after they append (figure 8's three-term interleaving): a core that
/// commits an old-term entry by counting replicas fails here within a few dozen seeds.
#[test]
fn leaders_struck_after_appends_figure_8() {
    let totals = sweep(Profile::Figure8, 0..200);
    assert!(totals.stats.faults.get(FaultKind::LeaderStrike) > 1_000);
}

/// Crashes cut through the production WAL writer's batches as it orders them (a batch's hard
/// state before its log records), not just through any prefix of operations.
#[test]
fn crash_heavy_in_the_wal_writers_order() {
    let mut options = RunOptions::new(Profile::Crashes, 0, COMMANDS_PER_RUN);
    options.crash_order = CrashOrder::WalBatch;
    compacting(sweep_with(options, 1000..1200));
}

//! Guards against checks that never fire: a cluster broken on purpose must be caught within a
//! few seeds. Two defects, both outside the Raft core so the core stays the real one: the
//! network forges followers' acknowledgements (a leader commits without a majority), and disks
//! acknowledge writes before they are durable (a crash loses acknowledged state).

use sim::{Check, Profile, RunOptions, Sabotage, run};

/// Seeds tried before declaring a defect unnoticed.
const SEEDS: u64 = 10;

/// Commands per run: the defects show up long before.
const COMMANDS: usize = 300;

/// The checks that fired on seeds `0..SEEDS` with `sabotage`, durability check on or off.
fn caught(profile: Profile, sabotage: Sabotage, check_durability: bool) -> Vec<(u64, Check)> {
    (0..SEEDS)
        .filter_map(|seed| {
            let mut options = RunOptions::new(profile, seed, COMMANDS);
            options.sabotage = sabotage;
            options.check_durability = check_durability;
            run(options).failure.map(|f| (seed, f.violation.check))
        })
        .collect()
}

#[test]
fn forged_acks_are_caught_at_once_by_the_durability_check() {
    let found = caught(Profile::Mixed, Sabotage::ForgedAcks, true);
    assert_eq!(
        found.len() as u64,
        SEEDS,
        "every seed catches it: {found:?}"
    );
    assert!(
        found.iter().all(|&(_, c)| c == Check::CommittedLost),
        "{found:?}"
    );
}

#[test]
fn lying_disks_are_caught_at_once_by_the_durability_check() {
    let found = caught(Profile::Mixed, Sabotage::LyingDisk, true);
    assert_eq!(
        found.len() as u64,
        SEEDS,
        "every seed catches it: {found:?}"
    );
    assert!(
        found.iter().all(|&(_, c)| c == Check::CommittedLost),
        "{found:?}"
    );
}

#[test]
fn forged_acks_are_caught_by_the_black_box_checks_alone() {
    let found = caught(Profile::Mixed, Sabotage::ForgedAcks, false);
    println!("forged acks, durability check off: {found:?}");
    assert!(
        found.len() >= 3,
        "state-machine safety, leader completeness or linearizability catch it: {found:?}"
    );
    assert!(found.iter().all(|&(_, c)| c != Check::CommittedLost));
}

#[test]
fn lying_disks_are_caught_by_the_black_box_checks_alone() {
    let found = caught(Profile::Crashes, Sabotage::LyingDisk, false);
    println!("lying disks, durability check off: {found:?}");
    assert!(
        found.len() >= 3,
        "vote safety, state-machine safety, leader completeness or linearizability catch it: \
         {found:?}"
    );
}

#[test]
fn a_failure_report_names_the_seed_the_check_the_replay_and_the_last_events() {
    let mut options = RunOptions::new(Profile::Mixed, 2, COMMANDS);
    options.sabotage = Sabotage::ForgedAcks;
    let failure = run(options).failure.expect("the broken cluster is caught");
    let text = failure.to_string();
    assert!(text.starts_with("FAILED seed 2 (profile mixed)"), "{text}");
    assert!(text.contains(failure.violation.check.name()), "{text}");
    assert!(
        text.contains("cargo run --profile sim -p sim -- --profile mixed --seed 2 --trace"),
        "{text}"
    );
    assert!(failure.trace_tail.len() >= 20, "{text}");
}

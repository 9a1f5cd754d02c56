//! Guards against the return of bugs the simulator found: each failing seed met on the way,
//! with the sentence that explains it. They run under the current code and must pass.

use sim::trace::TraceMode;
use sim::{Profile, RunOptions, run};

use crate::common::COMMANDS_PER_RUN;

/// Runs one seed as the sweeps do and fails with its report.
fn passes(profile: Profile, seed: u64) {
    let report = run(RunOptions::new(profile, seed, COMMANDS_PER_RUN));
    if let Some(failure) = report.failure {
        panic!("{failure}");
    }
}

/// Partitions seed 146 (simulator bug, fixed): n2 was paused through two elections; on waking
/// it heard the term-2 leader, whose entry at i98 conflicts with its own i98/t1, which the
/// term-3 leader had meanwhile committed. Truncating it is legal Raft (a leader of an older term
/// than the commit's need not hold the entry); the truncation check flagged it. It now flags a
/// truncation only on behalf of a leader of the entry's commit term or later.
#[test]
fn partitions_146_stale_leader_may_truncate_an_entry_committed_in_a_later_term() {
    passes(Profile::Partitions, 146);
}

/// Mixed seed 11 (simulator bug, fixed): a reply to a client's timed-out command arrived after
/// the client had moved on, and was taken as the answer to its next command because attempt
/// numbers restarted at 1 for every command (the checker saw a write "answered" CONTENTS).
/// Attempt numbers are now unique over a client's life; this seed has several late replies.
#[test]
fn mixed_11_late_reply_to_an_abandoned_command_is_ignored() {
    let mut options = RunOptions::new(Profile::Mixed, 11, COMMANDS_PER_RUN);
    options.trace = TraceMode::Collect;
    let report = run(options);
    if let Some(failure) = report.failure {
        panic!("{failure}");
    }
    let late = report
        .trace
        .iter()
        .filter(|l| l.contains("late reply"))
        .count();
    assert!(late >= 3, "the seed still exercises late replies ({late})");
}

//! Guards against safety checks that cry wolf or stay silent, on hand-made histories: a legal
//! but surprising step (a follower of a stale leader truncating an entry committed in a later
//! term, found by partitions seed 146 of an earlier generator) passes, and each illegal step is
//! caught by the check named for it.

use bytes::Bytes;
use raft::{Entry, LogIndex, NodeId, Payload, Role, Term};
use sim::chain::Chain;
use sim::invariants::Invariants;
use sim::{Check, Violation};

fn entry(index: u64, term: u64, tag: &str) -> Entry {
    Entry {
        index: LogIndex(index),
        term: Term(term),
        payload: Payload::Command(Bytes::from(tag.to_owned())),
    }
}

fn check_of(result: Result<(), Violation>) -> Option<Check> {
    result.err().map(|v| v.check)
}

/// Three nodes all hold i1/t1; node 0 leads t3 and commits i1 (and a t3 entry at i2).
fn committed_in_term_3() -> Invariants {
    let mut inv = Invariants::new(3);
    for k in 0..3 {
        inv.on_store(k, &[entry(1, 1, "a")]).unwrap();
    }
    inv.on_store(0, &[entry(2, 3, "noop3")]).unwrap();
    inv.on_store(1, &[entry(2, 3, "noop3")]).unwrap();
    inv.after_step(0, Role::Leader, Term(3), LogIndex(2))
        .unwrap();
    inv
}

#[test]
fn a_stale_leaders_follower_may_truncate_an_entry_committed_in_a_later_term() {
    let mut inv = committed_in_term_3();
    // Node 2 (term 2 all along) hears the term-2 leader, whose log conflicts at i1.
    assert_eq!(check_of(inv.on_truncate(2, LogIndex(1), Term(2))), None);
    inv.on_store(2, &[entry(1, 2, "b")]).unwrap();
}

#[test]
fn truncating_a_committed_entry_for_a_leader_of_its_commit_term_is_caught() {
    let mut inv = committed_in_term_3();
    assert_eq!(
        check_of(inv.on_truncate(1, LogIndex(1), Term(3))),
        Some(Check::CommittedLost)
    );
}

#[test]
fn two_leaders_in_one_term_are_caught() {
    let mut inv = Invariants::new(3);
    inv.after_step(0, Role::Leader, Term(4), LogIndex(0))
        .unwrap();
    assert_eq!(
        check_of(inv.after_step(1, Role::Leader, Term(4), LogIndex(0))),
        Some(Check::ElectionSafety)
    );
}

#[test]
fn a_second_vote_in_one_term_is_caught() {
    let mut inv = Invariants::new(3);
    inv.on_vote(NodeId(1), Term(2), NodeId(2)).unwrap();
    inv.on_vote(NodeId(1), Term(2), NodeId(2)).unwrap();
    assert_eq!(
        check_of(inv.on_vote(NodeId(1), Term(2), NodeId(3))),
        Some(Check::VoteSafety)
    );
}

#[test]
fn same_index_and_term_with_different_entries_is_caught() {
    let mut inv = Invariants::new(3);
    inv.on_store(0, &[entry(1, 1, "a")]).unwrap();
    let err = inv.on_store(1, &[entry(1, 1, "b")]).unwrap_err();
    assert_eq!(err.check, Check::LogMatching);
}

#[test]
fn different_entries_applied_at_one_index_are_caught() {
    let mut inv = Invariants::new(3);
    inv.on_store(0, &[entry(1, 1, "a")]).unwrap();
    inv.on_store(1, &[entry(1, 2, "b")]).unwrap();
    inv.on_commit(0, &entry(1, 1, "a"), Term(1)).unwrap();
    assert_eq!(
        check_of(inv.on_commit(1, &entry(1, 2, "b"), Term(2))),
        Some(Check::StateMachineSafety)
    );
}

#[test]
fn a_new_leader_missing_a_committed_entry_is_caught() {
    let mut inv = committed_in_term_3();
    // Node 2 holds only i1; it cannot lead term 4, after i2 was committed in term 3.
    assert_eq!(
        check_of(inv.after_step(2, Role::Leader, Term(4), LogIndex(0))),
        Some(Check::LeaderCompleteness)
    );
}

#[test]
fn a_commit_index_going_down_is_caught() {
    let mut inv = committed_in_term_3();
    assert_eq!(
        check_of(inv.after_step(0, Role::Leader, Term(3), LogIndex(1))),
        Some(Check::CommitMonotonic)
    );
}

#[test]
fn committed_entries_must_stay_durable_on_a_majority() {
    let inv = committed_in_term_3();
    let mut full = Chain::new();
    full.push(&entry(1, 1, "a"));
    full.push(&entry(2, 3, "noop3"));
    let empty = Chain::new();
    assert_eq!(
        check_of(inv.check_durable([&full, &full, &empty].into_iter())),
        None
    );
    assert_eq!(
        check_of(inv.check_durable([&full, &empty, &empty].into_iter())),
        Some(Check::CommittedLost)
    );
}

//! Log compaction and snapshots (Raft paper section 7, thesis chapter 5): guards against a
//! compaction that loses entries a follower still needs, a leader that floods or forgets a
//! follower needing a snapshot, a snapshot that rolls a node back or throws away a matching log,
//! and a follower that acknowledges a snapshot before it is durable.

use bytes::Bytes;
use raft::testing::Cluster;
use raft::{
    Action, AppendOutcome, Event, HardState, Heartbeat, HeartbeatResponse, InstallSnapshotRequest,
    LogIndex, Message, Millis, Node, NodeId, Recovered, Role, Term,
};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::common::*;

// ----- Helpers -----

/// Node 1 of 3, recovered at `term` with a snapshot `snap` (index, term), the entries after it
/// with terms `terms`, and `commit` saved (its state machine at the snapshot); started at 0.
fn recovered(term: u64, snap: Option<(u64, u64)>, terms: &[u64], commit: u64) -> Node {
    let (base, _) = snap.unwrap_or((0, 0));
    let recovered = Recovered {
        hard_state: HardState {
            term: Term(term),
            vote: None,
            commit: LogIndex(commit),
        },
        snapshot: snap.map(|(i, t)| (LogIndex(i), Term(t))),
        entries: terms
            .iter()
            .enumerate()
            .map(|(k, &t)| entry(base + 1 + k as u64, t))
            .collect(),
        membership: None,
    };
    let mut node = Node::new(config(1), voters(3), recovered, LogIndex(base), 7).unwrap();
    node.step(Millis(0), Event::Timeout);
    node
}

fn saved(index: u64, term: u64, keep_from: u64) -> Event {
    Event::SnapshotSaved {
        index: LogIndex(index),
        term: Term(term),
        keep_from: LogIndex(keep_from),
    }
}

fn install(leader: u64, term: u64, index: u64, snapshot_term: u64) -> Event {
    msg(
        leader,
        Message::InstallSnapshot(InstallSnapshotRequest {
            term: Term(term),
            leader: NodeId(leader),
            index: LogIndex(index),
            snapshot_term: Term(snapshot_term),
            membership: voters(3),
        }),
    )
}

fn installed(index: u64, term: u64) -> Event {
    Event::SnapshotInstalled {
        index: LogIndex(index),
        term: Term(term),
    }
}

fn report(to: u64, index: u64, installed: bool) -> Event {
    Event::SnapshotReport {
        to: NodeId(to),
        index: LogIndex(index),
        installed,
    }
}

fn heartbeat_response(from: u64, term: u64) -> Event {
    msg(
        from,
        Message::HeartbeatResponse(HeartbeatResponse {
            term: Term(term),
            read_round: 0,
        }),
    )
}

/// A heartbeat answer from `from` in term 2 for read round `round`.
fn read_answer(from: u64, round: u64) -> Event {
    msg(
        from,
        Message::HeartbeatResponse(HeartbeatResponse {
            term: Term(2),
            read_round: round,
        }),
    )
}

fn heartbeat(leader: u64, term: u64, commit: u64) -> Event {
    msg(
        leader,
        Message::Heartbeat(Heartbeat {
            term: Term(term),
            leader: NodeId(leader),
            commit: LogIndex(commit),
            read_round: 1,
        }),
    )
}

fn reject(from: u64, term: u64, rejected: u64) -> Event {
    msg(
        from,
        Message::AppendEntriesResponse(raft::AppendEntriesResponse {
            term: Term(term),
            outcome: AppendOutcome::Reject {
                rejected: LogIndex(rejected),
                hint_index: LogIndex(0),
                hint_term: Term(0),
            },
        }),
    )
}

/// The `SendSnapshot` actions, as (to, request).
fn snapshot_sends(actions: &[Action]) -> Vec<(NodeId, InstallSnapshotRequest)> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::SendSnapshot { to, request } => Some((*to, request.clone())),
            _ => None,
        })
        .collect()
}

/// The `InstallSnapshot` actions, as (index, term, kept_entries_after).
fn installs(actions: &[Action]) -> Vec<(LogIndex, Term, bool)> {
    actions
        .iter()
        .filter_map(|a| match *a {
            Action::InstallSnapshot {
                index,
                term,
                kept_entries_after,
            } => Some((index, term, kept_entries_after)),
            _ => None,
        })
        .collect()
}

/// The match indexes of the Success answers in `actions`.
fn successes(actions: &[Action]) -> Vec<LogIndex> {
    append_responses(actions)
        .into_iter()
        .filter_map(|(_, r)| match r.outcome {
            AppendOutcome::Success { match_index } => Some(match_index),
            AppendOutcome::Reject { .. } => None,
        })
        .collect()
}

/// Node 1 leading term 2 of 3 voters, its log 1..=5 (term 1) and a no-op at 6 committed with
/// node 2's help, then compacted by a snapshot at 6 (keeping nothing). Node 3 has answered
/// nothing yet; its first probe (prev 5) is outstanding.
fn compacted_leader() -> Node {
    let mut node = recovered(1, None, &[1, 1, 1, 1, 1], 0);
    elect(&mut node, 3000);
    assert_eq!(node.term(), Term(2));
    step(&mut node, 3001, append_success(2, 2, 6));
    assert_eq!(node.commit_index(), LogIndex(6));
    step(&mut node, 3001, saved(6, 2, 7));
    assert_eq!(node.first_index(), LogIndex(7));
    node
}

// ----- Compaction -----

#[test]
fn section_7_compaction_drops_entries_and_keeps_trailing_ones() {
    // Log 1..=8 committed; (snapshot index, keep_from) -> first index kept in memory.
    let table = [
        ((6, 7), 7),
        ((6, 4), 4),
        ((6, 0), 1),   // keep everything
        ((6, 100), 7), // clamped to index + 1
        ((8, 9), 9),   // the whole log
        ((8, u64::MAX), 9),
    ];
    for ((index, keep_from), first) in table {
        let mut node = recovered(2, None, &[1, 1, 1, 2, 2, 2, 2, 2], 8);
        let term = node.entry(LogIndex(index)).unwrap().term;
        let acts = step(&mut node, 10, saved(index, term.0, keep_from));
        let case = format!("snapshot at {index}, keep from {keep_from}");
        assert_eq!(node.snapshot(), Some((LogIndex(index), term)), "{case}");
        assert_eq!(node.first_index(), LogIndex(first), "{case}");
        assert!(node.entry(LogIndex(first - 1)).is_none(), "{case}");
        assert_eq!(node.last_index(), LogIndex(8), "{case}");
        assert_eq!(node.last_term(), Term(2), "{case}");
        for i in first..=8 {
            assert!(node.entry(LogIndex(i)).is_some(), "{case}: {i} kept");
        }
        // The driver trims its own WAL: the core asks for no storage work.
        assert!(
            stores(&acts).is_empty() && truncations(&acts).is_empty(),
            "{case}"
        );
        assert!(sends(&acts).is_empty(), "{case}");
    }
}

#[test]
fn section_7_a_snapshot_not_newer_than_the_last_changes_nothing() {
    let mut node = recovered(2, None, &[1, 1, 1, 2, 2, 2, 2, 2], 8);
    step(&mut node, 10, saved(6, 2, 7));
    // (snapshot, keep_from) -> (latest snapshot, first index)
    let table = [
        ((6, 2, 1), ((6, 2), 7)), // the same again
        ((5, 2, 6), ((6, 2), 7)), // older
        ((7, 2, 3), ((7, 2), 7)), // newer, but keep_from below the base drops nothing back in
        ((8, 2, 8), ((8, 2), 8)),
    ];
    for ((index, term, keep_from), ((si, st), first)) in table {
        step(&mut node, 11, saved(index, term, keep_from));
        assert_eq!(node.snapshot(), Some((LogIndex(si), Term(st))), "{index}");
        assert_eq!(node.first_index(), LogIndex(first), "{index}");
    }
}

#[test]
#[cfg(debug_assertions)]
#[should_panic(expected = "driver bug")]
fn section_7_a_snapshot_beyond_the_commit_index_is_a_driver_bug() {
    let mut node = recovered(2, None, &[1, 1, 1], 1);
    step(&mut node, 10, saved(3, 1, 4));
}

#[test]
#[cfg(debug_assertions)]
#[should_panic(expected = "driver bug")]
fn section_7_a_snapshot_contradicting_the_log_is_a_driver_bug() {
    let mut node = recovered(2, None, &[1, 1, 1], 3);
    step(&mut node, 10, saved(2, 2, 3));
}

// ----- Leader: sending snapshots -----

#[test]
fn section_7_a_lagging_follower_gets_send_snapshot_exactly_once_per_need() {
    let mut node = compacted_leader();
    // Node 3's empty log rejects the probe: it needs entry 1, long compacted.
    let acts = step(&mut node, 3002, reject(3, 2, 5));
    assert_eq!(
        snapshot_sends(&acts),
        [(
            n(3),
            InstallSnapshotRequest {
                term: Term(2),
                leader: n(1),
                index: LogIndex(6),
                snapshot_term: Term(2),
                membership: voters(3),
            }
        )]
    );
    assert!(
        sends(&acts).is_empty(),
        "the request goes beside the snapshot, not through Send"
    );
    // While the transfer runs: no second snapshot, no entries, but heartbeats still go, and
    // node 3's answers still count for check-quorum and reads.
    let mut later = step(&mut node, 3003, reject(3, 2, 0));
    later.extend(node.step(
        Millis(3004),
        Event::Append(vec![(raft::ProposalId(1), Bytes::new())]),
    ));
    later.extend(step(&mut node, 3004 + HEARTBEAT_MS, Event::Timeout));
    let (_, hb) = heartbeats(&later)
        .into_iter()
        .find(|(to, _)| *to == n(3))
        .expect("heartbeats still go to it");
    later.extend(step(
        &mut node,
        3005 + HEARTBEAT_MS,
        read_answer(3, hb.read_round),
    ));
    assert!(snapshot_sends(&later).is_empty(), "sent once per need");
    assert!(
        last_append_to(&later, 3).is_none(),
        "no entries while waiting"
    );
    assert!(last_append_to(&later, 2).is_some());
    // Its heartbeat answers confirm a read: node 1 and node 3 make a majority.
    let read = raft::ReadId(1);
    let acts = step(&mut node, 3006 + HEARTBEAT_MS, Event::ReadIndex(read));
    let round = heartbeats(&acts)
        .first()
        .expect("a read round")
        .1
        .read_round;
    let acts = step(&mut node, 3007 + HEARTBEAT_MS, read_answer(3, round));
    assert!(
        acts.iter()
            .any(|a| matches!(a, Action::ReadReady { id, .. } if *id == read)),
        "a follower waiting for a snapshot still confirms reads"
    );
    assert_eq!(node.role(), Role::Leader);
}

#[test]
fn section_7_after_snapshot_report_the_follower_is_probed_or_sent_a_fresh_snapshot() {
    // report -> what the next heartbeat answer from node 3 brings: an AppendEntries after this
    // index, or (None) a fresh SendSnapshot.
    let table: [(&str, Event, Option<u64>); 2] = [
        (
            "installed: probe after the snapshot",
            report(3, 6, true),
            Some(6),
        ),
        (
            "failed: the snapshot is needed again",
            report(3, 6, false),
            None,
        ),
    ];
    for (case, event, probe_after) in table {
        let mut node = compacted_leader();
        step(&mut node, 3002, reject(3, 2, 5));
        let acts = step(&mut node, 3003, event);
        // Paused until node 3 answers: a failing transfer is not retried in a tight loop.
        assert!(snapshot_sends(&acts).is_empty(), "{case}");
        assert!(last_append_to(&acts, 3).is_none(), "{case}");
        let acts = step(&mut node, 3004, heartbeat_response(3, 2));
        match probe_after {
            Some(prev) => {
                let req = last_append_to(&acts, 3).expect(case);
                assert_eq!(req.prev_log_index, LogIndex(prev), "{case}");
                assert!(snapshot_sends(&acts).is_empty(), "{case}");
            }
            None => {
                assert_eq!(snapshot_sends(&acts).len(), 1, "{case}");
                assert!(last_append_to(&acts, 3).is_none(), "{case}");
            }
        }
    }
}

#[test]
fn section_7_a_follower_acknowledging_the_snapshot_resumes_replication() {
    let mut node = compacted_leader();
    step(&mut node, 3002, reject(3, 2, 5));
    step(&mut node, 3003, report(3, 6, true));
    node.step(
        Millis(3003),
        Event::Append(vec![(raft::ProposalId(1), Bytes::new())]),
    );
    let acts = step(&mut node, 3004, append_success(3, 2, 6));
    let req = last_append_to(&acts, 3).expect("replication resumes");
    assert_eq!(req.prev_log_index, LogIndex(6));
    assert_eq!(req.entries.len(), 1);
    // Answering before the report also ends the wait; the late report is stale.
    let mut node = compacted_leader();
    step(&mut node, 3002, reject(3, 2, 5));
    let acts = step(&mut node, 3003, append_success(3, 2, 6));
    assert!(snapshot_sends(&acts).is_empty());
    let acts = step(&mut node, 3004, report(3, 6, false));
    assert!(
        acts.iter().all(|a| matches!(a, Action::Alarm { .. })),
        "{acts:?}"
    );
}

#[test]
fn section_7_a_follower_whose_only_lag_is_its_disk_is_not_sent_snapshots_in_a_loop() {
    // Node 3 holds the log up to 6 but has written only up to 4: its answers name 4. Probing
    // must resume after the snapshot, not from its durable match (compacted), or every answer
    // would bring another whole snapshot (found by the random-compaction runs below).
    let mut node = compacted_leader();
    step(&mut node, 3002, reject(3, 2, 5));
    let mut acts = step(&mut node, 3003, report(3, 6, true));
    acts.extend(step(&mut node, 3004, append_success(3, 2, 4)));
    acts.extend(step(&mut node, 3005, heartbeat_response(3, 2)));
    acts.extend(step(&mut node, 3006, append_success(3, 2, 4)));
    assert!(snapshot_sends(&acts).is_empty(), "{acts:?}");
    // New entries stream to it from after the snapshot.
    let acts = node.step(
        Millis(3007),
        Event::Append(vec![(raft::ProposalId(1), Bytes::new())]),
    );
    let req = last_append_to(&acts, 3).expect("streaming");
    assert_eq!((req.prev_log_index, req.entries.len()), (LogIndex(6), 1));
}

#[test]
fn section_7_stale_snapshot_reports_are_ignored() {
    // Reports that name another follower, another snapshot, or one nobody waits for.
    let table = [
        ("a follower not waiting", report(2, 6, false)),
        ("another snapshot", report(3, 5, false)),
        ("an unknown node", report(9, 6, true)),
    ];
    for (case, event) in table {
        let mut node = compacted_leader();
        step(&mut node, 3002, reject(3, 2, 5));
        step(&mut node, 3003, event);
        // Still waiting: a heartbeat answer neither re-sends nor probes.
        let acts = step(&mut node, 3004, heartbeat_response(3, 2));
        assert!(snapshot_sends(&acts).is_empty(), "{case}");
        assert!(last_append_to(&acts, 3).is_none(), "{case}");
    }
    // A follower ignores reports.
    let mut node = recovered(2, None, &[1, 1], 2);
    let acts = step(&mut node, 10, report(2, 2, true));
    assert!(acts.iter().all(|a| matches!(a, Action::Alarm { .. })));
}

// ----- Follower: installing snapshots -----

#[test]
fn section_7_an_install_not_newer_than_commit_is_ignored_and_never_rolls_back() {
    // Log 1..=5 (terms 1 1 2 2 2), commit 4. (index, snapshot term) -> Success match index.
    let table = [(4, 2), (3, 2), (1, 1), (0, 0)];
    for (index, snapshot_term) in table {
        let mut node = recovered(2, None, &[1, 1, 2, 2, 2], 4);
        let acts = step(&mut node, 10, install(2, 2, index, snapshot_term));
        assert!(installs(&acts).is_empty(), "{index}");
        assert!(commits(&acts).is_empty(), "{index}");
        assert_eq!(
            successes(&acts),
            [LogIndex(index)],
            "{index}: committed entries match"
        );
        assert_eq!(node.commit_index(), LogIndex(4), "{index}");
        assert_eq!(node.first_index(), LogIndex(1), "{index}");
        assert_eq!(node.last_index(), LogIndex(5), "{index}");
        assert_eq!(node.snapshot(), None, "{index}");
    }
}

#[test]
fn section_7_malformed_installs_are_dropped() {
    // A snapshot holding a later term than its leader's, or an absurd index.
    let table = [(5, 3), (u64::MAX, 2), (u64::MAX / 2 + 1, 2)];
    for (index, snapshot_term) in table {
        let mut node = recovered(2, None, &[1, 1], 1);
        let acts = step(&mut node, 10, install(2, 2, index, snapshot_term));
        assert!(installs(&acts).is_empty(), "{index}");
        assert!(append_responses(&acts).is_empty(), "{index}");
        assert_eq!(node.last_index(), LogIndex(2));
    }
}

/// (log terms, commit, snapshot (index, term), whether the entries after it are kept)
type InstallCase = (&'static [u64], u64, (u64, u64), bool);

#[test]
fn figure_13_install_keeps_the_log_after_a_matching_last_entry_or_discards_it() {
    // (log terms, commit, snapshot (index, term)) -> kept entries after it
    let table: [InstallCase; 5] = [
        (&[1, 1, 2, 2, 2], 2, (4, 2), true),
        (&[1, 1, 2, 2, 2], 2, (5, 2), true),
        (&[1, 1, 1, 1, 1], 2, (4, 2), false), // conflict at the snapshot's last entry
        (&[1, 1], 1, (6, 2), false),          // the log is too short
        (&[], 0, (3, 1), false),
    ];
    for (terms, commit, (index, term), kept) in table {
        let case = format!("{terms:?} commit {commit}, snapshot ({index}, {term})");
        let mut node = recovered(2, None, terms, commit);
        let last = node.last_index();
        let acts = step(&mut node, 10, install(2, 2, index, term));
        assert_eq!(
            installs(&acts),
            [(LogIndex(index), Term(term), kept)],
            "{case}"
        );
        assert_eq!(
            node.snapshot(),
            Some((LogIndex(index), Term(term))),
            "{case}"
        );
        assert_eq!(node.commit_index(), LogIndex(index), "{case}");
        assert_eq!(node.first_index(), LogIndex(index + 1), "{case}");
        assert!(
            commits(&acts).is_empty(),
            "{case}: the snapshot replaces those entries"
        );
        if kept {
            assert_eq!(node.last_index(), last, "{case}");
            assert_eq!(
                node.durable_index(),
                last,
                "{case}: kept entries stay durable"
            );
        } else {
            assert_eq!(
                (node.last_index(), node.last_term()),
                (LogIndex(index), Term(term))
            );
            assert!(node.durable_index() <= LogIndex(commit), "{case}");
        }
        // Durable before ack: nothing is acknowledged until the install is durable.
        assert!(successes(&acts).is_empty(), "{case}");
        let acts = step(&mut node, 11, installed(index, term));
        assert_eq!(successes(&acts), [LogIndex(index)], "{case}");
        assert!(node.durable_index() >= LogIndex(index), "{case}");
    }
}

#[test]
fn section_7_a_stale_term_install_is_answered_with_our_term_and_changes_nothing() {
    let mut node = recovered(5, None, &[1, 1, 3], 1);
    let acts = step(&mut node, 10, install(2, 3, 10, 3));
    assert!(installs(&acts).is_empty());
    let answers = append_responses(&acts);
    assert_eq!(answers.len(), 1);
    assert_eq!(answers[0].0, n(2));
    assert_eq!(
        answers[0].1.term,
        Term(5),
        "the stale leader learns the newer term"
    );
    assert!(matches!(answers[0].1.outcome, AppendOutcome::Reject { .. }));
    assert_eq!(
        (node.term(), node.commit_index(), node.last_index()),
        (Term(5), LogIndex(1), LogIndex(3))
    );
    assert_eq!(node.snapshot(), None);
}

#[test]
fn section_7_an_install_from_a_leader_of_a_later_term_makes_us_its_follower() {
    // Starting role -> after an install from node 2 at term 7 (or at the candidate's term).
    let mut leader = recovered(2, None, &[1, 1], 0);
    elect(&mut leader, 3000);
    let mut candidate_cfg = config(1);
    candidate_cfg.prevote = false;
    let (mut candidate, _) = node_with(3, 2, &[1, 1], candidate_cfg);
    time_out(&mut candidate, 0);
    assert_eq!(candidate.role(), Role::Candidate);
    let same_term = candidate.clone();
    let table = [
        ("follower", recovered(2, None, &[1, 1], 0), 7),
        ("leader", leader, 7),
        ("candidate", candidate, 7),
        ("candidate, same term", same_term, 3),
    ];
    for (case, mut node, term) in table {
        let acts = step(&mut node, 5000, install(2, term, 10, 3));
        assert_eq!(node.role(), Role::Follower, "{case}");
        assert_eq!(
            (node.term(), node.leader()),
            (Term(term), Some(n(2))),
            "{case}"
        );
        assert_eq!(installs(&acts), [(LogIndex(10), Term(3), false)], "{case}");
        // A new term is saved before the install that depends on it.
        let save = acts.iter().position(|a| matches!(a, Action::SaveState(_)));
        let inst = acts
            .iter()
            .position(|a| matches!(a, Action::InstallSnapshot { .. }));
        if term == 7 {
            assert!(save.unwrap() < inst.unwrap(), "{case}: {acts:?}");
        }
    }
}

#[test]
fn section_7_durable_before_ack_nothing_is_acknowledged_before_snapshot_installed() {
    // A fresh follower gets entries 1..=5 of term 1 (their write still in flight), then an
    // install at 4 (term 2) from the next leader, which discards them, then entry 5 of term 2.
    let mut node = fresh(1, 3);
    let mut all = step(&mut node, 10, append(2, 1, (0, 0), log_of(&[1; 5]), 0));
    for hs in saves(&all) {
        all.extend(step(&mut node, 10, Event::StateSaved(hs)));
    }
    let acts = step(&mut node, 20, install(3, 2, 4, 2));
    for hs in saves(&acts) {
        all.extend(step(&mut node, 20, Event::StateSaved(hs)));
    }
    all.extend(acts);
    assert_eq!(installs(&all), [(LogIndex(4), Term(2), false)]);
    all.extend(step(
        &mut node,
        21,
        append(3, 2, (4, 2), vec![entry(5, 2)], 4),
    ));
    all.extend(step(&mut node, 22, heartbeat(3, 2, 4)));
    // The old write of 1..=5 (term 1) lands, and so does the new entry 5, before the install.
    all.extend(step(
        &mut node,
        23,
        Event::LogStored {
            index: LogIndex(5),
            term: Term(1),
        },
    ));
    all.extend(step(
        &mut node,
        24,
        Event::LogStored {
            index: LogIndex(5),
            term: Term(2),
        },
    ));
    assert!(
        node.durable_index() < LogIndex(4),
        "nothing counts before the install"
    );
    assert!(
        successes(&all).iter().all(|&m| m == LogIndex(0)),
        "{:?}",
        successes(&all)
    );
    let acts = step(&mut node, 25, installed(4, 2));
    assert_eq!(node.durable_index(), LogIndex(5));
    assert_eq!(successes(&acts), [LogIndex(5)]);
    assert!(node.hard_state().commit <= node.durable_index());
}

#[test]
fn section_7_a_stale_log_ack_never_raises_durable_past_the_disk() {
    // Entries 1..=5 of term 1 in flight; an install at 4 (term 2) discards them; the stale
    // acknowledgement of the old write arrives before or after the install is durable.
    for before in [true, false] {
        let mut node = fresh(1, 3);
        let acts = step(&mut node, 10, append(2, 1, (0, 0), log_of(&[1; 5]), 0));
        for hs in saves(&acts) {
            step(&mut node, 10, Event::StateSaved(hs));
        }
        let acts = step(&mut node, 20, install(3, 2, 4, 2));
        for hs in saves(&acts) {
            step(&mut node, 20, Event::StateSaved(hs));
        }
        step(&mut node, 21, append(3, 2, (4, 2), vec![entry(5, 2)], 4));
        let stale = Event::LogStored {
            index: LogIndex(5),
            term: Term(1),
        };
        if before {
            step(&mut node, 22, stale.clone());
        }
        step(&mut node, 23, installed(4, 2));
        if !before {
            step(&mut node, 24, stale);
        }
        assert_eq!(node.durable_index(), LogIndex(4), "before: {before}");
        let acts = step(
            &mut node,
            25,
            Event::LogStored {
                index: LogIndex(5),
                term: Term(2),
            },
        );
        assert_eq!(node.durable_index(), LogIndex(5));
        assert_eq!(successes(&acts), [LogIndex(5)]);
    }
}

#[test]
fn section_7_a_second_install_before_the_first_is_durable_supersedes_it() {
    let mut node = recovered(2, None, &[1, 1], 1);
    step(&mut node, 10, install(2, 2, 4, 2));
    // A duplicate of the install in progress is not newer than commit: answered with what
    // is durable only.
    let acts = step(&mut node, 11, install(2, 2, 4, 2));
    assert!(installs(&acts).is_empty());
    assert!(successes(&acts).iter().all(|&m| m <= node.durable_index()));
    let acts = step(&mut node, 12, install(2, 2, 8, 2));
    assert_eq!(installs(&acts), [(LogIndex(8), Term(2), false)]);
    // The first install's completion raises nothing: the log now rests on the second.
    let acts = step(&mut node, 13, installed(4, 2));
    assert!(successes(&acts).is_empty());
    assert!(node.durable_index() < LogIndex(4));
    let acts = step(&mut node, 14, installed(8, 2));
    assert_eq!(successes(&acts), [LogIndex(8)]);
    assert_eq!(node.durable_index(), LogIndex(8));
    // Unknown or repeated completions are ignored.
    for (i, t) in [(8, 2), (9, 2), (8, 1)] {
        let acts = step(&mut node, 15, installed(i, t));
        assert!(successes(&acts).is_empty(), "({i}, {t})");
    }
}

// ----- Restart -----

#[test]
fn section_7_restart_from_a_snapshot_and_log() {
    // (saved commit, applied) -> entries re-reported on the first step
    let table = [((0, 5), vec![]), ((7, 5), vec![6, 7]), ((8, 8), vec![])];
    for ((commit, applied), reported) in table {
        let rec = Recovered {
            hard_state: HardState {
                term: Term(3),
                vote: None,
                commit: LogIndex(commit),
            },
            snapshot: Some((LogIndex(5), Term(2))),
            entries: vec![entry(6, 2), entry(7, 3), entry(8, 3)],
            membership: None,
        };
        let mut node = Node::new(config(1), voters(3), rec, LogIndex(applied), 1).unwrap();
        let acts = node.step(Millis(0), Event::Timeout);
        let expected: Vec<LogIndex> = reported.into_iter().map(LogIndex).collect();
        assert_eq!(commits(&acts), expected, "commit {commit}");
        assert_eq!(node.snapshot(), Some((LogIndex(5), Term(2))));
        assert_eq!(node.first_index(), LogIndex(6));
        assert!(node.commit_index() >= LogIndex(applied.max(5)));
        assert_eq!(node.durable_index(), LogIndex(8));
        // The snapshot's last entry still matches a leader's probe.
        let acts = step(&mut node, 10, append(2, 3, (5, 2), vec![], 5));
        assert!(!successes(&persist_all(&mut node, 10, &acts)).is_empty());
    }
}

#[test]
fn section_7_restarted_cluster_members_recover_from_their_snapshots() {
    let mut c = Cluster::new(3, 71);
    let leader = c.run_until_leader(10_000).unwrap();
    for k in 0..20u8 {
        c.propose(leader, vec![Bytes::from(vec![k])]);
        c.deliver_all();
    }
    for id in c.ids() {
        c.snapshot(id, LogIndex(c.applied_index(id).0 - 3)).unwrap();
    }
    let before: Vec<_> = c.ids().iter().map(|&id| c.state(id)).collect();
    for id in c.ids() {
        c.restart(id);
        assert_eq!(c.applied_index(id), c.disk_snapshot(id).unwrap().index);
        let node = c.node(id).unwrap();
        assert_eq!(node.snapshot().map(|s| s.0), Some(c.applied_index(id)));
    }
    let leader = c.run_until_leader(10 * ELECTION_MS).unwrap();
    c.propose(leader, vec![Bytes::from_static(b"after")]);
    c.advance(5 * ELECTION_MS);
    let ids = c.ids();
    for (k, &id) in ids.iter().enumerate() {
        assert!(c.applied_index(id) > before[k].index, "{id} moved on");
        assert_eq!(c.state(id), c.state(leader), "{id}");
    }
}

// ----- Whole clusters -----

/// Elects a leader, writes `before` commands, cuts `lagging` off, writes `writes` more while
/// compacting every node but `lagging` every `every` writes (keeping `keep` trailing entries),
/// then heals. Returns the leader and what `lagging` had applied when it was cut off.
fn run_cut_off(
    c: &mut Cluster,
    lagging: NodeId,
    before: u8,
    writes: u8,
    every: u8,
    keep: u64,
) -> (NodeId, LogIndex) {
    let leader = c.run_until_leader(10_000).unwrap();
    assert_ne!(
        leader, lagging,
        "pick a seed whose first leader is another node"
    );
    for k in 0..before {
        c.propose(leader, vec![Bytes::from(vec![k])]);
        c.deliver_all();
    }
    c.advance(HEARTBEAT_MS);
    let cut_at = c.applied_index(lagging);
    c.isolate(lagging);
    for k in 0..writes {
        c.propose(leader, vec![Bytes::from(vec![k])]);
        c.deliver_all();
        if k % every == every - 1 {
            for id in c.ids().into_iter().filter(|&id| id != lagging) {
                let applied = c.applied_index(id).0;
                c.snapshot(id, LogIndex(applied.saturating_sub(keep)));
            }
        }
    }
    c.heal();
    c.advance(5 * ELECTION_MS);
    (leader, cut_at)
}

#[test]
fn section_7_a_cut_off_follower_catches_up_by_snapshot_and_all_states_agree() {
    let mut c = Cluster::new(3, 5);
    let lagging = n(3);
    let (leader, cut_at) = run_cut_off(&mut c, lagging, 3, 60, 10, 5);
    let sent: Vec<_> = c
        .transcript()
        .iter()
        .filter(|(_, a)| matches!(a, Action::SendSnapshot { .. }))
        .collect();
    assert_eq!(sent.len(), 1, "one snapshot for one need: {sent:?}");
    let snap = c.node(leader).unwrap().snapshot().unwrap();
    assert_eq!(c.node(lagging).unwrap().snapshot(), Some(snap));
    assert!(c.node(lagging).unwrap().first_index() > LogIndex(1));
    assert_eq!(
        c.disk_snapshot(lagging).map(|s| (s.index, s.term)),
        Some(snap)
    );
    for id in c.ids() {
        assert_eq!(c.state(id), c.state(leader), "{id}");
    }
    // It applied nothing the snapshot covers beyond what it had before the cut.
    assert!(
        c.applied(lagging)
            .iter()
            .all(|e| e.index <= cut_at || e.index > snap.0)
    );
    // And it keeps up afterwards.
    c.propose(leader, vec![Bytes::from_static(b"z")]);
    c.advance(ELECTION_MS);
    assert_eq!(c.state(lagging), c.state(leader));
}

#[test]
fn section_7_a_follower_within_the_kept_entries_catches_up_from_the_log() {
    // The leader keeps more trailing entries than the lagging follower misses: no snapshot.
    let mut c = Cluster::new(3, 5);
    let (leader, cut_at) = run_cut_off(&mut c, n(3), 10, 10, 10, 15);
    let node = c.node(leader).unwrap();
    assert!(node.snapshot().is_some());
    assert!(node.first_index() > LogIndex(1), "the leader did compact");
    assert!(
        node.first_index() <= cut_at.next().unwrap(),
        "but kept what node 3 needs"
    );
    assert!(
        !c.transcript()
            .iter()
            .any(|(_, a)| matches!(a, Action::SendSnapshot { .. }))
    );
    assert_eq!(c.state(n(3)), c.state(leader));
    assert_eq!(c.node(n(3)).unwrap().snapshot(), None);
}

#[test]
fn section_7_a_crash_between_install_and_snapshot_installed_loses_nothing_acknowledged() {
    let mut c = Cluster::new(3, 5);
    let lagging = n(3);
    let leader = c.run_until_leader(10_000).unwrap();
    c.deliver_all();
    c.isolate(lagging);
    for k in 0..30u8 {
        c.propose(leader, vec![Bytes::from(vec![k])]);
        c.deliver_all();
    }
    for id in [n(1), n(2)] {
        c.snapshot(id, LogIndex(c.applied_index(id).0 + 1));
    }
    let snap = c.node(leader).unwrap().snapshot().unwrap();
    // The install reaches node 3 but its disk does not finish it.
    c.hold_disk(lagging);
    c.heal();
    c.clear_transcript();
    let asked = |c: &Cluster| {
        c.transcript()
            .iter()
            .any(|(id, a)| *id == lagging && matches!(a, Action::InstallSnapshot { .. }))
    };
    for _ in 0..100 {
        c.tick(HEARTBEAT_MS / 2);
        if c.deliver_until(asked) {
            break;
        }
    }
    assert!(asked(&c), "node 3 was asked to install");
    c.advance(HEARTBEAT_MS * 3);
    let acked = c.transcript().iter().any(|(id, a)| {
        *id == lagging
            && matches!(a, Action::Send { msg: Message::AppendEntriesResponse(r), .. }
                if matches!(r.outcome, AppendOutcome::Success { match_index } if match_index >= snap.0))
    });
    assert!(!acked, "acknowledged a snapshot that is not durable");
    c.crash(lagging);
    assert_eq!(
        c.disk_snapshot(lagging),
        None,
        "the install never reached the disk"
    );
    c.restart(lagging);
    assert_eq!(
        c.applied_index(lagging),
        LogIndex(0),
        "back to the old state"
    );
    c.advance(5 * ELECTION_MS);
    assert_eq!(c.state(lagging), c.state(leader));
    assert_eq!(
        c.disk_snapshot(lagging).map(|s| (s.index, s.term)),
        Some(snap)
    );
}

#[test]
fn section_7_random_compaction_cuts_and_crashes_keep_every_state_equal() {
    // Every seed: random writes, compactions (keeping a few trailing entries or none), cuts,
    // slow disks and crashes (some in the middle of an install); the harness checks safety
    // after every step, and at the end every state machine must equal the leader's.
    let mut installs_seen = 0;
    for seed in 0..64u64 {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut c = Cluster::new(3, seed);
        c.set_recording(false);
        let ids = c.ids();
        for round in 0..150u32 {
            let id = ids[rng.random_range(0..ids.len())];
            match rng.random_range(0..12u32) {
                10 => c.hold_disk(id),
                11 => c.flush(id),
                0..=4 => {
                    if let Some(leader) = c.leader() {
                        c.propose(leader, vec![Bytes::from(round.to_le_bytes().to_vec())]);
                    }
                }
                5 | 6 => {
                    let applied = c.applied_index(id).0;
                    let keep = rng.random_range(0..4u64);
                    c.snapshot(id, LogIndex(applied.saturating_sub(keep)));
                }
                7 => c.isolate(id),
                8 => c.heal(),
                _ => {
                    if rng.random_bool(0.5) {
                        c.restart(id);
                    } else {
                        c.advance(ELECTION_MS);
                    }
                }
            }
            c.advance(rng.random_range(1..=HEARTBEAT_MS * 3));
        }
        c.heal();
        for &id in &ids {
            c.flush(id);
        }
        let leader = c
            .run_until_leader(20 * ELECTION_MS)
            .expect("a leader after healing");
        c.propose(leader, vec![Bytes::from_static(b"end")]);
        c.advance(10 * ELECTION_MS);
        let leader = c.leader().unwrap();
        for &id in &ids {
            assert_eq!(c.state(id), c.state(leader), "seed {seed}: {id}");
        }
        installs_seen += c.installs_total();
    }
    assert!(
        installs_seen >= 40,
        "the runs must exercise installs: {installs_seen}"
    );
}

//! Commitment (Raft 5.3, 5.4.2 and figure 8; thesis 10.2.1): guards against committing what a
//! later leader could overwrite, counting writes that are not yet on disk, acknowledging
//! entries before they are durable, and commit indexes that move backwards.

use bytes::Bytes;
use raft::testing::Cluster;
use raft::{Action, AppendOutcome, Event, LogIndex, Millis, NodeId, Term};

use crate::common::*;

#[test]
fn section_5_4_2_old_term_entries_commit_only_with_an_entry_of_the_current_term() {
    // Node 1 of 5 has log terms [1, 2] and wins term 4; its no-op takes index 3.
    let (mut leader, _) = node_with(5, 3, &[1, 2], config(1));
    elect(&mut leader, 3000);
    assert_eq!(leader.term(), Term(4));
    // A majority (1, 2, 3) holds index 2, of term 2: not committed (figure 8).
    let mut acts = step(&mut leader, 3001, append_success(2, 4, 2));
    acts.extend(step(&mut leader, 3001, append_success(3, 4, 2)));
    assert_eq!(leader.commit_index(), LogIndex(0));
    assert!(commits(&acts).is_empty());
    // Once the no-op of term 4 is on a majority, everything up to it commits, in order.
    let mut acts = step(&mut leader, 3002, append_success(2, 4, 3));
    acts.extend(step(&mut leader, 3002, append_success(3, 4, 3)));
    assert_eq!(leader.commit_index(), LogIndex(3));
    assert_eq!(commits(&acts), [LogIndex(1), LogIndex(2), LogIndex(3)]);
}

#[test]
fn section_5_4_2_figure_8_an_entry_on_a_majority_is_not_committed_too_early() {
    // One entry per message, so the old entry and the new leader's no-op travel apart.
    let mut c = Cluster::with_config(5, 8, |cfg| cfg.max_entries_per_msg = 1);
    let [s1, s2, s3, s4, s5] = [1, 2, 3, 4, 5].map(NodeId);
    c.elect(s1);
    c.deliver_all();
    // (a) S1 replicates X (index 2) to S2 only, then crashes.
    for other in [s3, s4, s5] {
        c.cut_link(s1, other);
    }
    c.propose(s1, vec![Bytes::from_static(b"X")]);
    c.deliver_all();
    let x_term = c.node(s1).unwrap().term();
    assert_eq!(c.node(s2).unwrap().entry(LogIndex(2)).unwrap().term, x_term);
    c.crash(s1);
    c.heal();
    // (b) S5 wins the next term with S3 and S4 and appends its no-op at index 2 but is cut off
    // before sending it.
    c.isolate(s2);
    c.campaign(s5);
    assert!(c.deliver_until(|c| c.leader() == Some(s5)));
    let s5_term = c.node(s5).unwrap().term();
    c.isolate(s5);
    c.heal_node_links(s2);
    // (c) S1 restarts and wins a later term with S2, S3, S4; it gets X onto S3: X is on a
    // majority (S1, S2, S3), its own no-op (index 3) only on S1 and S2.
    c.restart(s1);
    c.cut_link(s1, s4);
    // Its first try may only teach it the current term (S3 and S4 moved on for S5).
    let won = (0..3).any(|_| {
        c.campaign(s1);
        c.deliver_until(|c| c.leader() == Some(s1))
    });
    assert!(won);
    let reached = c.deliver_until(|c| {
        c.node(s3)
            .and_then(|n| n.entry(LogIndex(2)))
            .is_some_and(|e| e.term == x_term)
    });
    assert!(reached);
    c.cut_link(s1, s3);
    c.deliver_all();
    // The commit rule holds X back: it is not of S1's term.
    assert!(c.node(s1).unwrap().commit_index() < LogIndex(2));
    // (d) S1 and S2 crash; S5 comes back, wins with S3 and S4, and overwrites X. Had S1
    // committed X, the harness would now see two different entries committed at index 2.
    c.crash(s1);
    c.crash(s2);
    c.heal();
    c.advance(10 * ELECTION_MS);
    assert_eq!(c.leader(), Some(s5));
    let entry = c.node(s3).unwrap().entry(LogIndex(2)).unwrap().clone();
    assert_eq!(entry.term, s5_term, "X was overwritten on S3");
    assert!(c.node(s3).unwrap().commit_index() >= LogIndex(2));
}

#[test]
fn section_10_2_1_leader_counts_its_own_entry_only_once_durable() {
    // 5 nodes: the leader and two followers make a majority only with the leader's own write.
    let (mut leader, _) = node_with(5, 1, &[], config(1));
    elect(&mut leader, 3000);
    let term = leader.term().0;
    let acts = step(
        &mut leader,
        3001,
        Event::Append(vec![(raft::ProposalId(1), Bytes::from_static(b"a"))]),
    );
    let mine = stores(&acts);
    assert_eq!(mine.len(), 1);
    step(&mut leader, 3002, append_success(2, term, 2));
    step(&mut leader, 3002, append_success(3, term, 2));
    assert_eq!(leader.commit_index(), LogIndex(1), "only the no-op");
    let acts = step(
        &mut leader,
        3003,
        Event::LogStored {
            index: LogIndex(2),
            term: Term(term),
        },
    );
    assert_eq!(commits(&acts), [LogIndex(2)]);
}

#[test]
fn section_10_2_1_followers_can_commit_without_the_leaders_own_write() {
    // 3 nodes: two durable followers are a majority even while the leader's disk lags.
    let (mut leader, _) = node_with(3, 1, &[], config(1));
    elect(&mut leader, 3000);
    let term = leader.term().0;
    step(
        &mut leader,
        3001,
        Event::Append(vec![(raft::ProposalId(1), Bytes::from_static(b"a"))]),
    );
    step(&mut leader, 3002, append_success(2, term, 2));
    assert_eq!(leader.commit_index(), LogIndex(1));
    step(&mut leader, 3002, append_success(3, term, 2));
    assert_eq!(leader.commit_index(), LogIndex(2));
    assert_eq!(leader.durable_index(), LogIndex(1));
}

#[test]
fn follower_acknowledges_only_durable_entries() {
    let (mut node, _) = node_with(3, 1, &[], config(1));
    let acts = step(
        &mut node,
        10,
        append(2, 1, (0, 0), vec![entry(1, 1), entry(2, 1)], 0),
    );
    assert_eq!(stores(&acts).len(), 2);
    assert!(append_responses(&acts).is_empty(), "nothing durable yet");
    // A partial acknowledgement from the disk: answer what is durable.
    let acts = step(
        &mut node,
        11,
        Event::LogStored {
            index: LogIndex(1),
            term: Term(1),
        },
    );
    let resp = append_responses(&acts);
    assert_eq!(
        resp[0].1.outcome,
        AppendOutcome::Success {
            match_index: LogIndex(1)
        }
    );
    let acts = step(
        &mut node,
        12,
        Event::LogStored {
            index: LogIndex(2),
            term: Term(1),
        },
    );
    let resp = append_responses(&acts);
    assert_eq!(
        resp[0].1.outcome,
        AppendOutcome::Success {
            match_index: LogIndex(2)
        }
    );
}

#[test]
fn a_late_storage_acknowledgement_for_truncated_entries_is_ignored() {
    let (mut node, _) = node_with(3, 1, &[], config(1));
    step(
        &mut node,
        10,
        append(2, 1, (0, 0), vec![entry(1, 1), entry(2, 1)], 0),
    );
    // A leader of term 2 replaces index 2 before the first write is durable.
    step(&mut node, 11, append(3, 2, (1, 1), vec![entry(2, 2)], 0));
    let acts = step(
        &mut node,
        12,
        Event::LogStored {
            index: LogIndex(2),
            term: Term(1),
        },
    );
    assert_eq!(node.durable_index(), LogIndex(0));
    assert!(append_responses(&acts).is_empty());
    let acts = step(
        &mut node,
        13,
        Event::LogStored {
            index: LogIndex(2),
            term: Term(2),
        },
    );
    assert_eq!(node.durable_index(), LogIndex(2));
    // The answer goes only once the term-2 state is durable too.
    let hs = node.hard_state();
    let acts = persist(&mut node, 13, &[Action::SaveState(hs)])
        .into_iter()
        .chain(acts)
        .collect::<Vec<_>>();
    let resp = append_responses(&acts);
    assert_eq!(resp.len(), 1);
    assert_eq!(resp[0].0, n(3));
}

#[test]
fn section_5_3_follower_commit_is_capped_by_what_matches_the_leader() {
    // Follower log terms [1, 1, 1, 1]; leader of term 2 at commit 4.
    // (request prev, entries, leader commit, expected commit)
    let table = [
        ((2, 1), vec![], 4, 2),            // only up to index 2 is known to match
        ((4, 1), vec![], 4, 4),            // everything matches
        ((4, 1), vec![], 3, 3),            // the leader's commit is the cap
        ((2, 1), vec![entry(3, 2)], 9, 3), // after truncating index 4
    ];
    for (prev, entries, commit, expected) in table {
        let (mut node, _) = node_with(3, 1, &[1, 1, 1, 1], config(1));
        step(&mut node, 10, append(2, 2, prev, entries.clone(), commit));
        assert_eq!(
            node.commit_index(),
            LogIndex(expected),
            "{prev:?} {entries:?}"
        );
    }
}

#[test]
fn commit_never_decreases() {
    let (mut node, _) = node_with(3, 1, &[1, 1, 1], config(1));
    step(&mut node, 10, append(2, 1, (3, 1), vec![], 3));
    assert_eq!(node.commit_index(), LogIndex(3));
    let acts = step(&mut node, 11, append(2, 1, (3, 1), vec![], 1));
    assert_eq!(node.commit_index(), LogIndex(3));
    assert!(commits(&acts).is_empty());
}

#[test]
fn heartbeat_commit_is_followed_up_to_the_log_end() {
    let (mut node, _) = node_with(3, 1, &[1, 1], config(1));
    let hb = msg(
        2,
        raft::Message::Heartbeat(raft::Heartbeat {
            term: Term(1),
            leader: n(2),
            commit: LogIndex(5),
            read_round: 7,
        }),
    );
    let acts = step(&mut node, 10, hb);
    assert_eq!(node.commit_index(), LogIndex(2));
    assert_eq!(commits(&acts), [LogIndex(1), LogIndex(2)]);
    let echoed = sends(&acts)
        .into_iter()
        .any(|(_, m)| matches!(m, raft::Message::HeartbeatResponse(r) if r.read_round == 7));
    assert!(echoed);
}

#[test]
fn commits_are_reported_in_order_once_including_noops_and_again_after_restart() {
    let mut c = Cluster::new(3, 4);
    let leader = c.run_until_leader(10_000).unwrap();
    for k in 0..5u8 {
        c.propose(leader, vec![Bytes::from(vec![k])]);
    }
    c.deliver_all();
    c.advance(300); // heartbeats carry the final commit index to followers
    let applied: Vec<u64> = c.applied(leader).iter().map(|e| e.index.0).collect();
    assert_eq!(applied, [1, 2, 3, 4, 5, 6]);
    // The first leader's no-op writes the bootstrap configuration down.
    assert!(matches!(
        c.applied(leader)[0].payload,
        raft::Payload::Membership(_)
    ));
    // After a restart the state machine is empty (applied = 0): what is known committed from
    // the saved hard state is reported again, from index 1; the rest follows from the leader.
    let follower = c.ids().into_iter().find(|&id| id != leader).unwrap();
    c.restart(follower);
    c.advance(300);
    let again: Vec<u64> = c.applied(follower).iter().map(|e| e.index.0).collect();
    assert_eq!(again, [1, 2, 3, 4, 5, 6]);
}

#[test]
fn restart_reports_entries_after_applied_from_the_saved_commit() {
    let recovered = raft::Recovered {
        hard_state: raft::HardState {
            term: Term(2),
            vote: None,
            commit: LogIndex(3),
        },
        snapshot: None,
        entries: log_of(&[1, 1, 2, 2]),
        membership: None,
    };
    let mut node = raft::Node::new(config(1), voters(3), recovered, LogIndex(1), 5).unwrap();
    let acts = node.step(Millis(0), Event::Timeout);
    assert_eq!(commits(&acts), [LogIndex(2), LogIndex(3)]);
    assert_eq!(node.durable_index(), LogIndex(4));
}

//! Linearizable reads by ReadIndex (thesis 6.4): guards against stale reads from a leader that
//! does not yet know the commit index, or that was deposed without noticing, and against reads
//! that never complete.

use bytes::Bytes;
use raft::testing::{Cluster, Outcome};
use raft::{
    Action, Event, HeartbeatResponse, LogIndex, Message, Millis, Node, NodeId, ReadError, ReadId,
    Recovered, Role, Term,
};

use crate::common::*;

fn read_results(actions: &[Action]) -> Vec<(ReadId, Result<LogIndex, ReadError>)> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::ReadReady { id, index } => Some((*id, Ok(*index))),
            Action::ReadError { id, error } => Some((*id, Err(*error))),
            _ => None,
        })
        .collect()
}

fn heartbeat_answer(from: u64, term: Term, round: u64) -> Event {
    msg(
        from,
        Message::HeartbeatResponse(HeartbeatResponse {
            term,
            read_round: round,
        }),
    )
}

/// Node 1 of 3 elected and its no-op committed (node 2 acknowledged it).
fn leader_with_commit() -> Node {
    let (mut leader, _) = node_with(3, 1, &[], config(1));
    elect(&mut leader, 3000);
    let term = leader.term().0;
    step(&mut leader, 3000, append_success(2, term, 1));
    assert_eq!(leader.commit_index(), LogIndex(1));
    leader
}

#[test]
fn section_6_4_reads_on_a_non_leader_are_refused_with_the_leader_hint() {
    let (mut follower, _) = node_with(3, 1, &[], config(1));
    step(&mut follower, 10, append(2, 1, (0, 0), vec![], 0));
    let acts = step(&mut follower, 11, Event::ReadIndex(ReadId(1)));
    assert_eq!(
        read_results(&acts),
        [(ReadId(1), Err(ReadError::NotLeader { leader: Some(n(2)) }))]
    );
    let (mut lost, _) = node_with(3, 1, &[], config(1));
    let acts = step(&mut lost, 11, Event::ReadIndex(ReadId(2)));
    assert_eq!(
        read_results(&acts),
        [(ReadId(2), Err(ReadError::NotLeader { leader: None }))]
    );
}

#[test]
fn section_6_4_a_read_waits_for_a_heartbeat_round_sent_after_it_arrived() {
    let mut leader = leader_with_commit();
    let term = leader.term();
    let acts = step(&mut leader, 3001, Event::ReadIndex(ReadId(7)));
    assert!(read_results(&acts).is_empty());
    let rounds: Vec<u64> = heartbeats(&acts)
        .iter()
        .map(|(_, h)| h.read_round)
        .collect();
    assert_eq!(rounds.len(), 2, "a round starts at once");
    let round = rounds[0];
    // An answer to an older round confirms nothing.
    let acts = step(&mut leader, 3002, heartbeat_answer(2, term, round - 1));
    assert!(read_results(&acts).is_empty());
    // One follower plus the leader is a majority of 3.
    let acts = step(&mut leader, 3003, heartbeat_answer(2, term, round));
    assert_eq!(read_results(&acts), [(ReadId(7), Ok(LogIndex(1)))]);
}

#[test]
fn section_6_4_a_new_leader_reads_only_after_committing_its_noop() {
    let (mut leader, _) = node_with(3, 1, &[1, 1], config(1));
    elect(&mut leader, 3000);
    let term = leader.term();
    let acts = step(&mut leader, 3001, Event::ReadIndex(ReadId(1)));
    assert!(read_results(&acts).is_empty());
    assert!(heartbeats(&acts).is_empty(), "parked: no round yet");
    // The no-op (index 3) commits: the read gets the commit index and a round starts.
    let acts = step(&mut leader, 3002, append_success(2, term.0, 3));
    let rounds: Vec<u64> = heartbeats(&acts)
        .iter()
        .map(|(_, h)| h.read_round)
        .collect();
    assert!(!rounds.is_empty());
    let acts = step(&mut leader, 3003, heartbeat_answer(3, term, rounds[0]));
    assert_eq!(read_results(&acts), [(ReadId(1), Ok(LogIndex(3)))]);
}

#[test]
fn section_6_4_reads_arriving_during_a_round_share_the_next_one() {
    let mut leader = leader_with_commit();
    let term = leader.term();
    let first = step(&mut leader, 3001, Event::ReadIndex(ReadId(1)));
    let round1 = heartbeats(&first)[0].1.read_round;
    let mut during = Vec::new();
    for id in 2..=20 {
        during.extend(step(&mut leader, 3002, Event::ReadIndex(ReadId(id))));
    }
    assert!(
        heartbeats(&during).is_empty(),
        "no extra rounds while one is in flight"
    );
    let acts = step(&mut leader, 3003, heartbeat_answer(2, term, round1));
    assert_eq!(read_results(&acts), [(ReadId(1), Ok(LogIndex(1)))]);
    let round2: Vec<(NodeId, u64)> = heartbeats(&acts)
        .iter()
        .map(|(to, h)| (*to, h.read_round))
        .collect();
    // One shared round for the 19 waiting reads, sent only to the voter a majority needs: the
    // one that answered the last round first.
    assert_eq!(round2.len(), 1, "{round2:?}");
    assert_eq!(round2[0].0, NodeId(2));
    let acts = step(&mut leader, 3004, heartbeat_answer(2, term, round2[0].1));
    assert_eq!(read_results(&acts).len(), 19);
}

#[test]
fn section_6_4_a_read_round_to_a_silent_voter_goes_to_all_after_a_fifth_of_a_heartbeat() {
    let mut leader = leader_with_commit();
    let term = leader.term();
    let first = step(&mut leader, 3001, Event::ReadIndex(ReadId(1)));
    let round1 = heartbeats(&first)[0].1.read_round;
    step(&mut leader, 3002, Event::ReadIndex(ReadId(2)));
    // Node 2 answers first, so the round for read 2 goes to it alone.
    let acts = step(&mut leader, 3003, heartbeat_answer(2, term, round1));
    let round2 = heartbeats(&acts);
    assert_eq!(round2.len(), 1);
    // Node 2 falls silent. Before the fallback nothing more is sent; after it, every follower
    // gets the next round, and node 3 alone (with the leader) confirms it.
    let wait = config(1).heartbeat_interval_ms / 5;
    let acts = step(&mut leader, 3003 + wait - 1, Event::Timeout);
    assert!(heartbeats(&acts).is_empty());
    let acts = step(&mut leader, 3003 + wait, Event::Timeout);
    let round3 = heartbeats(&acts);
    let mut to: Vec<NodeId> = round3.iter().map(|(to, _)| *to).collect();
    to.sort();
    assert_eq!(to, [NodeId(2), NodeId(3)]);
    let acts = step(
        &mut leader,
        3003 + wait + 1,
        heartbeat_answer(3, term, round3[0].1.read_round),
    );
    assert_eq!(read_results(&acts), [(ReadId(2), Ok(LogIndex(1)))]);
}

#[test]
fn section_6_4_pending_reads_fail_when_leadership_is_lost() {
    let mut leader = leader_with_commit();
    step(&mut leader, 3001, Event::ReadIndex(ReadId(1)));
    let acts = step(&mut leader, 3002, append(3, 9, (0, 0), vec![], 0));
    assert_eq!(leader.role(), Role::Follower);
    assert_eq!(
        read_results(&acts),
        [(ReadId(1), Err(ReadError::NotLeader { leader: Some(n(3)) }))]
    );
}

#[test]
fn single_node_reads_are_ready_once_the_noop_is_durable() {
    let mut node = Node::new(
        config(1),
        raft::Membership::voters_only([n(1)]),
        Recovered::default(),
        LogIndex(0),
        3,
    )
    .unwrap();
    let start = node.step(Millis(0), Event::Timeout);
    let acts = node.step(Millis(1), Event::ReadIndex(ReadId(1)));
    assert!(
        read_results(&acts).is_empty(),
        "the no-op is not committed yet"
    );
    let acts = persist(&mut node, 2, &start);
    assert_eq!(read_results(&acts), [(ReadId(1), Ok(LogIndex(1)))]);
    let acts = node.step(Millis(3), Event::ReadIndex(ReadId(2)));
    assert_eq!(read_results(&acts), [(ReadId(2), Ok(LogIndex(1)))]);
}

#[test]
fn a_read_after_a_write_observes_it() {
    let mut c = Cluster::new(5, 21);
    let leader = c.run_until_leader(10_000).unwrap();
    let ids = c.propose(leader, vec![Bytes::from_static(b"w")]);
    c.deliver_all();
    let Some(Outcome::Appended { index, .. }) = c.proposal(ids[0]) else {
        panic!("not appended");
    };
    let read = c.read(leader);
    c.deliver_all();
    match c.read_outcome(read) {
        Some(Outcome::ReadReady(at)) => assert!(at >= index),
        other => panic!("read not ready: {other:?}"),
    }
}

#[test]
fn a_deposed_leader_cut_off_from_the_majority_never_serves_a_read() {
    let mut c = Cluster::new(3, 22);
    let old = c.run_until_leader(10_000).unwrap();
    c.isolate(old);
    c.advance(5 * ELECTION_MS);
    let new = c.leader().unwrap();
    assert_ne!(new, old);
    // The old leader has stepped down by check-quorum: refused at once. Even without
    // check-quorum the read would wait forever for a majority, never be served.
    let read = c.read(old);
    c.deliver_all();
    assert!(matches!(
        c.read_outcome(read),
        Some(Outcome::ReadRefused(_))
    ));
}

#[test]
fn without_check_quorum_an_isolated_leader_keeps_reads_pending() {
    let mut c = Cluster::with_config(3, 23, |cfg| cfg.check_quorum = false);
    let old = c.run_until_leader(10_000).unwrap();
    c.deliver_all();
    c.isolate(old);
    let read = c.read(old);
    c.advance(5 * ELECTION_MS);
    assert_eq!(c.node(old).unwrap().role(), Role::Leader);
    assert_eq!(c.read_outcome(read), None, "never confirmed");
    // Healing lets the newer term reach it: it steps down and the read fails.
    c.heal();
    c.advance(5 * ELECTION_MS);
    assert!(matches!(
        c.read_outcome(read),
        Some(Outcome::ReadRefused(_))
    ));
}

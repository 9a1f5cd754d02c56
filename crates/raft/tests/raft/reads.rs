//! Thesis 6.4.1 and 6.4: lease reads on the leader and reads served by followers. Guards
//! against a lease read without a lease (none yet, expired, or given up for a transfer), a
//! lease broken by a restarted voter, and a follower read that does not wait for the leader's
//! read index or that hangs when the leader is gone.

use raft::testing::{Cluster, Outcome};
use raft::{LogIndex, NodeId};

use crate::common::*;

fn lease_cluster() -> (Cluster, NodeId) {
    let mut c = Cluster::with_config(3, 21, |cfg| cfg.lease_reads = true);
    let leader = c.run_until_leader(10_000).unwrap();
    c.deliver_all();
    c.advance(300);
    (c, leader)
}

#[test]
fn a_leader_with_a_lease_serves_a_read_at_once_and_without_one_waits_for_a_round() {
    let (mut c, leader) = lease_cluster();
    let commit = c.node(leader).unwrap().commit_index();
    // Heartbeats answered within the last lease: ready in the same step, no message needed.
    let r = c.read(leader);
    assert_eq!(c.read_outcome(r), Some(Outcome::ReadReady(commit)));
    // Cut off, the leader's lease runs out; then a read waits for a round that cannot come.
    for id in c.ids() {
        if id != leader {
            c.isolate(id);
        }
    }
    c.tick(1_000);
    let r = c.read(leader);
    assert_eq!(
        c.read_outcome(r),
        None,
        "no lease: the read waits for a round"
    );
}

#[test]
fn without_lease_reads_every_read_waits_for_a_round() {
    let mut c = Cluster::new(3, 21);
    let leader = c.run_until_leader(10_000).unwrap();
    c.deliver_all();
    c.advance(300);
    let r = c.read(leader);
    assert_eq!(c.read_outcome(r), None);
    c.deliver_all();
    assert!(matches!(c.read_outcome(r), Some(Outcome::ReadReady(_))));
}

#[test]
fn a_transfer_ends_the_lease() {
    let (mut c, leader) = lease_cluster();
    let target = c.ids().into_iter().find(|&id| id != leader).unwrap();
    // Hold the transfer: the target is cut off, so the leader waits for it to catch up.
    c.isolate(target);
    c.propose(leader, vec![bytes::Bytes::from_static(b"x")]);
    c.deliver_all();
    c.step(leader, raft::Event::TransferLeadership { to: Some(target) });
    let r = c.read(leader);
    assert_eq!(
        c.read_outcome(r),
        None,
        "the target may campaign past stickiness: no lease"
    );
    // The round may have gone to the cut-off target alone (it answered first before): then
    // the leader asks every follower a fifth of a heartbeat interval later.
    c.advance(raft::Config::new(leader).heartbeat_interval_ms / 5);
    assert!(matches!(c.read_outcome(r), Some(Outcome::ReadReady(_))));
}

#[test]
fn with_lease_reads_a_restarted_voter_grants_no_vote_for_an_election_timeout() {
    // It may have acknowledged a leader's lease just before it restarted.
    for (lease, at, granted) in [(true, 10, false), (true, 1_100, true), (false, 10, true)] {
        let mut cfg = config(1);
        cfg.lease_reads = lease;
        let (mut node, _) = node_with(3, 1, &[], cfg);
        let mut acts = step(&mut node, at, vote_request(2, 2, (0, 0), false));
        // A granted vote goes out once it is durable.
        let saved = raft::Event::StateSaved(node.hard_state());
        acts.extend(step(&mut node, at, saved));
        let votes = vote_responses(&acts);
        assert_eq!(votes[0].1.granted, granted, "lease {lease} at {at}");
    }
}

#[test]
fn a_follower_serves_a_read_at_the_index_the_leader_confirms() {
    let mut c = Cluster::with_config(3, 5, |cfg| cfg.follower_reads = true);
    let leader = c.run_until_leader(10_000).unwrap();
    c.propose(leader, vec![bytes::Bytes::from_static(b"x")]);
    c.deliver_all();
    c.advance(300);
    let follower = c.ids().into_iter().find(|&id| id != leader).unwrap();
    let commit = c.node(leader).unwrap().commit_index();
    let r = c.read(follower);
    assert_eq!(c.read_outcome(r), None, "it asks the leader first");
    c.deliver_all();
    assert_eq!(c.read_outcome(r), Some(Outcome::ReadReady(commit)));
    assert!(commit >= LogIndex(2));
}

#[test]
fn a_follower_read_fails_when_the_leader_does_not_answer() {
    let mut c = Cluster::with_config(3, 5, |cfg| cfg.follower_reads = true);
    let leader = c.run_until_leader(10_000).unwrap();
    c.deliver_all();
    c.advance(300);
    let follower = c.ids().into_iter().find(|&id| id != leader).unwrap();
    c.cut_link(follower, leader);
    let r = c.read(follower);
    c.tick(2_500);
    assert!(
        matches!(c.read_outcome(r), Some(Outcome::ReadRefused(_))),
        "{:?}",
        c.read_outcome(r)
    );
}

//! Thesis chapter 4 and section 3.10: single-server membership changes (learners, promotion,
//! removal, the leader removing itself) and leadership transfer. Guards against: a change
//! taking effect before it commits, two changes in flight, a learner counted in a majority or
//! standing for election, a removed leader that keeps the cluster waiting, and a transfer that
//! waits for an election timeout.

use bytes::Bytes;
use raft::testing::{Cluster, Outcome};
use raft::{Addresses, LogIndex, Membership, MembershipChange, NodeId, Payload, Role, Term};

fn n(id: u64) -> NodeId {
    NodeId(id)
}

fn addresses(id: u64) -> Addresses {
    Addresses {
        peer: format!("127.0.0.1:{}", 9000 + id),
        client: format!("127.0.0.1:{}", 8000 + id),
        http: None,
    }
}

fn add(id: u64) -> MembershipChange {
    MembershipChange::AddLearner {
        id: n(id),
        addresses: addresses(id),
    }
}

/// A 3-voter cluster with `joiners` nodes waiting, its leader elected and its first entry
/// committed everywhere.
fn cluster(joiners: u64) -> (Cluster, NodeId) {
    let mut c = Cluster::with_joiners(3, joiners, 11, |_| {});
    let leader = c.run_until_leader(10_000).unwrap();
    c.deliver_all();
    c.advance(300);
    (c, leader)
}

/// Runs until the leader's change commits; returns the outcome.
fn commit_change(c: &mut Cluster, leader: NodeId, change: MembershipChange) -> Outcome {
    let p = c.change(leader, change);
    c.deliver_all();
    c.advance(300);
    c.proposal(p).unwrap()
}

fn membership(c: &Cluster, id: NodeId) -> Membership {
    c.node(id).unwrap().membership().clone()
}

#[test]
fn a_learner_receives_the_log_but_neither_votes_nor_counts() {
    let (mut c, leader) = cluster(1);
    assert!(
        membership(&c, n(4)).is_empty(),
        "a joiner knows nothing yet"
    );
    assert!(matches!(
        commit_change(&mut c, leader, add(4)),
        Outcome::Appended { .. }
    ));
    for id in c.ids() {
        let m = membership(&c, id);
        assert!(m.contains(n(4)) && !m.is_voter(n(4)), "on {id}: {m:?}");
    }
    // The learner holds what the others hold.
    c.propose(leader, vec![Bytes::from_static(b"x")]);
    c.deliver_all();
    c.advance(300);
    assert_eq!(c.applied_index(n(4)), c.applied_index(leader));
    // With the learner cut off, the three voters still commit; without two voters, even
    // with the learner, nothing commits.
    c.isolate(n(4));
    let before = c.node(leader).unwrap().commit_index();
    c.propose(leader, vec![Bytes::from_static(b"y")]);
    c.deliver_all();
    assert!(c.node(leader).unwrap().commit_index() > before);
    c.heal();
    let others: Vec<NodeId> = [1, 2, 3]
        .map(n)
        .into_iter()
        .filter(|&v| v != leader)
        .collect();
    for &v in &others {
        c.isolate(v);
    }
    let before = c.node(leader).unwrap().commit_index();
    c.propose(leader, vec![Bytes::from_static(b"z")]);
    c.deliver_all();
    assert_eq!(c.node(leader).unwrap().commit_index(), before);
    // And a learner never stands, however long it waits.
    c.heal();
    c.isolate(leader);
    c.advance(10_000);
    assert_ne!(c.node(n(4)).unwrap().role(), Role::Leader);
    assert_ne!(c.node(n(4)).unwrap().role(), Role::Candidate);
}

#[test]
fn a_promoted_learner_votes_and_counts() {
    let (mut c, leader) = cluster(1);
    commit_change(&mut c, leader, add(4));
    assert!(matches!(
        commit_change(&mut c, leader, MembershipChange::Promote { id: n(4) }),
        Outcome::Appended { .. }
    ));
    assert_eq!(c.node(leader).unwrap().voters(), [1, 2, 3, 4].map(n));
    // Four voters: the leader and one other no longer make a majority.
    let others: Vec<NodeId> = [1, 2, 3, 4]
        .map(n)
        .into_iter()
        .filter(|&v| v != leader)
        .collect();
    c.isolate(others[0]);
    c.isolate(others[1]);
    let before = c.node(leader).unwrap().commit_index();
    c.propose(leader, vec![Bytes::from_static(b"x")]);
    c.deliver_all();
    assert_eq!(c.node(leader).unwrap().commit_index(), before);
}

#[test]
fn changes_are_refused_with_their_reason() {
    let (mut c, leader) = cluster(1);
    let follower = [1, 2, 3].map(n).into_iter().find(|&v| v != leader).unwrap();
    let refused = |c: &Cluster, p| c.proposal(p) == Some(Outcome::ChangeRefused);
    // Not the leader.
    let p = c.change(follower, add(4));
    assert!(refused(&c, p));
    // Unknown member, an existing one, promoting a voter.
    for change in [
        MembershipChange::Remove { id: n(9) },
        MembershipChange::Promote { id: n(9) },
        MembershipChange::Promote { id: leader },
        add(2),
    ] {
        let p = c.change(leader, change.clone());
        assert!(refused(&c, p), "{change:?}");
    }
    // One change in flight: the second waits for the first to commit.
    let first = c.change(leader, add(4));
    let second = c.change(leader, MembershipChange::Remove { id: follower });
    assert!(matches!(c.proposal(first), Some(Outcome::Appended { .. })));
    assert!(refused(&c, second));
    c.deliver_all();
    // A learner that has not caught up is not promoted.
    c.isolate(n(4));
    c.propose(leader, vec![Bytes::from_static(b"x")]);
    c.deliver_all();
    let p = c.change(leader, MembershipChange::Promote { id: n(4) });
    assert!(refused(&c, p));
}

#[test]
fn a_new_leader_changes_nothing_before_it_committed_an_entry_of_its_term() {
    // The single-server bug (raft-dev, 2015): a leader that has not committed in its term
    // may hold a stale configuration.
    let (mut c, leader) = cluster(1);
    let term = c.node(leader).unwrap().term();
    let next = [1, 2, 3].map(n).into_iter().find(|&v| v != leader).unwrap();
    c.step(leader, raft::Event::TransferLeadership { to: Some(next) });
    // Deliver until the new leader exists, but before its no-op commits.
    c.deliver_until(|c| {
        c.node(next)
            .is_some_and(|n| n.role() == Role::Leader && n.term() > term)
    });
    assert!(c.node(next).unwrap().commit_index() < c.node(next).unwrap().last_index());
    let p = c.change(next, add(4));
    assert_eq!(c.proposal(p), Some(Outcome::ChangeRefused));
    c.deliver_all();
    let p = c.change(next, add(4));
    assert!(matches!(c.proposal(p), Some(Outcome::Appended { .. })));
}

#[test]
fn a_change_takes_effect_when_it_commits_not_when_appended() {
    let (mut c, leader) = cluster(1);
    // Cut the leader off: its change is appended but cannot commit.
    c.isolate(leader);
    let p = c.change(leader, add(4));
    assert!(matches!(c.proposal(p), Some(Outcome::Appended { .. })));
    assert!(!membership(&c, leader).contains(n(4)));
    c.deliver_all();
    assert!(!membership(&c, leader).contains(n(4)));
}

#[test]
fn the_last_voter_cannot_be_removed() {
    let mut c = Cluster::new(1, 3);
    let leader = c.run_until_leader(10_000).unwrap();
    c.deliver_all();
    let p = c.change(leader, MembershipChange::Remove { id: leader });
    assert_eq!(c.proposal(p), Some(Outcome::ChangeRefused));
}

#[test]
fn a_removed_follower_is_left_alone_and_the_rest_go_on() {
    let (mut c, leader) = cluster(0);
    let gone = [1, 2, 3].map(n).into_iter().find(|&v| v != leader).unwrap();
    commit_change(&mut c, leader, MembershipChange::Remove { id: gone });
    assert_eq!(c.node(leader).unwrap().voters().len(), 2);
    // Both remaining voters are needed now, and suffice.
    c.propose(leader, vec![Bytes::from_static(b"x")]);
    c.deliver_all();
    c.advance(300);
    let rest: Vec<NodeId> = [1, 2, 3]
        .map(n)
        .into_iter()
        .filter(|&v| v != gone)
        .collect();
    assert_eq!(c.applied_index(rest[0]), c.applied_index(rest[1]));
    // The removed node, once it knows, never stands again.
    c.advance(20_000);
    assert_ne!(c.node(gone).unwrap().role(), Role::Leader);
}

#[test]
fn a_leader_that_removes_itself_hands_over_at_once() {
    let (mut c, leader) = cluster(0);
    let p = c.change(leader, MembershipChange::Remove { id: leader });
    let t0 = c.now();
    c.deliver_all();
    assert!(matches!(c.proposal(p), Some(Outcome::Appended { .. })));
    // The old leader stepped down, and TimeoutNow made another voter lead without waiting
    // for an election timeout (no time has passed).
    assert_eq!(c.now(), t0);
    assert_ne!(c.node(leader).unwrap().role(), Role::Leader);
    let new = c.leader().unwrap();
    assert_ne!(new, leader);
    assert!(!c.node(new).unwrap().membership().contains(leader));
    // The new leader commits with the two voters left.
    c.propose(new, vec![Bytes::from_static(b"x")]);
    c.deliver_all();
    c.advance(300);
    let before = c.node(new).unwrap().commit_index();
    assert!(before > LogIndex(0));
    c.advance(20_000);
    assert_eq!(
        c.leader(),
        Some(new),
        "the removed node never disturbs the cluster"
    );
}

#[test]
fn leadership_transfer_skips_the_election_timeout_and_stickiness() {
    let (mut c, leader) = cluster(0);
    let target = [1, 2, 3].map(n).into_iter().find(|&v| v != leader).unwrap();
    let term = c.node(leader).unwrap().term();
    let t0 = c.now();
    c.step(leader, raft::Event::TransferLeadership { to: Some(target) });
    // Meanwhile, proposals are refused naming the target.
    let p = c.propose(leader, vec![Bytes::from_static(b"x")]);
    assert!(matches!(
        c.proposal(p[0]),
        Some(Outcome::Refused(raft::ProposeError::NotLeader { leader: Some(t) })) if t == target
    ));
    c.deliver_all();
    assert_eq!(c.now(), t0);
    assert_eq!(c.leader(), Some(target));
    assert_eq!(c.node(target).unwrap().term(), Term(term.0 + 1));
    assert_eq!(c.node(leader).unwrap().role(), Role::Follower);
}

#[test]
fn a_transfer_to_a_lagging_voter_waits_for_it_then_gives_up_in_time() {
    let (mut c, leader) = cluster(0);
    let target = [1, 2, 3].map(n).into_iter().find(|&v| v != leader).unwrap();
    c.isolate(target);
    c.propose(leader, vec![Bytes::from_static(b"x")]);
    c.deliver_all();
    c.step(leader, raft::Event::TransferLeadership { to: Some(target) });
    c.deliver_all();
    assert_eq!(
        c.leader(),
        Some(leader),
        "no TimeoutNow to a lagging target"
    );
    // After an election timeout the attempt ends and the leader takes proposals again.
    c.advance(1_500);
    assert_eq!(c.node(leader).unwrap().transfer_target(), None);
    let p = c.propose(leader, vec![Bytes::from_static(b"y")]);
    assert!(matches!(c.proposal(p[0]), Some(Outcome::Appended { .. })));
}

#[test]
fn a_restarted_member_takes_its_configuration_from_the_log() {
    let (mut c, leader) = cluster(1);
    commit_change(&mut c, leader, add(4));
    commit_change(&mut c, leader, MembershipChange::Promote { id: n(4) });
    // Every member restarts with its bootstrap settings (three voters, or none for node 4):
    // the log's configuration wins.
    // (Until it learns the commit index again, a member goes by the configuration at the
    // commit index it saved: older, but from its log, and safe like any lagging follower.)
    for id in c.ids() {
        c.restart(id);
    }
    let leader = c.run_until_leader(10_000).unwrap();
    c.propose(leader, vec![Bytes::from_static(b"x")]);
    c.deliver_all();
    c.advance(300);
    for id in c.ids() {
        assert_eq!(c.node(id).unwrap().voters(), [1, 2, 3, 4].map(n), "on {id}");
    }
    assert_eq!(c.applied_index(n(4)), c.applied_index(leader));
}

#[test]
fn a_snapshot_carries_the_configuration_to_a_new_learner() {
    let (mut c, leader) = cluster(1);
    for k in 0..20u8 {
        c.propose(leader, vec![Bytes::from(vec![k])]);
    }
    c.deliver_all();
    c.advance(300);
    let head = c.node(leader).unwrap().commit_index();
    c.snapshot(leader, head);
    commit_change(&mut c, leader, add(4));
    c.advance(1_000);
    c.deliver_all();
    assert!(c.installs_total() >= 1, "the learner needed the snapshot");
    assert_eq!(c.applied_index(n(4)), c.applied_index(leader));
    assert!(membership(&c, n(4)).contains(n(4)));
    // Restarted from its snapshot and log (its bootstrap is empty), it knows the snapshot's
    // configuration at once, and the one after it once it learns the commit index again.
    c.restart(n(4));
    assert_eq!(membership(&c, n(4)).voters().count(), 3);
    c.advance(300);
    assert!(membership(&c, n(4)).contains(n(4)));
    assert!(c.installs_total() >= 1);
}

#[test]
fn the_first_leader_writes_the_bootstrap_configuration_as_its_noop() {
    let (c, leader) = cluster(0);
    let first = &c.applied(leader)[0];
    assert_eq!(first.index, LogIndex(1));
    assert!(matches!(&first.payload, Payload::Membership(m) if m.voters().count() == 3));
}

//! Leader election (Raft 5.2, 5.4.1; thesis 3.4, 4.2.3, 6.2, 9.6): guards against split brains,
//! double votes, votes for stale logs, and disruptions by nodes that cannot win.

use raft::testing::Cluster;
use raft::{Action, Config, LogIndex, Millis, NodeId, Role, Term};

use crate::common::*;

fn no_prevote(id: u64) -> Config {
    let mut c = config(id);
    c.prevote = false;
    c
}

#[test]
fn section_5_2_follower_times_out_and_starts_an_election() {
    let (mut node, start) = node_with(3, 1, &[], no_prevote(1));
    let first_alarm = alarm(&start).unwrap();
    assert!((ELECTION_MS..2 * ELECTION_MS).contains(&first_alarm.0));
    // An early timeout changes nothing.
    let early = step(&mut node, first_alarm.0 - 1, raft::Event::Timeout);
    assert_eq!(node.role(), Role::Follower);
    assert_eq!(
        alarm(&early),
        Some(first_alarm),
        "the alarm is re-announced"
    );
    let acts = step(&mut node, first_alarm.0, raft::Event::Timeout);
    assert_eq!(node.role(), Role::Candidate);
    assert_eq!(node.term(), Term(2));
    assert_eq!(node.vote(), Some(n(1)));
    assert_eq!(saves(&acts).last().unwrap().term, Term(2));
    // The requests go out once the vote is durable.
    let released = persist(&mut node, first_alarm.0, &acts);
    let reqs = vote_requests(&released);
    assert_eq!(
        reqs.iter().map(|(to, _)| *to).collect::<Vec<_>>(),
        [n(2), n(3)]
    );
    assert!(reqs.iter().all(|(_, r)| r.term == Term(2) && !r.prevote));
}

#[test]
fn section_5_2_candidate_outcomes() {
    // (grants, rejections, expected role) in a 5-node cluster, self-vote included in grants.
    let table: &[(&[u64], &[u64], Role)] = &[
        (&[2, 3], &[], Role::Leader),
        (&[2], &[3, 4], Role::Candidate),
        (&[], &[2, 3, 4], Role::Follower),
        (&[2, 2, 2], &[], Role::Candidate), // one voter counts once
    ];
    for (grants, rejects, expected) in table {
        let (mut node, _) = node_with(5, 1, &[], no_prevote(1));
        let acts = time_out(&mut node, 0);
        persist(&mut node, 2 * ELECTION_MS, &acts);
        for &g in *grants {
            step(&mut node, 2 * ELECTION_MS, vote_response(g, 2, true, false));
        }
        for &r in *rejects {
            step(
                &mut node,
                2 * ELECTION_MS,
                vote_response(r, 2, false, false),
            );
        }
        assert_eq!(
            node.role(),
            *expected,
            "grants {grants:?} rejects {rejects:?}"
        );
    }
}

#[test]
fn section_5_2_candidate_follows_a_leader_of_its_term() {
    let (mut node, _) = node_with(3, 1, &[], no_prevote(1));
    time_out(&mut node, 0);
    assert_eq!(node.role(), Role::Candidate);
    step(&mut node, 2 * ELECTION_MS, append(2, 2, (0, 0), vec![], 0));
    assert_eq!(node.role(), Role::Follower);
    assert_eq!(node.leader(), Some(n(2)));
    assert_eq!(node.term(), Term(2));
}

#[test]
fn section_5_2_split_vote_times_out_into_a_new_term() {
    let (mut node, _) = node_with(3, 1, &[], no_prevote(1));
    time_out(&mut node, 0);
    let acts = time_out(&mut node, 2 * ELECTION_MS);
    assert_eq!(node.role(), Role::Candidate);
    assert_eq!(node.term(), Term(3));
    assert_eq!(saves(&acts).last().unwrap().term, Term(3));
}

#[test]
fn section_5_2_any_newer_term_turns_a_leader_into_a_follower() {
    let mut c = config(1);
    c.check_quorum = false;
    let (mut node, _) = node_with(3, 1, &[], c);
    elect(&mut node, 3000);
    let acts = step(
        &mut node,
        3000,
        msg(
            2,
            raft::Message::HeartbeatResponse(raft::HeartbeatResponse {
                term: Term(9),
                read_round: 0,
            }),
        ),
    );
    assert_eq!(node.role(), Role::Follower);
    assert_eq!(node.term(), Term(9));
    assert_eq!(node.leader(), None);
    assert!(matches!(
        acts.last(),
        Some(Action::RoleChanged {
            role: Role::Follower,
            term: Term(9),
            leader: None
        })
    ));
}

#[test]
fn section_3_4_election_deadlines_are_randomised_per_node() {
    let deadlines: Vec<Millis> = (1..=5)
        .map(|id| alarm(&node_with(5, 1, &[], config(id)).1).unwrap())
        .collect();
    let mut distinct = deadlines.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!(distinct.len(), 5, "{deadlines:?}");
    // Same seed, same id: same deadline (determinism).
    assert_eq!(
        alarm(&node_with(5, 1, &[], config(3)).1),
        Some(deadlines[2])
    );
}

#[test]
fn section_5_4_1_vote_only_for_logs_at_least_as_up_to_date() {
    // Voter log terms [1, 1, 2]: last (3, 2).
    // (candidate last index, candidate last term, granted)
    let table = [
        (3, 2, true),
        (4, 2, true),
        (1, 3, true),
        (2, 2, false),
        (9, 1, false),
        (0, 0, false),
    ];
    for (index, term, granted) in table {
        let (mut node, _) = node_with(3, 2, &[1, 1, 2], config(1));
        let acts = step(&mut node, 0, vote_request(2, 3, (index, term), false));
        let resp = vote_responses(&persist_all(&mut node, 0, &acts));
        assert_eq!(resp.len(), 1);
        assert_eq!(
            resp[0].1.granted, granted,
            "candidate last ({index}, {term})"
        );
        assert_eq!(node.vote(), granted.then_some(n(2)));
    }
}

#[test]
fn section_5_2_one_vote_per_term_first_come_first_served() {
    let (mut node, _) = node_with(3, 1, &[], config(1));
    let a = step(&mut node, 0, vote_request(2, 2, (0, 0), false));
    let a = persist_all(&mut node, 0, &a);
    assert!(vote_responses(&a)[0].1.granted);
    // Another candidate of the same term is refused; the same one again is granted.
    let b = step(&mut node, 0, vote_request(3, 2, (0, 0), false));
    assert!(!vote_responses(&b)[0].1.granted);
    let c = step(&mut node, 0, vote_request(2, 2, (0, 0), false));
    assert!(vote_responses(&c)[0].1.granted);
    // A newer term frees the vote.
    let d = step(&mut node, 0, vote_request(3, 3, (0, 0), false));
    let d = persist_all(&mut node, 0, &d);
    assert!(vote_responses(&d)[0].1.granted);
    assert_eq!((node.term(), node.vote()), (Term(3), Some(n(3))));
}

#[test]
fn single_node_cluster_elects_itself_at_once() {
    let mut node = raft::Node::new(
        config(1),
        raft::Membership::voters_only([n(1)]),
        raft::Recovered::default(),
        LogIndex(0),
        7,
    )
    .unwrap();
    let acts = node.step(Millis(0), raft::Event::Timeout);
    assert_eq!(node.role(), Role::Leader);
    assert_eq!(node.term(), Term(1));
    assert_eq!(stores(&acts).len(), 1, "the no-op");
    // The no-op commits once durable.
    let done = persist(&mut node, 0, &acts);
    assert_eq!(commits(&done), [LogIndex(1)]);
    // A proposal commits on its own write.
    let acts = node.step(
        Millis(1),
        raft::Event::Append(vec![(raft::ProposalId(1), bytes::Bytes::from_static(b"x"))]),
    );
    assert!(commits(&acts).is_empty(), "not before it is durable");
    let done = persist(&mut node, 1, &acts);
    assert_eq!(commits(&done), [LogIndex(2)]);
}

#[test]
fn section_9_6_prevote_polls_without_changing_term() {
    let (mut node, _) = node_with(3, 4, &[1, 4], config(1));
    let acts = time_out(&mut node, 0);
    assert_eq!(node.role(), Role::PreCandidate);
    assert_eq!(node.term(), Term(4), "the term does not move");
    assert!(saves(&acts).is_empty(), "nothing to save");
    let reqs = vote_requests(&acts);
    assert_eq!(reqs.len(), 2);
    assert!(reqs.iter().all(|(_, r)| r.prevote && r.term == Term(5)));
    assert!(
        reqs.iter()
            .all(|(_, r)| r.last_log_index == LogIndex(2) && r.last_log_term == Term(4))
    );
    // One granted pre-vote is a majority of 3: now the real election, at term 5.
    let acts = step(&mut node, 2 * ELECTION_MS, vote_response(2, 5, true, true));
    assert_eq!(node.role(), Role::Candidate);
    assert_eq!(node.term(), Term(5));
    assert!(!saves(&acts).is_empty());
}

#[test]
fn section_9_6_lost_prevote_goes_back_to_follower_in_the_same_term() {
    let (mut node, _) = node_with(3, 4, &[], config(1));
    time_out(&mut node, 0);
    step(&mut node, 2 * ELECTION_MS, vote_response(2, 4, false, true));
    step(&mut node, 2 * ELECTION_MS, vote_response(3, 4, false, true));
    assert_eq!(node.role(), Role::Follower);
    assert_eq!(node.term(), Term(4));
}

#[test]
fn section_9_6_prevote_grant_changes_nothing_at_the_voter() {
    let (mut node, _) = node_with(3, 4, &[4], config(1));
    let acts = step(&mut node, 5000, vote_request(2, 5, (1, 4), true));
    assert_eq!(node.term(), Term(4));
    assert_eq!(node.vote(), None);
    assert!(saves(&acts).is_empty());
    let resp = vote_responses(&acts);
    assert!(resp[0].1.granted && resp[0].1.prevote && resp[0].1.term == Term(5));
}

#[test]
fn a_granted_prevote_defers_the_voters_own_candidacy() {
    // Between a pre-candidate's won poll and its vote requests lies the fsync of its new term;
    // a voter whose own timer fired in that gap would stand too and could split the vote.
    let (mut node, start) = node_with(5, 4, &[4], config(1));
    let first = alarm(&start).unwrap();
    let at = first.0 - 1;
    let acts = step(&mut node, at, vote_request(2, 5, (1, 4), true));
    assert!(vote_responses(&acts)[0].1.granted);
    let deferred = alarm(&acts).expect("a new deadline is announced");
    assert!(
        (at + ELECTION_MS..at + 2 * ELECTION_MS).contains(&deferred.0),
        "{deferred:?}"
    );
    // The old deadline passes without a campaign.
    step(&mut node, first.0, raft::Event::Timeout);
    assert_eq!(node.role(), Role::Follower);
    // A rejected pre-vote (the candidate's log is behind ours) defers nothing.
    let (mut node, start) = node_with(5, 4, &[4], config(1));
    let first = alarm(&start).unwrap();
    let acts = step(&mut node, first.0 - 1, vote_request(2, 5, (0, 0), true));
    assert!(!vote_responses(&acts)[0].1.granted);
    assert_eq!(alarm(&acts), None, "the deadline stands");
    step(&mut node, first.0, raft::Event::Timeout);
    assert_eq!(node.role(), Role::PreCandidate);
}

#[test]
fn of_two_pre_candidates_polling_at_once_the_lower_ranked_stands_down() {
    // Node 3 polls for term 5; node 2 polls for the same term with the same log. Node 3 grants
    // and stands down (the lower id goes on), so the two cannot split the real votes.
    let (mut node, _) = node_with(5, 4, &[4], config(3));
    time_out(&mut node, 0);
    assert_eq!(node.role(), Role::PreCandidate);
    let at = 2 * ELECTION_MS;
    let acts = step(&mut node, at, vote_request(2, 5, (1, 4), true));
    assert!(vote_responses(&acts)[0].1.granted);
    assert_eq!(node.role(), Role::Follower);
    assert_eq!(node.term(), Term(4));
    let deferred = alarm(&acts).expect("a new deadline is announced");
    assert!((at + ELECTION_MS..at + 2 * ELECTION_MS).contains(&deferred.0));
    // Grants of the abandoned poll no longer elect it.
    step(&mut node, at, vote_response(4, 5, true, true));
    step(&mut node, at, vote_response(5, 5, true, true));
    assert_eq!(node.role(), Role::Follower);

    // The higher-ranked one grants too but keeps polling: by its lower id, or by its log.
    let (mut node, _) = node_with(5, 4, &[4], config(1));
    time_out(&mut node, 0);
    step(&mut node, at, vote_request(2, 5, (1, 4), true));
    assert_eq!(node.role(), Role::PreCandidate);
    let (mut node, _) = node_with(5, 4, &[4, 4], config(3));
    time_out(&mut node, 0);
    let acts = step(&mut node, at, vote_request(2, 5, (1, 4), true));
    assert!(!vote_responses(&acts)[0].1.granted, "a shorter log");
    assert_eq!(node.role(), Role::PreCandidate);
    // A pre-candidate with the longer log wins over a lower id.
    let (mut node, _) = node_with(5, 4, &[4], config(1));
    time_out(&mut node, 0);
    step(&mut node, at, vote_request(2, 5, (2, 4), true));
    assert_eq!(node.role(), Role::Follower);
}

#[test]
fn section_9_6_prevote_responses_from_other_rounds_do_not_count() {
    let (mut node, _) = node_with(5, 4, &[], config(1));
    time_out(&mut node, 0);
    // A real vote of this term, a pre-vote for another term: ignored.
    step(&mut node, 2 * ELECTION_MS, vote_response(2, 4, true, false));
    step(&mut node, 2 * ELECTION_MS, vote_response(3, 6, true, true));
    assert_eq!(node.role(), Role::PreCandidate);
    assert_eq!(node.term(), Term(4));
}

#[test]
fn section_9_6_partitioned_node_rejoins_without_disrupting_the_leader() {
    let mut c = Cluster::new(3, 11);
    let leader = c.run_until_leader(10_000).unwrap();
    let term = c.node(leader).unwrap().term();
    let lonely = c.ids().into_iter().find(|&id| id != leader).unwrap();
    c.isolate(lonely);
    c.advance(20 * ELECTION_MS);
    // Pre-vote kept the isolated node at the cluster's term.
    assert_eq!(c.node(lonely).unwrap().term(), term);
    c.heal();
    c.advance(5 * ELECTION_MS);
    assert_eq!(c.leader(), Some(leader));
    assert_eq!(c.node(leader).unwrap().term(), term);
    assert_eq!(c.node(lonely).unwrap().leader(), Some(leader));
}

#[test]
fn without_prevote_a_partitioned_node_forces_a_new_term() {
    // The contrast with the test above: what pre-vote prevents.
    let mut c = Cluster::with_config(3, 11, |cfg| cfg.prevote = false);
    let leader = c.run_until_leader(10_000).unwrap();
    let term = c.node(leader).unwrap().term();
    let lonely = c.ids().into_iter().find(|&id| id != leader).unwrap();
    c.isolate(lonely);
    c.advance(20 * ELECTION_MS);
    assert!(c.node(lonely).unwrap().term() > term);
    c.heal();
    c.advance(5 * ELECTION_MS);
    assert!(c.node(c.leader().unwrap()).unwrap().term() > term);
}

#[test]
fn section_6_2_check_quorum_leader_steps_down_without_a_majority() {
    let mut c = Cluster::new(5, 3);
    let leader = c.run_until_leader(10_000).unwrap();
    let term = c.node(leader).unwrap().term();
    for id in c.ids() {
        if id != leader {
            c.isolate(id);
        }
    }
    // Within two election timeouts the lonely leader notices and stops leading.
    c.advance(2 * ELECTION_MS);
    let old = c.node(leader).unwrap();
    assert_eq!(old.role(), Role::Follower);
    assert_eq!(old.term(), term, "stepping down does not change the term");
    assert_eq!(old.leader(), None);
}

#[test]
fn section_6_2_check_quorum_leader_with_a_majority_stays() {
    let mut c = Cluster::new(5, 3);
    let leader = c.run_until_leader(10_000).unwrap();
    let others: Vec<NodeId> = c.ids().into_iter().filter(|&id| id != leader).collect();
    c.isolate(others[0]);
    c.isolate(others[1]);
    c.advance(10 * ELECTION_MS);
    assert_eq!(c.node(leader).unwrap().role(), Role::Leader);
}

#[test]
fn check_quorum_leader_whose_disk_stalls_steps_down() {
    // hashicorp/raft #503: a leader that cannot write must not keep heartbeating as if healthy.
    // In a 3-node cluster with one follower down, the stalled leader is not a majority with
    // the remaining follower.
    let mut c = Cluster::new(3, 5);
    let leader = c.run_until_leader(10_000).unwrap();
    let others: Vec<NodeId> = c.ids().into_iter().filter(|&id| id != leader).collect();
    c.crash(others[0]);
    c.hold_disk(leader);
    c.propose(leader, vec![bytes::Bytes::from_static(b"stuck")]);
    c.advance(3 * ELECTION_MS);
    assert_ne!(c.node(leader).unwrap().role(), Role::Leader);
}

#[test]
fn section_4_2_3_sticky_follower_rejects_votes_while_it_hears_the_leader() {
    let (mut node, _) = node_with(3, 2, &[2], config(1));
    step(&mut node, 100, append(2, 2, (1, 2), vec![], 1));
    assert_eq!(node.leader(), Some(n(2)));
    // (time of the request, prevote, granted, term afterwards)
    let table = [
        (100 + ELECTION_MS - 1, true, false, 2),
        (100 + ELECTION_MS - 1, false, false, 2),
    ];
    for (at, prevote, granted, term) in table {
        let acts = step(&mut node, at, vote_request(3, 3, (5, 2), prevote));
        let resp = vote_responses(&acts);
        assert_eq!(resp.len(), 1);
        assert_eq!(resp[0].1.granted, granted);
        assert_eq!(node.term(), Term(term), "no term bump for a rejected vote");
        assert!(saves(&acts).is_empty());
    }
    // Once the lease ran out, the vote is granted.
    let acts = step(
        &mut node,
        100 + ELECTION_MS,
        vote_request(3, 3, (5, 2), false),
    );
    let acts = persist_all(&mut node, 0, &acts);
    assert!(vote_responses(&acts)[0].1.granted);
    assert_eq!(node.term(), Term(3));
}

#[test]
fn section_4_2_3_leader_with_check_quorum_rejects_votes() {
    let (mut node, _) = node_with(3, 1, &[], config(1));
    elect(&mut node, 3000);
    let term = node.term();
    let acts = step(
        &mut node,
        3001,
        vote_request(2, term.0 + 1, (100, term.0), false),
    );
    assert_eq!(node.role(), Role::Leader);
    assert_eq!(node.term(), term);
    assert!(!vote_responses(&acts)[0].1.granted);
}

#[test]
fn stale_prevote_gets_a_rejection_carrying_the_newer_term() {
    let (mut node, _) = node_with(3, 7, &[], config(1));
    let acts = step(&mut node, 0, vote_request(2, 5, (0, 0), true));
    let resp = vote_responses(&acts);
    assert_eq!(resp.len(), 1);
    assert!(!resp[0].1.granted);
    assert_eq!(resp[0].1.term, Term(7));
}

#[test]
fn a_node_at_the_last_term_never_campaigns() {
    let (mut node, _) = node_with(3, u64::MAX, &[], no_prevote(1));
    let acts = time_out(&mut node, 0);
    assert_eq!(node.role(), Role::Follower);
    assert_eq!(node.term(), Term(u64::MAX));
    assert!(saves(&acts).is_empty());
    assert!(alarm(&acts).is_some(), "still armed");
}

#[test]
fn role_changes_are_announced_last_in_a_step() {
    let (mut node, start) = node_with(3, 1, &[], no_prevote(1));
    assert!(matches!(
        start.last(),
        Some(Action::RoleChanged {
            role: Role::Follower,
            term: Term(1),
            leader: None
        })
    ));
    let acts = time_out(&mut node, 0);
    assert!(matches!(
        acts.last(),
        Some(Action::RoleChanged {
            role: Role::Candidate,
            term: Term(2),
            leader: None
        })
    ));
}

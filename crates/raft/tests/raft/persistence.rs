//! Persistence ordering and recovery (Raft figure 2 "persistent state", thesis 3.8 and 11.2.3):
//! guards against messages that promise an unsaved term or vote, double votes after a restart,
//! and starting from a disk image that does not hang together.

use bytes::Bytes;
use raft::testing::Cluster;
use raft::{
    Config, ConfigError, Entry, Error, Event, HardState, LogIndex, Millis, Node, NodeId, Recovered,
    RecoveryError, Role, Term,
};

use crate::common::*;

#[test]
fn section_3_8_nothing_is_sent_before_the_term_and_vote_are_durable() {
    // Each trigger changes the term or the vote; its answer must wait for StateSaved.
    let triggers: Vec<(&str, Event)> = vec![
        ("grant a vote", vote_request(2, 2, (0, 0), false)),
        (
            "learn a term from a leader",
            append(2, 2, (0, 0), vec![], 0),
        ),
        (
            "learn a term from a heartbeat",
            msg(
                2,
                raft::Message::Heartbeat(raft::Heartbeat {
                    term: Term(2),
                    leader: n(2),
                    commit: LogIndex(0),
                    read_round: 1,
                }),
            ),
        ),
    ];
    for (what, event) in triggers {
        let (mut node, _) = node_with(3, 1, &[], config(1));
        let acts = step(&mut node, 10, event);
        assert_eq!(saves(&acts).len(), 1, "{what}");
        assert!(sends(&acts).is_empty(), "{what}: sent before saving");
        assert!(!node.is_state_durable());
        // An acknowledgement of an older state releases nothing.
        let acts = step(&mut node, 11, Event::StateSaved(HardState::default()));
        assert!(sends(&acts).is_empty(), "{what}");
        let hs = node.hard_state();
        let acts = step(&mut node, 12, Event::StateSaved(hs));
        assert_eq!(sends(&acts).len(), 1, "{what}: released once saved");
    }
}

#[test]
fn section_3_8_candidate_requests_wait_for_its_own_vote_to_be_durable() {
    let mut cfg = config(1);
    cfg.prevote = false;
    let (mut node, _) = node_with(3, 1, &[], cfg);
    let acts = time_out(&mut node, 0);
    assert!(vote_requests(&acts).is_empty());
    assert_eq!(
        saves(&acts),
        [HardState {
            term: Term(2),
            vote: Some(n(1)),
            commit: LogIndex(0)
        }]
    );
    let acts = persist(&mut node, 2 * ELECTION_MS, &acts);
    assert_eq!(vote_requests(&acts).len(), 2);
}

#[test]
fn section_3_8_messages_held_for_an_old_term_are_dropped() {
    let mut cfg = config(1);
    cfg.prevote = false;
    let (mut node, _) = node_with(3, 1, &[], cfg);
    time_out(&mut node, 0); // term 2, requests held
    time_out(&mut node, 2 * ELECTION_MS); // term 3, requests held
    let acts = step(
        &mut node,
        4 * ELECTION_MS,
        Event::StateSaved(node_hard_state(3, Some(1))),
    );
    let reqs = vote_requests(&acts);
    assert_eq!(reqs.len(), 2, "only the current term's requests");
    assert!(reqs.iter().all(|(_, r)| r.term == Term(3)));
}

fn node_hard_state(term: u64, vote: Option<u64>) -> HardState {
    HardState {
        term: Term(term),
        vote: vote.map(NodeId),
        commit: LogIndex(0),
    }
}

#[test]
fn prevotes_need_no_save_and_are_not_held() {
    let (mut node, _) = node_with(3, 1, &[], config(1));
    let acts = time_out(&mut node, 0);
    assert!(saves(&acts).is_empty());
    assert_eq!(vote_requests(&acts).len(), 2);
}

#[test]
fn section_3_8_a_restarted_node_never_votes_twice_in_a_term() {
    // The vote for 2 is saved before the answer leaves; a restart from that disk refuses 3.
    let (mut node, _) = node_with(3, 1, &[], config(1));
    let acts = step(&mut node, 10, vote_request(2, 5, (0, 0), false));
    let saved = saves(&acts)[0];
    assert_eq!(saved, node_hard_state(5, Some(2)));
    let recovered = Recovered {
        hard_state: saved,
        ..Recovered::default()
    };
    let mut restarted = Node::new(config(1), voters(3), recovered, LogIndex(0), 1).unwrap();
    restarted.step(Millis(0), Event::Timeout);
    let acts = step(&mut restarted, 10, vote_request(3, 5, (0, 0), false));
    assert!(!vote_responses(&acts)[0].1.granted);
    let acts = step(&mut restarted, 10, vote_request(2, 5, (0, 0), false));
    assert!(
        vote_responses(&acts)[0].1.granted,
        "the same candidate again is fine"
    );
}

#[test]
fn section_3_8_a_vote_lost_in_a_crash_was_never_announced() {
    // The voter's disk holds the vote when it crashes: it is lost, and so is the answer, which
    // never left. The voter may then vote for someone else in that term without harm.
    let mut c = Cluster::with_config(3, 6, |cfg| cfg.prevote = false);
    let [a, voter, b] = [1, 2, 3].map(NodeId);
    c.isolate(b);
    c.hold_disk(voter);
    c.campaign(a);
    c.deliver_all();
    assert_eq!(
        c.node(a).unwrap().role(),
        Role::Candidate,
        "no answer from the voter yet"
    );
    c.crash(voter);
    c.restart(voter);
    assert_eq!(c.disk_hard_state(voter).vote, None);
    assert_ne!(c.node(a).unwrap().role(), Role::Leader);
}

#[test]
fn a_whole_cluster_restart_keeps_every_committed_entry() {
    let mut c = Cluster::new(3, 12);
    let leader = c.run_until_leader(10_000).unwrap();
    c.propose(leader, (0..10u8).map(|k| Bytes::from(vec![k])).collect());
    c.deliver_all();
    let committed = c.node(leader).unwrap().commit_index();
    assert_eq!(committed, LogIndex(11));
    for id in c.ids() {
        c.restart(id);
    }
    let leader = c.run_until_leader(10_000).unwrap();
    c.deliver_all();
    assert!(
        c.node(leader).unwrap().commit_index() > committed,
        "old entries and a new no-op"
    );
    let applied: Vec<&Entry> = c.applied(leader).iter().take(11).collect();
    assert_eq!(applied.len(), 11);
}

#[test]
fn recovery_refuses_inconsistent_disk_images() {
    let hs = |term: u64, commit: u64| HardState {
        term: Term(term),
        vote: None,
        commit: LogIndex(commit),
    };
    // (recovered, applied, expected error)
    let table: Vec<(Recovered, u64, RecoveryError)> = vec![
        (
            Recovered {
                hard_state: hs(2, 0),
                snapshot: None,
                entries: vec![entry(2, 1)],
                membership: None,
            },
            0,
            RecoveryError::EntryOutOfPlace {
                expected: LogIndex(1),
                found: LogIndex(2),
            },
        ),
        (
            Recovered {
                hard_state: hs(2, 0),
                snapshot: None,
                entries: log_of(&[2, 1]),
                membership: None,
            },
            0,
            RecoveryError::TermDecreases { index: LogIndex(2) },
        ),
        (
            Recovered {
                hard_state: hs(1, 0),
                snapshot: None,
                entries: log_of(&[1, 3]),
                membership: None,
            },
            0,
            RecoveryError::TermAheadOfHardState {
                index: LogIndex(2),
                term: Term(3),
                saved: Term(1),
            },
        ),
        (
            Recovered {
                hard_state: hs(1, 3),
                snapshot: None,
                entries: log_of(&[1]),
                membership: None,
            },
            0,
            RecoveryError::CommitBeyondLog {
                commit: LogIndex(3),
                last: LogIndex(1),
            },
        ),
        (
            Recovered {
                hard_state: hs(1, 0),
                snapshot: None,
                entries: log_of(&[1]),
                membership: None,
            },
            2,
            RecoveryError::AppliedBeyondLog {
                applied: LogIndex(2),
                last: LogIndex(1),
            },
        ),
        (
            Recovered {
                hard_state: hs(1, 0),
                snapshot: Some((LogIndex(5), Term(1))),
                entries: vec![entry(6, 1)],
                membership: None,
            },
            3,
            RecoveryError::AppliedBeforeSnapshot {
                applied: LogIndex(3),
                snapshot: LogIndex(5),
            },
        ),
        (
            Recovered {
                hard_state: hs(1, 0),
                snapshot: Some((LogIndex(5), Term(1))),
                entries: vec![entry(5, 1)],
                membership: None,
            },
            5,
            RecoveryError::EntryOutOfPlace {
                expected: LogIndex(6),
                found: LogIndex(5),
            },
        ),
    ];
    for (recovered, applied, expected) in table {
        let got = Node::new(
            config(1),
            voters(3),
            recovered.clone(),
            LogIndex(applied),
            1,
        );
        assert_eq!(got.err(), Some(Error::Recovery(expected)), "{recovered:?}");
    }
}

#[test]
fn recovery_from_a_snapshot_base() {
    let recovered = Recovered {
        hard_state: HardState {
            term: Term(3),
            vote: None,
            commit: LogIndex(0),
        },
        snapshot: Some((LogIndex(10), Term(2))),
        entries: vec![entry(11, 3)],
        membership: None,
    };
    let mut node = Node::new(config(1), voters(3), recovered, LogIndex(10), 1).unwrap();
    assert_eq!(
        node.commit_index(),
        LogIndex(10),
        "the snapshot is committed"
    );
    assert_eq!(node.first_index(), LogIndex(11));
    let acts = node.step(Millis(0), Event::Timeout);
    assert!(
        commits(&acts).is_empty(),
        "the state machine already has the snapshot"
    );
    // A leader's append before the base is trimmed and checked from the base.
    let acts = step(
        &mut node,
        10,
        append(
            2,
            3,
            (9, 2),
            vec![entry(10, 2), entry(11, 3), entry(12, 3)],
            12,
        ),
    );
    assert_eq!(stores(&acts), vec![entry(12, 3)]);
    assert_eq!(commits(&acts), [LogIndex(11), LogIndex(12)]);
}

#[test]
fn a_node_outside_its_bootstrap_configuration_waits_and_never_stands() {
    // A node started to join (empty configuration) or not listed: it campaigns never.
    for bootstrap in [
        raft::Membership::default(),
        raft::Membership::voters_only([n(2), n(3)]),
    ] {
        let mut node = Node::new(config(1), bootstrap, Recovered::default(), LogIndex(0), 1)
            .unwrap_or_else(|e| panic!("{e}"));
        for t in [0, 5_000, 10_000, 60_000] {
            let acts = node.step(Millis(t), Event::Timeout);
            assert!(
                !acts.iter().any(|a| matches!(
                    a,
                    raft::Action::Send {
                        msg: raft::Message::VoteRequest(_),
                        ..
                    }
                )),
                "{acts:?}"
            );
        }
        assert_eq!(node.role(), raft::Role::Follower);
    }
}

#[test]
fn config_validate_checks_every_relation() {
    let base = config(1);
    assert_eq!(base.validate(), Ok(()));
    type Tweak = fn(&mut Config);
    let table: Vec<(Tweak, ConfigError)> = vec![
        (
            |c| c.election_timeout_ms = 0,
            ConfigError::ZeroElectionTimeout,
        ),
        (
            |c| c.election_timeout_ms = 10_000_000,
            ConfigError::ElectionTimeoutTooLong {
                election_timeout_ms: 10_000_000,
            },
        ),
        (
            |c| c.heartbeat_interval_ms = 0,
            ConfigError::ZeroHeartbeatInterval,
        ),
        (
            |c| c.heartbeat_interval_ms = 400,
            ConfigError::HeartbeatTooSlow {
                heartbeat_interval_ms: 400,
                election_timeout_ms: 1000,
            },
        ),
        (
            |c| c.max_entries_per_msg = 0,
            ConfigError::ZeroLimit("max_entries_per_msg"),
        ),
        (
            |c| c.max_bytes_per_msg = 0,
            ConfigError::ZeroLimit("max_bytes_per_msg"),
        ),
        (
            |c| c.max_inflight_msgs = 0,
            ConfigError::ZeroLimit("max_inflight_msgs"),
        ),
        (
            |c| c.max_inflight_msgs = 1 << 20,
            ConfigError::TooManyInflight {
                max_inflight_msgs: 1 << 20,
            },
        ),
    ];
    for (tweak, expected) in table {
        let mut c = base.clone();
        tweak(&mut c);
        assert_eq!(c.validate(), Err(expected.clone()));
        let got = Node::new(c, voters(1), Recovered::default(), LogIndex(0), 1);
        assert_eq!(got.err(), Some(Error::Config(expected)));
    }
}

#[test]
fn an_implausible_snapshot_index_is_refused() {
    let recovered = Recovered {
        hard_state: HardState::default(),
        snapshot: Some((LogIndex(u64::MAX), Term(0))),
        entries: vec![],
        membership: None,
    };
    let got = Node::new(config(1), voters(3), recovered, LogIndex(u64::MAX), 1);
    assert_eq!(
        got.err(),
        Some(Error::Recovery(RecoveryError::IndexTooLarge {
            index: LogIndex(u64::MAX)
        }))
    );
}

#[test]
fn the_saved_commit_hint_never_names_entries_missing_from_disk() {
    // A follower may commit entries it has not yet made durable (a majority has them); the
    // commit index it saves must still be within its durable log, or it could not restart.
    let (mut node, _) = node_with(3, 1, &[], config(1));
    step(
        &mut node,
        10,
        append(2, 1, (0, 0), vec![entry(1, 1), entry(2, 1)], 2),
    );
    assert_eq!(node.commit_index(), LogIndex(2));
    assert_eq!(node.durable_index(), LogIndex(0));
    let acts = step(&mut node, 2000, vote_request(3, 2, (2, 1), false));
    let saved = saves(&acts);
    assert_eq!(saved.len(), 1);
    assert_eq!(saved[0].commit, LogIndex(0));
    let recovered = Recovered {
        hard_state: saved[0],
        ..Recovered::default()
    };
    assert!(Node::new(config(1), voters(3), recovered, LogIndex(0), 1).is_ok());
}

#[test]
fn an_append_entirely_below_the_snapshot_is_acknowledged_at_the_base() {
    let recovered = Recovered {
        hard_state: HardState {
            term: Term(3),
            vote: None,
            commit: LogIndex(10),
        },
        snapshot: Some((LogIndex(10), Term(2))),
        entries: vec![],
        membership: None,
    };
    let mut node = Node::new(config(1), voters(3), recovered, LogIndex(10), 1).unwrap();
    node.step(Millis(0), Event::Timeout);
    let acts = step(
        &mut node,
        10,
        append(2, 3, (4, 2), vec![entry(5, 2), entry(6, 2)], 6),
    );
    assert!(stores(&acts).is_empty());
    let resp = append_responses(&acts);
    assert_eq!(
        resp[0].1.outcome,
        raft::AppendOutcome::Success {
            match_index: LogIndex(10)
        }
    );
}

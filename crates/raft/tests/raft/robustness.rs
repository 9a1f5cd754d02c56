//! Robustness against anything a peer or a confused driver can send: guards against panics on
//! garbage (unknown senders, indexes beyond the log, absurd terms, malformed entries) and against
//! inputs that could break the node's own invariants or make its storage actions disagree with
//! its in-memory log.

use proptest::prelude::*;
use raft::{Action, Event, LogIndex, Millis, Node, NodeId, Recovered, Term};

use crate::common::*;
use crate::strategies;

/// What the driver's disk would hold if it carried out every action in order.
struct ModelDisk {
    /// The snapshot base: entries start right after it.
    base: u64,
    entries: Vec<(LogIndex, Term)>,
    saved_term: Term,
}

impl ModelDisk {
    fn of(node: &Node) -> ModelDisk {
        let base = node.first_index().0 - 1;
        let entries = (base + 1..=node.last_index().0)
            .map(|i| (LogIndex(i), node.entry(LogIndex(i)).unwrap().term))
            .collect();
        ModelDisk {
            base,
            entries,
            saved_term: node.term(),
        }
    }

    fn carry_out(&mut self, action: &Action) {
        match action {
            Action::SaveState(hs) => {
                assert!(hs.term >= self.saved_term, "saved term went back");
                self.saved_term = hs.term;
            }
            Action::LogTruncate { from } => {
                self.entries.retain(|(i, _)| i < from);
            }
            Action::InstallSnapshot {
                index,
                kept_entries_after,
                ..
            } => {
                if *kept_entries_after {
                    self.entries.retain(|(i, _)| i > index);
                } else {
                    self.entries.clear();
                }
                self.base = index.0;
            }
            Action::LogStore { entries } => {
                for e in entries {
                    let expected = LogIndex(self.base + self.entries.len() as u64 + 1);
                    assert_eq!(e.index, expected, "stored entries must continue the log");
                    assert!(
                        e.term <= self.saved_term,
                        "entry stored before its term was saved"
                    );
                    self.entries.push((e.index, e.term));
                }
            }
            _ => {}
        }
    }
}

fn setup(kind: usize) -> Node {
    match kind {
        0 => node_with(3, 2, &[1, 1, 2], config(1)).0,
        1 => {
            let (mut node, _) = node_with(3, 2, &[1, 2], config(1));
            elect(&mut node, 3000);
            node
        }
        2 => {
            let mut node = Node::new(
                config(1),
                raft::Membership::voters_only([NodeId(1)]),
                Recovered::default(),
                LogIndex(0),
                9,
            )
            .unwrap();
            node.step(Millis(0), Event::Timeout);
            node
        }
        3 => {
            // Recovered above a snapshot: indexes below the base are unknown here.
            let recovered = Recovered {
                hard_state: raft::HardState {
                    term: Term(2),
                    vote: None,
                    commit: LogIndex(4),
                },
                snapshot: Some((LogIndex(4), Term(1))),
                entries: vec![entry(5, 2), entry(6, 2)],
                membership: None,
            };
            let mut node = Node::new(config(1), voters(3), recovered, LogIndex(4), 9).unwrap();
            node.step(Millis(0), Event::Timeout);
            node
        }
        _ => {
            let mut cfg = config(1);
            cfg.prevote = false;
            cfg.check_quorum = false;
            let (mut node, _) = node_with(5, 1, &[1], cfg);
            time_out(&mut node, 0);
            node
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn any_input_sequence_keeps_the_node_consistent(
        kind in 0usize..5,
        events in proptest::collection::vec(strategies::event(), 1..60),
    ) {
        let mut node = setup(kind);
        let mut disk = ModelDisk::of(&node);
        let mut now = 10_000u64;
        let mut reported = node.commit_index();
        for (delta, event) in events {
            now = now.saturating_add(delta);
            let (term, commit) = (node.term(), node.commit_index());
            let saved_event = matches!(event, Event::StateSaved(_));
            let actions = node.step(Millis(now), event);
            prop_assert!(node.term() >= term);
            prop_assert!(node.commit_index() >= commit);
            prop_assert!(node.commit_index() <= node.last_index());
            prop_assert!(node.durable_index() <= node.last_index());
            for action in &actions {
                disk.carry_out(action);
                match action {
                    Action::Commit(e) => {
                        prop_assert_eq!(e.index, LogIndex(reported.0 + 1));
                        reported = e.index;
                    }
                    // The state machine jumps to the snapshot, never back.
                    Action::InstallSnapshot { index, .. } => {
                        prop_assert!(*index > reported);
                        reported = *index;
                    }
                    _ => {}
                }
            }
            if !node.is_state_durable() && !saved_event {
                let sent = actions.iter().any(|a| matches!(a, Action::Send { .. }));
                prop_assert!(!sent, "sent while the term or vote is not durable");
            }
            // The storage actions mirror the in-memory log exactly.
            prop_assert_eq!(disk.base + disk.entries.len() as u64, node.last_index().0);
            for &(i, t) in &disk.entries {
                prop_assert_eq!(node.entry(i).map(|e| e.term), Some(t));
            }
        }
    }
}

#[test]
fn messages_from_itself_or_the_reserved_id_are_ignored() {
    for from in [0, 1] {
        let mut node = fresh(1, 3);
        let acts = step(&mut node, 10, append(from, 9, (0, 0), vec![entry(1, 9)], 1));
        assert!(
            acts.iter().all(|a| matches!(a, Action::Alarm { .. })),
            "from {from}: {acts:?}"
        );
        assert_eq!(node.term(), Term(0));
    }
}

#[test]
fn a_member_lagging_behind_a_change_follows_a_leader_it_does_not_know_yet() {
    // Thesis 4.1: node 4 was added and elected while this node missed the change.
    let mut node = fresh(1, 3);
    let acts = step(&mut node, 10, append(4, 9, (0, 0), vec![entry(1, 9)], 1));
    assert_eq!(node.term(), Term(9));
    assert_eq!(node.leader(), Some(NodeId(4)));
    assert!(acts.iter().any(|a| matches!(a, Action::LogStore { .. })));
}

#[test]
fn a_request_naming_another_sender_is_ignored() {
    let mut node = fresh(1, 3);
    // Node 2 claims node 3 is the leader.
    let forged = msg(
        2,
        raft::Message::AppendEntriesRequest(raft::AppendEntriesRequest {
            term: Term(5),
            leader: n(3),
            prev_log_index: LogIndex(0),
            prev_log_term: Term(0),
            entries: vec![],
            leader_commit: LogIndex(0),
        }),
    );
    step(&mut node, 10, forged);
    assert_eq!(node.term(), Term(0));
}

#[test]
fn answers_claiming_entries_the_leader_never_had_are_ignored() {
    let (mut leader, _) = node_with(3, 1, &[], config(1));
    elect(&mut leader, 3000);
    let term = leader.term().0;
    step(&mut leader, 3001, append_success(2, term, 1_000_000));
    step(&mut leader, 3001, append_success(3, term, u64::MAX));
    assert_eq!(leader.commit_index(), LogIndex(0));
}

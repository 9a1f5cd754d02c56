//! Proptest strategies for the core's inputs, shared by the wire and robustness tests. Guards
//! against fuzzing only the easy corners: numbers are drawn both small (where logic branches)
//! and huge (where arithmetic overflows).

#![allow(dead_code)]

use bytes::Bytes;
use proptest::prelude::*;
use raft::{
    AppendEntriesRequest, AppendEntriesResponse, AppendOutcome, Entry, Event, HardState, Heartbeat,
    HeartbeatResponse, InstallSnapshotRequest, LogIndex, Message, NodeId, Payload, ProposalId,
    ReadId, Term, VoteRequest, VoteResponse,
};

/// Mostly small numbers, sometimes the extremes.
pub fn num() -> impl Strategy<Value = u64> {
    prop_oneof![
        8 => 0u64..6,
        1 => Just(u64::MAX),
        1 => Just(u64::MAX - 1),
        1 => any::<u64>(),
    ]
}

pub fn term() -> impl Strategy<Value = Term> {
    num().prop_map(Term)
}

pub fn index() -> impl Strategy<Value = LogIndex> {
    num().prop_map(LogIndex)
}

pub fn node_id() -> impl Strategy<Value = NodeId> {
    prop_oneof![
        6 => (1u64..=5).prop_map(NodeId),
        1 => (0u64..8).prop_map(NodeId),
        1 => any::<u64>().prop_map(NodeId),
    ]
}

pub fn payload() -> impl Strategy<Value = Payload> {
    prop_oneof![
        1 => Just(Payload::Noop),
        3 => proptest::collection::vec(any::<u8>(), 0..16).prop_map(|v| Payload::Command(Bytes::from(v))),
    ]
}

pub fn entry() -> impl Strategy<Value = Entry> {
    (index(), term(), payload()).prop_map(|(index, term, payload)| Entry {
        index,
        term,
        payload,
    })
}

/// Entries that are mostly well formed (contiguous from `prev + 1`, terms nondecreasing from
/// `prev_term`), so that the fuzzing reaches the append logic, and sometimes arbitrary.
pub fn entries_after(prev: LogIndex, prev_term: Term) -> impl Strategy<Value = Vec<Entry>> {
    prop_oneof![
        3 => proptest::collection::vec((0u64..2, payload()), 0..5).prop_map(move |v| {
            let mut term = prev_term.0;
            v.into_iter()
                .enumerate()
                .map(|(k, (bump, payload))| {
                    term = term.saturating_add(bump);
                    Entry {
                        index: LogIndex(prev.0.saturating_add(k as u64 + 1)),
                        term: Term(term),
                        payload,
                    }
                })
                .collect()
        }),
        1 => proptest::collection::vec(entry(), 0..4),
    ]
}

pub fn append_request() -> impl Strategy<Value = AppendEntriesRequest> {
    (term(), node_id(), index(), term(), index()).prop_flat_map(
        |(term, leader, prev_log_index, prev_log_term, leader_commit)| {
            entries_after(prev_log_index, prev_log_term).prop_map(move |entries| {
                AppendEntriesRequest {
                    term,
                    leader,
                    prev_log_index,
                    prev_log_term,
                    entries,
                    leader_commit,
                }
            })
        },
    )
}

pub fn message() -> impl Strategy<Value = Message> {
    prop_oneof![
        append_request().prop_map(Message::AppendEntriesRequest),
        (term(), index()).prop_map(|(term, match_index)| {
            Message::AppendEntriesResponse(AppendEntriesResponse {
                term,
                outcome: AppendOutcome::Success { match_index },
            })
        }),
        (term(), index(), index(), term()).prop_map(|(term, rejected, hint_index, hint_term)| {
            Message::AppendEntriesResponse(AppendEntriesResponse {
                term,
                outcome: AppendOutcome::Reject {
                    rejected,
                    hint_index,
                    hint_term,
                },
            })
        }),
        (
            term(),
            node_id(),
            index(),
            term(),
            any::<bool>(),
            any::<bool>()
        )
            .prop_map(
                |(term, candidate, last_log_index, last_log_term, prevote, transfer)| {
                    Message::VoteRequest(VoteRequest {
                        term,
                        candidate,
                        last_log_index,
                        last_log_term,
                        prevote,
                        transfer,
                    })
                }
            ),
        (term(), any::<bool>(), any::<bool>()).prop_map(|(term, granted, prevote)| {
            Message::VoteResponse(VoteResponse {
                term,
                granted,
                prevote,
            })
        }),
        (term(), node_id(), index(), num()).prop_map(|(term, leader, commit, read_round)| {
            Message::Heartbeat(Heartbeat {
                term,
                leader,
                commit,
                read_round,
            })
        }),
        (term(), num()).prop_map(|(term, read_round)| {
            Message::HeartbeatResponse(HeartbeatResponse { term, read_round })
        }),
        install_snapshot().prop_map(Message::InstallSnapshot),
        (term(), node_id())
            .prop_map(|(term, leader)| { Message::TimeoutNow(raft::TimeoutNow { term, leader }) }),
        (term(), num())
            .prop_map(|(term, id)| Message::ReadIndexRequest(raft::ReadIndexRequest { term, id })),
        (term(), num(), proptest::option::of(index())).prop_map(|(term, id, index)| {
            Message::ReadIndexResponse(raft::ReadIndexResponse { term, id, index })
        }),
    ]
}

pub fn install_snapshot() -> impl Strategy<Value = InstallSnapshotRequest> {
    (term(), node_id(), index(), term()).prop_map(|(term, leader, index, snapshot_term)| {
        InstallSnapshotRequest {
            term,
            leader,
            index,
            snapshot_term,
            membership: raft::Membership::voters_only([raft::NodeId(1), raft::NodeId(2)]),
        }
    })
}

/// Any event, with the time to step it at (a delta added to the previous time).
pub fn event() -> impl Strategy<Value = (u64, Event)> {
    let delta = prop_oneof![3 => 0u64..50, 1 => 0u64..5000, 1 => Just(u64::MAX / 4)];
    let event = prop_oneof![
        6 => (node_id(), message()).prop_map(|(from, msg)| Event::Message { from, msg }),
        2 => Just(Event::Timeout),
        1 => (index(), term()).prop_map(|(index, term)| Event::LogStored { index, term }),
        1 => (term(), proptest::option::of(node_id()), index())
            .prop_map(|(term, vote, commit)| Event::StateSaved(HardState { term, vote, commit })),
        1 => proptest::collection::vec((num(), proptest::collection::vec(any::<u8>(), 0..8)), 0..4)
            .prop_map(|v| Event::Append(
                v.into_iter().map(|(id, b)| (ProposalId(id), Bytes::from(b))).collect()
            )),
        1 => num().prop_map(|id| Event::ReadIndex(ReadId(id))),
        // What a driver reports about snapshots it was asked for; `SnapshotSaved` is left out:
        // a wrong one is a driver bug the node asserts on.
        1 => (node_id(), index(), any::<bool>())
            .prop_map(|(to, index, installed)| Event::SnapshotReport { to, index, installed }),
        1 => (index(), term()).prop_map(|(index, term)| Event::SnapshotInstalled { index, term }),
    ];
    (delta, event)
}

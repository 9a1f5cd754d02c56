//! Helpers shared by the behaviour tests: building nodes from a chosen state and picking actions
//! out of a step's output. Guards against tests that each build nodes their own, subtly wrong, way.

#![allow(dead_code)]

use bytes::Bytes;
use raft::{
    Action, AppendEntriesRequest, AppendEntriesResponse, AppendOutcome, Config, Entry, Event,
    HardState, Heartbeat, LogIndex, Message, Millis, Node, NodeId, Payload, Recovered, Term,
    VoteRequest, VoteResponse,
};

pub const ELECTION_MS: u64 = 1000;
pub const HEARTBEAT_MS: u64 = 100;

pub fn n(id: u64) -> NodeId {
    NodeId(id)
}

pub fn voters(count: u64) -> raft::Membership {
    raft::Membership::voters_only((1..=count).map(NodeId))
}

pub fn config(id: u64) -> Config {
    Config::new(NodeId(id))
}

/// An entry of `term` at `index` carrying a one-byte command.
pub fn entry(index: u64, term: u64) -> Entry {
    Entry {
        index: LogIndex(index),
        term: Term(term),
        payload: Payload::Command(Bytes::from(vec![index as u8])),
    }
}

/// A log whose entry i (from 1) has term `terms[i-1]`.
pub fn log_of(terms: &[u64]) -> Vec<Entry> {
    terms
        .iter()
        .enumerate()
        .map(|(k, &t)| entry(k as u64 + 1, t))
        .collect()
}

/// A node (`cfg.id`) of a `count`-voter cluster, recovered with `term`, no vote, and `terms` as
/// its durable log; started at time 0.
pub fn node_with(count: u64, term: u64, terms: &[u64], cfg: Config) -> (Node, Vec<Action>) {
    let recovered = Recovered {
        hard_state: HardState {
            term: Term(term),
            vote: None,
            commit: LogIndex(0),
        },
        snapshot: None,
        entries: log_of(terms),
        membership: None,
    };
    let mut node = Node::new(cfg, voters(count), recovered, LogIndex(0), 42).unwrap();
    let actions = node.step(Millis(0), Event::Timeout);
    (node, actions)
}

/// A fresh follower `id` in a `count`-voter cluster with the default configuration.
pub fn fresh(id: u64, count: u64) -> Node {
    node_with(count, 0, &[], config(id)).0
}

pub fn msg(from: u64, msg: Message) -> Event {
    Event::Message {
        from: NodeId(from),
        msg,
    }
}

pub fn sends(actions: &[Action]) -> Vec<(NodeId, Message)> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Send { to, msg } => Some((*to, msg.clone())),
            _ => None,
        })
        .collect()
}

pub fn commits(actions: &[Action]) -> Vec<LogIndex> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Commit(e) => Some(e.index),
            _ => None,
        })
        .collect()
}

pub fn stores(actions: &[Action]) -> Vec<Entry> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::LogStore { entries } => Some(entries.clone()),
            _ => None,
        })
        .flatten()
        .collect()
}

pub fn truncations(actions: &[Action]) -> Vec<LogIndex> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::LogTruncate { from } => Some(*from),
            _ => None,
        })
        .collect()
}

pub fn saves(actions: &[Action]) -> Vec<HardState> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::SaveState(hs) => Some(*hs),
            _ => None,
        })
        .collect()
}

pub fn alarm(actions: &[Action]) -> Option<Millis> {
    actions.iter().rev().find_map(|a| match a {
        Action::Alarm { at } => Some(*at),
        _ => None,
    })
}

pub fn vote_responses(actions: &[Action]) -> Vec<(NodeId, VoteResponse)> {
    sends(actions)
        .into_iter()
        .filter_map(|(to, m)| match m {
            Message::VoteResponse(r) => Some((to, r)),
            _ => None,
        })
        .collect()
}

pub fn vote_requests(actions: &[Action]) -> Vec<(NodeId, VoteRequest)> {
    sends(actions)
        .into_iter()
        .filter_map(|(to, m)| match m {
            Message::VoteRequest(r) => Some((to, r)),
            _ => None,
        })
        .collect()
}

pub fn append_requests(actions: &[Action]) -> Vec<(NodeId, AppendEntriesRequest)> {
    sends(actions)
        .into_iter()
        .filter_map(|(to, m)| match m {
            Message::AppendEntriesRequest(r) => Some((to, r)),
            _ => None,
        })
        .collect()
}

pub fn append_responses(actions: &[Action]) -> Vec<(NodeId, AppendEntriesResponse)> {
    sends(actions)
        .into_iter()
        .filter_map(|(to, m)| match m {
            Message::AppendEntriesResponse(r) => Some((to, r)),
            _ => None,
        })
        .collect()
}

pub fn heartbeats(actions: &[Action]) -> Vec<(NodeId, Heartbeat)> {
    sends(actions)
        .into_iter()
        .filter_map(|(to, m)| match m {
            Message::Heartbeat(h) => Some((to, h)),
            _ => None,
        })
        .collect()
}

/// An AppendEntries from leader `leader` in `term`.
pub fn append(leader: u64, term: u64, prev: (u64, u64), entries: Vec<Entry>, commit: u64) -> Event {
    msg(
        leader,
        Message::AppendEntriesRequest(AppendEntriesRequest {
            term: Term(term),
            leader: NodeId(leader),
            prev_log_index: LogIndex(prev.0),
            prev_log_term: Term(prev.1),
            entries,
            leader_commit: LogIndex(commit),
        }),
    )
}

/// A vote (or pre-vote) request from `candidate`.
pub fn vote_request(candidate: u64, term: u64, last: (u64, u64), prevote: bool) -> Event {
    msg(
        candidate,
        Message::VoteRequest(VoteRequest {
            term: Term(term),
            candidate: NodeId(candidate),
            last_log_index: LogIndex(last.0),
            last_log_term: Term(last.1),
            prevote,
            transfer: false,
        }),
    )
}

pub fn vote_response(from: u64, term: u64, granted: bool, prevote: bool) -> Event {
    msg(
        from,
        Message::VoteResponse(VoteResponse {
            term: Term(term),
            granted,
            prevote,
        }),
    )
}

pub fn append_success(from: u64, term: u64, match_index: u64) -> Event {
    msg(
        from,
        Message::AppendEntriesResponse(AppendEntriesResponse {
            term: Term(term),
            outcome: AppendOutcome::Success {
                match_index: LogIndex(match_index),
            },
        }),
    )
}

/// Steps `node` with `event` at `now`.
pub fn step(node: &mut Node, now: u64, event: Event) -> Vec<Action> {
    node.step(Millis(now), event)
}

/// Acknowledges every SaveState and LogStore in `actions` at once (instant disk) and returns
/// the actions of those acknowledgements.
pub fn persist(node: &mut Node, now: u64, actions: &[Action]) -> Vec<Action> {
    let mut out = Vec::new();
    for hs in saves(actions) {
        out.extend(node.step(Millis(now), Event::StateSaved(hs)));
    }
    if let Some(last) = stores(actions).last() {
        out.extend(node.step(
            Millis(now),
            Event::LogStored {
                index: last.index,
                term: last.term,
            },
        ));
    }
    out
}

/// `actions` followed by what persisting them (at `now`) releases.
pub fn persist_all(node: &mut Node, now: u64, actions: &[Action]) -> Vec<Action> {
    let mut all = actions.to_vec();
    all.extend(persist(node, now, actions));
    all
}

/// Fires `node`'s election timeout (the time is well past any deadline drawn from `start`).
pub fn time_out(node: &mut Node, start: u64) -> Vec<Action> {
    node.step(Millis(start + 2 * ELECTION_MS), Event::Timeout)
}

/// Makes `node` leader at time `now` (past any election deadline): times it out, grants every
/// (pre-)vote it asks for, and persists what it saves and stores (its no-op is durable).
/// Returns the actions of the last steps (from the deciding votes on).
pub fn elect(node: &mut Node, now: u64) -> Vec<Action> {
    let mut actions = node.step(Millis(now), Event::Timeout);
    for _round in 0..2 {
        let persisted = persist(node, now, &actions);
        actions.extend(persisted);
        let requests = vote_requests(&actions);
        if requests.is_empty() {
            break;
        }
        let mut next = Vec::new();
        for (to, req) in requests {
            next.extend(node.step(
                Millis(now),
                vote_response(to.0, req.term.0, true, req.prevote),
            ));
            if node.role() == raft::Role::Leader {
                break;
            }
        }
        actions = next;
    }
    assert_eq!(node.role(), raft::Role::Leader, "the node should have won");
    let persisted = persist(node, now, &actions);
    actions.extend(persisted);
    actions
}

/// The last AppendEntries sent to `to` among `actions`.
pub fn last_append_to(actions: &[Action], to: u64) -> Option<AppendEntriesRequest> {
    append_requests(actions)
        .into_iter()
        .filter(|(t, _)| *t == NodeId(to))
        .map(|(_, r)| r)
        .last()
}

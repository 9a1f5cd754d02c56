//! What the node task observes of leadership and replication, beside driving the replica:
//! leader changes and elections, the commit latency of the leader's own entries, contact
//! between leader and followers. It feeds the event metrics ([`crate::metrics`]) and the
//! `last_contact_ms` and `followers` fields of `/status`, from the replica's outputs and the
//! peer messages the node steps, so the pure crates stay free of clocks.

use std::collections::VecDeque;
use std::sync::Arc;

use raft::{LogIndex, Message, NodeId, Term};
use tokio::time::Instant;

use crate::metrics::Metrics;
use crate::status::FollowerProgress;

/// Proposal batches whose commit the leader times at once; beyond it the oldest is forgotten
/// (not timed), so a stalled quorum cannot grow this without bound. In-flight commands are
/// capped at `IN_FLIGHT_MAX` anyway, and batches hold one or more commands each.
const PROPOSED_BATCHES_MAX: usize = super::IN_FLIGHT_MAX;

/// A batch of entries this node appended as leader, waiting for commit (for the commit
/// latency histogram).
struct Proposed {
    /// Its first index.
    first: LogIndex,
    /// Its last index.
    last: LogIndex,
    /// When it was handed to the log writer and the followers.
    at: Instant,
}

/// When the leader last heard from one follower, and how far it has replicated (this term).
struct FollowerContact {
    id: NodeId,
    match_index: LogIndex,
    last_ack: Option<Instant>,
}

/// The node task's observations (see the module doc).
pub(super) struct Observer {
    /// Where the counts go.
    metrics: Arc<Metrics>,
    /// Leader: its batches not yet seen committed, oldest first.
    proposed: VecDeque<Proposed>,
    /// The leader (and its term) last announced, to count leader changes.
    known_leader: Option<(NodeId, Term)>,
    /// Follower: when the leader of its term was last heard from.
    leader_heard: Option<Instant>,
    /// Leader: what each other member has acknowledged in this term.
    followers: Vec<FollowerContact>,
}

impl Observer {
    /// Observations counted into `metrics`.
    pub(super) fn new(metrics: Arc<Metrics>) -> Observer {
        Observer {
            metrics,
            proposed: VecDeque::new(),
            known_leader: None,
            leader_heard: None,
            followers: Vec::new(),
        }
    }

    /// A node step that started at `started` applied committed entries.
    pub(super) fn applied(&self, started: Instant) {
        self.metrics.apply_seconds.observe(started.elapsed());
    }

    /// Leader: remembers when a batch of its own entries went to the log and the followers.
    pub(super) fn proposing(&mut self, core: &raft::Node, entries: &[raft::Entry], at: Instant) {
        if core.role() != raft::Role::Leader {
            return;
        }
        let (Some(first), Some(last)) = (entries.first(), entries.last()) else {
            return;
        };
        if self.proposed.len() >= PROPOSED_BATCHES_MAX {
            self.proposed.pop_front();
        }
        self.proposed.push_back(Proposed {
            first: first.index,
            last: last.index,
            at,
        });
    }

    /// Entry `index` is committed and applied: times the leader's batches it completes.
    pub(super) fn committed(&mut self, index: LogIndex) {
        while let Some(batch) = self.proposed.front() {
            if batch.last > index {
                break;
            }
            let entries = batch.last.0 - batch.first.0 + 1;
            self.metrics
                .commit_seconds
                .observe_n(batch.at.elapsed(), entries);
            self.metrics.proposals_committed.inc_by(entries);
            self.proposed.pop_front();
        }
    }

    /// Counts leader changes and elections, and resets what belongs to one leadership.
    pub(super) fn role_changed(&mut self, role: raft::Role, term: Term, leader: Option<NodeId>) {
        match role {
            raft::Role::Candidate => {
                self.metrics.elections_started.inc();
            }
            raft::Role::PreCandidate => {
                self.metrics.prevotes_started.inc();
            }
            raft::Role::Leader | raft::Role::Follower => {}
        }
        if let Some(leader) = leader
            && self.known_leader != Some((leader, term))
        {
            self.known_leader = Some((leader, term));
            self.metrics.leader_changes.inc();
            self.leader_heard = None;
        }
        if role != raft::Role::Leader {
            // What this node proposed and has not seen commit is lost to it (the core answered
            // its clients ERR_INTERNAL); it may still commit under the next leader.
            let lost: u64 = self
                .proposed
                .drain(..)
                .map(|b| b.last.0 - b.first.0 + 1)
                .sum();
            if lost > 0 {
                self.metrics.proposals_failed.inc_by(lost);
            }
            self.followers.clear();
        }
    }

    /// After stepping a message from `from`: notes contact with the leader (on a follower) or
    /// an acknowledgement (on the leader), for `/status`.
    pub(super) fn heard(&mut self, core: &raft::Node, from: NodeId, contact: Contact, at: Instant) {
        let current = contact.term() == Some(core.term());
        if !current {
            return;
        }
        match contact {
            Contact::FromLeader(_) if core.leader() == Some(from) => {
                self.leader_heard = Some(at);
            }
            Contact::Ack { matched, .. } if core.role() == raft::Role::Leader => {
                match self.followers.iter_mut().find(|f| f.id == from) {
                    Some(f) => {
                        f.last_ack = Some(at);
                        if let Some(m) = matched {
                            f.match_index = f.match_index.max(m);
                        }
                    }
                    None => self.followers.push(FollowerContact {
                        id: from,
                        match_index: matched.unwrap_or(LogIndex(0)),
                        last_ack: Some(at),
                    }),
                }
            }
            _ => {}
        }
    }

    /// `last_contact_ms` and `followers` of the status: see [`Status::last_contact_ms`].
    pub(super) fn contact_status(&self, core: &raft::Node) -> (Option<u64>, Vec<FollowerProgress>) {
        let ms = |at: Instant| at.elapsed().as_millis() as u64;
        if core.role() != raft::Role::Leader {
            return (self.leader_heard.map(ms), Vec::new());
        }
        let membership = core.membership();
        let followers: Vec<FollowerProgress> = membership
            .members()
            .iter()
            .filter(|(id, _)| **id != core.id())
            .map(|(id, m)| {
                let known = self.followers.iter().find(|f| f.id == *id);
                FollowerProgress {
                    id: id.0,
                    voter: m.voter,
                    match_index: known.map_or(0, |f| f.match_index.0),
                    last_ack_ms: known.and_then(|f| f.last_ack).map(ms),
                }
            })
            .collect();
        // The oldest acknowledgement within the freshest quorum: a majority of the voters,
        // this leader counting as heard from now.
        let mut ages: Vec<u64> = vec![0];
        ages.extend(
            followers
                .iter()
                .filter(|f| f.voter)
                .filter_map(|f| f.last_ack_ms),
        );
        ages.sort_unstable();
        let quorum = core.voters().len() / 2 + 1;
        (ages.get(quorum - 1).copied(), followers)
    }
}

/// What a peer message says about contact between leader and follower, taken before the message
/// is handed to the replica.
#[derive(Debug, Clone, Copy)]
pub(super) enum Contact {
    /// An append or heartbeat of a leader of this term.
    FromLeader(Term),
    /// A follower's answer to an append (with its match index if it succeeded) or heartbeat.
    Ack {
        /// The follower's term.
        term: Term,
        /// Its match index, from a successful append.
        matched: Option<LogIndex>,
    },
    /// Anything else.
    Other,
}

impl Contact {
    pub(super) fn of(msg: &replica::PeerMessage) -> Contact {
        let replica::PeerMessage::Raft(msg) = msg else {
            return Contact::Other;
        };
        match msg {
            Message::AppendEntriesRequest(m) => Contact::FromLeader(m.term),
            Message::Heartbeat(m) => Contact::FromLeader(m.term),
            Message::AppendEntriesResponse(m) => Contact::Ack {
                term: m.term,
                matched: match m.outcome {
                    raft::AppendOutcome::Success { match_index } => Some(match_index),
                    raft::AppendOutcome::Reject { .. } => None,
                },
            },
            Message::HeartbeatResponse(m) => Contact::Ack {
                term: m.term,
                matched: None,
            },
            _ => Contact::Other,
        }
    }

    fn term(self) -> Option<Term> {
        match self {
            Contact::FromLeader(term) | Contact::Ack { term, .. } => Some(term),
            Contact::Other => None,
        }
    }
}

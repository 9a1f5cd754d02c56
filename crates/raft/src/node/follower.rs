//! The follower: appending the leader's entries (5.3), following its commit index, and
//! acknowledging only what is durable.

use super::Node;
use crate::action::Action;
use crate::entry::Entry;
use crate::ids::{LogIndex, NodeId, Term};
use crate::message::{
    AppendEntriesRequest, AppendEntriesResponse, AppendOutcome, Heartbeat, HeartbeatResponse,
    Message,
};

impl Node {
    /// Handles a message in a follower's term.
    pub(super) fn step_follower(&mut self, from: NodeId, msg: Message) {
        match msg {
            Message::AppendEntriesRequest(req) => {
                if self.hear_from_leader(from) {
                    self.handle_append(from, req);
                }
            }
            Message::Heartbeat(hb) => {
                if self.hear_from_leader(from) {
                    self.handle_heartbeat(from, hb);
                }
            }
            Message::InstallSnapshot(req) => {
                if self.hear_from_leader(from) {
                    self.handle_install_snapshot(req);
                }
            }
            Message::ReadIndexRequest(req) => self.refuse_read_index(from, req.id),
            Message::ReadIndexResponse(resp) => {
                if self.leader == Some(from) {
                    self.on_read_index_response(resp);
                }
            }
            Message::TimeoutNow(_) => {
                // The leader hands over: stand at once, skipping pre-vote, if we may vote.
                if self.hear_from_leader(from) && self.membership.is_voter(self.id()) {
                    self.become_candidate(true);
                }
            }
            Message::AppendEntriesResponse(_)
            | Message::VoteRequest(_)
            | Message::VoteResponse(_)
            | Message::HeartbeatResponse(_) => {}
        }
    }

    /// Records contact with `from` as this term's leader; false if another node already leads
    /// this term here (impossible in Raft: the message is dropped).
    fn hear_from_leader(&mut self, from: NodeId) -> bool {
        match self.leader {
            Some(leader) if leader != from => return false,
            Some(_) => {}
            None => {
                self.leader = Some(from);
                self.leader_match = LogIndex(0);
                self.acked = LogIndex(0);
            }
        }
        self.leader_contact = Some(self.now);
        self.election_deadline = self.timer.deadline(self.now);
        true
    }

    /// AppendEntries (figure 2, 5.3): check the entry before the new ones, truncate only at a
    /// real conflict, append the rest, follow the leader's commit, and acknowledge once durable.
    pub(super) fn handle_append(&mut self, from: NodeId, mut req: AppendEntriesRequest) {
        if !is_well_formed(&req) {
            return;
        }
        let received = req.entries.len();
        self.trim_compacted(&mut req);
        // Entries trimmed to the base must still continue it: a garbage request may carry terms
        // below the snapshot's.
        if !is_well_formed(&req) {
            return;
        }
        if !self.log.matches(req.prev_log_index, req.prev_log_term) {
            let outcome = self.reject_outcome(req.prev_log_index, req.prev_log_term);
            self.send_append_response(from, outcome);
            return;
        }
        let last_new = LogIndex(req.prev_log_index.0 + req.entries.len() as u64);
        // The first entry this log does not already hold (same index and term). Entries before
        // it are kept even if the request is shorter than the log: a late or duplicated request
        // must never erase entries (5.3).
        let fresh = req
            .entries
            .iter()
            .position(|e| !self.log.matches(e.index, e.term));
        if let Some(k) = fresh {
            let from_index = req.entries[k].index;
            if from_index <= self.log.last_index() {
                if from_index <= self.commit {
                    // A leader contradicting a committed entry is broken or an impostor.
                    return;
                }
                self.emit_save_state();
                self.out.push(Action::LogTruncate { from: from_index });
                self.log.truncate(from_index);
                self.durable = self.durable.min(from_index.prev());
            }
            let mut new: Vec<Entry> = req.entries.split_off(k);
            if new.len() < received {
                // The entries dropped here must not stay in memory through the frame they
                // share with the kept ones (see `raft::entry`).
                new.iter_mut().for_each(Entry::detach);
            }
            self.log.append(&new);
            self.store(new);
        }
        self.leader_match = self.leader_match.max(last_new);
        self.commit_to(req.leader_commit.min(self.leader_match));
        self.acknowledge(self.durable >= last_new);
    }

    /// Drops the part of a (well-formed) request at or below the snapshot base: those entries
    /// are committed, so they match the leader's, and the check starts from the base instead.
    fn trim_compacted(&self, req: &mut AppendEntriesRequest) {
        let base = self.log.base_index();
        if req.prev_log_index >= base {
            return;
        }
        let below = base.0 - req.prev_log_index.0;
        let skip = usize::try_from(below).map_or(req.entries.len(), |n| n.min(req.entries.len()));
        req.entries.drain(..skip);
        req.prev_log_index = base;
        req.prev_log_term = self.log.term(base).unwrap_or(Term(0));
    }

    /// A heartbeat: follow the commit index (capped by the leader at what we are known to
    /// hold) and answer, echoing the ReadIndex round.
    pub(super) fn handle_heartbeat(&mut self, from: NodeId, hb: Heartbeat) {
        self.commit_to(hb.commit.min(self.log.last_index()));
        self.send_heartbeat_response(from, hb.read_round);
    }

    /// Follower reads: asks the leader for a read index for the driver's read `id` (with the
    /// next request, if one is in flight).
    pub(super) fn forward_read(&mut self, id: crate::ids::ReadId, leader: NodeId) {
        self.forward_queue.push(id);
        if self.forwarded.is_none() {
            self.send_forwarded(leader);
        }
    }

    /// Sends one read-index request for every queued read.
    fn send_forwarded(&mut self, leader: NodeId) {
        if self.forward_queue.is_empty() {
            return;
        }
        self.forwarded_last += 1;
        let number = self.forwarded_last;
        let ids = std::mem::take(&mut self.forward_queue);
        self.forwarded = Some((number, self.now, ids));
        let msg = Message::ReadIndexRequest(crate::message::ReadIndexRequest {
            term: self.term,
            id: number,
        });
        self.send(leader, msg);
    }

    /// The leader's read index for the request in flight (or its refusal); the reads queued
    /// meanwhile go next.
    fn on_read_index_response(&mut self, resp: crate::message::ReadIndexResponse) {
        if self.forwarded.as_ref().map(|(n, _, _)| *n) == Some(resp.id) {
            self.finish_forwarded(resp.index);
        }
    }

    /// Fails the request the leader has not answered within an election timeout (a lost
    /// message, or a leader that is gone): the driver sends the clients to the leader. The
    /// reads queued behind it get a request of their own.
    pub(super) fn expire_forwarded_reads(&mut self) {
        let timeout = self.config.election_timeout_ms;
        let late = self
            .forwarded
            .as_ref()
            .is_some_and(|(_, at, _)| self.now.since(*at) >= timeout);
        if late {
            self.finish_forwarded(None);
        }
    }

    /// Ends the request in flight: its reads are ready at `index`, or (`None`) fail naming the
    /// leader; the reads queued meanwhile go in the next request.
    fn finish_forwarded(&mut self, index: Option<LogIndex>) {
        let ids = self
            .forwarded
            .take()
            .map(|(_, _, ids)| ids)
            .unwrap_or_default();
        for id in ids {
            self.out.push(match index {
                Some(index) => Action::ReadReady { id, index },
                None => Action::ReadError {
                    id,
                    error: crate::error::ReadError::NotLeader {
                        leader: self.leader,
                    },
                },
            });
        }
        if let Some(leader) = self.leader {
            self.send_forwarded(leader);
        }
    }

    /// Answers a read-index request this node cannot serve (it does not lead).
    pub(super) fn refuse_read_index(&mut self, to: NodeId, id: u64) {
        let msg = Message::ReadIndexResponse(crate::message::ReadIndexResponse {
            term: self.term,
            id,
            index: None,
        });
        self.send(to, msg);
    }

    /// Acknowledges to the leader what is both durable and known to match its log. With
    /// `always`, answers even if that is no more than already acknowledged (the request was a
    /// duplicate or a probe, and its sender waits for an answer).
    pub(super) fn acknowledge(&mut self, always: bool) {
        let Some(leader) = self.leader else {
            return;
        };
        let match_index = self.durable.min(self.leader_match);
        if !always && match_index <= self.acked {
            return;
        }
        self.acked = self.acked.max(match_index);
        self.send_append_response(leader, AppendOutcome::Success { match_index });
    }

    /// The rejection of an AppendEntries whose previous entry does not match, with the fast
    /// backtracking hint (etcd's findConflictByTerm).
    pub(super) fn reject_outcome(
        &self,
        prev_log_index: LogIndex,
        prev_log_term: Term,
    ) -> AppendOutcome {
        let (hint_index, hint_term) = self
            .log
            .find_conflict_by_term(prev_log_index.min(self.log.last_index()), prev_log_term);
        AppendOutcome::Reject {
            rejected: prev_log_index,
            hint_index,
            hint_term,
        }
    }

    pub(super) fn send_append_response(&mut self, to: NodeId, outcome: AppendOutcome) {
        let msg = Message::AppendEntriesResponse(AppendEntriesResponse {
            term: self.term,
            outcome,
        });
        self.send(to, msg);
    }

    pub(super) fn send_heartbeat_response(&mut self, to: NodeId, read_round: u64) {
        let msg = Message::HeartbeatResponse(HeartbeatResponse {
            term: self.term,
            read_round,
        });
        self.send(to, msg);
    }
}

/// Checks what a well-behaved leader always sends: entries numbered from `prev_log_index + 1`
/// without gaps, terms never decreasing from `prev_log_term` and never above the leader's term.
fn is_well_formed(req: &AppendEntriesRequest) -> bool {
    if req.prev_log_term > req.term {
        return false;
    }
    let mut index = req.prev_log_index;
    let mut term = req.prev_log_term;
    for entry in &req.entries {
        if index.next() != Some(entry.index) || entry.term < term || entry.term > req.term {
            return false;
        }
        index = entry.index;
        term = entry.term;
    }
    true
}

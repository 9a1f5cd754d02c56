//! Elections: pre-vote (thesis 9.6) and the real vote (5.2).

use super::Node;
use crate::ids::{NodeId, Term};
use crate::message::{Message, VoteRequest};
use crate::quorum::VoteResult;
use crate::role::Role;

impl Node {
    /// The election timeout fired: poll first with pre-vote if enabled, else stand at once.
    pub(super) fn campaign(&mut self) {
        if self.config.prevote {
            self.become_pre_candidate();
        } else {
            self.become_candidate(false);
        }
    }

    /// Polls the voters at `term + 1` without changing term or vote, so a node that cannot win
    /// (partitioned away, or with a stale log) never disturbs the cluster's term.
    fn become_pre_candidate(&mut self) {
        debug_assert_ne!(self.role, Role::Leader, "a leader does not campaign");
        let Some(next_term) = self.term.next() else {
            self.stay_out_of_elections();
            return;
        };
        self.leave_role(None);
        self.role = Role::PreCandidate;
        self.leader = None;
        self.leader_contact = None;
        self.election_deadline = self.timer.deadline(self.now);
        self.request_votes(next_term, true, false);
    }

    /// Starts an election in a new term, voting for itself (5.2). The requests are held until
    /// the new term and vote are durable. `transfer`: the leader asked for it (`TimeoutNow`).
    pub(super) fn become_candidate(&mut self, transfer: bool) {
        debug_assert_ne!(self.role, Role::Leader, "a leader does not campaign");
        let Some(next_term) = self.term.next() else {
            self.stay_out_of_elections();
            return;
        };
        self.term = next_term;
        self.vote = Some(self.id());
        self.held.clear();
        self.save_state();
        self.leave_role(None);
        self.role = Role::Candidate;
        self.leader = None;
        self.leader_contact = None;
        self.election_deadline = self.timer.deadline(self.now);
        self.request_votes(next_term, false, transfer);
    }

    /// At the last possible term a node cannot campaign without reusing a term: it stays a
    /// follower (only reachable through a peer's absurd term).
    fn stay_out_of_elections(&mut self) {
        self.become_follower(self.term, None);
    }

    /// Votes for itself, asks every other voter, and settles at once if that decides (one
    /// voter).
    fn request_votes(&mut self, term: Term, prevote: bool, transfer: bool) {
        self.votes.record(self.id(), true);
        let (last_log_index, last_log_term) = (self.log.last_index(), self.log.last_term());
        let mut k = 0;
        while let Some(&voter) = self.voters.get(k) {
            k += 1;
            if voter == self.id() {
                continue;
            }
            let msg = Message::VoteRequest(VoteRequest {
                term,
                candidate: self.id(),
                last_log_index,
                last_log_term,
                prevote,
                transfer,
            });
            self.send(voter, msg);
        }
        self.count_votes();
    }

    /// Handles a message in a (pre-)candidate's term.
    pub(super) fn step_candidate(&mut self, from: NodeId, msg: Message) {
        match msg {
            // A leader of this term exists (5.2): follow it.
            Message::AppendEntriesRequest(req) => {
                self.become_follower(self.term, Some(from));
                self.handle_append(from, req);
            }
            Message::Heartbeat(hb) => {
                self.become_follower(self.term, Some(from));
                self.handle_heartbeat(from, hb);
            }
            Message::InstallSnapshot(req) => {
                self.become_follower(self.term, Some(from));
                self.handle_install_snapshot(req);
            }
            Message::VoteResponse(resp) => {
                let ours = match self.role {
                    // Granted pre-votes carry the polled term; rejections the voter's term.
                    Role::PreCandidate => {
                        resp.prevote
                            && if resp.granted {
                                self.term.next() == Some(resp.term)
                            } else {
                                resp.term == self.term
                            }
                    }
                    _ => !resp.prevote && resp.term == self.term,
                };
                // Only voters of the configuration in force count.
                if ours && self.voters.contains(&from) {
                    self.votes.record(from, resp.granted);
                    self.count_votes();
                }
            }
            Message::AppendEntriesResponse(_)
            | Message::VoteRequest(_)
            | Message::HeartbeatResponse(_)
            | Message::TimeoutNow(_)
            | Message::ReadIndexResponse(_) => {}
            Message::ReadIndexRequest(req) => self.refuse_read_index(from, req.id),
        }
    }

    /// Acts on the tally: a won pre-vote starts the real election, a won election makes a
    /// leader, a lost one a follower.
    fn count_votes(&mut self) {
        match self.votes.result(self.voters.len()) {
            VoteResult::Won if self.role == Role::PreCandidate => self.become_candidate(false),
            VoteResult::Won => self.become_leader(),
            VoteResult::Lost => self.become_follower(self.term, None),
            VoteResult::Pending => {}
        }
    }
}

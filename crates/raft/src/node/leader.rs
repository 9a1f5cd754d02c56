//! The leader: proposals, replication to each follower, the commit rule, heartbeats,
//! check-quorum and ReadIndex reads.

use bytes::Bytes;

use super::Node;
use crate::action::Action;
use crate::entry::{Entry, Payload};
use crate::error::{ProposeError, ReadError};
use crate::ids::{LogIndex, NodeId, ProposalId, ReadId};
use crate::membership::{ChangeError, MembershipChange};
use crate::message::{AppendEntriesRequest, AppendOutcome, Heartbeat, Message, TimeoutNow};
use crate::progress::{Mode, Progress};
use crate::quorum::{majority, majority_value};
use crate::read_index::ReadOrigin;
use crate::time::Millis;

/// Heartbeat rounds remembered for the lease: far more than are ever in flight at once.
const ROUND_TIMES_MAX: usize = 64;
use crate::role::Role;

impl Node {
    /// Takes leadership of the current term after winning its election: fresh progress for
    /// every follower, and a no-op entry so that earlier terms' entries can commit (thesis 6.4);
    /// while no configuration is written down, the no-op is the bootstrap configuration.
    pub(super) fn become_leader(&mut self) {
        debug_assert_eq!(
            self.role,
            Role::Candidate,
            "only a candidate becomes leader"
        );
        debug_assert_eq!(self.vote, Some(self.id()), "a leader voted for itself");
        self.leave_role(Some(self.id()));
        self.role = Role::Leader;
        self.leader = Some(self.id());
        self.leader_contact = None;
        let next = LogIndex(self.log.last_index().0 + 1);
        for k in 0..self.peers.len() {
            let peer = self.peers[k];
            let progress = Progress::new(next, self.config.max_inflight_msgs);
            self.progress.insert(peer, progress);
        }
        self.heartbeat_deadline = self.now.after(self.config.heartbeat_interval_ms);
        self.quorum_check_deadline = self.now.after(self.config.election_timeout_ms);
        self.read_fallback = None;
        self.lease_from = self.now;
        // The first leader writes the bootstrap configuration down, as its no-op: from then on
        // every member takes it from its log or snapshot, never from its starting settings.
        let noop = if self.log.membership_logged() {
            Payload::Noop
        } else {
            Payload::Membership(self.membership.clone())
        };
        self.append_local(vec![noop]);
        self.bcast_append(false);
    }

    /// `Event::Append`: a leader appends the batch, stores it and replicates it; any other node
    /// refuses each command, naming the leader it knows.
    pub(super) fn propose(&mut self, batch: Vec<(ProposalId, Bytes)>) {
        if self.role != Role::Leader || self.transfer.is_some() {
            // While handing over, new commands go to the new leader.
            let error = ProposeError::NotLeader {
                leader: self.transfer.map_or(self.leader, |(to, _)| Some(to)),
            };
            for (id, _) in batch {
                self.out.push(Action::CommitError { id, error });
            }
            return;
        }
        if batch.is_empty() {
            return;
        }
        let first = self.log.last_index().0 + 1;
        let mut payloads = Vec::with_capacity(batch.len());
        for (k, (id, data)) in batch.into_iter().enumerate() {
            self.out.push(Action::Appended {
                id,
                index: LogIndex(first + k as u64),
                term: self.term,
            });
            payloads.push(Payload::Command(data));
        }
        self.append_local(payloads);
        self.bcast_append(false);
    }

    /// `Event::ChangeMembership`: appends the changed configuration if this leader may make
    /// the change now (see [`crate::membership`] for the rules).
    pub(super) fn change_membership(&mut self, id: ProposalId, change: MembershipChange) {
        match self.check_change(&change) {
            Ok(membership) => {
                self.out.push(Action::Appended {
                    id,
                    index: LogIndex(self.log.last_index().0 + 1),
                    term: self.term,
                });
                self.append_local(vec![Payload::Membership(membership)]);
                self.bcast_append(false);
            }
            Err(error) => self.out.push(Action::ChangeRefused { id, error }),
        }
    }

    /// The configuration `change` leads to, if this node may propose it now.
    fn check_change(
        &self,
        change: &MembershipChange,
    ) -> Result<crate::membership::Membership, ChangeError> {
        if self.role != Role::Leader || self.transfer.is_some() {
            return Err(ChangeError::NotLeader {
                leader: self.transfer.map_or(self.leader, |(to, _)| Some(to)),
            });
        }
        if self.log.term(self.commit) != Some(self.term) {
            return Err(ChangeError::NotReady);
        }
        if let Some(index) = self.log.change_after(self.commit) {
            return Err(ChangeError::Pending { index });
        }
        let next = self.membership.apply(change)?;
        if let MembershipChange::Promote { id } = change {
            let matched = self.progress.get(id).map_or(LogIndex(0), |p| p.matched);
            if matched < self.commit {
                return Err(ChangeError::LearnerBehind {
                    id: *id,
                    matched,
                    commit: self.commit,
                });
            }
        }
        Ok(next)
    }

    /// `Event::TransferLeadership`: hands over to `to` (or the most up-to-date voter) once it
    /// holds the whole log.
    pub(super) fn transfer_leadership(&mut self, to: Option<NodeId>) {
        if self.role != Role::Leader {
            return;
        }
        let target = match to {
            Some(to) if to != self.id() && self.membership.is_voter(to) => Some(to),
            Some(_) => None,
            None => self.most_caught_up_voter(),
        };
        let Some(target) = target else {
            return;
        };
        self.transfer = Some((target, self.now.after(self.config.election_timeout_ms)));
        // The target will campaign past every follower's stickiness: no lease from here on,
        // until the transfer is over.
        self.lease_until = None;
        self.lease_from = Millis(u64::MAX);
        self.maybe_send_timeout_now(target);
        self.replicate_to(target, false);
    }

    /// The voter other than this node whose log matches the most of ours.
    fn most_caught_up_voter(&self) -> Option<NodeId> {
        self.voters
            .iter()
            .filter(|&&v| v != self.id())
            .max_by_key(|v| self.progress.get(v).map_or(LogIndex(0), |p| p.matched))
            .copied()
    }

    /// Sends `TimeoutNow` to the transfer's target once it holds our whole log.
    fn maybe_send_timeout_now(&mut self, target: NodeId) {
        if self.transfer.map(|(to, _)| to) != Some(target) {
            return;
        }
        let caught_up = self
            .progress
            .get(&target)
            .is_some_and(|p| p.matched == self.log.last_index());
        if caught_up {
            self.send_timeout_now(target);
        }
    }

    fn send_timeout_now(&mut self, to: NodeId) {
        let msg = Message::TimeoutNow(TimeoutNow {
            term: self.term,
            leader: self.id(),
        });
        self.send(to, msg);
    }

    /// This leader's removal (or demotion) committed: it asks the most up-to-date voter to
    /// stand at once and steps down, so the cluster does not wait an election timeout.
    pub(super) fn hand_over_and_step_down(&mut self) {
        if let Some(target) = self.most_caught_up_voter() {
            self.send_timeout_now(target);
        }
        self.become_follower(self.term, None);
    }

    /// Appends entries of the current term to the log and asks the driver to store them.
    fn append_local(&mut self, payloads: Vec<Payload>) {
        let first = self.log.last_index().0 + 1;
        let entries: Vec<Entry> = payloads
            .into_iter()
            .zip(first..)
            .map(|(payload, i)| Entry {
                index: LogIndex(i),
                term: self.term,
                payload,
            })
            .collect();
        self.log.append(&entries);
        self.store(entries);
    }

    /// The leader's timer: check-quorum first (a leader without a majority sends nothing more),
    /// then heartbeats.
    pub(super) fn leader_tick(&mut self) {
        if self.transfer.is_some_and(|(_, until)| self.now >= until) {
            // The target did not take over in time: lead on (a lease only from new rounds).
            self.transfer = None;
            self.lease_from = self.now;
        }
        if self.now >= self.quorum_check_deadline {
            self.quorum_check_deadline = self.now.after(self.config.election_timeout_ms);
            if self.config.check_quorum && !self.quorum_active() {
                self.become_follower(self.term, None);
                return;
            }
        }
        if self.now >= self.heartbeat_deadline {
            self.heartbeat_deadline = self.now.after(self.config.heartbeat_interval_ms);
            self.bcast_heartbeat();
        }
        if let Some((_, at)) = self.read_fallback
            && self.now >= at
        {
            // The voters picked for the round did not all answer in time: ask everyone.
            self.bcast_heartbeat();
        }
    }

    /// Check-quorum (thesis 6.2): was a majority heard from since the last check? The leader
    /// counts itself only if its disk is not stalled: a leader whose own writes have made no
    /// progress for an election timeout must not keep the cluster from replacing it.
    fn quorum_active(&mut self) -> bool {
        if self.voters == [self.id()] {
            // Nobody else could lead; stepping down would only add elections.
            return true;
        }
        let stalled = self
            .write_pending_since
            .is_some_and(|since| self.now.since(since) >= self.config.election_timeout_ms);
        let mut active = usize::from(!stalled && self.membership.is_voter(self.id()));
        for (id, progress) in self.progress.iter_mut() {
            if self.membership.is_voter(*id) {
                active += usize::from(progress.recent_active);
            }
            progress.recent_active = false;
        }
        active >= majority(self.voters.len())
    }

    /// Handles a follower's message in the leader's term.
    pub(super) fn step_leader(&mut self, from: NodeId, msg: Message) {
        let Some(progress) = self.progress.get_mut(&from) else {
            return;
        };
        progress.heard_from();
        match msg {
            Message::AppendEntriesResponse(resp) => match resp.outcome {
                AppendOutcome::Success { match_index } => self.on_append_success(from, match_index),
                AppendOutcome::Reject {
                    rejected,
                    hint_index,
                    hint_term,
                } => {
                    // Fast backtracking (thesis 5.3, etcd): skip every index where the follower's
                    // hint shows the logs cannot match, in one round trip per term.
                    let (probe_at, _) = self.log.find_conflict_by_term(hint_index, hint_term);
                    if let Some(progress) = self.progress.get_mut(&from)
                        && progress.on_reject(rejected, probe_at)
                    {
                        self.replicate_to(from, false);
                    }
                }
            },
            Message::HeartbeatResponse(resp) => {
                // A live follower: let a paused probe go again, and free a slot of a full window
                // whose answers were probably lost (etcd).
                progress.probe_sent = false;
                if progress.mode == Mode::Replicate && progress.inflights.is_full() {
                    progress.inflights.free_first();
                }
                if resp.read_round <= self.reads.sent_round() {
                    progress.read_round = progress.read_round.max(resp.read_round);
                }
                if self.voters.contains(&from) {
                    self.reads.answered_by(from, resp.read_round);
                }
                let lagging = progress.matched < self.log.last_index();
                if lagging {
                    self.replicate_to(from, true);
                }
                self.check_reads();
            }
            // Votes of this term were decided; requests of this term from others are impossible.
            Message::AppendEntriesRequest(_)
            | Message::VoteRequest(_)
            | Message::VoteResponse(_)
            | Message::Heartbeat(_)
            | Message::InstallSnapshot(_)
            | Message::TimeoutNow(_)
            | Message::ReadIndexResponse(_) => {}
            Message::ReadIndexRequest(req) => self.read_for(ReadOrigin::Remote(from, req.id)),
        }
    }

    /// A follower holds our log durably up to `index`.
    fn on_append_success(&mut self, from: NodeId, index: LogIndex) {
        if index > self.log.last_index() {
            return; // Claims entries we never had: garbage.
        }
        let Some(progress) = self.progress.get_mut(&from) else {
            return;
        };
        if !progress.on_success(index) {
            // Stale, but it may have freed a slot of the window.
            self.replicate_to(from, false);
            return;
        }
        match progress.mode {
            Mode::Probe => progress.become_replicate(),
            Mode::Snapshot(pending) if progress.matched >= pending => progress.become_probe(),
            Mode::Replicate | Mode::Snapshot(_) => {}
        }
        if self.maybe_commit() {
            self.bcast_append(self.config.broadcast_commit);
        } else {
            self.replicate_to(from, false);
        }
        self.maybe_send_timeout_now(from);
    }

    /// Our own write is durable further: it may complete a majority.
    pub(super) fn on_own_durable(&mut self) {
        if self.maybe_commit() {
            self.bcast_append(self.config.broadcast_commit);
        }
    }

    /// Raft's commit rule (5.3, 5.4.2, figure 8): the highest index durable on a majority (this
    /// node counting only what its own disk acknowledged) commits, but only if it holds an entry
    /// of the current term; earlier entries commit with it.
    fn maybe_commit(&mut self) -> bool {
        let mut matched: Vec<LogIndex> = Vec::with_capacity(self.voters.len());
        for &voter in &self.voters {
            if voter == self.id() {
                matched.push(self.durable);
            } else if let Some(p) = self.progress.get(&voter) {
                matched.push(p.matched);
            }
        }
        if matched.len() < self.voters.len() {
            return false; // A voter without progress: never the case on a leader.
        }
        let index = majority_value(&mut matched);
        if index <= self.commit || self.log.term(index) != Some(self.term) {
            return false;
        }
        let first_of_term = self.log.term(self.commit) != Some(self.term);
        self.commit_to(index);
        if first_of_term {
            // Now the commit index is known current: reads parked until then can proceed.
            let mut start = false;
            for id in self.reads.take_deferred() {
                start |= self.reads.add(id, self.commit);
            }
            if start {
                self.bcast_heartbeat();
            }
        }
        true
    }

    /// Sends what each follower needs; with `send_if_empty`, also an empty AppendEntries to
    /// those already up to date, carrying the new commit index (`Config::broadcast_commit`).
    fn bcast_append(&mut self, send_if_empty: bool) {
        let mut k = 0;
        while let Some(peer) = self.peer(k) {
            self.replicate_to(peer, send_if_empty);
            k += 1;
        }
    }

    /// Sends entries to `to` while its mode allows (one probe, or a window's worth).
    fn replicate_to(&mut self, to: NodeId, send_if_empty: bool) {
        let mut sent = false;
        while self.send_append(to, false) {
            sent = true;
        }
        if !sent && send_if_empty {
            self.send_append(to, true);
        }
    }

    /// Sends one AppendEntries to `to` from its next index, if its progress allows and (unless
    /// `allow_empty`) there is something to send. Returns true if a message with entries went.
    fn send_append(&mut self, to: NodeId, allow_empty: bool) -> bool {
        let Some(progress) = self.progress.get_mut(&to) else {
            return false;
        };
        if progress.is_paused() {
            return false;
        }
        let prev_log_index = progress.next.prev();
        let Some(prev_log_term) = self.log.term(prev_log_index) else {
            // The entries it needs are compacted: only a snapshot can help.
            self.send_snapshot(to);
            return false;
        };
        let entries = self.log.batch_from(
            progress.next,
            self.config.max_entries_per_msg,
            self.config.max_bytes_per_msg,
        );
        if entries.is_empty() && !allow_empty {
            return false;
        }
        let last = entries.last().map_or(prev_log_index, |e| e.index);
        let carried = !entries.is_empty();
        let msg = Message::AppendEntriesRequest(AppendEntriesRequest {
            term: self.term,
            leader: self.config.id,
            prev_log_index,
            prev_log_term,
            entries: entries.to_vec(),
            leader_commit: self.commit,
        });
        progress.sent(last);
        self.send(to, msg);
        carried
    }

    /// Sends a heartbeat to every follower, opening a new ReadIndex round.
    fn bcast_heartbeat(&mut self) {
        self.read_fallback = None;
        let round = self.start_heartbeat_round();
        let mut k = 0;
        while let Some(peer) = self.peer(k) {
            self.send_heartbeat(peer, round);
            k += 1;
        }
        self.check_reads();
    }

    /// Opens a ReadIndex round for waiting reads. It goes to only as many voters as a majority
    /// needs besides this leader, the first to answer the last round, or to every follower
    /// when too few did (see `read_index`).
    fn read_round(&mut self) {
        let needed = majority(self.voters.len()) - usize::from(self.voters.contains(&self.id()));
        let Some(fastest) = self.reads.fastest(needed).map(<[NodeId]>::to_vec) else {
            self.bcast_heartbeat();
            return;
        };
        let round = self.start_heartbeat_round();
        for &peer in &fastest {
            self.send_heartbeat(peer, round);
        }
        if fastest.len() < self.peers.len() {
            let wait = (self.config.heartbeat_interval_ms / 5).max(1);
            self.read_fallback = Some((round, self.now.after(wait)));
        }
        self.check_reads();
    }

    /// Numbers a heartbeat round and notes when it was sent (for the lease).
    fn start_heartbeat_round(&mut self) -> u64 {
        let round = self.reads.start_round();
        if self.round_times.len() >= ROUND_TIMES_MAX {
            self.round_times.pop_front();
        }
        self.round_times.push_back((round, self.now));
        round
    }

    fn send_heartbeat(&mut self, peer: NodeId, read_round: u64) {
        let matched = self.progress.get(&peer).map_or(LogIndex(0), |p| p.matched);
        let msg = Message::Heartbeat(Heartbeat {
            term: self.term,
            leader: self.id(),
            // A follower may only commit what it is known to hold.
            commit: self.commit.min(matched),
            read_round,
        });
        self.send(peer, msg);
    }

    /// Releases the reads whose round a majority has answered, and opens the next round if
    /// reads wait for one.
    fn check_reads(&mut self) {
        let mut rounds: Vec<u64> = Vec::with_capacity(self.voters.len());
        for &voter in &self.voters {
            if voter == self.id() {
                rounds.push(self.reads.sent_round());
            } else if let Some(p) = self.progress.get(&voter) {
                rounds.push(p.read_round);
            }
        }
        let confirmed = if rounds.len() == self.voters.len() {
            majority_value(&mut rounds)
        } else {
            0
        };
        self.extend_lease(confirmed);
        if self
            .read_fallback
            .is_some_and(|(round, _)| confirmed >= round)
        {
            self.read_fallback = None;
        }
        for (origin, index) in self.reads.confirm(confirmed) {
            self.read_done(origin, index);
        }
        if self.reads.wants_round() {
            self.read_round();
        }
    }

    /// A majority acknowledged heartbeat round `round`: with lease reads, no other leader can
    /// be elected before `Config::lease_ms` after it was sent (its receivers stick to us).
    fn extend_lease(&mut self, round: u64) {
        while self.round_times.front().is_some_and(|&(r, _)| r < round) {
            self.round_times.pop_front();
        }
        if !self.config.lease_reads {
            return;
        }
        if let Some(&(r, sent)) = self.round_times.front()
            && r == round
            && sent >= self.lease_from
        {
            let until = sent.after(self.config.lease_ms());
            self.lease_until = Some(self.lease_until.map_or(until, |u| u.max(until)));
        }
    }

    /// True while this leader holds a lease it may serve reads on.
    fn holds_lease(&self) -> bool {
        self.config.lease_reads
            && self.transfer.is_none()
            && self.lease_until.is_some_and(|until| self.now < until)
    }

    /// `Event::ReadIndex` (thesis 6.4): only a leader that has committed an entry of its term
    /// knows the commit index is current; its leadership is then confirmed by a heartbeat round
    /// (or, with lease reads, by its lease). A follower with `follower_reads` asks its leader.
    ///
    /// The lease is judged at the `now` of this step. The driver reads its clock after the
    /// request arrived, so however long the process was paused before, the read was invoked
    /// before `now`, and served as of a moment the lease covered.
    pub(super) fn read_index(&mut self, id: ReadId) {
        if self.role != Role::Leader {
            if let (true, Role::Follower, Some(leader)) =
                (self.config.follower_reads, self.role, self.leader)
            {
                self.forward_read(id, leader);
                return;
            }
            let error = ReadError::NotLeader {
                leader: self.leader,
            };
            self.out.push(Action::ReadError { id, error });
            return;
        }
        self.read_for(ReadOrigin::Local(id));
    }

    /// A read on this leader, from its own driver or from a follower.
    fn read_for(&mut self, origin: ReadOrigin) {
        if self.log.term(self.commit) != Some(self.term) {
            self.reads.defer(origin);
            return;
        }
        if self.holds_lease() {
            self.read_done(origin, self.commit);
            return;
        }
        if self.reads.add(origin, self.commit) {
            self.read_round();
        }
    }

    /// A read may be served once `index` is applied: tell whoever asked.
    fn read_done(&mut self, origin: ReadOrigin, index: LogIndex) {
        match origin {
            ReadOrigin::Local(id) => self.out.push(Action::ReadReady { id, index }),
            ReadOrigin::Remote(to, id) => {
                let msg = Message::ReadIndexResponse(crate::message::ReadIndexResponse {
                    term: self.term,
                    id,
                    index: Some(index),
                });
                self.send(to, msg);
            }
        }
    }
}

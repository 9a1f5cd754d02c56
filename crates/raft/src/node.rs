//! The Raft node: `step`, the term rules common to every role, persistence gating and timers.
//!
//! `step` first applies the term checks every role shares (figure 2's "if RPC request or response
//! contains term T > currentTerm ..." plus pre-vote and lease exceptions), answers vote requests
//! (every role does that the same way), then hands off to `step_leader`, `step_candidate` or
//! `step_follower`. Role changes go through the `become_*` functions.
//!
//! The role-specific halves live in submodules: [`leader`] (proposals, replication, commit,
//! ReadIndex), [`candidate`] (pre-vote and election), [`follower`] (appending and acknowledging).
//! [`snapshot`] holds what snapshots change for every role: compaction, sending one to a
//! follower, and installing one.

mod candidate;
mod follower;
mod leader;
mod snapshot;

use std::collections::BTreeMap;

use crate::action::Action;
use crate::config::Config;
use crate::election::{ElectionTimer, VoteTally};
use crate::entry::Entry;
use crate::error::{Error, ReadError, RecoveryError};
use crate::event::Event;
use crate::ids::{LogIndex, NodeId, Term};
use crate::log::Log;
use crate::membership::Membership;
use crate::message::{Message, VoteRequest, VoteResponse};
use crate::persist::{HardState, Recovered};
use crate::progress::Progress;
use crate::read_index::{ReadOrigin, ReadQueue};
use crate::role::Role;
use crate::time::Millis;

/// The highest log index a recovered snapshot may claim: half the index space, so that no index
/// arithmetic on a real log can ever overflow.
pub const RECOVERED_INDEX_MAX: u64 = u64::MAX / 2;

/// One Raft node: a deterministic state machine driven by [`Node::step`].
///
/// See the crate documentation for what the driver must do with the actions it returns.
/// Cloning a node copies its whole state (a simulator may fork a run from it).
#[derive(Debug, Clone)]
pub struct Node {
    config: Config,
    /// The configuration in force: the one at the commit index (see [`crate::membership`]).
    membership: Membership,
    /// Index of the entry (or snapshot base) `membership` comes from.
    membership_index: Option<LogIndex>,
    /// Every voter of `membership`, sorted (so sends go out in a fixed order).
    voters: Vec<NodeId>,
    /// Every member other than this node, voters and learners, sorted: whom a leader
    /// replicates to.
    peers: Vec<NodeId>,

    // Persistent state (mirrors what SaveState and LogStore wrote or will write).
    /// Latest term seen; never decreases.
    term: Term,
    /// Vote cast in `term`.
    vote: Option<NodeId>,
    /// The log (durable or not), above its base. Invariant: `log.base_index() <= ` the
    /// snapshot's index (0 without one), so every compacted entry is in the snapshot.
    log: Log,
    /// Index and term of the latest snapshot the driver holds (or is installing, on behalf of
    /// `installing`); `<= commit`.
    snapshot: Option<(LogIndex, Term)>,

    // Volatile state of every role.
    role: Role,
    /// Leader of `term`, if known.
    leader: Option<NodeId>,
    /// Highest index known committed; never decreases; `<= log.last_index()`.
    commit: LogIndex,
    /// Highest index reported by `Action::Commit`; `<= commit`.
    reported: LogIndex,
    /// The log is durable up to here (own writes acknowledged by `LogStored`, or a snapshot
    /// saved or installed); may lie below the log's base.
    durable: LogIndex,
    /// The latest `Action::InstallSnapshot` not yet reported by `SnapshotInstalled`.
    installing: Option<(LogIndex, Term)>,
    /// The latest `LogStored` received while `installing`: counted only once the install is
    /// durable, since the writes it covers may sit behind the install's WAL fix.
    stored_while_installing: Option<(LogIndex, Term)>,
    /// Since when a log write has been outstanding without progress (for disk-stall detection).
    write_pending_since: Option<Millis>,
    /// The term and vote known durable; messages are sent only while they equal `term`/`vote`.
    saved: (Term, Option<NodeId>),
    /// The term or vote changed and no `SaveState` has been emitted for it yet.
    unsaved: bool,
    /// Sends (`Send`, `SendSnapshot`) held back until the current term and vote are durable,
    /// in send order.
    held: Vec<Action>,

    // Time.
    /// Latest clock reading seen.
    now: Millis,
    /// Set by the first step, which starts the node.
    started: bool,
    timer: ElectionTimer,
    /// Follower and candidates: when to start an election.
    election_deadline: Millis,
    /// Followers: when the leader was last heard from (leader stickiness).
    leader_contact: Option<Millis>,
    /// Leader: when to send the next heartbeats.
    heartbeat_deadline: Millis,
    /// Leader: when to check that a majority was heard from.
    quorum_check_deadline: Millis,

    // Candidate state.
    votes: VoteTally,

    // Leader state.
    progress: BTreeMap<NodeId, Progress>,
    reads: ReadQueue,
    /// A leadership transfer in progress: the target, and when to give up on it.
    transfer: Option<(NodeId, Millis)>,
    /// Heartbeat rounds sent and when, oldest first (for the lease), at most
    /// `ROUND_TIMES_MAX`.
    round_times: std::collections::VecDeque<(u64, Millis)>,
    /// A ReadIndex round sent to only some voters, and when to send a round to every follower
    /// if a majority has not answered it by then (one of them may be slow or gone).
    read_fallback: Option<(u64, Millis)>,
    /// The lease (`Config::lease_reads`) holds until here.
    lease_until: Option<Millis>,
    /// Only rounds sent at or after this time may extend the lease (none during a transfer,
    /// which lets the target campaign past every follower's stickiness).
    lease_from: Millis,
    /// When this node started (its first step): with lease reads, it grants no vote for an
    /// election timeout after that, since it may have acknowledged a lease before it restarted.
    started_at: Millis,

    // Follower reads.
    /// The read-index request in flight to the leader: its number, when it was sent, and the
    /// reads it is for. One at a time: reads that arrive meanwhile share the next (batching,
    /// as the leader's rounds do).
    forwarded: Option<(u64, Millis, Vec<crate::ids::ReadId>)>,
    /// Reads waiting for the next read-index request.
    forward_queue: Vec<crate::ids::ReadId>,
    /// The number of the last read-index request.
    forwarded_last: u64,

    // Follower state.
    /// Highest index known to match the current leader's log (reset when the leader changes).
    leader_match: LogIndex,
    /// Highest index acknowledged to the current leader.
    acked: LogIndex,

    // Output.
    /// Actions of the step in progress.
    out: Vec<Action>,
    /// The last alarm emitted.
    alarm: Option<Millis>,
    /// The role, term and leader last reported by `RoleChanged`.
    announced: Option<(Role, Term, Option<NodeId>)>,
}

impl Node {
    /// Builds a node from its configuration, the bootstrap membership (the same on every
    /// founding member; empty for a node that waits to be added), what the driver read back
    /// from disk, the index the state machine already reflects, and a seed for its election
    /// timeouts. The bootstrap membership applies only where neither the snapshot nor the log
    /// holds one; the first leader writes it into the log.
    ///
    /// Nothing happens until the first `step` (see the crate documentation, step 1).
    pub fn new(
        config: Config,
        bootstrap: Membership,
        recovered: Recovered,
        applied: LogIndex,
        seed: u64,
    ) -> Result<Node, Error> {
        config.validate()?;
        bootstrap.validate()?;
        let Recovered {
            hard_state,
            snapshot,
            entries,
            membership,
        } = recovered;
        if let Some(membership) = &membership {
            membership.validate()?;
        }
        let logged = membership.is_some();
        let base_membership = membership.unwrap_or(bootstrap);
        let log = recover_log(&hard_state, snapshot, &entries, base_membership, logged)?;
        let last = log.last_index();
        if hard_state.commit > last {
            return Err(RecoveryError::CommitBeyondLog {
                commit: hard_state.commit,
                last,
            }
            .into());
        }
        if applied > last {
            return Err(RecoveryError::AppliedBeyondLog { applied, last }.into());
        }
        if applied < log.base_index() {
            return Err(RecoveryError::AppliedBeforeSnapshot {
                applied,
                snapshot: log.base_index(),
            }
            .into());
        }
        // What the state machine applied was committed, and so is everything in the snapshot.
        let commit = hard_state.commit.max(applied).max(log.base_index());
        let timer = ElectionTimer::new(seed, config.id, config.election_timeout_ms);
        let mut node = Node {
            membership: Membership::default(),
            membership_index: None,
            voters: Vec::new(),
            peers: Vec::new(),
            term: hard_state.term,
            vote: hard_state.vote,
            log,
            snapshot,
            role: Role::Follower,
            leader: None,
            commit,
            reported: applied,
            durable: last,
            installing: None,
            stored_while_installing: None,
            write_pending_since: None,
            saved: (hard_state.term, hard_state.vote),
            unsaved: false,
            held: Vec::new(),
            now: Millis(0),
            started: false,
            timer,
            election_deadline: Millis(0),
            leader_contact: None,
            heartbeat_deadline: Millis(0),
            quorum_check_deadline: Millis(0),
            votes: VoteTally::default(),
            progress: BTreeMap::new(),
            reads: ReadQueue::default(),
            read_fallback: None,
            transfer: None,
            round_times: std::collections::VecDeque::new(),
            lease_until: None,
            lease_from: Millis(0),
            started_at: Millis(0),
            forwarded: None,
            forward_queue: Vec::new(),
            forwarded_last: 0,
            leader_match: LogIndex(0),
            acked: LogIndex(0),
            out: Vec::new(),
            alarm: None,
            announced: None,
            config,
        };
        node.refresh_membership();
        Ok(node)
    }

    /// Feeds one event to the node at time `now` and returns what the driver must do, in order.
    pub fn step(&mut self, now: Millis, event: Event) -> Vec<Action> {
        let mut out = Vec::new();
        self.step_into(now, event, &mut out);
        out
    }

    /// Like [`Node::step`], but appends the actions to `out` (lets a driver reuse one buffer).
    pub fn step_into(&mut self, now: Millis, event: Event, out: &mut Vec<Action>) {
        debug_assert!(self.out.is_empty());
        std::mem::swap(&mut self.out, out);
        let term_before = self.term;
        self.now = self.now.max(now);
        if !self.started {
            self.start();
        }
        match event {
            Event::Append(batch) => self.propose(batch),
            Event::Timeout => self.on_timeout(),
            Event::Message { from, msg } => self.step_message(from, msg),
            Event::LogStored { index, term } => self.on_log_stored(index, term),
            Event::StateSaved(hard_state) => self.on_state_saved(hard_state),
            Event::ReadIndex(id) => self.read_index(id),
            Event::SnapshotSaved {
                index,
                term,
                keep_from,
            } => self.on_snapshot_saved(index, term, keep_from),
            Event::SnapshotReport {
                to,
                index,
                installed,
            } => self.on_snapshot_report(to, index, installed),
            Event::SnapshotInstalled { index, term } => self.on_snapshot_installed(index, term),
            Event::ChangeMembership { id, change } => self.change_membership(id, change),
            Event::TransferLeadership { to } => self.transfer_leadership(to),
        }
        self.finish_step();
        debug_assert!(self.term >= term_before, "the term never decreases");
        self.debug_check_invariants();
        std::mem::swap(&mut self.out, out);
    }

    // ----- Accessors -----

    /// This node's id.
    pub fn id(&self) -> NodeId {
        self.config.id
    }

    /// The role this node plays now.
    pub fn role(&self) -> Role {
        self.role
    }

    /// The current term.
    pub fn term(&self) -> Term {
        self.term
    }

    /// The vote cast in the current term, if any.
    pub fn vote(&self) -> Option<NodeId> {
        self.vote
    }

    /// The leader of the current term, if known.
    pub fn leader(&self) -> Option<NodeId> {
        self.leader
    }

    /// The highest index known committed.
    pub fn commit_index(&self) -> LogIndex {
        self.commit
    }

    /// The index of the last entry in the log (durable or not).
    pub fn last_index(&self) -> LogIndex {
        self.log.last_index()
    }

    /// The term of the last entry in the log.
    pub fn last_term(&self) -> Term {
        self.log.last_term()
    }

    /// The highest index known durable on this node's disk.
    pub fn durable_index(&self) -> LogIndex {
        self.durable
    }

    /// The first index held in memory (the log's base + 1; the base is at or below the
    /// snapshot's index).
    pub fn first_index(&self) -> LogIndex {
        LogIndex(self.log.base_index().0 + 1)
    }

    /// Index and term of the latest snapshot: recovered, saved (`SnapshotSaved`) or being
    /// installed (`Action::InstallSnapshot`); `None` before the first.
    pub fn snapshot(&self) -> Option<(LogIndex, Term)> {
        self.snapshot
    }

    /// The configuration the node runs with.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The voters of the configuration in force, sorted.
    pub fn voters(&self) -> &[NodeId] {
        &self.voters
    }

    /// The configuration in force (the one at the commit index).
    pub fn membership(&self) -> &Membership {
        &self.membership
    }

    /// The configuration in force at `index`, if the node still knows it (at or above the
    /// log's base): what a snapshot through `index` must hold.
    pub fn membership_at(&self, index: LogIndex) -> Option<&Membership> {
        self.log.membership_at(index).map(|(_, m)| m)
    }

    /// Identifies the configurations known: the index the one in force comes from, and the
    /// index of the newest membership entry in the log. Equal keys, equal configurations: a
    /// driver that mirrors them need only look again when the key changes.
    pub fn membership_key(&self) -> (Option<LogIndex>, Option<LogIndex>) {
        (self.membership_index, self.log.last_change())
    }

    /// The leadership transfer in progress on a leader: its target.
    pub fn transfer_target(&self) -> Option<NodeId> {
        self.transfer.map(|(to, _)| to)
    }

    /// The entry at `index`, if the in-memory log holds it.
    pub fn entry(&self, index: LogIndex) -> Option<&Entry> {
        self.log.entry(index)
    }

    /// The current hard state (durable or about to be). Its commit hint is capped at the durable
    /// index: a restarted node must find every entry its saved commit index names.
    pub fn hard_state(&self) -> HardState {
        HardState {
            term: self.term,
            vote: self.vote,
            commit: self.commit.min(self.durable),
        }
    }

    /// True if the current term and vote are known durable (messages flow).
    pub fn is_state_durable(&self) -> bool {
        self.saved == (self.term, self.vote)
    }

    // ----- The step skeleton -----

    /// The first step: arm the election timer, re-report committed entries, and let a
    /// single-node cluster elect itself at once.
    fn start(&mut self) {
        self.started = true;
        self.started_at = self.now;
        self.election_deadline = self.timer.deadline(self.now);
        self.report_commits();
        if self.voters == [self.id()] {
            self.campaign();
        }
    }

    /// Applies the term rules every role shares, then dispatches by role.
    fn step_message(&mut self, from: NodeId, msg: Message) {
        // Messages from outside the configuration in force are taken too (thesis 4.1): a
        // member that lags behind a change must still follow a new leader and vote for a new
        // voter. Responses from non-members find no progress or tally and are dropped there.
        if from == self.id() || from.0 == 0 || !names_sender(from, &msg) {
            return;
        }
        if matches!(msg, Message::VoteRequest(_))
            && self.role == Role::Leader
            && !self.membership.is_voter(from)
        {
            // A removed member that never learned it was removed campaigns on: the leader,
            // which knows every committed change, does not let it disrupt the cluster (thesis
            // 4.2.3). Followers still hear it out, as they may lag behind a promotion.
            return;
        }
        let term = msg.term();
        if term > self.term {
            match &msg {
                Message::VoteRequest(req) => {
                    // Leader stickiness (thesis 9.6): a node that hears from a live leader
                    // neither votes nor moves to the candidate's term.
                    if (self.in_lease() || self.just_started()) && !req.transfer {
                        self.reject_vote(from, req.prevote);
                        return;
                    }
                    // A pre-vote changes nothing here: it asks about a term not yet started.
                    if !req.prevote {
                        self.become_follower(term, None);
                    }
                }
                // A granted pre-vote carries the term we asked about, not a newer term.
                Message::VoteResponse(resp) if resp.prevote && resp.granted => {}
                Message::AppendEntriesRequest(_)
                | Message::Heartbeat(_)
                | Message::InstallSnapshot(_)
                | Message::TimeoutNow(_) => {
                    self.become_follower(term, Some(from));
                }
                _ => self.become_follower(term, None),
            }
        } else if term < self.term {
            self.answer_stale(from, &msg);
            return;
        }
        match msg {
            Message::VoteRequest(req) => self.handle_vote_request(from, req),
            msg => match self.role {
                Role::Leader => self.step_leader(from, msg),
                Role::PreCandidate | Role::Candidate => self.step_candidate(from, msg),
                Role::Follower => self.step_follower(from, msg),
            },
        }
    }

    /// Answers a message from an older term so its sender learns the newer term: a stale leader
    /// steps down, a stale pre-candidate stops. Everything else from the past is dropped.
    fn answer_stale(&mut self, from: NodeId, msg: &Message) {
        match msg {
            Message::AppendEntriesRequest(req) => {
                let outcome = self.reject_outcome(req.prev_log_index, req.prev_log_term);
                self.send_append_response(from, outcome);
            }
            Message::InstallSnapshot(req) => {
                let outcome = self.reject_outcome(req.index, req.snapshot_term);
                self.send_append_response(from, outcome);
            }
            Message::Heartbeat(_) => self.send_heartbeat_response(from, 0),
            // The rejection carries our term (figure 2: "for candidate to update itself"): a
            // candidate that fell behind in term learns it and can then stand in a term the
            // others will hear, even if no one else ever writes to it (one that a lagging
            // voter does not know is a voter yet, say).
            Message::VoteRequest(req) => self.reject_vote(from, req.prevote),
            _ => {}
        }
    }

    /// Raft's RequestVote rules (figure 2, 5.4.1), for votes and pre-votes alike.
    fn handle_vote_request(&mut self, from: NodeId, req: VoteRequest) {
        // A pre-vote for a later term is granted on log grounds alone: it binds to nothing.
        let free_to_vote = self.vote == Some(from)
            || (self.vote.is_none() && self.leader.is_none())
            || (req.prevote && req.term > self.term);
        if !free_to_vote
            || !self
                .log
                .is_up_to_date(req.last_log_index, req.last_log_term)
        {
            self.reject_vote(from, req.prevote);
            return;
        }
        if !req.prevote && self.vote != Some(from) {
            self.vote = Some(from);
            self.save_state();
        }
        // Granting a vote defers our own candidacy (thesis 3.4), and so does granting a
        // pre-vote: the pre-candidate asks for real votes once its new term is durable, and a
        // campaign of ours started in that gap would split them between the two of us.
        self.election_deadline = self.timer.deadline(self.now);
        if req.prevote
            && req.term > self.term
            && self.role == Role::PreCandidate
            && self.yields_to(from, &req)
        {
            // Two pre-candidates polling at once (their timers fired within a round trip) would
            // both win their polls and split the real votes. The one that ranks lower stands
            // down; the other's poll goes on.
            self.become_follower(self.term, None);
        }
        self.send(
            from,
            Message::VoteResponse(VoteResponse {
                term: req.term,
                granted: true,
                prevote: req.prevote,
            }),
        );
    }

    /// Whether a pre-candidate ranks below the pre-candidate `from` whose pre-vote it grants:
    /// `from`'s log is more up to date, or as up to date and `from` has the lower id. Exactly
    /// one of two pre-candidates yields to the other.
    fn yields_to(&self, from: NodeId, req: &VoteRequest) -> bool {
        let ours = (self.log.last_term(), self.log.last_index());
        let theirs = (req.last_log_term, req.last_log_index);
        theirs > ours || (theirs == ours && from < self.id())
    }

    /// Sends a (pre-)vote rejection carrying our term.
    fn reject_vote(&mut self, to: NodeId, prevote: bool) {
        self.send(
            to,
            Message::VoteResponse(VoteResponse {
                term: self.term,
                granted: false,
                prevote,
            }),
        );
    }

    /// True if a live leader holds this node's allegiance: a leader with check-quorum on (it
    /// steps down when it loses its majority), or a follower that heard from its leader within
    /// the minimum election timeout.
    fn in_lease(&self) -> bool {
        match self.role {
            Role::Leader => self.config.check_quorum,
            Role::Follower => {
                self.leader.is_some()
                    && self
                        .leader_contact
                        .is_some_and(|at| self.now.since(at) < self.config.election_timeout_ms)
            }
            Role::PreCandidate | Role::Candidate => false,
        }
    }

    /// With lease reads: started less than an election timeout ago. Such a node grants no vote,
    /// as it may have acknowledged a leader's lease before it restarted.
    fn just_started(&self) -> bool {
        self.config.lease_reads && self.now.since(self.started_at) < self.config.election_timeout_ms
    }

    /// `Event::Timeout`: acts on whichever of the role's deadlines has passed.
    fn on_timeout(&mut self) {
        // The alarm that fired is used up: always announce the next one.
        self.alarm = None;
        match self.role {
            Role::Leader => self.leader_tick(),
            Role::Follower | Role::PreCandidate | Role::Candidate => {
                self.expire_forwarded_reads();
                if self.now >= self.election_deadline {
                    if self.membership.is_voter(self.id()) {
                        self.campaign();
                    } else {
                        // A learner, a removed member or one waiting to join never stands.
                        self.election_deadline = self.timer.deadline(self.now);
                    }
                }
            }
        }
    }

    /// Our own log write is durable up to `index`, if the log still has `term` there.
    fn on_log_stored(&mut self, index: LogIndex, term: Term) {
        if self.installing.is_some() {
            // The disk made progress, but what it wrote may depend on the install's WAL fix.
            self.stored_while_installing = Some((index, term));
            self.write_pending_since = Some(self.now);
            return;
        }
        if index <= self.durable || !self.log.matches(index, term) {
            return;
        }
        self.durable = index;
        self.restart_stall_clock();
        self.on_durable_raised();
    }

    /// The disk made progress: restart the stall clock if more is outstanding.
    fn restart_stall_clock(&mut self) {
        let outstanding = self.durable < self.log.last_index() || self.installing.is_some();
        self.write_pending_since = outstanding.then_some(self.now);
    }

    /// `durable` rose: let what waited for it go (a leader's commit, a follower's
    /// acknowledgement).
    fn on_durable_raised(&mut self) {
        debug_assert!(
            self.durable <= self.log.last_index(),
            "only the log can be durable"
        );
        match self.role {
            Role::Leader => self.on_own_durable(),
            Role::Follower => self.acknowledge(false),
            Role::PreCandidate | Role::Candidate => {}
        }
    }

    /// A hard state is durable; if it is the current one, release the held messages.
    fn on_state_saved(&mut self, hard_state: HardState) {
        if (hard_state.term, hard_state.vote) != (self.term, self.vote) {
            return;
        }
        self.saved = (self.term, self.vote);
        self.out.append(&mut self.held);
    }

    /// Emits the pending save, announces the next alarm and any change of role, term or leader.
    fn finish_step(&mut self) {
        self.emit_save_state();
        let next = match self.role {
            Role::Leader => {
                let mut next = self.heartbeat_deadline;
                if self.config.check_quorum {
                    next = next.min(self.quorum_check_deadline);
                }
                self.read_fallback.map_or(next, |(_, at)| next.min(at))
            }
            _ => {
                let forwarded = self
                    .forwarded
                    .as_ref()
                    .map(|(_, at, _)| at.after(self.config.election_timeout_ms));
                forwarded.map_or(self.election_deadline, |f| f.min(self.election_deadline))
            }
        };
        if self.alarm != Some(next) {
            self.alarm = Some(next);
            self.out.push(Action::Alarm { at: next });
        }
        let state = (self.role, self.term, self.leader);
        if self.announced != Some(state) {
            self.announced = Some(state);
            self.out.push(Action::RoleChanged {
                role: self.role,
                term: self.term,
                leader: self.leader,
            });
        }
    }

    // ----- Role changes -----

    /// Moves to `term` (if newer: no vote yet, saved before anything is sent) as a follower of
    /// `leader`. Legal from every role.
    fn become_follower(&mut self, term: Term, leader: Option<NodeId>) {
        debug_assert!(term >= self.term, "a node never goes back in term");
        self.set_term(term);
        self.leave_role(leader);
        self.role = Role::Follower;
        self.leader = leader;
        self.leader_contact = leader.map(|_| self.now);
        self.election_deadline = self.timer.deadline(self.now);
    }

    /// Enters `term` if it is newer: the vote is reset and the new state must be saved.
    fn set_term(&mut self, term: Term) {
        if term > self.term {
            self.term = term;
            self.vote = None;
            // What was held belongs to the old term: its receivers would discard it anyway.
            self.held.clear();
            self.save_state();
        }
    }

    /// Clears the state of the role being left. A leader's pending reads fail, naming the new
    /// leader if known.
    fn leave_role(&mut self, new_leader: Option<NodeId>) {
        let error = ReadError::NotLeader { leader: new_leader };
        for origin in self.reads.drain() {
            // A follower's forwarded read fails there when it learns of the change.
            if let ReadOrigin::Local(id) = origin {
                self.out.push(Action::ReadError { id, error });
            }
        }
        let forwarded = self.forwarded.take().map(|(_, _, ids)| ids);
        for id in forwarded.into_iter().flatten() {
            self.out.push(Action::ReadError { id, error });
        }
        for id in std::mem::take(&mut self.forward_queue) {
            self.out.push(Action::ReadError { id, error });
        }
        self.round_times.clear();
        self.lease_until = None;
        self.progress.clear();
        self.transfer = None;
        self.votes.clear();
        self.leader_match = LogIndex(0);
        self.acked = LogIndex(0);
    }

    // ----- Persistence gating and output -----

    /// Notes that the term or vote changed. One `SaveState` covers every change of a step: it is
    /// emitted before the step's first log write (so the disk never holds an entry of a term it
    /// has not saved) or at the end of the step.
    fn save_state(&mut self) {
        self.unsaved = true;
    }

    /// Emits the pending `SaveState`, if any.
    fn emit_save_state(&mut self) {
        if std::mem::take(&mut self.unsaved) {
            self.out.push(Action::SaveState(self.hard_state()));
        }
    }

    /// Sends `msg` now if the current term and vote are durable, or holds it until they are.
    fn send(&mut self, to: NodeId, msg: Message) {
        self.send_gated(Action::Send { to, msg });
    }

    /// Emits a send action (`Send`, `SendSnapshot`) now if the current term and vote are
    /// durable, or holds it until they are.
    fn send_gated(&mut self, action: Action) {
        if self.is_state_durable() {
            self.out.push(action);
        } else {
            self.held.push(action);
        }
    }

    /// Asks the driver to store `entries` (already appended to the in-memory log).
    fn store(&mut self, entries: Vec<Entry>) {
        if entries.is_empty() {
            return;
        }
        self.emit_save_state();
        if self.write_pending_since.is_none() {
            self.write_pending_since = Some(self.now);
        }
        self.out.push(Action::LogStore { entries });
    }

    /// Raises the commit index to `index` (never lowers it) and reports what became committed.
    fn commit_to(&mut self, index: LogIndex) {
        if index <= self.commit {
            return;
        }
        debug_assert!(
            index <= self.log.last_index(),
            "only entries in the log commit"
        );
        self.commit = index;
        self.report_commits();
        self.refresh_membership();
    }

    /// Puts the configuration at the commit index in force if it changed: voters and peers,
    /// a leader's progress for added and removed members, and a leader's hand-over when its
    /// own removal (or demotion) committed.
    fn refresh_membership(&mut self) {
        let Some((index, membership)) = self.log.membership_at(self.commit) else {
            debug_assert!(false, "the commit index is at or above the log's base");
            return;
        };
        if self.membership_index == Some(index) {
            return;
        }
        self.membership_index = Some(index);
        self.membership = membership.clone();
        let id = self.id();
        self.voters = self.membership.voters().collect();
        self.peers = self
            .membership
            .members()
            .keys()
            .copied()
            .filter(|&m| m != id)
            .collect();
        if self.role != Role::Leader {
            return;
        }
        let next = LogIndex(self.log.last_index().0 + 1);
        let max_inflight = self.config.max_inflight_msgs;
        self.progress.retain(|m, _| self.peers.contains(m));
        for &peer in &self.peers {
            self.progress
                .entry(peer)
                .or_insert_with(|| Progress::new(next, max_inflight));
        }
        if !self.membership.is_voter(id) {
            self.hand_over_and_step_down();
        }
    }

    /// Emits `Commit` for every committed entry not yet reported, in index order.
    fn report_commits(&mut self) {
        if self.reported >= self.commit {
            return;
        }
        let lo = LogIndex(self.reported.0 + 1);
        for entry in self.log.slice(lo, self.commit) {
            self.out.push(Action::Commit(entry.clone()));
        }
        self.reported = self.commit;
    }

    /// The `k`-th peer (member other than this node), in id order; `None` past the last.
    /// Indexing lets callers send while iterating without holding a borrow of `self`.
    fn peer(&self, k: usize) -> Option<NodeId> {
        self.peers.get(k).copied()
    }

    /// Cheap checks of invariants on our own state (debug builds only).
    fn debug_check_invariants(&self) {
        debug_assert!(
            self.commit <= self.log.last_index(),
            "commit is within the log"
        );
        debug_assert!(
            self.reported <= self.commit,
            "only committed entries are reported"
        );
        debug_assert!(
            self.durable <= self.log.last_index(),
            "durable is within the log"
        );
        let base = self.log.base_index();
        debug_assert!(self.commit >= base, "compacted entries are committed");
        debug_assert!(self.reported >= base, "compacted entries were reported");
        let (snapshot, _) = self.snapshot.unwrap_or_default();
        debug_assert!(
            snapshot >= base,
            "the snapshot covers every compacted entry"
        );
        debug_assert!(
            snapshot <= self.commit,
            "a snapshot holds only committed entries"
        );
        debug_assert!(
            self.installing.is_none_or(|(index, _)| index <= snapshot),
            "the snapshot being installed is known"
        );
        debug_assert!(
            self.role != Role::Leader
                || (self.leader == Some(self.id()) && self.vote == Some(self.id())),
            "a leader leads and voted for itself"
        );
    }
}

/// Rebuilds the in-memory log from what was recovered, checking that it hangs together.
fn recover_log(
    hard_state: &HardState,
    snapshot: Option<(LogIndex, Term)>,
    entries: &[Entry],
    membership: Membership,
    logged: bool,
) -> Result<Log, RecoveryError> {
    let (base_index, base_term) = snapshot.unwrap_or_default();
    if base_index.0 > RECOVERED_INDEX_MAX {
        return Err(RecoveryError::IndexTooLarge { index: base_index });
    }
    let mut log = Log::new(base_index, base_term, membership, logged);
    let mut last_term = base_term;
    for (k, entry) in entries.iter().enumerate() {
        let expected = LogIndex(base_index.0 + 1 + k as u64);
        if entry.index != expected {
            return Err(RecoveryError::EntryOutOfPlace {
                expected,
                found: entry.index,
            });
        }
        if entry.term < last_term {
            return Err(RecoveryError::TermDecreases { index: entry.index });
        }
        last_term = entry.term;
    }
    if last_term > hard_state.term {
        let index = entries.last().map_or(base_index, |e| e.index);
        return Err(RecoveryError::TermAheadOfHardState {
            index,
            term: last_term,
            saved: hard_state.term,
        });
    }
    log.append(entries);
    Ok(log)
}

/// True unless the message names a sender other than `from`.
fn names_sender(from: NodeId, msg: &Message) -> bool {
    match msg {
        Message::AppendEntriesRequest(m) => m.leader == from,
        Message::VoteRequest(m) => m.candidate == from,
        Message::Heartbeat(m) => m.leader == from,
        Message::InstallSnapshot(m) => m.leader == from,
        Message::TimeoutNow(m) => m.leader == from,
        Message::ReadIndexRequest(_) | Message::ReadIndexResponse(_) => true,
        Message::AppendEntriesResponse(_)
        | Message::VoteResponse(_)
        | Message::HeartbeatResponse(_) => true,
    }
}

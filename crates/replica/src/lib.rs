//! The one raftfs replica driver: everything between the Raft core, the file store and the
//! clients, with no I/O, clock, thread or randomness of its own.
//!
//! A [`Replica`] owns a `raft::Node` and an `fs::Store` and keeps the book of client commands in
//! flight. Its runtime (the tokio server in production, the seeded simulator in tests) hands it
//! client requests, peer messages, storage completions and timer fires, together with the clock
//! readings of that moment ([`Now`]), and carries out the [`Output`]s it returns. Both runtimes
//! run exactly this code, so what the simulator checks is what users run.
//!
//! What the replica does, so no runtime has to:
//! - **Proposing.** A batch of requests is taken in order: mutations are stamped with the
//!   leader's wall clock (never below a stamp it gave or applied before) and proposed together
//!   in one `Append`; a read first proposes the mutations before it, then asks the core for a
//!   ReadIndex.
//! - **The replicated clock.** Expiry is judged only against the stamps in the log (the
//!   store's effective clock), never a member's own clock, so every member and every leader
//!   agrees on when a file expired. While a file is due by the leader's clock and no command
//!   has carried the clock into the log for `Config::clock_tick_ms`, the leader appends a clock
//!   entry. A file therefore disappears for readers within `clock_tick_ms` plus one commit
//!   after its expiry instant by the leader's clock; across a change of leader, up to the skew
//!   between the two members' clocks later (never earlier: the clock never goes backwards).
//! - **Parking.** A request that finds no known leader waits up to `Config::park_ms` (docs/protocol.md:
//!   about two election timeouts) and is handled again as soon as a leader is known.
//! - **Read barriers.** A read is served once the store has applied both the core's ReadIndex
//!   and the log's last index when the read arrived, so a pipelined read sees the same
//!   connection's earlier writes.
//! - **Applying.** Committed entries are applied in order; a mutation is answered when its slot
//!   commits with the term it was appended in, and with `ERR_INTERNAL` if another entry took the
//!   slot.
//! - **Leadership changes.** When this node stops leading, everything in flight is answered
//!   `ERR_INTERNAL` (a mutation's outcome is unknown); refused commands get `ERR_REDIRECT` to the
//!   known leader.
//! - **One timer.** The core's alarm, the parking deadlines and snapshot-transfer retries
//!   share one [`Output::Timer`].
//! - **Snapshots.** Once `Config::snapshot` says enough was applied, the store is handed out
//!   for a snapshot ([`Output::SaveSnapshot`], an immutable copy: serialising it never holds up
//!   the caller); once it is durable the core compacts its log and the disk's prefix goes too
//!   ([`Output::LogDiscard`], keeping `trailing_entries`). A follower that needs entries the
//!   leader no longer holds gets the snapshot in chunks ([`transfer`](crate::TransferConfig),
//!   [`PeerMessage::Chunk`]), which it stages, verifies and installs atomically; a snapshot not
//!   newer than what it applied is refused, so a snapshot never rolls a node back.
//!
//! # What a runtime must do
//!
//! 1. Build the core from what its disk holds (`raft` crate docs, step 1), the store it
//!    restored, and call [`Replica::start`].
//! 2. Call the `Replica` method for each input, passing the clocks of the moment, and carry out
//!    the outputs of each call in order before or while making the next call.
//! 3. Storage outputs (`SaveState`, `LogTruncate`, `LogStore`) reach the disk in the order
//!    given; report each with [`Replica::state_saved`] or [`Replica::log_stored`] once durable
//!    (the `raft` crate docs, step 3, say how acknowledgements may be combined).
//! 4. `Send` goes to the peer; incoming peer messages go to [`Replica::message`].
//! 5. `Reply` goes to the client that `token` names; the runtime's token type is its choice.
//! 6. `Timer { at }` replaces the previous timer; at or after `at`, call [`Replica::timeout`].
//!    An early, late or spurious call is harmless.
//! 7. Snapshots: write `SaveSnapshot`'s store durably and atomically with a checksum, then
//!    call [`Replica::snapshot_saved`]; carry out `LogDiscard` in order with the other storage
//!    outputs. For `SendChunk`, read those bytes of that snapshot file (from a handle opened
//!    when the transfer began) and send them as a `PeerMessage::Chunk`, in order, on a path
//!    that does not hold up Raft's messages, or call [`Replica::chunk_unavailable`]. For
//!    `StageChunk` write the bytes to the staging file; for `StageFinish` make it durable,
//!    verify it and call [`Replica::snapshot_staged`]; for `InstallSnapshot` make it the
//!    snapshot, fix the log as told, and call [`Replica::snapshot_installed`] once durable.
//! 8. After a crash, start again from step 1 with what is durable: the newest snapshot and
//!    the log, put together by [`reconcile`].
//! 9. For back-pressure, stop handing in requests while [`Replica::in_flight`] is above a bound.

mod book;
mod output;
mod recovery;
mod snapshot;
mod transfer;
mod wire;

use bytes::Bytes;
use fs::{Admin, Command, MemberInfo, Reply, StampedCommand, Store};
use raft::{
    Action, Addresses, ChangeError, Entry, Event, HardState, LogIndex, Membership,
    MembershipChange, Message, NodeId, Payload, ProposalId, Term,
};

pub use book::Request;
pub use output::{Now, Output};
pub use recovery::{Reconciled, RecoveryError, reconcile};
pub use snapshot::{SnapshotCounts, SnapshotInfo, SnapshotPolicy};
pub use transfer::{SNAPSHOT_FILE_BYTES_MAX, TransferConfig};
pub use wire::{AckStatus, Chunk, ChunkAck, Offer, PeerMessage};

use book::Book;
use snapshot::Snapshots;
use transfer::{Receiver, Senders};

/// Settings of the driver (the core has its own, in `raft::Config`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// How long a request that finds no known leader waits for one before `ERR_INTERNAL`.
    pub park_ms: u64,
    /// When to snapshot, and how much log to keep behind a snapshot.
    pub snapshot: SnapshotPolicy,
    /// How snapshots travel to followers.
    pub transfer: TransferConfig,
    /// How often an otherwise idle leader appends a clock entry while a file is due to expire.
    pub clock_tick_ms: u64,
}

/// Default [`Config::clock_tick_ms`]: expiry is seen within a tenth of a second of its instant.
pub const DEFAULT_CLOCK_TICK_MS: u64 = 100;

impl Config {
    /// Defaults for the given minimum election timeout. (Redirects name the client address
    /// the live configuration gives the leader.)
    pub fn new(election_timeout_ms: u64) -> Config {
        Config {
            park_ms: 2 * election_timeout_ms,
            snapshot: SnapshotPolicy::default(),
            transfer: TransferConfig::for_election_timeout(election_timeout_ms),
            clock_tick_ms: DEFAULT_CLOCK_TICK_MS,
        }
    }
}

/// One member's driver. See the crate documentation.
#[derive(Debug)]
pub struct Replica<T> {
    config: Config,
    core: raft::Node,
    store: Store,
    /// Highest index applied to the store.
    applied: LogIndex,
    /// Term of the entry at `applied` (or of the snapshot the store was restored from).
    applied_term: Term,
    book: Book<T>,
    /// Snapshots made and being made, and how much log has been applied since the last one.
    snapshots: Snapshots,
    /// Leader: snapshot transfers to followers.
    senders: Senders,
    /// Follower: the snapshot transfer being staged.
    receiver: Receiver,
    /// A staged snapshot's store, verified, waiting for the core to accept the install.
    staged_store: Option<(LogIndex, Store, u64)>,
    /// The core's latest alarm.
    core_alarm: Option<raft::Millis>,
    /// The timer last asked of the runtime.
    timer: Option<raft::Millis>,
    /// The highest clock stamp this node gave a proposal; stamps never go below it.
    last_stamp_ms: u64,
    /// When (monotonic) this node last stamped a proposal as leader: a clock entry is due
    /// `clock_tick_ms` after it.
    last_stamped: Option<raft::Millis>,
    /// The core's membership key when the address book was last announced (`Output::Members`).
    announced_members: Option<(Option<LogIndex>, Option<LogIndex>)>,
    /// Reused buffer for the core's actions.
    actions: Vec<Action>,
    /// Answers produced by the step in progress.
    answers: Vec<(T, Reply)>,
}

impl<T> Replica<T> {
    /// A replica around `core`, with `store` restored from `snapshot` (the node's newest, if
    /// any: the index the core was told the state machine reflects) or empty.
    pub fn new(
        core: raft::Node,
        store: Store,
        snapshot: Option<SnapshotInfo>,
        config: Config,
    ) -> Replica<T> {
        let (applied, applied_term) =
            snapshot.map_or((LogIndex(0), Term(0)), |s| (s.index, s.term));
        Replica {
            config,
            core,
            store,
            applied,
            applied_term,
            book: Book::new(),
            snapshots: Snapshots::new(snapshot),
            senders: Senders::default(),
            receiver: Receiver::default(),
            staged_store: None,
            core_alarm: None,
            timer: None,
            last_stamp_ms: 0,
            last_stamped: None,
            announced_members: None,
            actions: Vec::new(),
            answers: Vec::new(),
        }
    }

    /// The first call: starts the core (arms its timer, re-applies what it knows committed).
    pub fn start(&mut self, now: Now, out: &mut Vec<Output<T>>) {
        let found = self.step(now, Event::Timeout, out);
        self.settle(now, found, out);
    }

    /// Client requests that arrived together, in arrival order: mutations share one proposal.
    pub fn requests(
        &mut self,
        now: Now,
        requests: impl IntoIterator<Item = Request<T>>,
        out: &mut Vec<Output<T>>,
    ) {
        let found = self.handle_requests(now, requests, out);
        self.settle(now, found, out);
    }

    /// A Raft message from peer `from`.
    pub fn message(&mut self, now: Now, from: NodeId, msg: Message, out: &mut Vec<Output<T>>) {
        if matches!(msg, Message::InstallSnapshot(_)) {
            // Only this driver hands the core an InstallSnapshot, once it has staged the
            // snapshot it names; one arriving from the wire is forged or broken.
            return;
        }
        let found = self.step(now, Event::Message { from, msg }, out);
        self.settle(now, found, out);
    }

    /// An administrative command (membership, leadership) from a client.
    pub fn admin(&mut self, now: Now, token: T, admin: Admin, out: &mut Vec<Output<T>>) {
        let found = self.handle_admin(now, token, admin, out);
        self.settle(now, found, out);
    }

    /// A message from peer `from`, as it came off the wire.
    pub fn peer(&mut self, now: Now, from: NodeId, msg: PeerMessage, out: &mut Vec<Output<T>>) {
        match msg {
            PeerMessage::Raft(msg) => self.message(now, from, msg, out),
            PeerMessage::Chunk(chunk) => self.on_chunk(now, from, chunk, out),
            PeerMessage::ChunkAck(ack) => self.on_chunk_ack(now, from, ack, out),
        }
    }

    /// The timer fired (or a spurious wake-up): the core checks its deadlines, stalled snapshot
    /// transfers are retried, and parked requests whose time is up are answered `ERR_INTERNAL`.
    pub fn timeout(&mut self, now: Now, out: &mut Vec<Output<T>>) {
        let mut found = self.step(now, Event::Timeout, out);
        found |= self.tick_transfers(now, out);
        let mut answers = std::mem::take(&mut self.answers);
        self.book.expire_parked(now.mono, &mut answers);
        self.answers = answers;
        self.settle(now, found, out);
    }

    /// The log is durable up to `index`, whose entry has `term` (the last entry of a `LogStore`).
    pub fn log_stored(&mut self, now: Now, index: LogIndex, term: Term, out: &mut Vec<Output<T>>) {
        let found = self.step(now, Event::LogStored { index, term }, out);
        self.settle(now, found, out);
    }

    /// This hard state (from a `SaveState`) is durable.
    pub fn state_saved(&mut self, now: Now, state: HardState, out: &mut Vec<Output<T>>) {
        let found = self.step(now, Event::StateSaved(state), out);
        self.settle(now, found, out);
    }

    /// Answers every command in flight, parked ones included, with `ERR_INTERNAL` (shutdown).
    pub fn fail_all(&mut self, out: &mut Vec<Output<T>>) {
        let mut answers = std::mem::take(&mut self.answers);
        self.book.fail_all(&mut answers);
        for (token, reply) in answers.drain(..) {
            out.push(Output::Reply { token, reply });
        }
        self.answers = answers;
    }

    // ----- Accessors -----

    /// The consensus core (read-only: only the replica steps it).
    pub fn core(&self) -> &raft::Node {
        &self.core
    }

    /// The file store.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The highest index applied to the store.
    pub fn applied(&self) -> LogIndex {
        self.applied
    }

    /// The newest durable snapshot, if any.
    pub fn snapshot(&self) -> Option<SnapshotInfo> {
        self.snapshots.latest()
    }

    /// Snapshots made, sent and installed since start.
    pub fn snapshot_counts(&self) -> SnapshotCounts {
        self.snapshots.counts()
    }

    /// Client commands taken and not yet answered (parked ones included).
    pub fn in_flight(&self) -> usize {
        self.book.len()
    }

    /// The driver's settings.
    pub fn config(&self) -> &Config {
        &self.config
    }

    // ----- Inside -----

    /// Handles an administrative command; true if a step found a leader.
    fn handle_admin(&mut self, now: Now, token: T, admin: Admin, out: &mut Vec<Output<T>>) -> bool {
        if admin == Admin::MembersLocal {
            // This member's own view, leader or not: never redirected, never parked, so it
            // answers even when no leader can be elected.
            let reply = Reply::Members(self.member_list());
            self.answers.push((token, reply));
            return false;
        }
        if self.core.role() != raft::Role::Leader {
            let reply = self.not_leader(self.core.leader());
            self.answers.push((token, reply));
            return false;
        }
        let change = match admin {
            Admin::Members | Admin::MembersLocal => {
                let reply = Reply::Members(self.member_list());
                self.answers.push((token, reply));
                return false;
            }
            Admin::TransferLeader { to } => {
                let to = to.map(NodeId);
                if to == Some(self.core.id()) {
                    self.answers.push((token, Reply::Done(self.core.id().0)));
                    return false;
                }
                if let Some(to) = to
                    && !self.core.membership().is_voter(to)
                {
                    let reply = Reply::MemberError(format!("member {} is not a voter", to.0));
                    self.answers.push((token, reply));
                    return false;
                }
                self.book
                    .transfer(token, now.mono.after(self.config.park_ms));
                let found = self.step(now, Event::TransferLeadership { to }, out);
                if self.core.transfer_target().is_none() && self.core.role() == raft::Role::Leader {
                    let reply = Reply::MemberError("no other voter to hand over to".into());
                    self.book.transfers_done(&reply, &mut self.answers);
                }
                return found;
            }
            Admin::AddMember {
                id,
                peer,
                client,
                http,
            } => MembershipChange::AddLearner {
                id: NodeId(id),
                addresses: Addresses { peer, client, http },
            },
            Admin::Promote { id } => MembershipChange::Promote { id: NodeId(id) },
            Admin::RemoveMember { id } => MembershipChange::Remove { id: NodeId(id) },
            Admin::Snapshot => {
                // A read of the whole store: the same barrier as a read (ReadIndex and the
                // log's last index now), so the backup holds every write acknowledged before
                // the command arrived; `settle` hands the store out once it has applied that.
                let barrier = self.core.last_index();
                let id = self.book.read(None, token, barrier);
                return self.step(now, Event::ReadIndex(id), out);
            }
        };
        let id = self.book.propose(token);
        self.step(now, Event::ChangeMembership { id, change }, out)
    }

    /// The configuration in force, as a `MEMBERS` reply lists it, the leader flag on the
    /// member this node believes leads.
    fn member_list(&self) -> Vec<MemberInfo> {
        let leader = self.core.leader();
        self.core
            .membership()
            .members()
            .iter()
            .map(|(&id, m)| MemberInfo {
                id: id.0,
                voter: m.voter,
                leader: leader == Some(id),
                peer: m.addresses.peer.clone(),
                client: m.addresses.client.clone(),
                http: m.addresses.http.clone(),
            })
            .collect()
    }

    /// Whom the transport must reach: the members in force and those of the newest
    /// configuration in the log (a lagging member must reach a leader it was not told of yet).
    fn address_book(&self) -> Membership {
        let mut members = self.core.membership().members().clone();
        if let Some(latest) = self.core.membership_at(self.core.last_index()) {
            for (&id, m) in latest.members() {
                members.insert(id, m.clone());
            }
        }
        // Every member was valid in one configuration; the union is bounded the same way
        // unless both are near the limit, when the newest alone is kept.
        Membership::new(members).unwrap_or_else(|_| self.core.membership().clone())
    }
    /// Handles requests in order; true if a step found a leader.
    fn handle_requests(
        &mut self,
        now: Now,
        requests: impl IntoIterator<Item = Request<T>>,
        out: &mut Vec<Output<T>>,
    ) -> bool {
        let mut batch: Vec<(ProposalId, Bytes)> = Vec::new();
        let mut found = false;
        for request in requests {
            if self.core.leader().is_none() {
                // Nobody to run it yet: hold it briefly (docs/protocol.md: wait about two election timeouts).
                let deadline = now.mono.after(self.config.park_ms);
                self.book.park(request, deadline);
                continue;
            }
            match request.command {
                Command::Read { name } => {
                    // A read must see every command that reached the node before it, including
                    // this batch's mutations: propose those first so the log holds them.
                    found |= self.propose(now, &mut batch, out);
                    let barrier = self.core.last_index();
                    let id = self.book.read(Some(name), request.token, barrier);
                    found |= self.step(now, Event::ReadIndex(id), out);
                }
                command => {
                    let stamped = StampedCommand::new(self.stamp(now), command);
                    let id = self.book.propose(request.token);
                    batch.push((id, stamped.encode()));
                }
            }
        }
        found |= self.propose(now, &mut batch, out);
        found
    }

    /// `Output::Backup` for each backup whose barrier the store has applied: an immutable copy
    /// of the store as of `applied` (cheap: file contents are shared), serialised by the
    /// runtime away from this call.
    fn hand_out_backups(&mut self, backups: Vec<T>, out: &mut Vec<Output<T>>) {
        for token in backups {
            let membership = self
                .core
                .membership_at(self.applied)
                .unwrap_or_else(|| self.core.membership())
                .clone();
            out.push(Output::Backup {
                token,
                index: self.applied,
                term: self.applied_term,
                store: self.store.clone(),
                membership,
            });
        }
    }

    /// This leader's clock now: the wall clock, never below a stamp it gave or applied.
    fn clock_ms(&self, now: Now) -> u64 {
        now.wall_ms
            .max(self.last_stamp_ms)
            .max(self.store.last_clock_ms())
    }

    /// The clock stamp for a proposal now (see `clock_ms`), remembered.
    fn stamp(&mut self, now: Now) -> u64 {
        let stamp = self.clock_ms(now);
        self.last_stamp_ms = stamp;
        self.last_stamped = Some(now.mono);
        stamp
    }

    /// When a clock entry is due: on a leader holding a file that expires, once that file is
    /// due by the leader's clock and `clock_tick_ms` after the last stamp.
    fn clock_tick_at(&self, now: Now) -> Option<raft::Millis> {
        if self.core.role() != raft::Role::Leader {
            return None;
        }
        let expires = self.store.next_expiry_ms()?;
        let due = now.mono.after(expires.saturating_sub(self.clock_ms(now)));
        let spaced = self
            .last_stamped
            .map_or(now.mono, |at| at.after(self.config.clock_tick_ms));
        Some(due.max(spaced))
    }

    /// Appends a clock entry if one is due; true if the step found a leader.
    fn maybe_tick(&mut self, now: Now, out: &mut Vec<Output<T>>) -> bool {
        if self.clock_tick_at(now).is_none_or(|at| at > now.mono) {
            return false;
        }
        let stamped = StampedCommand::clock(self.stamp(now));
        let id = self.book.unattended();
        self.step(now, Event::Append(vec![(id, stamped.encode())]), out)
    }

    fn propose(
        &mut self,
        now: Now,
        batch: &mut Vec<(ProposalId, Bytes)>,
        out: &mut Vec<Output<T>>,
    ) -> bool {
        if batch.is_empty() {
            return false;
        }
        self.step(now, Event::Append(std::mem::take(batch)), out)
    }

    /// Steps the core and carries out its actions; true if the step reported a known leader.
    fn step(&mut self, now: Now, event: Event, out: &mut Vec<Output<T>>) -> bool {
        let mut actions = std::mem::take(&mut self.actions);
        self.core.step_into(now.mono, event, &mut actions);
        let mut found = false;
        for action in actions.drain(..) {
            found |= self.execute(now, action, out);
        }
        self.actions = actions;
        found
    }

    /// Carries out one action of the core; true if it reports a known leader.
    fn execute(&mut self, now: Now, action: Action, out: &mut Vec<Output<T>>) -> bool {
        match action {
            Action::Send { to, msg } => out.push(Output::Send {
                to,
                msg: PeerMessage::Raft(msg),
            }),
            Action::LogTruncate { from } => out.push(Output::LogTruncate { from }),
            Action::LogStore { entries } => out.push(Output::LogStore { entries }),
            Action::SaveState(state) => out.push(Output::SaveState(state)),
            Action::Commit(entry) => self.apply(entry, out),
            Action::Appended { id, index, term } => {
                self.book.appended(id, index, term, &mut self.answers);
            }
            Action::CommitError { id, error } => {
                let raft::ProposeError::NotLeader { leader } = error;
                if let Some(token) = self.book.proposal_failed(id) {
                    let reply = self.not_leader(leader);
                    self.answers.push((token, reply));
                }
            }
            Action::ChangeRefused { id, error } => {
                if let Some(token) = self.book.proposal_failed(id) {
                    let reply = match error {
                        ChangeError::NotLeader { leader } => self.not_leader(leader),
                        error => Reply::MemberError(error.to_string()),
                    };
                    self.answers.push((token, reply));
                }
            }
            Action::ReadReady { id, index } => self.book.read_ready(id, index),
            Action::ReadError { id, error } => {
                let raft::ReadError::NotLeader { leader } = error;
                if let Some(token) = self.book.read_failed(id) {
                    let reply = self.not_leader(leader);
                    self.answers.push((token, reply));
                }
            }
            Action::Alarm { at } => self.core_alarm = Some(at),
            Action::SendSnapshot { to, request } => self.send_snapshot(now, to, request, out),
            Action::InstallSnapshot {
                index,
                term,
                kept_entries_after,
            } => self.install_snapshot(index, term, kept_entries_after, out),
            Action::RoleChanged { role, term, leader } => {
                if leader != Some(self.core.id()) {
                    self.book.fail_in_flight(&mut self.answers);
                    // The core forgot its followers' progress: their transfers end with it.
                    self.senders.clear();
                    // A leadership transfer is done once another member leads (with no leader
                    // known yet, the election it started is still deciding).
                    if let Some(new) = leader {
                        self.book
                            .transfers_done(&Reply::Done(new.0), &mut self.answers);
                    }
                }
                out.push(Output::RoleChanged { role, term, leader });
                return leader.is_some();
            }
        }
        false
    }

    /// Applies one committed entry to the store and settles the waiters at or below it.
    fn apply(&mut self, entry: Entry, out: &mut Vec<Output<T>>) {
        assert_eq!(
            entry.index.0,
            self.applied.0 + 1,
            "committed entries apply in order, each once"
        );
        self.applied = entry.index;
        self.applied_term = entry.term;
        self.snapshots.applied(entry.payload.len() as u64);
        let reply = match &entry.payload {
            Payload::Noop => None,
            // A configuration is the core's business; its proposer learns the index.
            Payload::Membership(_) => Some(Reply::Done(entry.index.0)),
            Payload::Command(bytes) => match StampedCommand::decode(bytes) {
                Ok(stamped) => stamped.apply_to(&mut self.store),
                Err(err) => {
                    out.push(Output::BadEntry {
                        index: entry.index,
                        error: err.to_string(),
                    });
                    Some(Reply::Internal)
                }
            },
        };
        self.book
            .committed(entry.index, entry.term, reply.as_ref(), &mut self.answers);
        out.push(Output::Applied(entry));
    }

    /// Ends a call: serves the reads now applied, retries parked requests if a leader is known,
    /// hands out the answers and re-arms the timer.
    fn settle(&mut self, now: Now, mut found: bool, out: &mut Vec<Output<T>>) {
        found |= self.maybe_tick(now, out);
        self.book.expire_transfers(now.mono, &mut self.answers);
        if self.book.has_transfers()
            && self.core.role() == raft::Role::Leader
            && self.core.transfer_target().is_none()
        {
            // The core gave up on the transfer: the target did not catch up in time.
            let reply = Reply::MemberError("leadership transfer timed out".into());
            self.book.transfers_done(&reply, &mut self.answers);
        }
        loop {
            let mut backups = Vec::new();
            self.book
                .serve_reads(self.applied, &self.store, &mut self.answers, &mut backups);
            self.hand_out_backups(backups, out);
            if !(found && self.book.has_parked() && self.core.leader().is_some()) {
                break;
            }
            // Requests parked while no leader was known get their second chance now.
            let parked = self.book.take_parked();
            found = self.handle_requests(now, parked, out);
        }
        for (token, reply) in self.answers.drain(..) {
            out.push(Output::Reply { token, reply });
        }
        self.maybe_snapshot(out);
        let key = self.core.membership_key();
        if self.announced_members != Some(key) {
            self.announced_members = Some(key);
            out.push(Output::Members(self.address_book()));
        }
        let next = [
            self.core_alarm,
            self.book.next_park_deadline(),
            self.book.next_transfer_deadline(),
            self.senders.next_deadline(&self.config.transfer),
            self.clock_tick_at(now),
        ]
        .into_iter()
        .flatten()
        .min();
        if next != self.timer
            && let Some(at) = next
        {
            out.push(Output::Timer { at });
        }
        self.timer = next;
    }

    /// The answer for a command this node cannot run: a redirect to the leader when another
    /// member is known to lead, else `ERR_INTERNAL`.
    fn not_leader(&self, leader: Option<NodeId>) -> Reply {
        let address = |m: &Membership, l: NodeId| m.get(l).map(|m| m.addresses.client.clone());
        let known = leader.filter(|&l| l != self.core.id()).and_then(|l| {
            address(self.core.membership(), l).or_else(|| {
                self.core
                    .membership_at(self.core.last_index())
                    .and_then(|m| address(m, l))
            })
        });
        match known {
            Some(addr) => Reply::Redirect(addr),
            None => Reply::Internal,
        }
    }
}

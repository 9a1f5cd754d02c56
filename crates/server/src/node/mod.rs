//! The node runtime: one task owns the replica driver (crate `replica`: the Raft core, the file
//! store and the book of client commands in flight) and does its I/O: client requests in,
//! peer messages in and out over the transport, storage through the WAL writer thread, one
//! timer. Nothing else touches the replica, so it needs no locks.
//!
//! A write, end to end: the connection submits the command; the node hands the batch of what
//! arrived to the replica, which stamps and proposes it; the replica asks for `LogStore` (handed
//! to the WAL writer thread, which shares one fsync among everything queued) and `Send` (to
//! followers); once a majority has it on disk the core commits it, the replica applies it and
//! answers, and the node sends the answer to the waiting connection.

mod handle;
mod snapshots;
mod storage;

pub use handle::{AdminRequest, NodeHandle, Request};

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use fs::{Command, Reply};
use raft::{LogIndex, Message, Millis, NodeId, Term};
use replica::{Now, Output, Replica};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tracing::{error, info};

use crate::config::NodeConfig;
use crate::deadline::sleep_until;
use crate::metrics::Metrics;
use crate::shutdown::Shutdown;
use crate::status::{FollowerProgress, RequestCounts, Status, StatusQuery};
use crate::transport::{Inbound, PeerIdentity, Transport};
use snapshots::Snapshots;
use storage::{Storage, StorageEvent};

/// Client requests queued for the node before connections must wait: enough to keep batches
/// large under load, bounded so memory is.
pub const REQUEST_QUEUE_MAX: usize = 4096;

/// Client requests taken in one go (mutations among them share one `Append`: one WAL write,
/// one round of messages).
const REQUEST_BATCH_MAX: usize = 512;

/// Peer messages stepped in one go before the node looks at its other inputs again.
const INBOUND_BATCH_MAX: usize = 256;

/// Commands in flight beyond which the node stops taking new client requests, so a stalled
/// disk or a lost quorum cannot grow memory without bound.
const IN_FLIGHT_MAX: usize = 16 * 1024;

/// Peer messages queued for the node before the transport stops reading sockets: deep enough
/// for a full pipeline from every peer, bounded so a flood waits on TCP rather than on memory.
pub const INBOUND_QUEUE_MAX: usize = 8192;

/// Events delivered to the node from storage and from its blocking helpers.
pub enum NodeEvent {
    /// A WAL operation finished.
    Storage(StorageEvent),
    /// A snapshot of the node's own store is durable.
    SnapshotSaved(replica::SnapshotInfo),
    /// Writing or reading a snapshot failed: fail-stop, as for the log.
    SnapshotFailed(anyhow::Error),
    /// A chunk for a follower was read from the snapshot file.
    ChunkRead {
        /// The follower.
        to: NodeId,
        /// The chunk.
        chunk: replica::Chunk,
    },
    /// The snapshot a transfer to this follower needs can no longer be read.
    ChunkUnavailable(NodeId),
    /// A received snapshot is staged durably and verified (`store`), or did not verify.
    Staged {
        /// Its index.
        index: LogIndex,
        /// The store it restores to, if it verified.
        store: Option<fs::Store>,
    },
}

/// Where the node's peer messages arrive: Raft's messages and chunk acks, and chunks.
pub struct PeerInbox {
    /// Raft's messages and chunk acks.
    pub raft: mpsc::Receiver<Inbound>,
    /// Snapshot chunks.
    pub bulk: mpsc::Receiver<Inbound>,
    /// Peers that introduced themselves: id and peer address.
    pub hellos: mpsc::Receiver<(NodeId, String)>,
}

/// Proposal batches whose commit the leader times at once; beyond it the oldest is forgotten
/// (not timed), so a stalled quorum cannot grow this without bound. In-flight commands are
/// capped at `IN_FLIGHT_MAX` anyway, and batches hold one or more commands each.
const PROPOSED_BATCHES_MAX: usize = IN_FLIGHT_MAX;

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

/// Administrative commands queued for the node: a few operators at a time.
pub const ADMIN_QUEUE_MAX: usize = 64;

/// The node task's state: the one replica driver (crate `replica`) and the I/O it asks for.
pub struct Node {
    config: NodeConfig,
    replica: Replica<oneshot::Sender<Reply>>,
    storage: Storage,
    snapshots: Snapshots,
    requests: mpsc::Receiver<Request>,
    admin: mpsc::Receiver<AdminRequest>,
    events: mpsc::UnboundedReceiver<NodeEvent>,
    inbound: PeerInbox,
    transport: Transport,
    status_queries: mpsc::Receiver<StatusQuery>,
    requests_seen: RequestCounts,
    /// When the replica asked to be woken.
    alarm: Option<Instant>,
    /// The origin of the replica's monotonic clock.
    epoch: Instant,
    /// Reused buffer for the replica's outputs.
    out: Vec<Output<oneshot::Sender<Reply>>>,
    shutdown: Shutdown,
    /// The event metrics this task counts (leadership, commits, applies).
    metrics: Arc<Metrics>,
    /// When the replica call in progress began (taken with its clock reading, so timing a step
    /// costs no extra clock read).
    step_started: Instant,
    /// Leader: its batches not yet seen committed, oldest first.
    proposed: VecDeque<Proposed>,
    /// The leader (and its term) last announced, to count leader changes.
    known_leader: Option<(NodeId, Term)>,
    /// Follower: when the leader of its term was last heard from.
    leader_heard: Option<Instant>,
    /// Leader: what each other member has acknowledged in this term.
    followers: Vec<FollowerContact>,
}

impl Node {
    /// Recovers the node's state from its data directory and builds the node, ready to run.
    /// Peer messages arrive on `inbound`; the node starts its own outgoing transport.
    pub async fn open(
        config: NodeConfig,
        identity: Option<PeerIdentity>,
        inbound: PeerInbox,
        status_queries: mpsc::Receiver<StatusQuery>,
        metrics: Arc<Metrics>,
        shutdown: Shutdown,
    ) -> anyhow::Result<(Node, NodeHandle)> {
        let (events_tx, events) = mpsc::unbounded_channel();
        let open_error = || format!("cannot open data directory {}", config.data_dir.display());
        let snapshots =
            Snapshots::new(&config.data_dir, events_tx.clone()).with_context(open_error)?;
        let (storage, restored) =
            Storage::open(&config.data_dir, events_tx.clone()).with_context(open_error)?;
        let applied = restored.snapshot.map_or(LogIndex(0), |s| s.index);
        let bootstrap = config
            .bootstrap()
            .context("invalid member list in the configuration")?;
        let mut raft_config = raft::Config::new(NodeId(config.id));
        raft_config.election_timeout_ms = config.election_timeout_ms;
        raft_config.heartbeat_interval_ms = config.heartbeat_interval_ms;
        raft_config.lease_reads = config.read_mode == crate::config::ReadMode::Lease;
        raft_config.follower_reads = config.follower_reads;
        let seed = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0)
            ^ config.id;
        let core = raft::Node::new(raft_config, bootstrap, restored.recovered, applied, seed)
            .context("cannot start the Raft core")?;
        let mut driver_config = replica::Config::new(config.election_timeout_ms);
        driver_config.snapshot = config.snapshot;
        let replica = Replica::new(core, restored.store, restored.snapshot, driver_config);
        let (tx, requests) = mpsc::channel(REQUEST_QUEUE_MAX);
        let (admin_tx, admin) = mpsc::channel(ADMIN_QUEUE_MAX);
        let me_peer = config.me().map(|m| m.peer.clone()).unwrap_or_default();
        // Whom to dial comes from the replica's `Output::Members` (the live configuration).
        let transport = Transport::new(
            NodeId(config.id),
            identity,
            me_peer,
            config.peer_dial_from,
            metrics.clone(),
        );
        let node = Node {
            inbound,
            transport,
            status_queries,
            requests_seen: RequestCounts::default(),
            config,
            replica,
            storage,
            snapshots,
            requests,
            admin,
            events,
            alarm: None,
            epoch: Instant::now(),
            out: Vec::new(),
            shutdown,
            metrics: metrics.clone(),
            step_started: Instant::now(),
            proposed: VecDeque::new(),
            known_leader: None,
            leader_heard: None,
            followers: Vec::new(),
        };
        Ok((node, NodeHandle::new(tx, admin_tx, metrics)))
    }

    /// Runs until shutdown or a fatal error (a failed disk write: fail-stop).
    pub async fn run(mut self) -> anyhow::Result<()> {
        let now = self.now();
        self.replica.start(now, &mut self.out);
        self.carry_out()?;
        // A leader asked to stop hands leadership over first, so that a rolling restart has
        // no election gap: the reply of its transfer, and how long to wait for it.
        let mut handover: Option<(oneshot::Receiver<Reply>, Instant)> = None;
        let mut requests_open = true;
        loop {
            if let Some((reply, _)) = &mut handover
                && !matches!(reply.try_recv(), Err(oneshot::error::TryRecvError::Empty))
            {
                break;
            }
            let handover_deadline = handover.as_ref().map(|(_, at)| *at);
            let alarm = self.alarm;
            // Back-pressure: while the disk's queue is full, take nothing that could add to it;
            // while too much is in flight, take no new client work.
            let backlogged = self.storage.is_backlogged();
            let accepting = !backlogged && self.replica.in_flight() < IN_FLIGHT_MAX;
            tokio::select! {
                event = self.events.recv() => match event {
                    Some(event) => self.on_event(event)?,
                    None => anyhow::bail!("storage stopped unexpectedly"),
                },
                Some(message) = self.inbound.raft.recv(), if !backlogged => {
                    self.on_peer_message(message)?;
                }
                Some(Inbound { from, msg, .. }) = self.inbound.bulk.recv(), if !backlogged => {
                    let now = self.now();
                    self.replica.peer(now, from, msg, &mut self.out);
                    self.carry_out()?;
                }
                Some((id, addr)) = self.inbound.hellos.recv() => self.transport.learn(id, addr),
                Some(request) = self.admin.recv() => {
                    let now = self.now();
                    self.replica.admin(now, request.token, request.admin, &mut self.out);
                    self.carry_out()?;
                }
                Some(query) = self.status_queries.recv() => {
                    let _ = query.reply.send(self.status(query.with_digest));
                }
                request = self.requests.recv(), if accepting && requests_open => match request {
                    Some(request) => self.on_requests(request)?,
                    // Every connection is gone: nothing more to serve, but a handover in
                    // progress still runs to its end.
                    None if handover.is_some() => requests_open = false,
                    None => break,
                },
                _ = sleep_until(alarm) => {
                    self.alarm = None;
                    let now = self.now();
                    self.replica.timeout(now, &mut self.out);
                    self.carry_out()?;
                }
                _ = sleep_until(handover_deadline) => {
                    info!("leadership transfer did not finish in time; stopping anyway");
                    break;
                }
                _ = self.shutdown.wait(), if handover.is_none() => {
                    match self.start_handover() {
                        Some(reply) => {
                            let wait = Duration::from_millis(2 * self.config.election_timeout_ms);
                            handover = Some((reply, Instant::now() + wait));
                        }
                        None => break,
                    }
                }
            }
        }
        info!("node stopping");
        self.replica.fail_all(&mut self.out);
        self.carry_out()?;
        self.storage.shutdown();
        Ok(())
    }

    /// On a leader with another voter: asks the replica to hand leadership over, and returns
    /// where the outcome arrives (a leader change, or a failure). `None` otherwise.
    fn start_handover(&mut self) -> Option<oneshot::Receiver<Reply>> {
        let core = self.replica.core();
        let others = core.voters().iter().any(|&v| v != core.id());
        if core.role() != raft::Role::Leader || !others {
            return None;
        }
        info!("stopping: handing leadership over first");
        let (token, reply) = oneshot::channel();
        let now = self.now();
        self.replica.admin(
            now,
            token,
            fs::Admin::TransferLeader { to: None },
            &mut self.out,
        );
        if let Err(err) = self.carry_out() {
            error!(%err, "handing over failed");
            return None;
        }
        Some(reply)
    }

    /// The clocks of this moment: milliseconds since this process started (monotonic), and
    /// the wall clock.
    fn now(&mut self) -> Now {
        self.step_started = Instant::now();
        Now {
            mono: Millis((self.step_started - self.epoch).as_millis() as u64),
            wall_ms: wall_clock_ms(),
        }
    }

    fn on_event(&mut self, event: NodeEvent) -> anyhow::Result<()> {
        let now = self.now();
        match event {
            NodeEvent::Storage(StorageEvent::Failed(err)) => {
                // Fail-stop: a log we cannot write is a log we cannot trust.
                error!(%err, "storage failed; stopping");
                return Err(err).context("storage failed");
            }
            NodeEvent::Storage(StorageEvent::LogStored { index, term }) => {
                self.replica.log_stored(now, index, term, &mut self.out);
            }
            NodeEvent::Storage(StorageEvent::StateSaved(state)) => {
                self.replica.state_saved(now, state, &mut self.out);
            }
            NodeEvent::Storage(StorageEvent::Progress) => {}
            NodeEvent::Storage(StorageEvent::Installed { index, term }) => {
                self.replica
                    .snapshot_installed(now, index, term, &mut self.out);
            }
            NodeEvent::SnapshotSaved(info) => {
                info!(
                    index = info.index.0,
                    bytes = info.file_bytes,
                    "snapshot saved"
                );
                self.replica.snapshot_saved(now, info, &mut self.out);
            }
            NodeEvent::SnapshotFailed(err) => {
                error!(%err, "snapshot failed; stopping");
                return Err(err.context("snapshot failed"));
            }
            NodeEvent::ChunkRead { to, chunk } => {
                self.transport.send(to, &replica::PeerMessage::Chunk(chunk));
            }
            NodeEvent::ChunkUnavailable(to) => {
                self.replica.chunk_unavailable(now, to, &mut self.out);
            }
            NodeEvent::Staged { index, store } => {
                if store.is_none() {
                    tracing::warn!(index = index.0, "a received snapshot did not verify");
                }
                self.replica
                    .snapshot_staged(now, index, store, &mut self.out);
            }
        }
        self.carry_out()?;
        // The writer made room in its queue.
        self.storage.flush_backlog()
    }

    /// Steps the replica with a peer message and whatever else has arrived meanwhile (bounded,
    /// so client requests and timers get their turn).
    fn on_peer_message(&mut self, first: Inbound) -> anyhow::Result<()> {
        let mut next = Some(first);
        let mut taken = 0;
        while let Some(Inbound { from, msg, .. }) = next.take() {
            let now = self.now();
            let contact = Contact::of(&msg);
            self.replica.peer(now, from, msg, &mut self.out);
            self.carry_out()?;
            self.heard(from, contact);
            taken += 1;
            if taken < INBOUND_BATCH_MAX && !self.storage.is_backlogged() {
                next = self.inbound.raft.try_recv().ok();
            }
        }
        Ok(())
    }

    /// Takes `first` and whatever else is queued (up to a batch) and hands them to the replica
    /// together, so their mutations share one proposal.
    fn on_requests(&mut self, first: Request) -> anyhow::Result<()> {
        let mut batch = Vec::with_capacity(16);
        self.count(&first.command);
        batch.push(first);
        while batch.len() < REQUEST_BATCH_MAX {
            match self.requests.try_recv() {
                Ok(request) => {
                    self.count(&request.command);
                    batch.push(request);
                }
                Err(_) => break,
            }
        }
        let now = self.now();
        self.replica.requests(now, batch, &mut self.out);
        self.carry_out()
    }

    /// Carries out the replica's outputs in order.
    fn carry_out(&mut self) -> anyhow::Result<()> {
        let mut out = std::mem::take(&mut self.out);
        let mut result = Ok(());
        let mut applied = false;
        for output in out.drain(..) {
            match output {
                Output::Send { to, msg } => self.transport.send(to, &msg),
                Output::LogTruncate { from } => result = result.and(self.storage.truncate(from)),
                Output::LogStore { entries } => {
                    self.proposing(&entries);
                    result = result.and(self.storage.append(entries));
                }
                Output::SaveState(state) => result = result.and(self.storage.save_state(state)),
                Output::Reply { token, reply } => {
                    // The connection may have gone; nothing to do then.
                    let _ = token.send(reply);
                }
                Output::Timer { at } => {
                    self.alarm = Some(self.epoch + Duration::from_millis(at.0));
                }
                Output::Applied(entry) => {
                    applied = true;
                    self.committed(entry.index);
                }
                Output::RoleChanged { role, term, leader } => {
                    info!(?role, term = term.0, leader = ?leader.map(|l| l.0), "role changed");
                    self.role_changed(role, term, leader);
                }
                Output::BadEntry { index, error } => {
                    error!(index = index.0, %error, "committed entry does not decode");
                }
                Output::SaveSnapshot {
                    index,
                    term,
                    store,
                    membership,
                } => {
                    self.snapshots.save(index, term, store, membership);
                }
                Output::Members(book) => {
                    info!(members = ?book.members().keys().map(|id| id.0).collect::<Vec<_>>(), "configuration");
                    self.transport.update(&book);
                }
                Output::LogDiscard { upto } => result = result.and(self.storage.discard(upto)),
                Output::SendChunk {
                    to,
                    offer,
                    offset,
                    len,
                    total_bytes,
                } => self
                    .snapshots
                    .read_chunk(to, offer, offset, len, total_bytes),
                Output::StageChunk {
                    offer,
                    offset,
                    data,
                } => {
                    result = result.and(
                        self.snapshots
                            .stage(offer, offset, &data)
                            .context("cannot stage a received snapshot"),
                    );
                }
                Output::StageFinish { offer } => self.snapshots.finish_staging(offer),
                Output::InstallSnapshot {
                    index,
                    term,
                    keep_log,
                } => {
                    info!(index = index.0, "installing a snapshot from the leader");
                    result = result
                        .and(
                            self.snapshots
                                .install(index)
                                .context("cannot install a received snapshot"),
                        )
                        .and_then(|()| self.storage.install(index, term, keep_log));
                }
            }
        }
        self.out = out;
        if applied {
            self.metrics
                .apply_seconds
                .observe(self.step_started.elapsed());
        }
        result
    }

    /// Leader: remembers when a batch of its own entries went to the log and the followers.
    fn proposing(&mut self, entries: &[raft::Entry]) {
        let core = self.replica.core();
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
            at: self.step_started,
        });
    }

    /// Entry `index` is committed and applied: times the leader's batches it completes.
    fn committed(&mut self, index: LogIndex) {
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
    fn role_changed(&mut self, role: raft::Role, term: Term, leader: Option<NodeId>) {
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
    fn heard(&mut self, from: NodeId, contact: Contact) {
        let core = self.replica.core();
        let current = contact.term() == Some(core.term());
        if !current {
            return;
        }
        match contact {
            Contact::FromLeader(_) if core.leader() == Some(from) => {
                self.leader_heard = Some(self.step_started);
            }
            Contact::Ack { matched, .. } if core.role() == raft::Role::Leader => {
                let at = self.step_started;
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
    fn contact_status(&self) -> (Option<u64>, Vec<FollowerProgress>) {
        let core = self.replica.core();
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

    /// Counts a command by kind, once, when it first reaches the node.
    fn count(&mut self, command: &Command) {
        let counter = match command {
            Command::Read { .. } => &mut self.requests_seen.read,
            Command::Write { .. } => &mut self.requests_seen.write,
            Command::Cas { .. } => &mut self.requests_seen.cas,
            Command::Delete { .. } => &mut self.requests_seen.delete,
        };
        *counter += 1;
    }

    /// A consistent reading of the node, for `/status` and `/metrics`.
    fn status(&self, with_digest: bool) -> Status {
        let core = self.replica.core();
        let store = self.replica.store();
        let snapshot = self.replica.snapshot();
        let counts = self.replica.snapshot_counts();
        let (last_contact_ms, followers) = self.contact_status();
        Status {
            id: self.config.id,
            role: format!("{:?}", core.role()).to_lowercase(),
            term: core.term().0,
            leader: core.leader().map(|l| l.0),
            voters: core.voters().iter().map(|v| v.0).collect(),
            learners: core
                .membership()
                .members()
                .iter()
                .filter(|(_, m)| !m.voter)
                .map(|(id, _)| id.0)
                .collect(),
            commit_index: core.commit_index().0,
            applied_index: self.replica.applied().0,
            last_index: core.last_index().0,
            durable_index: core.durable_index().0,
            files: store.file_count() as u64,
            content_bytes: store.content_bytes(),
            version: store.version(),
            // O(1): the store keeps its digest up to date as it applies and restores.
            store_digest: with_digest.then(|| format!("{:016x}", store.digest())),
            requests: self.requests_seen.clone(),
            wal_fsyncs: self.storage.fsyncs(),
            snapshot_index: snapshot.map_or(0, |s| s.index.0),
            snapshot_bytes: snapshot.map_or(0, |s| s.file_bytes),
            first_index: core.first_index().0,
            snapshots_made: counts.made,
            snapshots_sent: counts.sent,
            snapshots_installed: counts.installed,
            log_entries: (core.last_index().0 + 1).saturating_sub(core.first_index().0),
            log_bytes: self.storage.log_bytes(),
            in_flight: self.replica.in_flight() as u64,
            election_timeout_ms: self.config.election_timeout_ms,
            last_contact_ms,
            followers,
            wal_sync: self.storage.sync_latency(),
        }
    }
}

/// What a peer message says about contact between leader and follower, taken before the message
/// is handed to the replica.
#[derive(Debug, Clone, Copy)]
enum Contact {
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
    fn of(msg: &replica::PeerMessage) -> Contact {
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

/// The wall clock in milliseconds since the Unix epoch: the stamp expiry is judged by. A clock
/// before 1970 reads as 0; the store never lets stamps go backwards anyway.
fn wall_clock_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

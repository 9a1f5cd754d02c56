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
mod observer;
pub(crate) mod snapshots;
pub(crate) mod storage;

pub use handle::{AdminRequest, NodeHandle, Request};

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use fs::Command;
use raft::{LogIndex, Millis, NodeId};
use replica::{Now, Output, Replica};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tracing::{error, info};

use crate::config::NodeConfig;
use crate::deadline::sleep_until;
use crate::mailbox::{Mailbox, ReplyTo};
use crate::metrics::Metrics;
use crate::shutdown::Shutdown;
use crate::status::{RequestCounts, Status, StatusQuery};
use crate::transport::{Inbound, PeerIdentity, Transport};
use observer::{Contact, Observer};
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

/// Administrative commands queued for the node: a few operators at a time.
pub const ADMIN_QUEUE_MAX: usize = 64;

/// The node task's state: the one replica driver (crate `replica`) and the I/O it asks for.
pub struct Node {
    config: NodeConfig,
    replica: Replica<ReplyTo>,
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
    out: Vec<Output<ReplyTo>>,
    shutdown: Shutdown,
    /// When the replica call in progress began (taken with its clock reading, so timing a step
    /// costs no extra clock read).
    step_started: Instant,
    /// Leadership, commit latency and leader-follower contact, for metrics and `/status`.
    observer: Observer,
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
            step_started: Instant::now(),
            observer: Observer::new(metrics.clone()),
        };
        Ok((node, NodeHandle::new(tx, admin_tx, metrics)))
    }

    /// The log's counters (atomics), for the status server to read when the node is busy.
    pub fn log_counters(&self) -> Arc<wal::Counters> {
        self.storage.log_counters()
    }

    /// Runs until shutdown or a fatal error (a failed disk write: fail-stop).
    pub async fn run(mut self) -> anyhow::Result<()> {
        let now = self.now();
        self.replica.start(now, &mut self.out);
        self.carry_out()?;
        // A leader asked to stop hands leadership over first, so that a rolling restart has
        // no election gap: the reply of its transfer, and how long to wait for it.
        let mut handover: Option<(Arc<Mailbox>, Instant)> = None;
        let mut requests_open = true;
        loop {
            // A follower's log writes of the last pass, inline (see `storage`): after the
            // yield, so that the transport first sends what that pass produced.
            let follower = self.replica.core().role() != raft::Role::Leader;
            self.storage.set_inline(follower)?;
            if self.storage.has_pending() {
                tokio::task::yield_now().await;
                self.storage.run_pending()?;
            }
            if let Some((reply, _)) = &handover
                && reply.take().is_some()
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
                    // The connections go because of a stop this loop has not taken yet (both
                    // were ready at once and select! chose this one): a leader still hands
                    // over first, or a rolling restart would sometimes leave an election gap.
                    None if self.shutdown.is_triggered() => {
                        requests_open = false;
                        match self.begin_handover() {
                            Some(waiting) => handover = Some(waiting),
                            None => break,
                        }
                    }
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
                    match self.begin_handover() {
                        Some(waiting) => handover = Some(waiting),
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

    /// Starts the handover of a stopping leader: where its outcome arrives, and until when to
    /// wait for it (two election timeouts). `None` when there is nothing to hand over.
    fn begin_handover(&mut self) -> Option<(Arc<Mailbox>, Instant)> {
        let reply = self.start_handover()?;
        let wait = Duration::from_millis(2 * self.config.election_timeout_ms);
        Some((reply, Instant::now() + wait))
    }

    /// On a leader with another voter: asks the replica to hand leadership over, and returns
    /// where the outcome arrives (a leader change, or a failure). `None` otherwise.
    fn start_handover(&mut self) -> Option<Arc<Mailbox>> {
        let core = self.replica.core();
        let others = core.voters().iter().any(|&v| v != core.id());
        if core.role() != raft::Role::Leader || !others {
            return None;
        }
        info!("stopping: handing leadership over first");
        let reply = Mailbox::new();
        let token = reply.reserve();
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
    /// the wall clock; notes the instant as the start of the step about to be taken.
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
            self.observer
                .heard(self.replica.core(), from, contact, self.step_started);
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
                    self.observer
                        .proposing(self.replica.core(), &entries, self.step_started);
                    result = result.and(self.storage.append(entries));
                }
                Output::SaveState(state) => result = result.and(self.storage.save_state(state)),
                Output::Reply { token, reply } => {
                    // The connection may have gone; nothing to do then.
                    token.send(reply);
                }
                Output::Timer { at } => {
                    self.alarm = Some(self.epoch + Duration::from_millis(at.0));
                }
                Output::Applied(entry) => {
                    applied = true;
                    self.observer.committed(entry.index);
                }
                Output::RoleChanged { role, term, leader } => {
                    info!(?role, term = term.0, leader = ?leader.map(|l| l.0), "role changed");
                    self.observer.role_changed(role, term, leader);
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
                Output::Backup {
                    token,
                    index,
                    term,
                    store,
                    membership,
                } => self.snapshots.backup(token, index, term, store, membership),
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
            self.observer.applied(self.step_started);
        }
        result
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
        let (last_contact_ms, followers) = self.observer.contact_status(core);
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
            wal_inline: self.storage.is_inline(),
            wal_slow_batches: self.storage.slow_batches(),
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

/// The wall clock in milliseconds since the Unix epoch: the stamp expiry is judged by. A clock
/// before 1970 reads as 0; the store never lets stamps go backwards anyway.
fn wall_clock_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

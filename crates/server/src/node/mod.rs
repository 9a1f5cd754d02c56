//! The node runtime: one task owns the Raft core and the file store, feeds the core events
//! (client commands, peer messages, storage completions, timer fires) and carries out the actions
//! it returns. Nothing else touches the core, so it needs no locks.
//!
//! A write, end to end: the connection submits the command; the node stamps it with its wall
//! clock and proposes a batch of such commands to the core (`Append`); the core answers
//! `LogStore` (handed to the WAL writer thread, which shares one fsync among everything queued)
//! and `Send` (to followers); once a majority has it on disk the core emits `Commit`, the node
//! applies it to the store and answers the waiting connection.
//!
//! Reads are linearizable through ReadIndex: the core confirms leadership and names a commit
//! index; the node serves the read from the store once it has applied that index and every
//! command that reached it before the read (so a connection's pipelined read sees its own earlier
//! writes).

mod clients;
mod storage;

pub use clients::{NodeHandle, Request};

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use bytes::Bytes;
use fs::{Command, Reply, StampedCommand, Store};
use raft::{Action, Event, LogIndex, Millis, NodeId, Payload};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tracing::{error, info};

use crate::config::NodeConfig;
use crate::deadline::sleep_until;
use crate::shutdown::Shutdown;
use crate::status::{RequestCounts, Status, StatusQuery};
use crate::transport::{Inbound, Transport};
use clients::Clients;
use storage::{Storage, StorageEvent};

/// Client requests queued for the node before connections must wait: enough to keep batches
/// large under load, bounded so memory is.
pub const REQUEST_QUEUE_MAX: usize = 4096;

/// Client commands taken into one `Append` batch (one WAL write, one round of messages).
const APPEND_BATCH_MAX: usize = 512;

/// Peer messages stepped in one go before the node looks at its other inputs again.
const INBOUND_BATCH_MAX: usize = 256;

/// Proposals awaiting commit beyond which the node stops taking new client requests, so a
/// stalled disk or a lost quorum cannot grow memory without bound.
const PENDING_MAX: usize = 16 * 1024;

/// Peer messages queued for the node before the transport stops reading sockets: deep enough
/// for a full pipeline from every peer, bounded so a flood waits on TCP rather than on memory.
pub const INBOUND_QUEUE_MAX: usize = 8192;

/// Events delivered to the node from storage.
pub enum NodeEvent {
    /// A WAL operation finished.
    Storage(StorageEvent),
}

/// The node task's state.
pub struct Node {
    config: NodeConfig,
    core: raft::Node,
    store: Store,
    storage: Storage,
    clients: Clients,
    requests: mpsc::Receiver<Request>,
    events: mpsc::UnboundedReceiver<NodeEvent>,
    inbound: mpsc::Receiver<Inbound>,
    transport: Transport,
    status_queries: mpsc::Receiver<StatusQuery>,
    requests_seen: RequestCounts,
    /// When the core asked to be woken with `Timeout`.
    alarm: Option<Instant>,
    /// The origin of the core's monotonic clock.
    epoch: Instant,
    /// Highest index applied to the store.
    applied: LogIndex,
    shutdown: Shutdown,
}

impl Node {
    /// Recovers the node's state from its data directory and builds the node, ready to run.
    /// Peer messages arrive on `inbound`; the node starts its own outgoing transport.
    pub async fn open(
        config: NodeConfig,
        inbound: mpsc::Receiver<Inbound>,
        status_queries: mpsc::Receiver<StatusQuery>,
        shutdown: Shutdown,
    ) -> anyhow::Result<(Node, NodeHandle)> {
        let (events_tx, events) = mpsc::unbounded_channel();
        let (storage, recovered) = Storage::open(&config.data_dir, events_tx.clone())
            .with_context(|| format!("cannot open data directory {}", config.data_dir.display()))?;
        let voters: Vec<NodeId> = config.members.iter().map(|m| NodeId(m.id)).collect();
        let mut raft_config = raft::Config::new(NodeId(config.id));
        raft_config.election_timeout_ms = config.election_timeout_ms;
        raft_config.heartbeat_interval_ms = config.heartbeat_interval_ms;
        let seed = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0)
            ^ config.id;
        let core = raft::Node::new(raft_config, voters, recovered, LogIndex(0), seed)
            .context("cannot start the Raft core")?;
        let (tx, requests) = mpsc::channel(REQUEST_QUEUE_MAX);
        let peers = config
            .members
            .iter()
            .filter(|m| m.id != config.id)
            .map(|m| (NodeId(m.id), m.peer.clone()))
            .collect();
        let transport = Transport::start(NodeId(config.id), peers, shutdown.clone());
        let node = Node {
            inbound,
            transport,
            status_queries,
            requests_seen: RequestCounts::default(),
            clients: Clients::new(config.clone()),
            config,
            core,
            store: Store::new(),
            storage,
            requests,
            events,
            alarm: None,
            epoch: Instant::now(),
            applied: LogIndex(0),
            shutdown,
        };
        Ok((node, NodeHandle::new(tx)))
    }

    /// Runs until shutdown or a fatal error (a failed disk write: fail-stop).
    pub async fn run(mut self) -> anyhow::Result<()> {
        let actions = self.core.step(self.now(), Event::Timeout);
        self.execute(actions)?;
        loop {
            let alarm = self.alarm;
            let park_deadline = self.clients.next_park_deadline();
            let accepting = self.clients.pending() < PENDING_MAX;
            tokio::select! {
                event = self.events.recv() => match event {
                    Some(event) => self.on_event(event)?,
                    None => anyhow::bail!("storage stopped unexpectedly"),
                },
                Some(message) = self.inbound.recv() => self.on_peer_message(message)?,
                Some(query) = self.status_queries.recv() => {
                    let _ = query.reply.send(self.status(query.with_digest));
                }
                request = self.requests.recv(), if accepting => match request {
                    Some(request) => self.on_requests(request)?,
                    None => break,
                },
                _ = sleep_until(alarm) => {
                    self.alarm = None;
                    let actions = self.core.step(self.now(), Event::Timeout);
                    self.execute(actions)?;
                }
                _ = sleep_until(park_deadline) => self.clients.expire_parked(Instant::now()),
                _ = self.shutdown.wait() => break,
            }
        }
        info!("node stopping");
        self.clients.fail_all();
        self.storage.shutdown();
        Ok(())
    }

    /// The core's clock: milliseconds since this process started (monotonic).
    fn now(&self) -> Millis {
        Millis(self.epoch.elapsed().as_millis() as u64)
    }

    fn on_event(&mut self, event: NodeEvent) -> anyhow::Result<()> {
        let event = match event {
            NodeEvent::Storage(StorageEvent::Failed(err)) => {
                // Fail-stop: a log we cannot write is a log we cannot trust.
                error!(%err, "storage failed; stopping");
                return Err(err).context("storage failed");
            }
            NodeEvent::Storage(StorageEvent::LogStored { index, term }) => {
                Event::LogStored { index, term }
            }
            NodeEvent::Storage(StorageEvent::StateSaved(state)) => Event::StateSaved(state),
        };
        let actions = self.core.step(self.now(), event);
        self.execute(actions)
    }

    /// Steps the core with a peer message and whatever else has arrived meanwhile (bounded, so
    /// client requests and timers get their turn).
    fn on_peer_message(&mut self, first: Inbound) -> anyhow::Result<()> {
        let mut next = Some(first);
        let mut taken = 0;
        while let Some(Inbound { from, msg }) = next.take() {
            let actions = self.core.step(self.now(), Event::Message { from, msg });
            self.execute(actions)?;
            taken += 1;
            if taken < INBOUND_BATCH_MAX {
                next = self.inbound.try_recv().ok();
            }
        }
        Ok(())
    }

    /// Takes `first` and whatever else is queued (up to a batch), proposing the mutations in one
    /// `Append`.
    fn on_requests(&mut self, first: Request) -> anyhow::Result<()> {
        let mut batch = Vec::new();
        self.handle_request(first, &mut batch)?;
        while batch.len() < APPEND_BATCH_MAX {
            match self.requests.try_recv() {
                Ok(request) => self.handle_request(request, &mut batch)?,
                Err(_) => break,
            }
        }
        self.propose(&mut batch)
    }

    /// Parks a request while no leader is known, adds a mutation to `batch`, or starts a read.
    fn handle_request(
        &mut self,
        request: Request,
        batch: &mut Vec<(raft::ProposalId, Bytes)>,
    ) -> anyhow::Result<()> {
        self.count(&request.command);
        if self.core.leader().is_none() {
            // Nobody to send it to yet: hold it briefly (SPEC: wait up to about two election
            // timeouts for a leader).
            let deadline = Instant::now() + 2 * self.election_timeout();
            self.clients.park(request, deadline);
            return Ok(());
        }
        match request.command {
            Command::Read { name } => {
                // A read must see every command that reached the node before it, including
                // this batch's mutations: propose those first so the log holds them.
                self.propose(batch)?;
                let id = self
                    .clients
                    .read(name, request.reply, self.core.last_index());
                let actions = self.core.step(self.now(), Event::ReadIndex(id));
                self.execute(actions)
            }
            command => {
                let stamped = StampedCommand {
                    clock_ms: wall_clock_ms(),
                    command,
                };
                let id = self.clients.propose(request.reply);
                batch.push((id, stamped.encode()));
                Ok(())
            }
        }
    }

    fn propose(&mut self, batch: &mut Vec<(raft::ProposalId, Bytes)>) -> anyhow::Result<()> {
        if batch.is_empty() {
            return Ok(());
        }
        let actions = self
            .core
            .step(self.now(), Event::Append(std::mem::take(batch)));
        self.execute(actions)
    }

    /// Carries out the core's actions in order.
    fn execute(&mut self, actions: Vec<Action>) -> anyhow::Result<()> {
        let mut leader_found = false;
        for action in actions {
            match action {
                Action::Send { to, msg } => self.send(to, msg),
                Action::LogTruncate { from } => self.storage.truncate(from)?,
                Action::LogStore { entries } => self.storage.append(entries)?,
                Action::SaveState(state) => self.storage.save_state(state)?,
                Action::Commit(entry) => self.apply(entry),
                Action::Appended { id, index, term } => self.clients.appended(id, index, term),
                Action::CommitError { id, error } => {
                    let raft::ProposeError::NotLeader { leader } = error;
                    self.clients.proposal_failed(id, leader);
                }
                Action::ReadReady { id, index } => self.clients.read_ready(id, index),
                Action::ReadError { id, error } => {
                    let raft::ReadError::NotLeader { leader } = error;
                    self.clients.read_failed(id, leader);
                }
                Action::Alarm { at } => {
                    self.alarm = Some(self.epoch + Duration::from_millis(at.0));
                }
                // No snapshots here yet: no node compacts, so no leader sends one; only a
                // forged peer InstallSnapshot could ask for an install (peers are trusted).
                Action::SendSnapshot { .. } | Action::InstallSnapshot { .. } => {}
                Action::RoleChanged { role, term, leader } => {
                    info!(?role, term = term.0, leader = ?leader.map(|l| l.0), "role changed");
                    self.clients
                        .lost_leadership_unless(leader == Some(self.core.id()));
                    leader_found |= leader.is_some();
                }
            }
        }
        self.clients
            .serve_reads(self.applied, &self.store, wall_clock_ms());
        if leader_found && self.clients.has_parked() {
            self.retry_parked()?;
        }
        Ok(())
    }

    /// Commands parked while no leader was known get a second chance now that one is.
    fn retry_parked(&mut self) -> anyhow::Result<()> {
        let mut batch = Vec::new();
        for request in self.clients.take_parked() {
            self.handle_request(request, &mut batch)?;
        }
        self.propose(&mut batch)
    }

    fn send(&mut self, to: NodeId, msg: raft::Message) {
        self.transport.send(to, &msg);
    }

    /// Applies one committed entry to the store and answers its waiting client, if any.
    fn apply(&mut self, entry: raft::Entry) {
        debug_assert_eq!(entry.index.0, self.applied.0 + 1, "entries apply in order");
        self.applied = entry.index;
        let reply = match &entry.payload {
            Payload::Noop => None,
            Payload::Command(bytes) => Some(match StampedCommand::decode(bytes) {
                Ok(stamped) => self.store.apply(&stamped.command, stamped.clock_ms),
                Err(err) => {
                    // Every replica decodes the same bytes the same way, so skipping keeps them
                    // in step; the entry passed its CRC, so this is a bug worth shouting about.
                    error!(index = entry.index.0, %err, "committed entry does not decode");
                    Reply::Internal
                }
            }),
        };
        self.clients.committed(entry.index, entry.term, reply);
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
        Status {
            id: self.config.id,
            role: format!("{:?}", self.core.role()).to_lowercase(),
            term: self.core.term().0,
            leader: self.core.leader().map(|l| l.0),
            commit_index: self.core.commit_index().0,
            applied_index: self.applied.0,
            last_index: self.core.last_index().0,
            durable_index: self.core.durable_index().0,
            files: self.store.file_count() as u64,
            content_bytes: self.store.content_bytes(),
            version: self.store.version(),
            store_digest: with_digest
                .then(|| format!("{:08x}", crc32c::crc32c(&self.store.snapshot()))),
            requests: self.requests_seen.clone(),
            wal_fsyncs: self.storage.fsyncs(),
        }
    }

    fn election_timeout(&self) -> Duration {
        Duration::from_millis(self.config.election_timeout_ms)
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

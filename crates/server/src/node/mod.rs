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
mod storage;

pub use handle::{NodeHandle, Request};

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use fs::{Command, Reply};
use raft::{LogIndex, Millis, NodeId};
use replica::{Now, Output, Replica};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tracing::{error, info};

use crate::config::NodeConfig;
use crate::deadline::sleep_until;
use crate::shutdown::Shutdown;
use crate::status::{RequestCounts, Status, StatusQuery};
use crate::transport::{Inbound, Transport};
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

/// Events delivered to the node from storage.
pub enum NodeEvent {
    /// A WAL operation finished.
    Storage(StorageEvent),
}

/// The node task's state: the one replica driver (crate `replica`) and the I/O it asks for.
pub struct Node {
    config: NodeConfig,
    replica: Replica<oneshot::Sender<Reply>>,
    storage: Storage,
    requests: mpsc::Receiver<Request>,
    events: mpsc::UnboundedReceiver<NodeEvent>,
    inbound: mpsc::Receiver<Inbound>,
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
        let driver_config = replica::Config {
            park_ms: 2 * config.election_timeout_ms,
            client_addrs: config
                .members
                .iter()
                .map(|m| (NodeId(m.id), m.client.clone()))
                .collect(),
        };
        let replica = Replica::new(core, fs::Store::new(), LogIndex(0), driver_config);
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
            config,
            replica,
            storage,
            requests,
            events,
            alarm: None,
            epoch: Instant::now(),
            out: Vec::new(),
            shutdown,
        };
        Ok((node, NodeHandle::new(tx)))
    }

    /// Runs until shutdown or a fatal error (a failed disk write: fail-stop).
    pub async fn run(mut self) -> anyhow::Result<()> {
        let now = self.now();
        self.replica.start(now, &mut self.out);
        self.carry_out()?;
        loop {
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
                Some(message) = self.inbound.recv(), if !backlogged => {
                    self.on_peer_message(message)?;
                }
                Some(query) = self.status_queries.recv() => {
                    let _ = query.reply.send(self.status(query.with_digest));
                }
                request = self.requests.recv(), if accepting => match request {
                    Some(request) => self.on_requests(request)?,
                    None => break,
                },
                _ = sleep_until(alarm) => {
                    self.alarm = None;
                    let now = self.now();
                    self.replica.timeout(now, &mut self.out);
                    self.carry_out()?;
                }
                _ = self.shutdown.wait() => break,
            }
        }
        info!("node stopping");
        self.replica.fail_all(&mut self.out);
        self.carry_out()?;
        self.storage.shutdown();
        Ok(())
    }

    /// The clocks of this moment: milliseconds since this process started (monotonic), and
    /// the wall clock.
    fn now(&self) -> Now {
        Now {
            mono: Millis(self.epoch.elapsed().as_millis() as u64),
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
        while let Some(Inbound { from, msg }) = next.take() {
            let now = self.now();
            self.replica.message(now, from, msg, &mut self.out);
            self.carry_out()?;
            taken += 1;
            if taken < INBOUND_BATCH_MAX && !self.storage.is_backlogged() {
                next = self.inbound.try_recv().ok();
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
        for output in out.drain(..) {
            match output {
                Output::Send { to, msg } => self.transport.send(to, &msg),
                Output::LogTruncate { from } => result = result.and(self.storage.truncate(from)),
                Output::LogStore { entries } => result = result.and(self.storage.append(entries)),
                Output::SaveState(state) => result = result.and(self.storage.save_state(state)),
                Output::Reply { token, reply } => {
                    // The connection may have gone; nothing to do then.
                    let _ = token.send(reply);
                }
                Output::Timer { at } => {
                    self.alarm = Some(self.epoch + Duration::from_millis(at.0));
                }
                Output::Applied(_) => {}
                Output::RoleChanged { role, term, leader } => {
                    info!(?role, term = term.0, leader = ?leader.map(|l| l.0), "role changed");
                }
                Output::BadEntry { index, error } => {
                    error!(index = index.0, %error, "committed entry does not decode");
                }
            }
        }
        self.out = out;
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
        Status {
            id: self.config.id,
            role: format!("{:?}", core.role()).to_lowercase(),
            term: core.term().0,
            leader: core.leader().map(|l| l.0),
            commit_index: core.commit_index().0,
            applied_index: self.replica.applied().0,
            last_index: core.last_index().0,
            durable_index: core.durable_index().0,
            files: store.file_count() as u64,
            content_bytes: store.content_bytes(),
            version: store.version(),
            store_digest: with_digest.then(|| format!("{:08x}", crc32c::crc32c(&store.snapshot()))),
            requests: self.requests_seen.clone(),
            wal_fsyncs: self.storage.fsyncs(),
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

//! The node's book of client commands in flight: who waits for which proposal, log index or read,
//! and what each gets when the answer (or a failure) comes.

use std::collections::{BTreeMap, HashMap, VecDeque};

use fs::{Command, Name, Reply, Store};
use raft::{LogIndex, NodeId, ProposalId, ReadId, Term};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use crate::config::NodeConfig;

/// A client command on its way to the node, with where to send the answer.
#[derive(Debug)]
pub struct Request {
    /// The command.
    pub command: Command,
    /// Where the reply goes.
    pub reply: oneshot::Sender<Reply>,
}

/// How connections reach the node. Cheap to clone.
#[derive(Debug, Clone)]
pub struct NodeHandle {
    tx: mpsc::Sender<Request>,
}

impl NodeHandle {
    pub(super) fn new(tx: mpsc::Sender<Request>) -> NodeHandle {
        NodeHandle { tx }
    }

    /// Queues a command for the node (waiting while the queue is full) and returns where its
    /// reply will arrive; `None` if the node has stopped.
    pub async fn submit(&self, command: Command) -> Option<oneshot::Receiver<Reply>> {
        let (reply, rx) = oneshot::channel();
        self.tx.send(Request { command, reply }).await.ok()?;
        Some(rx)
    }
}

/// A read waiting for its turn.
struct PendingRead {
    name: Name,
    reply: oneshot::Sender<Reply>,
    /// The log's last index when the read reached the node: the read must see at least that.
    barrier: LogIndex,
}

/// Every client command the node has taken and not yet answered.
pub(super) struct Clients {
    config: NodeConfig,
    next_id: u64,
    /// Proposals given to the core, waiting for their log slot.
    proposed: HashMap<ProposalId, oneshot::Sender<Reply>>,
    /// Proposals in the log, waiting for commit, by index (with the term they were appended in).
    committing: BTreeMap<LogIndex, (Term, oneshot::Sender<Reply>)>,
    /// Reads waiting for the core to confirm leadership.
    reads: HashMap<ReadId, PendingRead>,
    /// Reads confirmed, waiting for the store to apply up to their index.
    ready_reads: BTreeMap<LogIndex, Vec<PendingRead>>,
    /// Requests that arrived while no leader was known, with when to give up on them.
    parked: VecDeque<(Instant, Request)>,
}

impl Clients {
    pub(super) fn new(config: NodeConfig) -> Clients {
        Clients {
            config,
            next_id: 0,
            proposed: HashMap::new(),
            committing: BTreeMap::new(),
            reads: HashMap::new(),
            ready_reads: BTreeMap::new(),
            parked: VecDeque::new(),
        }
    }

    /// Commands in flight, for back-pressure.
    pub(super) fn pending(&self) -> usize {
        self.proposed.len() + self.committing.len() + self.reads.len() + self.parked.len()
    }

    fn next_id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    /// Registers a proposal's waiter.
    pub(super) fn propose(&mut self, reply: oneshot::Sender<Reply>) -> ProposalId {
        let id = ProposalId(self.next_id());
        self.proposed.insert(id, reply);
        id
    }

    /// The proposal took log slot `index` in `term`.
    pub(super) fn appended(&mut self, id: ProposalId, index: LogIndex, term: Term) {
        if let Some(reply) = self.proposed.remove(&id) {
            self.committing.insert(index, (term, reply));
        }
    }

    /// The core refused the proposal.
    pub(super) fn proposal_failed(&mut self, id: ProposalId, leader: Option<NodeId>) {
        if let Some(reply) = self.proposed.remove(&id) {
            let _ = reply.send(self.not_leader(leader));
        }
    }

    /// The entry at `index` committed; `reply` is what applying it answered (None for a no-op).
    pub(super) fn committed(&mut self, index: LogIndex, term: Term, reply: Option<Reply>) {
        // Anything waiting below `index` lost its slot to another leader's entry long ago.
        while let Some(entry) = self.committing.first_entry() {
            if *entry.key() > index {
                break;
            }
            let (waiting_index, (waiting_term, tx)) = entry.remove_entry();
            let answer = match (&reply, waiting_index == index && waiting_term == term) {
                (Some(reply), true) => reply.clone(),
                // Another entry took the slot: the command was not applied (unknown to the
                // client, who gets ERR_INTERNAL as SPEC says).
                _ => Reply::Internal,
            };
            let _ = tx.send(answer);
        }
    }

    /// Registers a read that must see the log up to `barrier`.
    pub(super) fn read(
        &mut self,
        name: Name,
        reply: oneshot::Sender<Reply>,
        barrier: LogIndex,
    ) -> ReadId {
        let id = ReadId(self.next_id());
        self.reads.insert(
            id,
            PendingRead {
                name,
                reply,
                barrier,
            },
        );
        id
    }

    /// The core confirmed leadership for the read at commit index `index`.
    pub(super) fn read_ready(&mut self, id: ReadId, index: LogIndex) {
        if let Some(read) = self.reads.remove(&id) {
            let wait = index.max(read.barrier);
            self.ready_reads.entry(wait).or_default().push(read);
        }
    }

    /// The core refused the read.
    pub(super) fn read_failed(&mut self, id: ReadId, leader: Option<NodeId>) {
        if let Some(read) = self.reads.remove(&id) {
            let _ = read.reply.send(self.not_leader(leader));
        }
    }

    /// Answers every confirmed read whose index the store has applied.
    pub(super) fn serve_reads(&mut self, applied: LogIndex, store: &Store, clock_ms: u64) {
        while let Some(entry) = self.ready_reads.first_entry() {
            if *entry.key() > applied {
                break;
            }
            for read in entry.remove() {
                let _ = read.reply.send(store.read(&read.name, clock_ms));
            }
        }
    }

    /// Called whenever leadership may have moved. A node that is not (or no longer) the leader
    /// cannot complete what it holds: everything in flight gets ERR_INTERNAL (outcome unknown
    /// for mutations).
    pub(super) fn lost_leadership_unless(&mut self, leading: bool) {
        if !leading {
            self.fail_in_flight();
        }
    }

    fn fail_in_flight(&mut self) {
        for (_, reply) in self.proposed.drain() {
            let _ = reply.send(Reply::Internal);
        }
        for (_, (_, reply)) in std::mem::take(&mut self.committing) {
            let _ = reply.send(Reply::Internal);
        }
        for (_, read) in self.reads.drain() {
            let _ = read.reply.send(Reply::Internal);
        }
        for (_, reads) in std::mem::take(&mut self.ready_reads) {
            for read in reads {
                let _ = read.reply.send(Reply::Internal);
            }
        }
    }

    /// Fails everything, parked requests included (shutdown).
    pub(super) fn fail_all(&mut self) {
        self.fail_in_flight();
        for (_, request) in self.parked.drain(..) {
            let _ = request.reply.send(Reply::Internal);
        }
    }

    /// Holds a request until a leader is known or `deadline` passes.
    pub(super) fn park(&mut self, request: Request, deadline: Instant) {
        self.parked.push_back((deadline, request));
    }

    /// Whether any request is parked.
    pub(super) fn has_parked(&self) -> bool {
        !self.parked.is_empty()
    }

    /// When the oldest parked request times out.
    pub(super) fn next_park_deadline(&self) -> Option<Instant> {
        self.parked.front().map(|(deadline, _)| *deadline)
    }

    /// Answers ERR_INTERNAL to parked requests whose time is up (no leader appeared).
    pub(super) fn expire_parked(&mut self, now: Instant) {
        while let Some((deadline, _)) = self.parked.front() {
            if *deadline > now {
                break;
            }
            if let Some((_, request)) = self.parked.pop_front() {
                let _ = request.reply.send(Reply::Internal);
            }
        }
    }

    /// Every parked request, oldest first, to be handled again.
    pub(super) fn take_parked(&mut self) -> Vec<Request> {
        self.parked.drain(..).map(|(_, request)| request).collect()
    }

    /// The answer for a command this node cannot run: a redirect to the leader when another
    /// member is known to lead, else ERR_INTERNAL.
    fn not_leader(&self, leader: Option<NodeId>) -> Reply {
        match leader
            .filter(|l| l.0 != self.config.id)
            .and_then(|l| self.config.client_addr(l.0))
        {
            Some(addr) => Reply::Redirect(addr.to_owned()),
            None => Reply::Internal,
        }
    }
}

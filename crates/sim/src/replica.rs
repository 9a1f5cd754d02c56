//! One simulated node's runtime state: the real `raft::Node`, the real `fs::Store`, and the book
//! of client commands in flight, kept by the same rules as the production driver
//! (crates/server/src/node): a mutation is answered when its log slot commits with the term it
//! was appended in; a read is served once the store has applied both the `ReadReady` index and
//! the log's last index when the read arrived; when leadership moves away, everything in flight
//! gets `ERR_INTERNAL`; requests that find no leader wait (parked) up to two election timeouts.

use std::collections::{BTreeMap, VecDeque};

use fs::{Command, Name, Reply, StampedCommand, Store};
use raft::{Entry, LogIndex, NodeId, Payload, ProposalId, ReadId, Term};

use crate::client::node_address;
use crate::clock::SimTime;
use crate::failure::{Check, Violation};

/// A client command as the node received it.
#[derive(Debug, Clone)]
pub struct Request {
    /// Who sent it.
    pub client: usize,
    /// Which attempt of the client's current operation (stale answers are ignored).
    pub attempt: u64,
    /// The command.
    pub command: Command,
}

/// A reply on its way to a client.
#[derive(Debug, Clone)]
pub struct Outgoing {
    /// To whom.
    pub client: usize,
    /// The attempt it answers.
    pub attempt: u64,
    /// The reply.
    pub reply: Reply,
}

/// Who waits for an answer.
#[derive(Debug, Clone, Copy)]
struct Waiter {
    client: usize,
    attempt: u64,
}

/// A read waiting for its turn.
#[derive(Debug, Clone)]
struct PendingRead {
    name: Name,
    waiter: Waiter,
    /// The log's last index when the read reached the node.
    barrier: LogIndex,
}

/// One node's runtime. See the module documentation.
#[derive(Debug)]
pub struct Replica {
    /// The consensus core.
    pub core: raft::Node,
    store: Store,
    applied: LogIndex,
    next_id: u64,
    proposed: BTreeMap<ProposalId, Waiter>,
    committing: BTreeMap<LogIndex, (Term, Waiter)>,
    reads: BTreeMap<ReadId, PendingRead>,
    ready_reads: BTreeMap<LogIndex, Vec<PendingRead>>,
    parked: VecDeque<(SimTime, Request)>,
    /// Requests received and not yet taken up (the node takes them in batches).
    pub inbox: Vec<Request>,
    /// Whether a batch pick-up is already scheduled.
    pub drain_scheduled: bool,
    /// Bumped at every `Alarm` action: only the latest alarm fires.
    pub alarm_generation: u64,
    /// Replies produced, for the simulator to deliver.
    pub outbox: Vec<Outgoing>,
}

impl Replica {
    /// A freshly started node around `core`, with an empty store (rebuilt from commits).
    pub fn new(core: raft::Node) -> Replica {
        Replica {
            core,
            store: Store::new(),
            applied: LogIndex(0),
            next_id: 0,
            proposed: BTreeMap::new(),
            committing: BTreeMap::new(),
            reads: BTreeMap::new(),
            ready_reads: BTreeMap::new(),
            parked: VecDeque::new(),
            inbox: Vec::new(),
            drain_scheduled: false,
            alarm_generation: 0,
            outbox: Vec::new(),
        }
    }

    /// The file store.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The last index applied to the store.
    pub fn applied(&self) -> LogIndex {
        self.applied
    }

    /// Commands waiting in any form (for the end-of-run report).
    pub fn in_flight(&self) -> usize {
        self.proposed.len()
            + self.committing.len()
            + self.reads.len()
            + self.ready_reads.values().map(Vec::len).sum::<usize>()
            + self.parked.len()
            + self.inbox.len()
    }

    fn next_id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    /// Registers a mutation about to be proposed; returns its proposal id.
    pub fn propose(&mut self, request: &Request) -> ProposalId {
        let id = ProposalId(self.next_id());
        self.proposed.insert(
            id,
            Waiter {
                client: request.client,
                attempt: request.attempt,
            },
        );
        id
    }

    /// `Action::Appended`.
    pub fn appended(&mut self, id: ProposalId, index: LogIndex, term: Term) {
        if let Some(waiter) = self.proposed.remove(&id) {
            // A slot reused by a later leader's entry: the older waiter lost it.
            if let Some((_, old)) = self.committing.insert(index, (term, waiter)) {
                self.answer(old, Reply::Internal);
            }
        }
    }

    /// `Action::CommitError`.
    pub fn proposal_failed(&mut self, id: ProposalId, leader: Option<NodeId>) {
        if let Some(waiter) = self.proposed.remove(&id) {
            let reply = self.not_leader(leader);
            self.answer(waiter, reply);
        }
    }

    /// `Action::Commit`: applies the entry and answers its waiter. An entry that does not
    /// decode is a violation: the simulator wrote every command itself.
    pub fn apply(&mut self, entry: &Entry) -> Result<(), Violation> {
        self.applied = entry.index;
        let reply = match &entry.payload {
            Payload::Noop => None,
            Payload::Command(bytes) => match StampedCommand::decode(bytes) {
                Ok(stamped) => Some(self.store.apply(&stamped.command, stamped.clock_ms)),
                Err(e) => {
                    return Err(Violation::new(
                        Check::CoreContract,
                        format!(
                            "n{} commits i{} whose command does not decode: {e}",
                            self.core.id().0,
                            entry.index.0
                        ),
                    ));
                }
            },
        };
        // Anything waiting at or below this index is settled now.
        while let Some(first) = self.committing.first_entry() {
            if *first.key() > entry.index {
                break;
            }
            let (index, (term, waiter)) = first.remove_entry();
            let answer = match &reply {
                Some(r) if index == entry.index && term == entry.term => r.clone(),
                // Another entry took the slot; SPEC lets the client learn "unknown".
                _ => Reply::Internal,
            };
            self.answer(waiter, answer);
        }
        Ok(())
    }

    /// Registers a read that must see the log up to `barrier`; returns its read id.
    pub fn read(&mut self, request: &Request, name: Name, barrier: LogIndex) -> ReadId {
        let id = ReadId(self.next_id());
        self.reads.insert(
            id,
            PendingRead {
                name,
                waiter: Waiter {
                    client: request.client,
                    attempt: request.attempt,
                },
                barrier,
            },
        );
        id
    }

    /// `Action::ReadReady`.
    pub fn read_ready(&mut self, id: ReadId, index: LogIndex) {
        if let Some(read) = self.reads.remove(&id) {
            let wait = index.max(read.barrier);
            self.ready_reads.entry(wait).or_default().push(read);
        }
    }

    /// `Action::ReadError`.
    pub fn read_failed(&mut self, id: ReadId, leader: Option<NodeId>) {
        if let Some(read) = self.reads.remove(&id) {
            let reply = self.not_leader(leader);
            self.answer(read.waiter, reply);
        }
    }

    /// Serves every confirmed read whose index the store has applied.
    pub fn serve_reads(&mut self, wall_ms: u64) {
        while let Some(first) = self.ready_reads.first_entry() {
            if *first.key() > self.applied {
                break;
            }
            for read in first.remove() {
                let reply = self.store.read(&read.name, wall_ms);
                self.answer(read.waiter, reply);
            }
        }
    }

    /// `Action::RoleChanged`: a node that does not lead cannot finish what it holds.
    pub fn leader_changed(&mut self, leader: Option<NodeId>) {
        if leader != Some(self.core.id()) {
            self.fail_in_flight();
        }
    }

    fn fail_in_flight(&mut self) {
        let mut waiters: Vec<Waiter> = Vec::new();
        waiters.extend(std::mem::take(&mut self.proposed).into_values());
        waiters.extend(
            std::mem::take(&mut self.committing)
                .into_values()
                .map(|(_, w)| w),
        );
        waiters.extend(
            std::mem::take(&mut self.reads)
                .into_values()
                .map(|r| r.waiter),
        );
        for reads in std::mem::take(&mut self.ready_reads).into_values() {
            waiters.extend(reads.into_iter().map(|r| r.waiter));
        }
        for waiter in waiters {
            self.answer(waiter, Reply::Internal);
        }
    }

    /// Holds `request` until a leader is known or `deadline` passes.
    pub fn park(&mut self, request: Request, deadline: SimTime) {
        self.parked.push_back((deadline, request));
    }

    /// Whether requests are parked.
    pub fn has_parked(&self) -> bool {
        !self.parked.is_empty()
    }

    /// Answers `ERR_INTERNAL` to parked requests whose time is up.
    pub fn expire_parked(&mut self, now: SimTime) {
        while let Some((deadline, _)) = self.parked.front() {
            if *deadline > now {
                break;
            }
            if let Some((_, request)) = self.parked.pop_front() {
                self.answer(
                    Waiter {
                        client: request.client,
                        attempt: request.attempt,
                    },
                    Reply::Internal,
                );
            }
        }
    }

    /// Every parked request, oldest first, to be handled again.
    pub fn take_parked(&mut self) -> Vec<Request> {
        self.parked.drain(..).map(|(_, r)| r).collect()
    }

    fn answer(&mut self, waiter: Waiter, reply: Reply) {
        self.outbox.push(Outgoing {
            client: waiter.client,
            attempt: waiter.attempt,
            reply,
        });
    }

    /// A redirect to the leader when another node is known to lead, else `ERR_INTERNAL`.
    fn not_leader(&self, leader: Option<NodeId>) -> Reply {
        match leader.filter(|&l| l != self.core.id()) {
            Some(l) => Reply::Redirect(node_address(l)),
            None => Reply::Internal,
        }
    }
}

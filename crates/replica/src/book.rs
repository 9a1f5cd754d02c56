//! The book of client commands in flight: who waits for which proposal, log slot or read, and
//! what each gets when the answer (or a failure) comes.
//!
//! A waiter is an opaque token `T` chosen by the runtime (a oneshot sender in the server, a
//! client and attempt number in the simulator); the book only decides when a token is answered
//! and with what, and hands the answers back.

use std::collections::{BTreeMap, VecDeque};

use fs::{Name, Reply, Store};
use raft::{LogIndex, Millis, ProposalId, ReadId, Term};

/// A client command as the runtime hands it to the replica: the command and who waits for it.
#[derive(Debug)]
pub struct Request<T> {
    /// Who waits for the reply.
    pub token: T,
    /// The command.
    pub command: fs::Command,
}

/// A read waiting for its turn.
#[derive(Debug)]
struct PendingRead<T> {
    /// The file to read; `None` for a backup, which takes the whole store.
    name: Option<Name>,
    token: T,
    /// The log's last index when the read reached the node: the read must see at least that,
    /// so a pipelined read sees the same connection's earlier writes.
    barrier: LogIndex,
}

/// Every client command the replica has taken and not yet answered.
#[derive(Debug)]
pub(crate) struct Book<T> {
    next_id: u64,
    /// Proposals given to the core, waiting for their log slot.
    proposed: BTreeMap<ProposalId, T>,
    /// Proposals in the log, waiting for commit, by index (with the term they were appended in).
    committing: BTreeMap<LogIndex, (Term, T)>,
    /// Reads waiting for the core to confirm leadership.
    reads: BTreeMap<ReadId, PendingRead<T>>,
    /// Reads confirmed, waiting for the store to apply up to their index.
    ready_reads: BTreeMap<LogIndex, Vec<PendingRead<T>>>,
    /// Requests that arrived while no leader was known, with when to give up on them (in
    /// arrival order, so deadlines never decrease along the queue).
    parked: VecDeque<(Millis, Request<T>)>,
    /// Leadership transfers asked for, waiting for another member to lead, with when to give
    /// up on them.
    transfers: Vec<(Millis, T)>,
}

impl<T> Book<T> {
    pub(crate) fn new() -> Book<T> {
        Book {
            next_id: 0,
            proposed: BTreeMap::new(),
            committing: BTreeMap::new(),
            reads: BTreeMap::new(),
            ready_reads: BTreeMap::new(),
            parked: VecDeque::new(),
            transfers: Vec::new(),
        }
    }

    /// Registers a waiter for the leadership transfer in progress, answered by `deadline`.
    pub(crate) fn transfer(&mut self, token: T, deadline: Millis) {
        self.transfers.push((deadline, token));
    }

    /// Answers every transfer waiter with `reply`.
    pub(crate) fn transfers_done(&mut self, reply: &Reply, answers: &mut Vec<(T, Reply)>) {
        answers.extend(self.transfers.drain(..).map(|(_, t)| (t, reply.clone())));
    }

    /// Answers the transfer waiters whose deadline passed with `ERR_INTERNAL` (the outcome is
    /// unknown: an election may still be deciding).
    pub(crate) fn expire_transfers(&mut self, now: Millis, answers: &mut Vec<(T, Reply)>) {
        let (expired, kept): (Vec<_>, Vec<_>) =
            self.transfers.drain(..).partition(|(at, _)| *at <= now);
        self.transfers = kept;
        answers.extend(expired.into_iter().map(|(_, t)| (t, Reply::Internal)));
    }

    /// The earliest transfer deadline.
    pub(crate) fn next_transfer_deadline(&self) -> Option<Millis> {
        self.transfers.iter().map(|(at, _)| *at).min()
    }

    /// Whether a transfer waiter is registered.
    pub(crate) fn has_transfers(&self) -> bool {
        !self.transfers.is_empty()
    }

    /// Commands in flight of every kind.
    pub(crate) fn len(&self) -> usize {
        self.proposed.len()
            + self.committing.len()
            + self.reads.len()
            + self.ready_reads.values().map(Vec::len).sum::<usize>()
            + self.parked.len()
            + self.transfers.len()
    }

    fn next_id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    /// Registers a proposal's waiter.
    pub(crate) fn propose(&mut self, token: T) -> ProposalId {
        let id = ProposalId(self.next_id());
        self.proposed.insert(id, token);
        id
    }

    /// An id for a proposal nobody waits for (a clock entry).
    pub(crate) fn unattended(&mut self) -> ProposalId {
        ProposalId(self.next_id())
    }

    /// The proposal took log slot `index` in `term`. A waiter still holding that slot from an
    /// earlier term lost it to this entry: its command was not applied, and it is answered.
    pub(crate) fn appended(
        &mut self,
        id: ProposalId,
        index: LogIndex,
        term: Term,
        answers: &mut Vec<(T, Reply)>,
    ) {
        if let Some(token) = self.proposed.remove(&id)
            && let Some((_, old)) = self.committing.insert(index, (term, token))
        {
            answers.push((old, Reply::Internal));
        }
    }

    /// The core refused the proposal: its token, to be answered by the caller.
    pub(crate) fn proposal_failed(&mut self, id: ProposalId) -> Option<T> {
        self.proposed.remove(&id)
    }

    /// The entry at `index` with `term` committed; `reply` is what applying it answered (None
    /// for a no-op). Settles every waiter at or below `index`.
    pub(crate) fn committed(
        &mut self,
        index: LogIndex,
        term: Term,
        reply: Option<&Reply>,
        answers: &mut Vec<(T, Reply)>,
    ) {
        while let Some(entry) = self.committing.first_entry() {
            if *entry.key() > index {
                break;
            }
            let (waiting_index, (waiting_term, token)) = entry.remove_entry();
            let answer = match reply {
                Some(reply) if waiting_index == index && waiting_term == term => reply.clone(),
                // Another entry took the slot (or a slot below was skipped): the command was not
                // applied; the client learns "unknown", as docs/protocol.md allows for ERR_INTERNAL.
                _ => Reply::Internal,
            };
            answers.push((token, answer));
        }
    }

    /// Registers a read of `name` (of the whole store for a backup, `None`) that must see the
    /// log up to `barrier`.
    pub(crate) fn read(&mut self, name: Option<Name>, token: T, barrier: LogIndex) -> ReadId {
        let id = ReadId(self.next_id());
        self.reads.insert(
            id,
            PendingRead {
                name,
                token,
                barrier,
            },
        );
        id
    }

    /// The core confirmed leadership for the read at commit index `index`.
    pub(crate) fn read_ready(&mut self, id: ReadId, index: LogIndex) {
        if let Some(read) = self.reads.remove(&id) {
            let wait = index.max(read.barrier);
            self.ready_reads.entry(wait).or_default().push(read);
        }
    }

    /// The core refused the read: its token, to be answered by the caller.
    pub(crate) fn read_failed(&mut self, id: ReadId) -> Option<T> {
        self.reads.remove(&id).map(|read| read.token)
    }

    /// Answers every confirmed read whose index the store has applied; the tokens of backups
    /// so served go to `backups`, for the caller to hand the store out.
    pub(crate) fn serve_reads(
        &mut self,
        applied: LogIndex,
        store: &Store,
        answers: &mut Vec<(T, Reply)>,
        backups: &mut Vec<T>,
    ) {
        while let Some(entry) = self.ready_reads.first_entry() {
            if *entry.key() > applied {
                break;
            }
            for read in entry.remove() {
                match &read.name {
                    Some(name) => answers.push((read.token, store.read(name))),
                    None => backups.push(read.token),
                }
            }
        }
    }

    /// Fails everything the core holds for us (not the parked requests): a node that no longer
    /// leads cannot finish them, and the fate of its mutations is unknown.
    pub(crate) fn fail_in_flight(&mut self, answers: &mut Vec<(T, Reply)>) {
        for token in std::mem::take(&mut self.proposed).into_values() {
            answers.push((token, Reply::Internal));
        }
        for (_, token) in std::mem::take(&mut self.committing).into_values() {
            answers.push((token, Reply::Internal));
        }
        for read in std::mem::take(&mut self.reads).into_values() {
            answers.push((read.token, Reply::Internal));
        }
        for reads in std::mem::take(&mut self.ready_reads).into_values() {
            answers.extend(reads.into_iter().map(|r| (r.token, Reply::Internal)));
        }
    }

    /// Fails everything, parked requests included (shutdown).
    pub(crate) fn fail_all(&mut self, answers: &mut Vec<(T, Reply)>) {
        self.fail_in_flight(answers);
        for (_, request) in self.parked.drain(..) {
            answers.push((request.token, Reply::Internal));
        }
        self.transfers_done(&Reply::Internal, answers);
    }

    /// Holds a request until a leader is known or `deadline` passes.
    pub(crate) fn park(&mut self, request: Request<T>, deadline: Millis) {
        debug_assert!(
            self.parked.back().is_none_or(|(last, _)| *last <= deadline),
            "park deadlines never decrease"
        );
        self.parked.push_back((deadline, request));
    }

    /// When the oldest parked request times out.
    pub(crate) fn next_park_deadline(&self) -> Option<Millis> {
        self.parked.front().map(|(deadline, _)| *deadline)
    }

    /// Answers `ERR_INTERNAL` to parked requests whose time is up (no leader appeared).
    pub(crate) fn expire_parked(&mut self, now: Millis, answers: &mut Vec<(T, Reply)>) {
        while let Some((deadline, _)) = self.parked.front() {
            if *deadline > now {
                break;
            }
            if let Some((_, request)) = self.parked.pop_front() {
                answers.push((request.token, Reply::Internal));
            }
        }
    }

    /// Every parked request, oldest first, to be handled again.
    pub(crate) fn take_parked(&mut self) -> Vec<Request<T>> {
        self.parked.drain(..).map(|(_, request)| request).collect()
    }

    /// Whether any request is parked.
    pub(crate) fn has_parked(&self) -> bool {
        !self.parked.is_empty()
    }
}

//! A small deterministic harness wiring N nodes together, for multi-node scenario tests and the
//! benchmark: an in-memory network (FIFO, instant, with cuts), in-memory disks (instant, or held
//! until flushed), a manual clock, crash and restart, and the snapshot half of a driver.
//!
//! Each node has a simulated state machine (a [`MachineState`]: the applied index and term and a
//! digest of everything applied). [`Cluster::snapshot`] makes a node snapshot it; a
//! `SendSnapshot` is an instant in-memory transfer (the harness plays both drivers: it stages
//! the sender's image on the receiver, feeds it the `InstallSnapshot` message and reports the
//! transfer back), and an `InstallSnapshot` action restores the receiver's state machine and
//! goes to its disk like any other write. A restart boots from the disk's snapshot and log.
//!
//! It is not the fault-injecting simulator (`crates/sim`): nothing here is random, and the only
//! faults are the ones a test asks for. It checks two safety properties on the fly and panics on
//! a violation: at most one leader per term, and every node applies the same entry at each index,
//! in index order, each once, so that its state equals every other node's at that index; a
//! node that installs a snapshot at an index must get exactly the state others had there.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use bytes::Bytes;

use crate::action::Action;
use crate::config::Config;
use crate::entry::{Entry, Payload};
use crate::error::{ProposeError, ReadError};
use crate::event::Event;
use crate::ids::{LogIndex, NodeId, ProposalId, ReadId, Term};
use crate::membership::Membership;
use crate::message::{InstallSnapshotRequest, Message};
use crate::node::Node;
use crate::persist::{HardState, Recovered};
use crate::role::Role;
use crate::time::Millis;

/// Most events one `deliver_all` processes before declaring a livelock.
pub const DELIVERY_STEPS_MAX: usize = 10_000_000;

/// A message on the simulated network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    /// Sender.
    pub from: NodeId,
    /// Receiver.
    pub to: NodeId,
    /// The message.
    pub msg: Message,
}

/// A simulated state machine, and the image a snapshot of it stores: how far it applied, and a
/// digest of every entry applied, in order (two machines with equal digests applied the same).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MachineState {
    /// The last index applied (or restored from a snapshot).
    pub index: LogIndex,
    /// The term of the entry at `index`.
    pub term: Term,
    /// FNV-1a over every applied entry's index, term and payload.
    pub digest: u64,
}

impl MachineState {
    /// The state after applying `entry` (the next one).
    fn apply(self, entry: &Entry) -> MachineState {
        let mut digest = if self.index == LogIndex(0) {
            FNV_OFFSET
        } else {
            self.digest
        };
        let mut mix = |bytes: &[u8]| {
            for &b in bytes {
                digest = (digest ^ u64::from(b)).wrapping_mul(FNV_PRIME);
            }
        };
        mix(&entry.index.0.to_le_bytes());
        mix(&entry.term.0.to_le_bytes());
        match &entry.payload {
            // A configuration is skipped by the state machine, like a no-op.
            Payload::Noop | Payload::Membership(_) => mix(&[0]),
            Payload::Command(data) => {
                mix(&[1]);
                mix(&(data.len() as u64).to_le_bytes());
                mix(data);
            }
        }
        MachineState {
            index: entry.index,
            term: entry.term,
            digest,
        }
    }
}

/// FNV-1a's 64-bit offset basis and prime: a small deterministic digest, enough to tell apart
/// histories in tests (not a defence against anyone).
const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// A write waiting on a held disk.
#[derive(Debug, Clone)]
enum Write {
    Save(HardState),
    Truncate(LogIndex),
    Store(Vec<Entry>),
    Install { image: MachineState, kept: bool },
}

/// One node's disk: what is durable, and writes not yet durable when the disk is held.
#[derive(Debug, Clone, Default)]
struct Disk {
    hard_state: HardState,
    /// The WAL: contiguous entries; those at or below the snapshot's index are left out on boot.
    entries: Vec<Entry>,
    /// The node's snapshot (durable at once when taken: the driver reports it only then).
    snapshot: Option<MachineState>,
    /// The configuration `snapshot` holds.
    snapshot_membership: Option<Membership>,
    /// A snapshot received from a leader, durable but not installed yet.
    staged: Option<MachineState>,
    /// The configuration `staged` holds.
    staged_membership: Option<Membership>,
    pending: Vec<Write>,
    held: bool,
}

impl Disk {
    /// Makes `write` durable and returns the acknowledgement event, if it has one.
    fn apply(&mut self, write: Write) -> Option<Event> {
        match write {
            Write::Save(hs) => {
                self.hard_state = hs;
                Some(Event::StateSaved(hs))
            }
            Write::Truncate(from) => {
                self.entries.retain(|e| e.index < from);
                None
            }
            Write::Store(entries) => {
                let last = entries.last().map(|e| (e.index, e.term));
                self.entries.extend(entries);
                last.map(|(index, term)| Event::LogStored { index, term })
            }
            Write::Install { image, kept } => {
                // A snapshot taken since (while this waited) is newer: keep it.
                if self.snapshot.is_none_or(|s| s.index < image.index) {
                    self.snapshot = Some(image);
                    self.snapshot_membership = self.staged_membership.clone();
                }
                if kept {
                    self.entries.retain(|e| e.index > image.index);
                } else {
                    self.entries.clear();
                }
                Some(Event::SnapshotInstalled {
                    index: image.index,
                    term: image.term,
                })
            }
        }
    }
}

/// Outcome of a client request, as the harness recorded it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// A proposal took this slot (not yet known committed).
    Appended {
        /// Its index.
        index: LogIndex,
        /// Its term.
        term: Term,
    },
    /// A proposal was refused.
    Refused(ProposeError),
    /// A read may be served at this index.
    ReadReady(LogIndex),
    /// A read was refused.
    ReadRefused(ReadError),
    /// A membership change was refused (the node's `ChangeRefused` action says why).
    ChangeRefused,
}

/// N nodes, their disks and the network between them, all driven by hand.
#[derive(Debug)]
pub struct Cluster {
    configs: BTreeMap<NodeId, Config>,
    /// The bootstrap voters.
    voters: Vec<NodeId>,
    /// Every node: the bootstrap voters, then nodes that start empty, waiting to be added.
    all: Vec<NodeId>,
    seed: u64,
    now: Millis,
    /// `None` while crashed.
    nodes: BTreeMap<NodeId, Option<Node>>,
    disks: BTreeMap<NodeId, Disk>,
    alarms: BTreeMap<NodeId, Millis>,
    /// Storage acknowledgements waiting to be fed back, in order.
    local: VecDeque<(NodeId, Event)>,
    network: VecDeque<Envelope>,
    /// Directed links that drop everything.
    cut: BTreeSet<(NodeId, NodeId)>,
    /// Entries applied by each node through `Commit` since its last restart, if recording (a
    /// snapshot install leaves a gap).
    applied: BTreeMap<NodeId, Vec<Entry>>,
    /// Each node's state machine.
    machines: BTreeMap<NodeId, MachineState>,
    /// The term of the entry committed at each index, by anyone.
    committed: BTreeMap<LogIndex, Term>,
    /// The state machine's digest at each index, by anyone.
    digests: BTreeMap<LogIndex, u64>,
    /// Snapshot images on their way, by (sender, receiver, index).
    transfers: BTreeMap<(NodeId, NodeId, LogIndex), MachineState>,
    leaders: BTreeMap<Term, NodeId>,
    outcomes_proposals: BTreeMap<ProposalId, Outcome>,
    outcomes_reads: BTreeMap<ReadId, Outcome>,
    next_proposal: u64,
    next_read: u64,
    record: bool,
    /// Every action, by node, if recording.
    transcript: Vec<(NodeId, Action)>,
    /// Entries applied across all nodes (also counted when not recording).
    commits_total: u64,
    /// Snapshot installs carried out across all nodes (also counted when not recording).
    installs_total: u64,
}

impl Cluster {
    /// `n` nodes with ids 1..=n and the default configuration; node `i` gets seed `seed + i`.
    pub fn new(n: u64, seed: u64) -> Cluster {
        Cluster::with_config(n, seed, |_| {})
    }

    /// Like [`Cluster::new`], with `tweak` applied to every node's configuration.
    pub fn with_config(n: u64, seed: u64, tweak: impl Fn(&mut Config)) -> Cluster {
        Cluster::with_joiners(n, 0, seed, tweak)
    }

    /// `n` bootstrap voters (ids 1..=n) and `joiners` more nodes (ids n+1..) that start with an
    /// empty configuration, waiting to be added by a membership change.
    pub fn with_joiners(n: u64, joiners: u64, seed: u64, tweak: impl Fn(&mut Config)) -> Cluster {
        let voters: Vec<NodeId> = (1..=n).map(NodeId).collect();
        let all: Vec<NodeId> = (1..=n + joiners).map(NodeId).collect();
        let mut cluster = Cluster {
            configs: BTreeMap::new(),
            voters: voters.clone(),
            all: all.clone(),
            seed,
            now: Millis(0),
            nodes: BTreeMap::new(),
            disks: BTreeMap::new(),
            alarms: BTreeMap::new(),
            local: VecDeque::new(),
            network: VecDeque::new(),
            cut: BTreeSet::new(),
            applied: BTreeMap::new(),
            machines: BTreeMap::new(),
            committed: BTreeMap::new(),
            digests: BTreeMap::new(),
            transfers: BTreeMap::new(),
            leaders: BTreeMap::new(),
            outcomes_proposals: BTreeMap::new(),
            outcomes_reads: BTreeMap::new(),
            next_proposal: 0,
            next_read: 0,
            record: true,
            transcript: Vec::new(),
            commits_total: 0,
            installs_total: 0,
        };
        for &id in &all {
            let mut config = Config::new(id);
            tweak(&mut config);
            cluster.configs.insert(id, config);
            cluster.disks.insert(id, Disk::default());
            cluster.nodes.insert(id, None);
            cluster.boot(id);
        }
        cluster
    }

    /// Turns recording of applied entries and of the action transcript on or off (the
    /// benchmark turns it off; safety checks on commits stay on either way).
    pub fn set_recording(&mut self, on: bool) {
        self.record = on;
    }

    /// Builds node `id` from its disk (its state machine restored from the disk's snapshot) and
    /// starts it with a first `Timeout`.
    fn boot(&mut self, id: NodeId) {
        let disk = &self.disks[&id];
        let machine = disk.snapshot.unwrap_or_default();
        let recovered = Recovered {
            hard_state: disk.hard_state,
            snapshot: disk.snapshot.map(|s| (s.index, s.term)),
            entries: disk
                .entries
                .iter()
                .filter(|e| e.index > machine.index)
                .cloned()
                .collect(),
            membership: disk.snapshot_membership.clone(),
        };
        let config = self.configs[&id].clone();
        let seed = self.seed.wrapping_add(id.0);
        let bootstrap = if self.voters.contains(&id) {
            Membership::voters_only(self.voters.iter().copied())
        } else {
            Membership::default()
        };
        let node = match Node::new(config, bootstrap, recovered, machine.index, seed) {
            Ok(node) => node,
            Err(e) => panic!("node {id} failed to start: {e}"),
        };
        self.nodes.insert(id, Some(node));
        self.applied.insert(id, Vec::new());
        self.machines.insert(id, machine);
        self.step(id, Event::Timeout);
    }

    /// The current time.
    pub fn now(&self) -> Millis {
        self.now
    }

    /// The node ids (joiners included).
    pub fn ids(&self) -> Vec<NodeId> {
        self.all.clone()
    }

    /// Node `id`, unless crashed.
    pub fn node(&self, id: NodeId) -> Option<&Node> {
        self.nodes.get(&id).and_then(Option::as_ref)
    }

    /// The running node that leads the highest term, if any.
    pub fn leader(&self) -> Option<NodeId> {
        self.nodes
            .values()
            .flatten()
            .filter(|n| n.role() == Role::Leader)
            .max_by_key(|n| n.term())
            .map(Node::id)
    }

    /// Entries node `id` applied through `Commit` since its last restart (when recording); a
    /// snapshot install (or a restart from a snapshot) skips the entries it covers.
    pub fn applied(&self, id: NodeId) -> &[Entry] {
        self.applied.get(&id).map_or(&[], Vec::as_slice)
    }

    /// Last index node `id`'s state machine reflects (applied or restored from a snapshot).
    pub fn applied_index(&self, id: NodeId) -> LogIndex {
        self.state(id).index
    }

    /// Node `id`'s state machine.
    pub fn state(&self, id: NodeId) -> MachineState {
        self.machines.get(&id).copied().unwrap_or_default()
    }

    /// The snapshot on node `id`'s disk, if any.
    pub fn disk_snapshot(&self, id: NodeId) -> Option<MachineState> {
        self.disks.get(&id).and_then(|d| d.snapshot)
    }

    /// Entries applied by all nodes together since the cluster was built.
    pub fn commits_total(&self) -> u64 {
        self.commits_total
    }

    /// Snapshot installs carried out by all nodes together since the cluster was built.
    pub fn installs_total(&self) -> u64 {
        self.installs_total
    }

    /// What became of proposal `id`.
    pub fn proposal(&self, id: ProposalId) -> Option<Outcome> {
        self.outcomes_proposals.get(&id).copied()
    }

    /// What became of read `id`.
    pub fn read_outcome(&self, id: ReadId) -> Option<Outcome> {
        self.outcomes_reads.get(&id).copied()
    }

    /// Every action so far, by node (when recording).
    pub fn transcript(&self) -> &[(NodeId, Action)] {
        &self.transcript
    }

    /// Forgets the transcript.
    pub fn clear_transcript(&mut self) {
        self.transcript.clear();
    }

    /// The durable log on node `id`'s disk.
    pub fn disk_entries(&self, id: NodeId) -> &[Entry] {
        self.disks.get(&id).map_or(&[], |d| d.entries.as_slice())
    }

    /// The durable hard state on node `id`'s disk.
    pub fn disk_hard_state(&self, id: NodeId) -> HardState {
        self.disks
            .get(&id)
            .map(|d| d.hard_state)
            .unwrap_or_default()
    }

    // ----- Driving -----

    /// Steps node `id` with `event` at the current time and carries out the actions (sends are
    /// queued, storage acknowledgements queued unless the disk is held). Nothing is delivered.
    pub fn step(&mut self, id: NodeId, event: Event) {
        let now = self.now;
        let Some(node) = self.nodes.get_mut(&id).and_then(Option::as_mut) else {
            return;
        };
        let actions = node.step(now, event);
        for action in actions {
            self.carry_out(id, action);
        }
    }

    fn carry_out(&mut self, id: NodeId, action: Action) {
        if self.record {
            self.transcript.push((id, action.clone()));
        }
        match action {
            Action::Send { to, msg } => {
                if !self.cut.contains(&(id, to)) {
                    self.network.push_back(Envelope { from: id, to, msg });
                }
            }
            Action::LogTruncate { from } => self.write(id, Write::Truncate(from)),
            Action::LogStore { entries } => self.write(id, Write::Store(entries)),
            Action::SaveState(hs) => self.write(id, Write::Save(hs)),
            Action::Commit(entry) => self.apply(id, entry),
            Action::Appended { id: p, index, term } => {
                self.outcomes_proposals
                    .insert(p, Outcome::Appended { index, term });
            }
            Action::CommitError { id: p, error } => {
                self.outcomes_proposals.insert(p, Outcome::Refused(error));
            }
            Action::ChangeRefused { id: p, .. } => {
                self.outcomes_proposals.insert(p, Outcome::ChangeRefused);
            }
            Action::ReadReady { id: r, index } => {
                self.outcomes_reads.insert(r, Outcome::ReadReady(index));
            }
            Action::ReadError { id: r, error } => {
                self.outcomes_reads.insert(r, Outcome::ReadRefused(error));
            }
            Action::Alarm { at } => {
                self.alarms.insert(id, at);
            }
            Action::SendSnapshot { to, request } => self.send_snapshot(id, to, request),
            Action::InstallSnapshot {
                index,
                term,
                kept_entries_after,
            } => self.install(id, index, term, kept_entries_after),
            Action::RoleChanged { role, term, .. } => {
                if role == Role::Leader {
                    let previous = self.leaders.insert(term, id);
                    assert!(
                        previous.is_none_or(|p| p == id),
                        "two leaders in {term}: {previous:?} and {id}"
                    );
                }
            }
        }
    }

    fn write(&mut self, id: NodeId, write: Write) {
        let Some(disk) = self.disks.get_mut(&id) else {
            return;
        };
        if disk.held {
            disk.pending.push(write);
        } else if let Some(ack) = disk.apply(write) {
            self.local.push_back((id, ack));
        }
    }

    fn apply(&mut self, id: NodeId, entry: Entry) {
        let machine = self.machines.entry(id).or_default();
        assert_eq!(
            entry.index,
            LogIndex(machine.index.0 + 1),
            "{id} applied out of order or twice"
        );
        *machine = machine.apply(&entry);
        let state = *machine;
        let term = *self.committed.entry(entry.index).or_insert(entry.term);
        assert_eq!(
            term, entry.term,
            "{id} committed a different entry at {}",
            entry.index
        );
        self.check_state(id, state);
        self.commits_total += 1;
        if self.record {
            self.applied.entry(id).or_default().push(entry);
        }
    }

    /// State-machine safety: every node's state at an index is the same.
    fn check_state(&mut self, id: NodeId, state: MachineState) {
        let digest = *self.digests.entry(state.index).or_insert(state.digest);
        assert_eq!(
            digest, state.digest,
            "{id}'s state at {} differs from another node's",
            state.index
        );
    }

    /// `SendSnapshot`, both drivers' halves: the sender's image goes on the network beside the
    /// request (as one message, delivered in order with the rest); a cut link or a crashed
    /// receiver fails the transfer at once.
    fn send_snapshot(&mut self, from: NodeId, to: NodeId, request: InstallSnapshotRequest) {
        let index = request.index;
        let disk = &self.disks[&from];
        let image = [disk.snapshot, disk.staged]
            .into_iter()
            .flatten()
            .find(|s| s.index == index && s.term == request.snapshot_term);
        let Some(image) = image else {
            panic!("{from} asked to send a snapshot at {index} that it does not hold");
        };
        if self.cut.contains(&(from, to)) || self.node(to).is_none() {
            let report = Event::SnapshotReport {
                to,
                index,
                installed: false,
            };
            self.local.push_back((from, report));
            return;
        }
        self.transfers.insert((from, to, index), image);
        let msg = Message::InstallSnapshot(request);
        self.network.push_back(Envelope { from, to, msg });
    }

    /// Delivers a snapshot transfer: stages the image on the receiver, feeds it the request and
    /// reports success to the sender (a request without an image, say injected by a test, is
    /// just delivered).
    fn deliver_snapshot(&mut self, from: NodeId, to: NodeId, request: InstallSnapshotRequest) {
        let index = request.index;
        if self.node(to).is_none() {
            self.fail_transfer(from, to, index);
            return;
        }
        let image = self.transfers.remove(&(from, to, index));
        if let Some(image) = image
            && let Some(disk) = self.disks.get_mut(&to)
        {
            disk.staged = Some(image);
            disk.staged_membership = Some(request.membership.clone());
        }
        let msg = Message::InstallSnapshot(request);
        self.step(to, Event::Message { from, msg });
        if image.is_some() {
            let report = Event::SnapshotReport {
                to,
                index,
                installed: true,
            };
            self.local.push_back((from, report));
        }
    }

    /// A transfer's message was lost: the sender's driver learns the transfer failed.
    fn fail_transfer(&mut self, from: NodeId, to: NodeId, index: LogIndex) {
        if self.transfers.remove(&(from, to, index)).is_some() {
            let report = Event::SnapshotReport {
                to,
                index,
                installed: false,
            };
            self.local.push_back((from, report));
        }
    }

    /// `InstallSnapshot`: the state machine is restored from the staged image at once, and the
    /// install goes to disk in order with the other writes.
    fn install(&mut self, id: NodeId, index: LogIndex, term: Term, kept: bool) {
        let staged = self.disks.get(&id).and_then(|d| d.staged);
        let Some(image) = staged.filter(|s| s.index == index && s.term == term) else {
            panic!("{id} asked to install a snapshot at {index} that is not staged");
        };
        let machine = self.machines.entry(id).or_default();
        assert!(
            image.index > machine.index,
            "{id} rolled back from {} to {index}",
            machine.index
        );
        *machine = image;
        self.check_state(id, image);
        self.installs_total += 1;
        self.write(id, Write::Install { image, kept });
    }

    /// Drops the messages for which `lost` holds; a lost snapshot transfer is reported failed.
    fn drop_messages(&mut self, lost: impl Fn(&Envelope) -> bool) {
        let mut failed = Vec::new();
        self.network.retain(|e| {
            if !lost(e) {
                return true;
            }
            if let Message::InstallSnapshot(req) = &e.msg {
                failed.push((e.from, e.to, req.index));
            }
            false
        });
        for (from, to, index) in failed {
            self.fail_transfer(from, to, index);
        }
    }

    /// Delivers storage acknowledgements and messages until nothing is in flight; returns how
    /// many events were delivered. Panics on livelock (more than [`DELIVERY_STEPS_MAX`]).
    pub fn deliver_all(&mut self) -> usize {
        let mut count = 0;
        while self.deliver_one() {
            count += 1;
            assert!(count < DELIVERY_STEPS_MAX, "livelock: messages never stop");
        }
        count
    }

    /// Delivers the next event: a storage acknowledgement first, else the oldest message.
    /// Returns false if nothing was in flight.
    pub fn deliver_one(&mut self) -> bool {
        if let Some((id, event)) = self.local.pop_front() {
            self.step(id, event);
        } else if let Some(env) = self.network.pop_front() {
            match env.msg {
                Message::InstallSnapshot(req) => self.deliver_snapshot(env.from, env.to, req),
                msg => self.step(
                    env.to,
                    Event::Message {
                        from: env.from,
                        msg,
                    },
                ),
            }
        } else {
            return false;
        }
        true
    }

    /// Delivers events one at a time, like [`Cluster::deliver_all`], until `done` holds (checked
    /// before each); returns whether it does. Leaves the rest in flight.
    pub fn deliver_until(&mut self, mut done: impl FnMut(&Cluster) -> bool) -> bool {
        for _ in 0..DELIVERY_STEPS_MAX {
            if done(self) {
                return true;
            }
            if !self.deliver_one() {
                return done(self);
            }
        }
        panic!("livelock: messages never stop");
    }

    /// Delivers only the storage acknowledgements waiting, not the network.
    pub fn deliver_local(&mut self) {
        while let Some((id, event)) = self.local.pop_front() {
            self.step(id, event);
        }
    }

    /// Moves the clock forward by `ms`, firing alarms in time order (ties by node id) and
    /// delivering everything after each.
    pub fn advance(&mut self, ms: u64) {
        self.deliver_all();
        self.run_clock(ms, true);
    }

    /// Moves the clock forward by `ms`, firing alarms in time order but delivering nothing: the
    /// caller delivers (in any order it likes).
    pub fn tick(&mut self, ms: u64) {
        self.run_clock(ms, false);
    }

    fn run_clock(&mut self, ms: u64, deliver: bool) {
        let target = self.now.after(ms);
        loop {
            let next = self
                .alarms
                .iter()
                .filter(|(id, _)| self.node(**id).is_some())
                .map(|(&id, &at)| (at, id))
                .min();
            match next {
                Some((at, id)) if at <= target => {
                    self.now = self.now.max(at);
                    self.alarms.remove(&id);
                    self.step(id, Event::Timeout);
                    if deliver {
                        self.deliver_all();
                    }
                }
                _ => break,
            }
        }
        self.now = target;
    }

    /// Advances time until some node leads, or `max_ms` pass; returns the leader.
    pub fn run_until_leader(&mut self, max_ms: u64) -> Option<NodeId> {
        let deadline = self.now.after(max_ms);
        while self.now < deadline {
            if let Some(leader) = self.leader() {
                return Some(leader);
            }
            self.advance(10);
        }
        self.leader()
    }

    /// Makes node `id` campaign now: fires its timeout at its election deadline (the clock moves
    /// there if it is later). Nothing is delivered: follow with `deliver_all` or `deliver_until`.
    pub fn campaign(&mut self, id: NodeId) {
        if let Some(&at) = self.alarms.get(&id) {
            self.now = self.now.max(at);
        }
        self.step(id, Event::Timeout);
    }

    /// Elects node `id` (which must be able to win) and delivers everything.
    pub fn elect(&mut self, id: NodeId) {
        self.deliver_all();
        self.campaign(id);
        self.deliver_all();
        let leads = self.node(id).is_some_and(|n| n.role() == Role::Leader);
        assert!(leads, "{id} failed to become leader");
    }

    /// Proposes `commands` as one batch on node `id`; returns their proposal ids. Nothing is
    /// delivered.
    pub fn propose(&mut self, id: NodeId, commands: Vec<Bytes>) -> Vec<ProposalId> {
        let batch: Vec<(ProposalId, Bytes)> = commands
            .into_iter()
            .map(|c| {
                self.next_proposal += 1;
                (ProposalId(self.next_proposal), c)
            })
            .collect();
        let ids = batch.iter().map(|(p, _)| *p).collect();
        self.step(id, Event::Append(batch));
        ids
    }

    /// Proposes a membership change on node `id`; returns its proposal id. Nothing is
    /// delivered.
    pub fn change(
        &mut self,
        id: NodeId,
        change: crate::membership::MembershipChange,
    ) -> ProposalId {
        self.next_proposal += 1;
        let proposal = ProposalId(self.next_proposal);
        self.step(
            id,
            Event::ChangeMembership {
                id: proposal,
                change,
            },
        );
        proposal
    }

    /// Asks node `id` for a linearizable read; returns its id. Nothing is delivered.
    pub fn read(&mut self, id: NodeId) -> ReadId {
        self.next_read += 1;
        let read = ReadId(self.next_read);
        self.step(id, Event::ReadIndex(read));
        read
    }

    /// Makes node `id` snapshot its state machine (durable at once) and report `SnapshotSaved`
    /// with `keep_from`; the WAL loses its entries below `keep_from` (clamped to the snapshot's
    /// index + 1), as a driver would trim it. Returns the snapshot's index, or `None` if the
    /// node is down or has applied nothing newer than its disk's snapshot.
    pub fn snapshot(&mut self, id: NodeId, keep_from: LogIndex) -> Option<LogIndex> {
        self.node(id)?;
        let state = self.state(id);
        let disk = self.disks.get_mut(&id)?;
        if state.index == LogIndex(0) || disk.snapshot.is_some_and(|s| s.index >= state.index) {
            return None;
        }
        disk.snapshot = Some(state);
        let membership = self
            .nodes
            .get(&id)
            .and_then(Option::as_ref)
            .and_then(|n| n.membership_at(state.index))
            .cloned();
        let disk = self.disks.get_mut(&id)?;
        disk.snapshot_membership = membership;
        let keep_from = keep_from.min(LogIndex(state.index.0 + 1));
        disk.entries.retain(|e| e.index >= keep_from);
        let event = Event::SnapshotSaved {
            index: state.index,
            term: state.term,
            keep_from,
        };
        self.step(id, event);
        Some(state.index)
    }

    // ----- Faults -----

    /// Cuts every link to and from `id`, and drops what is in flight on them.
    pub fn isolate(&mut self, id: NodeId) {
        for other in self.all.clone() {
            if other != id {
                self.cut_link(id, other);
                self.cut_link(other, id);
            }
        }
    }

    /// Cuts the link from `from` to `to` (one direction), dropping what is in flight on it.
    pub fn cut_link(&mut self, from: NodeId, to: NodeId) {
        self.cut.insert((from, to));
        self.drop_messages(|e| e.from == from && e.to == to);
    }

    /// Restores every link to and from `id`.
    pub fn heal_node_links(&mut self, id: NodeId) {
        self.cut.retain(|&(a, b)| a != id && b != id);
    }

    /// Restores every link.
    pub fn heal(&mut self) {
        self.cut.clear();
    }

    /// Takes every message in flight off the network (to inspect, reorder or drop them).
    pub fn take_messages(&mut self) -> Vec<Envelope> {
        self.network.drain(..).collect()
    }

    /// Puts a message on the network (at the back).
    pub fn inject(&mut self, envelope: Envelope) {
        self.network.push_back(envelope);
    }

    /// Messages in flight.
    pub fn in_flight(&self) -> impl Iterator<Item = &Envelope> {
        self.network.iter()
    }

    /// Holds node `id`'s disk: writes wait (not durable) until [`Cluster::flush`].
    pub fn hold_disk(&mut self, id: NodeId) {
        if let Some(disk) = self.disks.get_mut(&id) {
            disk.held = true;
        }
    }

    /// Makes every held write of node `id` durable, queues the acknowledgements and releases
    /// the disk (later writes are instant again).
    pub fn flush(&mut self, id: NodeId) {
        let Some(disk) = self.disks.get_mut(&id) else {
            return;
        };
        disk.held = false;
        let mut last_store = None;
        for write in std::mem::take(&mut disk.pending) {
            match disk.apply(write) {
                Some(ack @ Event::LogStored { .. }) => last_store = Some(ack),
                Some(ack) => self.local.push_back((id, ack)),
                None => {}
            }
        }
        // One acknowledgement covers every store, as a group commit would report it.
        if let Some(ack) = last_store {
            self.local.push_back((id, ack));
        }
    }

    /// Crashes node `id`: its memory, held writes, alarm and the messages to it are lost.
    pub fn crash(&mut self, id: NodeId) {
        self.nodes.insert(id, None);
        self.alarms.remove(&id);
        if let Some(disk) = self.disks.get_mut(&id) {
            disk.pending.clear();
            disk.held = false;
        }
        self.drop_messages(|e| e.to == id);
        self.local.retain(|(to, _)| *to != id);
    }

    /// Restarts a crashed node `id` from its disk (its state machine starts from the disk's
    /// snapshot, or empty).
    pub fn restart(&mut self, id: NodeId) {
        self.crash(id);
        self.boot(id);
    }
}

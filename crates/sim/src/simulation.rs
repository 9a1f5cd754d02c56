//! One simulated run: a cluster of real `raft::Node`s and `fs::Store`s, simulated disks, a
//! simulated network and clients, all driven by one event queue and one seeded generator.
//!
//! A run has two phases. In the fault phase, clients issue their commands while the nemesis
//! crashes nodes, partitions the network, stalls disks and pauses processes, and the network
//! loses, duplicates and delays messages. When every client has used its budget, the final
//! phase heals everything (partitions, stalls, pauses, crashed nodes, lossy links); within a
//! bounded simulated time a leader must appear, every client must get a definite answer to a
//! write, and every node must converge to the same applied index and store. The safety checks
//! ([`crate::invariants`]) run after every step, and the client history is checked for
//! linearizability at the end.

use std::panic::{AssertUnwindSafe, catch_unwind};

use bytes::{Bytes, BytesMut};
use fs::{Command, Decoded, Decoder, Name, ReplyDecoder, StampedCommand};
use raft::{
    Action, AppendEntriesResponse, AppendOutcome, Event, LogIndex, Message, NodeId, ProposalId,
    Role,
};

use crate::client::{Client, InFlight, REDIRECTS_MAX, ReplyKind};
use crate::clock::{DRIFT_PPM_MAX, NodeClock, SimTime};
use crate::disk::{Completion, Disk, DiskOp};
use crate::event_queue::EventQueue;
use crate::failure::{Check, Failure, REPORT_TRACE_LINES, Violation};
use crate::history::History;
use crate::invariants::Invariants;
use crate::linearizability::{self, CheckResult};
use crate::network::{Network, Partition};
use crate::random::SimRng;
use crate::replica::{Replica, Request};
use crate::scenario::{Nemesis, Profile, Sabotage, Scenario};
use crate::stats::{FaultKind, RunStats};
use crate::trace::{Actor, MsgSummary, Note, Trace, TraceMode};

/// Longest wait of a node before it takes up the client requests that arrived (its task loop
/// turning around), microseconds; requests arriving meanwhile share one `Append` batch.
const DRAIN_DELAY_US_MAX: u64 = 300;

/// Election timeouts a healed cluster gets to elect a leader: a few rounds of randomised
/// timeouts plus messages still held up in the network from the fault phase.
const LEADER_BOUND_ELECTIONS: u64 = 30;

/// Election timeouts a healed cluster gets to finish every client's command and converge:
/// a restarted node may need to catch up through small messages, and a client whose last
/// command timed out tries again.
const CONVERGE_BOUND_ELECTIONS: u64 = 150;

/// Chance (ppm) under [`Sabotage::ForgedAcks`] that an AppendEntries with entries is answered
/// by a forged success instead of reaching its follower.
const FORGED_ACK_PPM: u32 = 300_000;

/// Largest random origin of a node's monotonic clock, microseconds (processes start anywhere).
const CLOCK_ORIGIN_US_MAX: u64 = 1 << 40;

/// Largest wall-clock skew between nodes, ms: a new leader's clock may lag its predecessor's.
const WALL_SKEW_MS_MAX: u64 = 2_000;

/// How to run one seed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunOptions {
    /// The profile the scenario is drawn under.
    pub profile: Profile,
    /// The seed.
    pub seed: u64,
    /// Client commands in the fault phase.
    pub commands: usize,
    /// A deliberate defect (tests only).
    pub sabotage: Sabotage,
    /// What to do with trace lines.
    pub trace: TraceMode,
    /// Whether to run the white-box "committed prefix durable on a majority" check after every
    /// event. Always on, except in the test that shows the black-box checks (state-machine
    /// safety, leader completeness, linearizability) catch a broken cluster on their own.
    pub check_durability: bool,
}

impl RunOptions {
    /// A healthy run of `seed` under `profile` with `commands` commands, keeping only the tail
    /// of the trace.
    pub fn new(profile: Profile, seed: u64, commands: usize) -> RunOptions {
        RunOptions {
            profile,
            seed,
            commands,
            sabotage: Sabotage::None,
            trace: TraceMode::Tail,
            check_durability: true,
        }
    }
}

/// What a run produced.
#[derive(Debug, Clone)]
pub struct RunReport {
    /// Counts.
    pub stats: RunStats,
    /// The failure, if a check failed.
    pub failure: Option<Failure>,
    /// Every trace line ([`TraceMode::Collect`] only).
    pub trace: Vec<String>,
    /// The history's text, for comparing runs ([`TraceMode::Collect`] only).
    pub history: String,
    /// Simulated time at which the final phase began, if it did.
    pub final_phase_at: Option<SimTime>,
}

/// Runs one seed to the end and reports.
pub fn run(options: RunOptions) -> RunReport {
    let mut sim = Simulation::new(options);
    let outcome = catch_unwind(AssertUnwindSafe(|| sim.run_to_end()));
    let result = match outcome {
        Ok(result) => result,
        Err(panic) => Err(Violation::new(
            Check::CorePanic,
            format!("panic: {}", panic_message(panic.as_ref())),
        )),
    };
    sim.report(result)
}

/// The text of a panic payload.
fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else {
        "(non-text panic payload)".to_owned()
    }
}

/// Everything that can happen, scheduled on the queue.
#[derive(Debug)]
enum Ev {
    /// A peer message arrives at node `to`.
    Deliver {
        from: NodeId,
        to: usize,
        bytes: Bytes,
    },
    /// Node `node`'s disk may have completed operations.
    DiskDone { node: usize, incarnation: u64 },
    /// A lying disk's early acknowledgement.
    DiskAck {
        node: usize,
        incarnation: u64,
        completion: Completion,
    },
    /// Node `node`'s alarm.
    Alarm {
        node: usize,
        incarnation: u64,
        generation: u64,
    },
    /// Node `node` takes up the client requests that arrived.
    Drain { node: usize, incarnation: u64 },
    /// Node `node` gives up on parked requests whose time is up.
    ParkExpiry { node: usize, incarnation: u64 },
    /// A client's request arrives at a node (wire bytes).
    Request {
        node: usize,
        client: usize,
        attempt: u64,
        bytes: Bytes,
    },
    /// A node's reply arrives at a client (wire bytes).
    Reply {
        client: usize,
        attempt: u64,
        bytes: Bytes,
    },
    /// A client's patience for an attempt runs out.
    ClientTimeout { client: usize, attempt: u64 },
    /// A client starts its next command.
    ClientThink { client: usize },
    /// The nemesis strikes.
    Nemesis,
    /// A partition heals (if it is still the current one).
    PartitionEnd { epoch: u64 },
    /// A crashed node restarts (if still down since that crash).
    Restart { node: usize, incarnation: u64 },
    /// A leader must exist by now.
    LeaderDeadline,
    /// Everything must have converged by now.
    FinalDeadline,
}

impl Ev {
    /// The node the event happens on, if it is one the node's process handles (and so waits
    /// while the process is paused).
    fn paused_target(&self) -> Option<usize> {
        match self {
            Ev::Deliver { to, .. } => Some(*to),
            Ev::DiskDone { node, .. }
            | Ev::DiskAck { node, .. }
            | Ev::Alarm { node, .. }
            | Ev::Drain { node, .. }
            | Ev::ParkExpiry { node, .. }
            | Ev::Request { node, .. } => Some(*node),
            _ => None,
        }
    }
}

/// One node's place in the cluster: its disk and clock survive crashes, its process does not.
#[derive(Debug)]
struct Slot {
    id: NodeId,
    disk: Disk,
    clock: NodeClock,
    /// The running process; `None` while crashed.
    replica: Option<Replica>,
    /// Bumped at every crash: events of an earlier process are ignored.
    incarnation: u64,
    /// The process is frozen until then.
    paused_until: Option<SimTime>,
    /// Latest `DiskDone` scheduled (completions are non-decreasing, so one per instant does).
    disk_wakeup: Option<SimTime>,
}

/// The run's phase.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Clients work while faults strike.
    Faults,
    /// Everything healed; liveness expected.
    Final,
}

/// The whole simulated world of one run.
struct Simulation {
    scenario: Scenario,
    rng: SimRng,
    now: SimTime,
    queue: EventQueue<Ev>,
    slots: Vec<Slot>,
    network: Network,
    clients: Vec<Client>,
    names: Vec<Name>,
    history: History,
    /// Strictly increasing time for the history (one tick per history record).
    history_clock: u64,
    invariants: Invariants,
    trace: Trace,
    stats: RunStats,
    phase: Phase,
    partition_epoch: u64,
    final_phase_at: Option<SimTime>,
    collect: bool,
    check_durability: bool,
}

impl Simulation {
    fn new(options: RunOptions) -> Simulation {
        let mut rng = SimRng::new(options.profile.rng_seed(options.seed));
        let scenario = Scenario::generate(
            options.profile,
            options.seed,
            options.commands,
            options.sabotage,
            &mut rng,
        );
        let ids: Vec<NodeId> = (1..=scenario.nodes as u64).map(NodeId).collect();
        let network = Network::new(ids.clone(), scenario.links);
        let lying = scenario.sabotage == Sabotage::LyingDisk;
        let slots = ids
            .iter()
            .map(|&id| {
                let drift = rng.between(0, 2 * DRIFT_PPM_MAX) as i64 - DRIFT_PPM_MAX as i64;
                let clock = NodeClock::new(
                    drift,
                    rng.between(0, CLOCK_ORIGIN_US_MAX),
                    rng.between(0, WALL_SKEW_MS_MAX),
                );
                Slot {
                    id,
                    disk: Disk::new(lying),
                    clock,
                    replica: None,
                    incarnation: 0,
                    paused_until: None,
                    disk_wakeup: None,
                }
            })
            .collect();
        // Spread the budget: every client gets its share, the first ones the remainder.
        let per = scenario.commands / scenario.clients.max(1);
        let extra = scenario.commands % scenario.clients.max(1);
        let clients = (0..scenario.clients)
            .map(|c| Client::new(c, per + usize::from(c < extra)))
            .collect();
        let names = (0..scenario.files)
            .filter_map(|k| Name::new(Bytes::from(format!("f{k}"))).ok())
            .collect();
        Simulation {
            invariants: Invariants::new(scenario.nodes),
            trace: Trace::new(options.trace),
            collect: options.trace == TraceMode::Collect,
            check_durability: options.check_durability,
            scenario,
            rng,
            now: SimTime(0),
            queue: EventQueue::new(),
            slots,
            network,
            clients,
            names,
            history: History::new(),
            history_clock: 0,
            stats: RunStats {
                runs: 1,
                ..RunStats::default()
            },
            phase: Phase::Faults,
            partition_epoch: 0,
            final_phase_at: None,
        }
    }

    // ----- The run -----

    fn run_to_end(&mut self) -> Result<(), Violation> {
        for k in 0..self.slots.len() {
            self.start_node(k)?;
        }
        for c in 0..self.clients.len() {
            let think = self.rng.between(0, self.scenario.think_max_us);
            self.queue
                .push(self.now.plus_us(think), Ev::ClientThink { client: c });
        }
        if self.scenario.has_faults() {
            self.schedule_nemesis();
        }
        if self.clients.iter().all(|c| c.budget == 0) {
            self.begin_final_phase()?;
        }
        while let Some((at, ev)) = self.queue.pop() {
            self.now = at;
            self.stats.events += 1;
            self.handle(ev)?;
            if self.check_durability {
                self.invariants
                    .check_durable(self.slots.iter().map(|s| s.disk.chain()))?;
            }
            if self.phase == Phase::Final && self.converged() {
                let applied = self
                    .slots
                    .iter()
                    .find_map(|s| s.replica.as_ref().map(Replica::applied))
                    .unwrap_or_default();
                self.note(Actor::Sim, Note::Converged { applied });
                return self.check_history();
            }
        }
        Err(Violation::new(
            Check::Harness,
            "the event queue ran dry before the run ended",
        ))
    }

    fn handle(&mut self, ev: Ev) -> Result<(), Violation> {
        if let Some(k) = ev.paused_target()
            && let Some(until) = self.slots[k].paused_until
        {
            if until > self.now {
                // A frozen process handles nothing; everything waits for it to wake.
                self.queue.push(until, ev);
                return Ok(());
            }
            self.slots[k].paused_until = None;
        }
        match ev {
            Ev::Deliver { from, to, bytes } => self.deliver(from, to, &bytes),
            Ev::DiskDone { node, incarnation } => {
                if self.slots[node].incarnation != incarnation {
                    return Ok(());
                }
                if self.slots[node].disk_wakeup.is_some_and(|w| w <= self.now) {
                    self.slots[node].disk_wakeup = None;
                }
                let mut done = Vec::new();
                self.slots[node].disk.complete_due(self.now, &mut done);
                for completion in done {
                    self.report_durable(node, completion)?;
                }
                Ok(())
            }
            Ev::DiskAck {
                node,
                incarnation,
                completion,
            } => {
                if self.slots[node].incarnation != incarnation {
                    return Ok(());
                }
                self.report_durable(node, completion)
            }
            Ev::Alarm {
                node,
                incarnation,
                generation,
            } => {
                let current = self.slots[node].incarnation == incarnation
                    && self.slots[node]
                        .replica
                        .as_ref()
                        .is_some_and(|r| r.alarm_generation == generation);
                if !current {
                    return Ok(());
                }
                self.note(Actor::Node(self.slots[node].id), Note::Timeout);
                self.step(node, Event::Timeout)
            }
            Ev::Drain { node, incarnation } => {
                if self.slots[node].incarnation != incarnation {
                    return Ok(());
                }
                let Some(replica) = self.slots[node].replica.as_mut() else {
                    return Ok(());
                };
                replica.drain_scheduled = false;
                let requests = std::mem::take(&mut replica.inbox);
                self.handle_requests(node, requests)
            }
            Ev::ParkExpiry { node, incarnation } => {
                if self.slots[node].incarnation != incarnation {
                    return Ok(());
                }
                if let Some(replica) = self.slots[node].replica.as_mut() {
                    replica.expire_parked(self.now);
                }
                self.flush_replies(node);
                Ok(())
            }
            Ev::Request {
                node,
                client,
                attempt,
                bytes,
            } => self.receive_request(node, client, attempt, &bytes),
            Ev::Reply {
                client,
                attempt,
                bytes,
            } => self.client_reply(client, attempt, &bytes),
            Ev::ClientTimeout { client, attempt } => self.client_timeout(client, attempt),
            Ev::ClientThink { client } => self.client_think(client),
            Ev::Nemesis => self.nemesis(),
            Ev::PartitionEnd { epoch } => {
                if epoch == self.partition_epoch && self.network.is_partitioned() {
                    self.network.heal();
                    self.note(Actor::Nemesis, Note::PartitionHealed);
                }
                Ok(())
            }
            Ev::Restart { node, incarnation } => {
                if self.slots[node].incarnation == incarnation && self.slots[node].replica.is_none()
                {
                    self.start_node(node)?;
                }
                Ok(())
            }
            Ev::LeaderDeadline => {
                if self.current_leader().is_none() {
                    return Err(Violation::new(
                        Check::Liveness,
                        format!(
                            "no leader {LEADER_BOUND_ELECTIONS} election timeouts after every \
                             fault healed ({})",
                            self.cluster_summary()
                        ),
                    ));
                }
                Ok(())
            }
            Ev::FinalDeadline => Err(Violation::new(
                Check::Liveness,
                format!(
                    "not converged {CONVERGE_BOUND_ELECTIONS} election timeouts after every \
                     fault healed: {}",
                    self.convergence_gap()
                ),
            )),
        }
    }

    // ----- Nodes -----

    /// Starts (or restarts) node `k` from what its disk holds.
    fn start_node(&mut self, k: usize) -> Result<(), Violation> {
        let id = self.slots[k].id;
        let recovered = self.slots[k].disk.recovered();
        let hard_state = recovered.hard_state;
        let last = LogIndex(recovered.entries.len() as u64);
        let voters: Vec<NodeId> = self.slots.iter().map(|s| s.id).collect();
        let seed = self.rng.next_u64();
        let core = raft::Node::new(
            self.scenario.raft_config(id),
            voters,
            recovered,
            LogIndex(0),
            seed,
        )
        .map_err(|e| {
            Violation::new(
                Check::CoreContract,
                format!("{id} refuses to start from its own disk: {e}"),
            )
        })?;
        let origin = self.rng.between(0, CLOCK_ORIGIN_US_MAX);
        let slot = &mut self.slots[k];
        slot.clock = slot.clock.restarted(origin);
        slot.replica = Some(Replica::new(core));
        slot.paused_until = None;
        self.invariants.restart(k, self.slots[k].disk.chain());
        if self.now > SimTime(0) {
            self.note(
                Actor::Node(id),
                Note::Restart {
                    term: hard_state.term,
                    vote: hard_state.vote,
                    last,
                },
            );
        }
        self.step(k, Event::Timeout)
    }

    /// Feeds `event` to node `k` and carries out what it asks.
    fn step(&mut self, k: usize, event: Event) -> Result<(), Violation> {
        let now_ms = self.slots[k].clock.now(self.now);
        let Some(replica) = self.slots[k].replica.as_mut() else {
            return Ok(());
        };
        let actions = replica.core.step(now_ms, event);
        self.execute(k, actions)
    }

    /// Carries out a step's actions in order (crate `raft` documentation, "What a driver must
    /// do"), then runs the per-step checks.
    fn execute(&mut self, k: usize, actions: Vec<Action>) -> Result<(), Violation> {
        let id = self.slots[k].id;
        let mut leader_found = false;
        for action in actions {
            match action {
                Action::Send { to, msg } => self.transmit(k, to, msg)?,
                Action::LogTruncate { from } => {
                    let term = self.slots[k]
                        .replica
                        .as_ref()
                        .map_or(raft::Term(0), |r| r.core.term());
                    self.invariants.on_truncate(k, from, term)?;
                    self.submit_disk(k, DiskOp::Truncate(from));
                }
                Action::LogStore { entries } => {
                    self.invariants.on_store(k, &entries)?;
                    self.submit_disk(k, DiskOp::Store(entries));
                }
                Action::SaveState(hs) => self.submit_disk(k, DiskOp::SaveState(hs)),
                Action::Commit(entry) => {
                    let Some(replica) = self.slots[k].replica.as_mut() else {
                        continue;
                    };
                    let term = replica.core.term();
                    self.invariants.on_commit(k, &entry, term)?;
                    replica.apply(&entry)?;
                    self.note(
                        Actor::Node(id),
                        Note::Applied {
                            index: entry.index,
                            term: entry.term,
                        },
                    );
                }
                Action::Appended { id: p, index, term } => {
                    if let Some(r) = self.slots[k].replica.as_mut() {
                        r.appended(p, index, term);
                    }
                }
                Action::CommitError { id: p, error } => {
                    let raft::ProposeError::NotLeader { leader } = error;
                    if let Some(r) = self.slots[k].replica.as_mut() {
                        r.proposal_failed(p, leader);
                    }
                }
                Action::ReadReady { id: r, index } => {
                    if let Some(rep) = self.slots[k].replica.as_mut() {
                        rep.read_ready(r, index);
                    }
                }
                Action::ReadError { id: r, error } => {
                    let raft::ReadError::NotLeader { leader } = error;
                    if let Some(rep) = self.slots[k].replica.as_mut() {
                        rep.read_failed(r, leader);
                    }
                }
                Action::Alarm { at } => {
                    let when = self.slots[k].clock.when(at, self.now);
                    let incarnation = self.slots[k].incarnation;
                    if let Some(r) = self.slots[k].replica.as_mut() {
                        r.alarm_generation += 1;
                        let generation = r.alarm_generation;
                        self.queue.push(
                            when,
                            Ev::Alarm {
                                node: k,
                                incarnation,
                                generation,
                            },
                        );
                    }
                }
                Action::RoleChanged { role, term, leader } => {
                    self.note(Actor::Node(id), Note::Role { role, term, leader });
                    if let Some(r) = self.slots[k].replica.as_mut() {
                        r.leader_changed(leader);
                    }
                    leader_found |= leader.is_some();
                }
            }
        }
        let wall = self.slots[k].clock.wall_ms(self.now);
        let Some(replica) = self.slots[k].replica.as_mut() else {
            return Ok(());
        };
        replica.serve_reads(wall);
        let (role, term, commit) = (
            replica.core.role(),
            replica.core.term(),
            replica.core.commit_index(),
        );
        let parked = if leader_found && replica.has_parked() {
            replica.take_parked()
        } else {
            Vec::new()
        };
        self.invariants.after_step(k, role, term, commit)?;
        self.flush_replies(k);
        if !parked.is_empty() {
            self.handle_requests(k, parked)?;
        }
        Ok(())
    }

    /// Queues a storage operation of node `k` on its disk.
    fn submit_disk(&mut self, k: usize, op: DiskOp) {
        let (lo, hi) = self.scenario.disk_latency_us;
        let latency = self.rng.between(lo, hi);
        let slot = &mut self.slots[k];
        let (done_at, early) = slot.disk.submit(op, self.now, latency);
        let incarnation = slot.incarnation;
        if slot.disk_wakeup.is_none_or(|w| w < done_at) {
            slot.disk_wakeup = Some(done_at);
            self.queue.push(
                done_at,
                Ev::DiskDone {
                    node: k,
                    incarnation,
                },
            );
        }
        if let Some(completion) = early {
            self.queue.push(
                self.now,
                Ev::DiskAck {
                    node: k,
                    incarnation,
                    completion,
                },
            );
        }
    }

    /// Reports a durable operation to node `k`'s core.
    fn report_durable(&mut self, k: usize, completion: Completion) -> Result<(), Violation> {
        let id = self.slots[k].id;
        match completion {
            Completion::StateSaved(hs) => {
                self.note(
                    Actor::Node(id),
                    Note::Saved {
                        term: hs.term,
                        vote: hs.vote,
                        commit: hs.commit,
                    },
                );
                self.step(k, Event::StateSaved(hs))
            }
            Completion::LogStored { index, term } => {
                self.note(Actor::Node(id), Note::Stored { index, term });
                self.step(k, Event::LogStored { index, term })
            }
        }
    }

    // ----- Network -----

    /// Puts a message from node `k` on the wire (encoded, as the real transport does).
    fn transmit(&mut self, k: usize, to: NodeId, msg: Message) -> Result<(), Violation> {
        let from = self.slots[k].id;
        self.stats.messages += 1;
        if let Message::VoteResponse(resp) = &msg
            && resp.granted
            && !resp.prevote
        {
            self.invariants.on_vote(from, resp.term, to)?;
        }
        let Some(to_k) = self.index_of(to) else {
            return Err(Violation::new(
                Check::CoreContract,
                format!("{from} sends to {to}, which is not a member"),
            ));
        };
        if self.scenario.sabotage == Sabotage::ForgedAcks
            && let Message::AppendEntriesRequest(req) = &msg
            && let Some(last) = req.entries.last()
            && self.rng.chance(FORGED_ACK_PPM)
        {
            // The follower never sees the entries, but the leader hears that it stored them.
            let forged = Message::AppendEntriesResponse(AppendEntriesResponse {
                term: req.term,
                outcome: AppendOutcome::Success {
                    match_index: last.index,
                },
            });
            let delay = self.rng.between(
                self.scenario.links.delay_min_us,
                self.scenario.links.delay_max_us,
            );
            self.queue.push(
                self.now.plus_us(delay),
                Ev::Deliver {
                    from: to,
                    to: k,
                    bytes: Bytes::from(forged.encode()),
                },
            );
            return Ok(());
        }
        let bytes = Bytes::from(msg.encode());
        let fate = self.network.fate(&mut self.rng);
        match fate.first {
            None => self.stats.faults.add(FaultKind::MessageDropped, 1),
            Some(delay) => {
                if fate.long {
                    self.stats.faults.add(FaultKind::MessageDelayed, 1);
                }
                self.queue.push(
                    self.now.plus_us(delay),
                    Ev::Deliver {
                        from,
                        to: to_k,
                        bytes: bytes.clone(),
                    },
                );
            }
        }
        if let Some(delay) = fate.duplicate {
            self.stats.faults.add(FaultKind::MessageDuplicated, 1);
            self.queue.push(
                self.now.plus_us(delay),
                Ev::Deliver {
                    from,
                    to: to_k,
                    bytes,
                },
            );
        }
        Ok(())
    }

    /// A message arrives at node `to`.
    fn deliver(&mut self, from: NodeId, to: usize, bytes: &[u8]) -> Result<(), Violation> {
        let to_id = self.slots[to].id;
        if self.network.is_blocked(from, to_id) {
            self.stats.faults.add(FaultKind::MessageCut, 1);
            self.note(Actor::Node(to_id), Note::Cut { from, to: to_id });
            return Ok(());
        }
        if self.slots[to].replica.is_none() {
            self.note(Actor::Node(to_id), Note::ToDeadNode { from });
            return Ok(());
        }
        let msg = Message::decode(bytes).map_err(|e| {
            Violation::new(
                Check::CoreContract,
                format!("a message from {from} to {to_id} does not decode: {e}"),
            )
        })?;
        self.note(
            Actor::Node(to_id),
            Note::Recv {
                from,
                msg: MsgSummary::of(&msg),
            },
        );
        self.step(to, Event::Message { from, msg })
    }

    fn index_of(&self, id: NodeId) -> Option<usize> {
        let k = (id.0 as usize).checked_sub(1)?;
        (k < self.slots.len()).then_some(k)
    }

    // ----- Client requests at the nodes -----

    /// A client's request reaches node `k` (parsed from its wire form, as the server does).
    fn receive_request(
        &mut self,
        k: usize,
        client: usize,
        attempt: u64,
        bytes: &[u8],
    ) -> Result<(), Violation> {
        let Some(replica) = self.slots[k].replica.as_mut() else {
            // Connection refused: the client will time out.
            return Ok(());
        };
        let mut buf = BytesMut::from(bytes);
        let command = match Decoder::default().decode(&mut buf) {
            Some(Decoded::Command(command)) => command,
            other => {
                return Err(Violation::new(
                    Check::Harness,
                    format!("a client request does not parse: {other:?}"),
                ));
            }
        };
        replica.inbox.push(Request {
            client,
            attempt,
            command,
        });
        if !replica.drain_scheduled {
            replica.drain_scheduled = true;
            let delay = self.rng.between(0, DRAIN_DELAY_US_MAX);
            let incarnation = self.slots[k].incarnation;
            self.queue.push(
                self.now.plus_us(delay),
                Ev::Drain {
                    node: k,
                    incarnation,
                },
            );
        }
        Ok(())
    }

    /// Takes up requests in order, proposing the mutations in one batch (reads first flush the
    /// mutations before them, so a read sees them).
    fn handle_requests(&mut self, k: usize, requests: Vec<Request>) -> Result<(), Violation> {
        let mut batch = Vec::new();
        for request in requests {
            self.handle_request(k, request, &mut batch)?;
        }
        self.propose(k, &mut batch)
    }

    fn handle_request(
        &mut self,
        k: usize,
        request: Request,
        batch: &mut Vec<(ProposalId, Bytes)>,
    ) -> Result<(), Violation> {
        let wall = self.slots[k].clock.wall_ms(self.now);
        let park_until = self.now.plus_ms(2 * self.scenario.raft.election_timeout_ms);
        let incarnation = self.slots[k].incarnation;
        let Some(replica) = self.slots[k].replica.as_mut() else {
            return Ok(());
        };
        if replica.core.leader().is_none() {
            // SPEC: a server that knows no leader waits up to about two election timeouts.
            replica.park(request, park_until);
            self.queue.push(
                park_until,
                Ev::ParkExpiry {
                    node: k,
                    incarnation,
                },
            );
            return Ok(());
        }
        match &request.command {
            Command::Read { name } => {
                let name = name.clone();
                self.propose(k, batch)?;
                let Some(replica) = self.slots[k].replica.as_mut() else {
                    return Ok(());
                };
                let barrier = replica.core.last_index();
                let id = replica.read(&request, name, barrier);
                self.step(k, Event::ReadIndex(id))
            }
            command => {
                let stamped = StampedCommand::new(wall, command.clone()).encode();
                let id = replica.propose(&request);
                batch.push((id, stamped));
                Ok(())
            }
        }
    }

    fn propose(&mut self, k: usize, batch: &mut Vec<(ProposalId, Bytes)>) -> Result<(), Violation> {
        if batch.is_empty() {
            return Ok(());
        }
        self.step(k, Event::Append(std::mem::take(batch)))
    }

    /// Sends node `k`'s pending replies to their clients (encoded, as on the wire).
    fn flush_replies(&mut self, k: usize) {
        let Some(replica) = self.slots[k].replica.as_mut() else {
            return;
        };
        let outbox = std::mem::take(&mut replica.outbox);
        for out in outbox {
            let (lo, hi) = self.scenario.client_delay_us;
            let delay = self.rng.between(lo, hi);
            self.queue.push(
                self.now.plus_us(delay),
                Ev::Reply {
                    client: out.client,
                    attempt: out.attempt,
                    bytes: out.reply.to_bytes(),
                },
            );
        }
    }

    // ----- Clients -----

    fn client_think(&mut self, c: usize) -> Result<(), Violation> {
        let client = &mut self.clients[c];
        if client.current.is_some() {
            return Ok(());
        }
        let write_only = match self.phase {
            Phase::Faults if client.budget > 0 => {
                client.budget -= 1;
                false
            }
            Phase::Faults => {
                if self.clients.iter().all(|c| c.budget == 0) {
                    self.begin_final_phase()?;
                }
                return Ok(());
            }
            Phase::Final if client.final_done => return Ok(()),
            Phase::Final => true,
        };
        let command = self.clients[c].next_command(&mut self.rng, &self.names, write_only);
        self.history_clock += 1;
        let op = self
            .history
            .invoke(c as u64, self.history_clock, command.clone());
        self.stats.commands += 1;
        let target = self.clients[c].pick_target(&mut self.rng, self.slots.len());
        self.clients[c].current = Some(InFlight {
            op,
            command,
            attempt: 0,
            target,
            redirects: 0,
        });
        self.client_send(c, target);
        Ok(())
    }

    /// Sends client `c`'s current command (a new attempt) to `target`.
    fn client_send(&mut self, c: usize, target: NodeId) {
        let client = &mut self.clients[c];
        let Some(current) = client.current.as_mut() else {
            return;
        };
        client.attempts += 1;
        current.attempt = client.attempts;
        current.target = target;
        let attempt = current.attempt;
        let bytes = current.command.to_bytes();
        let note = Note::Send {
            op: current.op.index(),
            to: target,
            attempt,
            command: current.command.clone(),
        };
        self.note(Actor::Client(c), note);
        let Some(node) = self.index_of(target) else {
            return;
        };
        let (lo, hi) = self.scenario.client_delay_us;
        let delay = self.rng.between(lo, hi);
        self.queue.push(
            self.now.plus_us(delay),
            Ev::Request {
                node,
                client: c,
                attempt,
                bytes,
            },
        );
        self.queue.push(
            self.now.plus_ms(self.scenario.client_timeout_ms),
            Ev::ClientTimeout { client: c, attempt },
        );
    }

    fn client_reply(&mut self, c: usize, attempt: u64, bytes: &[u8]) -> Result<(), Violation> {
        let Some(op) = self.clients[c]
            .current
            .as_ref()
            .filter(|cur| cur.attempt == attempt)
            .map(|cur| cur.op)
        else {
            self.note(Actor::Client(c), Note::StaleReply { attempt });
            return Ok(());
        };
        let mut buf = BytesMut::from(bytes);
        let reply = match ReplyDecoder::default().decode(&mut buf) {
            Ok(Some(reply)) => reply,
            other => {
                return Err(Violation::new(
                    Check::Harness,
                    format!("a reply does not parse: {other:?}"),
                ));
            }
        };
        self.note(
            Actor::Client(c),
            Note::Reply {
                op: op.index(),
                reply: reply.clone(),
            },
        );
        match self.clients[c].on_reply(&reply) {
            ReplyKind::Definite | ReplyKind::Internal => {
                let definite = reply != fs::Reply::Internal;
                let was_write = self.clients[c]
                    .current
                    .as_ref()
                    .is_some_and(|cur| matches!(cur.command, Command::Write { .. }));
                self.history_clock += 1;
                self.history
                    .complete(op, self.history_clock, reply)
                    .map_err(|e| Violation::new(Check::Harness, e.to_string()))?;
                if definite {
                    self.stats.definite += 1;
                    if self.phase == Phase::Final && was_write {
                        self.clients[c].final_done = true;
                    }
                } else {
                    self.stats.unknown += 1;
                }
                self.client_finish(c);
                Ok(())
            }
            ReplyKind::Redirect(leader) => {
                self.stats.redirects += 1;
                let redirects = self.clients[c].current.as_mut().map_or(0, |cur| {
                    cur.redirects += 1;
                    cur.redirects
                });
                if redirects > REDIRECTS_MAX {
                    return self.client_give_up(c, "too many redirects");
                }
                self.client_send(c, leader);
                Ok(())
            }
            ReplyKind::Refused => Err(Violation::new(
                Check::Harness,
                format!(
                    "client c{c} got a reply that refuses a well-formed command: {}",
                    crate::trace::ShowReply(&reply)
                ),
            )),
        }
    }

    fn client_timeout(&mut self, c: usize, attempt: u64) -> Result<(), Violation> {
        if self.clients[c]
            .current
            .as_ref()
            .is_some_and(|cur| cur.attempt == attempt)
        {
            self.clients[c].leader_hint = None;
            return self.client_give_up(c, "timed out");
        }
        Ok(())
    }

    fn client_give_up(&mut self, c: usize, why: &'static str) -> Result<(), Violation> {
        let Some(current) = self.clients[c].current.as_ref() else {
            return Ok(());
        };
        let op = current.op;
        self.history
            .give_up(op)
            .map_err(|e| Violation::new(Check::Harness, e.to_string()))?;
        self.stats.unknown += 1;
        self.note(
            Actor::Client(c),
            Note::GiveUp {
                op: op.index(),
                why,
            },
        );
        self.client_finish(c);
        Ok(())
    }

    fn client_finish(&mut self, c: usize) {
        self.clients[c].current = None;
        let think = self.rng.between(0, self.scenario.think_max_us);
        self.queue
            .push(self.now.plus_us(think), Ev::ClientThink { client: c });
    }

    // ----- Faults -----

    fn schedule_nemesis(&mut self) {
        let (lo, hi) = self.scenario.fault_interval_ms;
        let wait = self.rng.between(lo.max(1), hi.max(1));
        self.queue.push(self.now.plus_ms(wait), Ev::Nemesis);
    }

    fn nemesis(&mut self) -> Result<(), Violation> {
        if self.phase != Phase::Faults {
            return Ok(());
        }
        self.schedule_nemesis();
        let Some(pick) = self.rng.weighted(&self.scenario.fault_weights) else {
            return Ok(());
        };
        let (lo, hi) = self.scenario.fault_duration_ms;
        let duration = self.rng.between(lo, hi);
        match Nemesis::ALL[pick] {
            Nemesis::Crash => self.crash_some_node(),
            Nemesis::Split => {
                let mut ids = self.ids();
                self.rng.shuffle(&mut ids);
                let cut = 1 + self.rng.below(ids.len() / 2);
                let b = ids.split_off(cut);
                self.partition(Partition::Split { a: ids, b }, FaultKind::Split, duration);
                Ok(())
            }
            Nemesis::OneWay => {
                let mut ids = self.ids();
                self.rng.shuffle(&mut ids);
                let cut = 1 + self.rng.below(ids.len() - 1);
                let loud = ids.split_off(cut);
                self.partition(
                    Partition::OneWay { deaf: ids, loud },
                    FaultKind::OneWay,
                    duration,
                );
                Ok(())
            }
            Nemesis::IsolateLeader => {
                let target = match self.current_leader() {
                    Some(leader) => leader,
                    None => NodeId(self.rng.below(self.slots.len()) as u64 + 1),
                };
                self.partition(
                    Partition::Isolated(target),
                    FaultKind::IsolateLeader,
                    duration,
                );
                Ok(())
            }
            Nemesis::Bridge => {
                let mut ids = self.ids();
                self.rng.shuffle(&mut ids);
                let bridge = ids.remove(0);
                let half = ids.len() / 2;
                let right = ids.split_off(half);
                self.partition(
                    Partition::Bridge {
                        bridge,
                        left: ids,
                        right,
                    },
                    FaultKind::Bridge,
                    duration,
                );
                Ok(())
            }
            Nemesis::DiskStall => {
                let k = self.rng.below(self.slots.len());
                let until = self.now.plus_ms(duration);
                self.slots[k].disk.stall(until);
                let incarnation = self.slots[k].incarnation;
                self.queue.push(
                    until,
                    Ev::DiskDone {
                        node: k,
                        incarnation,
                    },
                );
                self.stats.faults.add(FaultKind::DiskStall, 1);
                self.note(Actor::Node(self.slots[k].id), Note::Stall { until });
                Ok(())
            }
            Nemesis::Pause => {
                let k = self.rng.below(self.slots.len());
                if self.slots[k].replica.is_none() {
                    return Ok(());
                }
                let until = self.now.plus_ms(duration);
                self.slots[k].paused_until = Some(until);
                self.stats.faults.add(FaultKind::Pause, 1);
                self.note(Actor::Node(self.slots[k].id), Note::Pause { until });
                Ok(())
            }
        }
    }

    fn partition(&mut self, partition: Partition, kind: FaultKind, duration_ms: u64) {
        self.network.partition(&partition);
        self.partition_epoch += 1;
        self.stats.faults.add(kind, 1);
        self.note(Actor::Nemesis, Note::Partition(partition.to_string()));
        self.queue.push(
            self.now.plus_ms(duration_ms),
            Ev::PartitionEnd {
                epoch: self.partition_epoch,
            },
        );
    }

    /// Crashes a running node: the leader a third of the time, else any; a crash that would
    /// leave less than a majority running happens only rarely.
    fn crash_some_node(&mut self) -> Result<(), Violation> {
        let up: Vec<usize> = (0..self.slots.len())
            .filter(|&k| self.slots[k].replica.is_some())
            .collect();
        let majority = self.slots.len() / 2 + 1;
        if up.len() <= majority && !self.rng.chance(self.scenario.majority_crash_ppm) {
            return Ok(());
        }
        let leader = self.current_leader().and_then(|l| self.index_of(l));
        let k = match leader {
            Some(k) if self.rng.chance(333_333) => k,
            _ => match self.rng.pick(&up) {
                Some(&k) => k,
                None => return Ok(()),
            },
        };
        self.crash(k);
        Ok(())
    }

    /// Crashes node `k`: its process is gone, its disk keeps what was durable plus a random
    /// prefix of what was in flight.
    fn crash(&mut self, k: usize) {
        let in_flight = self.slots[k].disk.records_in_flight();
        // A third of crashes lose everything in flight, a third keep it all, a third cut it.
        let survive = match self.rng.below(3) {
            0 => 0,
            1 => in_flight,
            _ => self.rng.below(in_flight + 1),
        };
        let slot = &mut self.slots[k];
        let loss = slot.disk.crash(survive);
        slot.replica = None;
        slot.incarnation += 1;
        slot.paused_until = None;
        slot.disk_wakeup = None;
        let incarnation = slot.incarnation;
        self.stats.faults.add(FaultKind::Crash, 1);
        self.stats
            .faults
            .add(FaultKind::UnackedRecordSurvived, loss.survived as u64);
        self.stats
            .faults
            .add(FaultKind::UnackedRecordLost, loss.lost as u64);
        self.note(
            Actor::Node(self.slots[k].id),
            Note::Crash {
                survived: loss.survived,
                lost: loss.lost,
            },
        );
        let (lo, hi) = self.scenario.downtime_ms;
        let downtime = self.rng.between(lo, hi);
        self.queue.push(
            self.now.plus_ms(downtime),
            Ev::Restart {
                node: k,
                incarnation,
            },
        );
    }

    /// Ends the fault phase: heals everything and starts the liveness clock.
    fn begin_final_phase(&mut self) -> Result<(), Violation> {
        if self.phase == Phase::Final {
            return Ok(());
        }
        self.phase = Phase::Final;
        self.final_phase_at = Some(self.now);
        self.note(Actor::Sim, Note::FinalPhase);
        self.network.heal();
        self.network.make_reliable();
        for k in 0..self.slots.len() {
            self.slots[k].paused_until = None;
            self.slots[k].disk.end_stall(self.now);
            let incarnation = self.slots[k].incarnation;
            self.queue.push(
                self.now,
                Ev::DiskDone {
                    node: k,
                    incarnation,
                },
            );
            if self.slots[k].replica.is_none() {
                self.start_node(k)?;
            }
        }
        for c in 0..self.clients.len() {
            if self.clients[c].current.is_none() {
                self.queue.push(self.now, Ev::ClientThink { client: c });
            }
        }
        let election = self.scenario.raft.election_timeout_ms;
        self.queue.push(
            self.now.plus_ms(LEADER_BOUND_ELECTIONS * election),
            Ev::LeaderDeadline,
        );
        self.queue.push(
            self.now.plus_ms(CONVERGE_BOUND_ELECTIONS * election),
            Ev::FinalDeadline,
        );
        Ok(())
    }

    // ----- Observations -----

    fn ids(&self) -> Vec<NodeId> {
        self.slots.iter().map(|s| s.id).collect()
    }

    /// The running node that leads the highest term, if any.
    fn current_leader(&self) -> Option<NodeId> {
        self.slots
            .iter()
            .filter_map(|s| s.replica.as_ref())
            .filter(|r| r.core.role() == Role::Leader)
            .max_by_key(|r| r.core.term())
            .map(|r| r.core.id())
    }

    /// Whether every client is done and every node runs, has applied everything the leader
    /// holds, and holds the same store.
    fn converged(&self) -> bool {
        if self
            .clients
            .iter()
            .any(|c| !c.final_done || c.current.is_some())
        {
            return false;
        }
        let Some(leader) = self.current_leader().and_then(|l| self.index_of(l)) else {
            return false;
        };
        let Some(lead) = self.slots[leader].replica.as_ref() else {
            return false;
        };
        let target = lead.core.last_index();
        if lead.core.commit_index() != target {
            return false;
        }
        let mut stores = Vec::with_capacity(self.slots.len());
        for slot in &self.slots {
            match &slot.replica {
                Some(r) if r.applied() == target && slot.paused_until.is_none() => {
                    stores.push(r.store())
                }
                _ => return false,
            }
        }
        stores.windows(2).all(|w| w[0] == w[1])
    }

    /// Why the cluster has not converged, for a liveness failure.
    fn convergence_gap(&self) -> String {
        let waiting: Vec<String> = self
            .clients
            .iter()
            .filter(|c| !c.final_done || c.current.is_some())
            .map(|c| format!("c{}", c.id))
            .collect();
        let mut stores_differ = false;
        let first = self.slots.iter().find_map(|s| s.replica.as_ref());
        for slot in &self.slots {
            if let (Some(a), Some(b)) = (first, slot.replica.as_ref())
                && a.applied() == b.applied()
                && a.store() != b.store()
            {
                stores_differ = true;
            }
        }
        format!(
            "clients still waiting: [{}]; {}{}",
            waiting.join(" "),
            self.cluster_summary(),
            if stores_differ {
                "; stores differ at an equal applied index"
            } else {
                ""
            }
        )
    }

    /// One phrase per node: role, term, commit, applied.
    fn cluster_summary(&self) -> String {
        self.slots
            .iter()
            .map(|s| match &s.replica {
                Some(r) => format!(
                    "{} {} {} commit {} applied {} last {} in-flight {}",
                    s.id,
                    r.core.role(),
                    r.core.term(),
                    r.core.commit_index(),
                    r.applied(),
                    r.core.last_index(),
                    r.in_flight()
                ),
                None => format!("{} down", s.id),
            })
            .collect::<Vec<_>>()
            .join(", ")
    }

    fn note(&mut self, actor: Actor, note: Note) {
        self.trace.push(self.now, actor, note);
    }

    /// The end-of-run linearizability check.
    fn check_history(&mut self) -> Result<(), Violation> {
        match linearizability::check(&self.history) {
            Ok(CheckResult::Linearizable(stats)) => {
                self.stats.checker_states += stats.states as u64;
                Ok(())
            }
            Ok(CheckResult::Inconclusive { stats, .. }) => {
                self.stats.checker_states += stats.states as u64;
                self.stats.checker_inconclusive += 1;
                Ok(())
            }
            Err(violation) => Err(Violation::new(
                Check::Linearizability,
                format!("\n{violation}"),
            )),
        }
    }

    fn report(mut self, result: Result<(), Violation>) -> RunReport {
        self.stats.committed = self.invariants.committed_len();
        self.stats.leaders = self.invariants.leaders_seen() as u64;
        self.stats.sim_us = self.now.0;
        let failure = result.err().map(|violation| Failure {
            profile: self.scenario.profile,
            seed: self.scenario.seed,
            violation,
            scenario: self.scenario.to_string(),
            at: self.now.to_string(),
            trace_tail: self.trace.tail(REPORT_TRACE_LINES),
        });
        let history = if self.collect {
            self.history.to_string()
        } else {
            String::new()
        };
        RunReport {
            stats: self.stats,
            failure,
            trace: self.trace.take_all(),
            history,
            final_phase_at: self.final_phase_at,
        }
    }
}

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

mod clients;
mod driver;
mod nemesis;
mod requests;
mod verdict;

use std::panic::{AssertUnwindSafe, catch_unwind};

use bytes::Bytes;
use fs::Name;
use raft::{LogIndex, NodeId, Role};

use crate::client::Client;
use crate::clock::{DRIFT_PPM_MAX, NodeClock, SimTime, WALL_SKEW_MS_MAX};
use crate::connection::Connection;
use crate::disk::{Completion, CrashOrder, Disk};
use crate::event_queue::EventQueue;
use crate::failure::{Check, Failure, REPORT_TRACE_LINES, Violation};
use crate::history::History;
use crate::invariants::Invariants;
use crate::network::Network;
use crate::process::Process;
use crate::random::SimRng;
use crate::scenario::{Profile, Sabotage, Scenario};
use crate::stats::RunStats;
use crate::trace::{Actor, Note, Trace, TraceMode};

/// Longest wait of a node before it takes up the client requests that arrived (its task loop
/// turning around), microseconds; requests arriving meanwhile share one `Append` batch.
const DRAIN_DELAY_US_MAX: u64 = 300;

/// Election timeouts a healed cluster gets to elect a leader: a few rounds of randomised
/// timeouts, plus messages from the fault phase still held up (up to three election timeouts)
/// and a stalled disk or paused process finishing its backlog.
const LEADER_BOUND_ELECTIONS: u64 = 20;

/// Election timeouts a healed cluster gets to finish every client's command and converge. A
/// command whose request was lost waits out its client's timeout (five election timeouts), and
/// a final write may time out once more; restarted nodes catch up meanwhile. Over 4,000 seeds
/// the slowest took 12 (`sim --seeds N` prints the slowest), so 60 leaves a wide margin while
/// still catching a cluster that limps.
const CONVERGE_BOUND_ELECTIONS: u64 = 60;

/// Events a run may process per client command before it fails with [`Check::Budget`], on top
/// of [`EVENTS_BASE`]. Over 14,000 healthy seeds of every profile with 500 commands the busiest
/// run took 230,751 events (about 460 per command; 280 per command at 2,000 commands), so the
/// budget of 1.1 million leaves a margin of almost five, while a run stuck in a loop of events
/// microseconds apart stops in seconds instead of growing without bound.
pub const EVENTS_PER_COMMAND_MAX: u64 = 2_000;

/// Events every run may process whatever its command count: elections and the final phase
/// (at 50 commands the busiest of 300 runs took 5,585).
pub const EVENTS_BASE: u64 = 100_000;

/// Chance (ppm) under [`Sabotage::ForgedAcks`] that an AppendEntries with entries is answered
/// by a forged success instead of reaching its follower.
const FORGED_ACK_PPM: u32 = 300_000;

/// Largest random origin of a node's monotonic clock, microseconds (processes start anywhere).
const CLOCK_ORIGIN_US_MAX: u64 = 1 << 40;

/// Units of history time per millisecond: history times are simulated nanoseconds.
pub const HISTORY_UNITS_PER_MS: u64 = 1_000_000;

/// Nanoseconds in a microsecond of simulated time.
const NS_PER_US: u64 = 1_000;

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
    /// Whether the white-box checks run: "the committed prefix is durable on a majority of
    /// disks" after every event, and "no node truncates a committed entry on behalf of a leader
    /// of its commit term or later" at every truncation (both look inside a node). Always on,
    /// except in black-box mode (`--black-box`), which checks only what clients see (their
    /// histories for linearizability and for the session guarantee of pipelined reads, and
    /// convergence once faults heal) and Raft's published safety properties (see
    /// [`crate::invariants`]), to show those catch a broken cluster on their own.
    pub check_durability: bool,
    /// What a crash may keep of a disk's writes in flight: a prefix (the simplest model, the
    /// default) or what the production WAL writer's batch order allows.
    pub crash_order: CrashOrder,
    /// Events the run may process before it fails with [`Check::Budget`]; [`RunOptions::new`]
    /// sets [`EVENTS_BASE`] plus [`EVENTS_PER_COMMAND_MAX`] per command.
    pub events_max: u64,
    /// Whether the pipelining clients the scenario draws pipeline (on by default). Off, every
    /// client waits for each answer, and a run is the one the generator gave before pipelining
    /// clients existed: regression seeds found then replay as they did.
    pub pipelining: bool,
    /// Whether the writes and cas the scenario draws with an EXPTIME carry it (on by default).
    /// Off, every command has exptime 0, and a run is the one the generator gave before clients
    /// sent any: regression seeds found then replay as they did.
    pub expiry: bool,
    /// Whether the membership changes, leadership transfers, lease reads and follower reads
    /// the scenario draws happen (on by default). Off, a run is the one the generator gave
    /// before they existed: regression seeds found then replay as they did.
    pub membership: bool,
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
            crash_order: CrashOrder::Prefix,
            pipelining: true,
            expiry: true,
            membership: true,
            events_max: EVENTS_BASE
                .saturating_add(EVENTS_PER_COMMAND_MAX.saturating_mul(commands as u64)),
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
    /// How long the healed cluster took to converge, in election timeouts (the liveness bound
    /// is `CONVERGE_BOUND_ELECTIONS`); `None` if the run did not converge.
    pub heal_elections: Option<f64>,
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
    /// A client's request arrives at a node (wire bytes).
    Request {
        node: usize,
        client: usize,
        attempt: u64,
        conn: Option<usize>,
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
    /// The nemesis strikes node `node` if it still leads `term` (see `Profile::Figure8`).
    LeaderStrike {
        node: usize,
        term: raft::Term,
        spare: Option<NodeId>,
    },
    /// A node gets a timeout it did not ask for.
    SpuriousTimeout,
    /// Every running node crashes at once.
    PowerLoss,
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
    process: Option<Process>,
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
    /// Every connection a pipelining client opened, by number.
    connections: Vec<Connection>,
    names: Vec<Name>,
    history: History,
    /// The last history record's time (see `history_time`).
    history_clock: u64,
    /// The highest index any node has applied (each committed entry is counted once).
    applied_first: LogIndex,
    invariants: Invariants,
    trace: Trace,
    stats: RunStats,
    phase: Phase,
    partition_epoch: u64,
    /// Whether a leader strike is scheduled (one at a time).
    strike_pending: bool,
    final_phase_at: Option<SimTime>,
    collect: bool,
    check_durability: bool,
    events_max: u64,
}

impl Simulation {
    fn new(options: RunOptions) -> Simulation {
        let mut scenario_rng = SimRng::new(options.profile.scenario_seed(options.seed));
        let scenario = Scenario::generate(
            options.profile,
            options.seed,
            options.commands,
            options.sabotage,
            &mut scenario_rng,
        );
        let mut scenario = scenario;
        if !options.pipelining {
            scenario.pipelining_clients = 0;
            scenario.pipeline_depth = 1;
        }
        if !options.expiry {
            scenario.expiring_ppm = 0;
        }
        if !options.membership {
            scenario.without_membership();
        }
        let lease = scenario.raft.lease_reads;
        let mut rng = SimRng::new(options.profile.rng_seed(options.seed));
        let ids: Vec<NodeId> = (1..=scenario.nodes as u64).map(NodeId).collect();
        let network = Network::new(ids.clone(), scenario.links);
        let lying = scenario.sabotage == Sabotage::LyingDisk;
        let slots = ids
            .iter()
            .map(|&id| {
                let drift = rng.between(0, 2 * DRIFT_PPM_MAX) as i64 - DRIFT_PPM_MAX as i64;
                let origin = rng.between(0, CLOCK_ORIGIN_US_MAX);
                // Ahead of or behind true time; one draw, as when skews were never negative,
                // so that runs without expiry stay the same (their stamps judge nothing).
                let skew = rng.between(0, 2 * WALL_SKEW_MS_MAX) as i64 - WALL_SKEW_MS_MAX as i64;
                let clock = NodeClock::new(drift, origin, skew);
                Slot {
                    id,
                    disk: Disk::new(lying).with_crash_order(options.crash_order),
                    clock,
                    process: None,
                    incarnation: 0,
                    paused_until: None,
                    disk_wakeup: None,
                }
            })
            .collect();
        // Spread the budget: every client gets its share, the first ones the remainder.
        let per = scenario.commands / scenario.clients.max(1);
        let extra = scenario.commands % scenario.clients.max(1);
        // The last clients pipeline, each with a private file named after it.
        let first_pipelining = scenario.clients.saturating_sub(scenario.pipelining_clients);
        let clients = (0..scenario.clients)
            .map(|c| {
                let budget = per + usize::from(c < extra);
                match Name::new(Bytes::from(format!("p{c}"))) {
                    Ok(private) if c >= first_pipelining => {
                        Client::pipelining(c, budget, scenario.pipeline_depth, private)
                    }
                    _ => Client::new(c, budget),
                }
                .expiring(scenario.expiring_ppm)
            })
            .collect();
        let names = (0..scenario.files)
            .filter_map(|k| Name::new(Bytes::from(format!("f{k}"))).ok())
            .collect();
        Simulation {
            invariants: Invariants::with_white_box(scenario.nodes, options.check_durability),
            trace: Trace::new(options.trace),
            collect: options.trace == TraceMode::Collect,
            check_durability: options.check_durability,
            events_max: options.events_max,
            scenario,
            rng,
            now: SimTime(0),
            queue: EventQueue::new(),
            slots,
            network,
            clients,
            connections: Vec::new(),
            names,
            history: History::new(),
            history_clock: 0,
            applied_first: LogIndex(0),
            stats: RunStats {
                runs: 1,
                lease_runs: u64::from(lease),
                ..RunStats::default()
            },
            phase: Phase::Faults,
            partition_epoch: 0,
            strike_pending: false,
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
        self.schedule_spurious_timeout();
        if let Some(at) = self.scenario.power_loss_ms {
            self.queue.push(self.now.plus_ms(at), Ev::PowerLoss);
        }
        if self.clients.iter().all(|c| c.budget == 0) {
            self.begin_final_phase()?;
        }
        while let Some((at, ev)) = self.queue.pop() {
            self.now = at;
            self.stats.events += 1;
            if self.stats.events > self.events_max {
                return Err(self.over_budget());
            }
            self.handle(ev)?;
            if self.check_durability {
                self.invariants
                    .check_durable(self.slots.iter().map(|s| s.disk.chain()))?;
            }
            if self.phase == Phase::Final && self.converged() {
                let applied = self
                    .slots
                    .iter()
                    .find_map(|s| s.process.as_ref().map(Process::applied))
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
                        .process
                        .as_ref()
                        .is_some_and(|p| p.alarm_generation == generation);
                if !current {
                    return Ok(());
                }
                self.note(Actor::Node(self.slots[node].id), Note::Timeout);
                self.drive(node, |replica, now, out| replica.timeout(now, out))
            }
            Ev::Drain { node, incarnation } => {
                if self.slots[node].incarnation != incarnation {
                    return Ok(());
                }
                self.drain_requests(node)
            }
            Ev::Request {
                node,
                client,
                attempt,
                conn,
                bytes,
            } => self.receive_request(node, client, attempt, conn, &bytes),
            Ev::Reply {
                client,
                attempt,
                bytes,
            } => self.client_reply(client, attempt, &bytes),
            Ev::ClientTimeout { client, attempt } => self.client_timeout(client, attempt),
            Ev::ClientThink { client } => self.client_think(client),
            Ev::Nemesis => self.nemesis(),
            Ev::LeaderStrike { node, term, spare } => self.leader_strike(node, term, spare),
            Ev::SpuriousTimeout => self.spurious_timeout(),
            Ev::PowerLoss => {
                self.power_loss();
                Ok(())
            }
            Ev::PartitionEnd { epoch } => {
                if epoch == self.partition_epoch && self.network.is_partitioned() {
                    self.network.heal();
                    self.note(Actor::Nemesis, Note::PartitionHealed);
                }
                Ok(())
            }
            Ev::Restart { node, incarnation } => {
                if self.slots[node].incarnation == incarnation && self.slots[node].process.is_none()
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

    pub(super) fn ids(&self) -> Vec<NodeId> {
        self.slots.iter().map(|s| s.id).collect()
    }

    /// The running node that leads the highest term, if any.
    pub(super) fn current_leader(&self) -> Option<NodeId> {
        self.slots
            .iter()
            .filter_map(|s| s.process.as_ref())
            .filter(|p| p.core().role() == Role::Leader)
            .max_by_key(|p| p.core().term())
            .map(|p| p.core().id())
    }

    /// The time of a history record made now: simulated nanoseconds ([`HISTORY_UNITS_PER_MS`]),
    /// so that the checker can judge expiry by them, and one past the last record's when several
    /// share an instant, so that records keep the order they were made in (equal times would
    /// count as concurrent). A record is then late by at most a nanosecond per earlier record of
    /// the same microsecond, far less than the millisecond the clock bound allows for it.
    pub(super) fn history_time(&mut self) -> u64 {
        self.history_clock = self
            .now
            .0
            .saturating_mul(NS_PER_US)
            .max(self.history_clock + 1);
        self.history_clock
    }

    pub(super) fn note(&mut self, actor: Actor, note: Note) {
        self.trace.push(self.now, actor, note);
    }

    pub(super) fn report(mut self, result: Result<(), Violation>) -> RunReport {
        self.stats.committed = self.invariants.committed_len();
        self.stats.leaders = self.invariants.leaders_seen() as u64;
        self.stats.leaderless_elections = self.invariants.leaderless_elections() as u64;
        self.stats.sim_us = self.now.0;
        self.stats.runs_with_install = u64::from(self.stats.snapshots_installed > 0);
        self.stats.sim_us_max = self.now.0;
        self.stats.events_max = self.stats.events;
        let failure = result.err().map(|violation| Failure {
            profile: self.scenario.profile,
            seed: self.scenario.seed,
            violation,
            scenario: self.scenario.to_string(),
            at: self.now.to_string(),
            trace_tail: self.trace.tail(REPORT_TRACE_LINES),
        });
        let heal_elections = match (&failure, self.final_phase_at) {
            (None, Some(at)) => Some(
                (self.now.0 - at.0) as f64
                    / (self.scenario.raft.election_timeout_ms as f64 * 1_000.0),
            ),
            _ => None,
        };
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
            heal_elections,
        }
    }
}

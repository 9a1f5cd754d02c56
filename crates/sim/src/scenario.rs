//! The parameters of one run, drawn from its seed: cluster size, Raft settings, workload,
//! network, disks and how often each kind of fault strikes. A [`Profile`] biases the draw
//! (crash-heavy, partition-heavy, ...) so that tests can aim their seeds.

use std::fmt;
use std::str::FromStr;

use crate::network::LinkFaults;
use crate::random::SimRng;

/// Mixed into a run's seed for the scenario's own stream of draws.
const SCENARIO_STREAM: u64 = 0x5ce7_a210_0000_0001;

/// Smallest minimum election timeout drawn, ms: short keeps runs short in simulated time.
const ELECTION_TIMEOUT_MS_MIN: u64 = 100;
/// Largest minimum election timeout drawn, ms.
const ELECTION_TIMEOUT_MS_MAX: u64 = 400;

/// Message caps drawn for `max_entries_per_msg`: 1 and 3 force paging through the log.
const ENTRIES_PER_MSG_CHOICES: [usize; 4] = [1, 3, 16, 1024];
/// Byte caps drawn for `max_bytes_per_msg`: the small ones split batches by size.
const BYTES_PER_MSG_CHOICES: [usize; 3] = [300, 4096, 256 * 1024];
/// Pipelining windows drawn for `max_inflight_msgs`: 1 is stop-and-wait.
const INFLIGHT_CHOICES: [usize; 3] = [1, 4, 64];

/// Chance (ppm) that prevote, and separately check-quorum, is on: mostly on, as in production,
/// but safety must not depend on them.
const OPTIONAL_FEATURE_ON_PPM: u32 = 850_000;

/// Fewest and most concurrent clients.
const CLIENTS_MIN: u64 = 3;
/// See [`CLIENTS_MIN`].
const CLIENTS_MAX: u64 = 8;
/// Fewest and most file names the clients share: few names mean many conflicts.
const FILES_MIN: u64 = 2;
/// See [`FILES_MIN`].
const FILES_MAX: u64 = 6;

/// Chance (ppm) that a run has pipelining clients (`Scenario::pipelining_clients`).
const PIPELINING_RUNS_PPM: u32 = 500_000;
/// Most pipelining clients in a run (of at least [`CLIENTS_MIN`]).
const PIPELINING_CLIENTS_MAX: u64 = 2;
/// Deepest pipeline drawn: a few commands deep is what makes a read overtake a write.
const PIPELINE_DEPTH_MAX: u64 = 4;

/// Least and most chance (ppm) that a leader's append brings a strike, in [`Profile::Figure8`].
const LEADER_STRIKE_PPM_MIN: u64 = 20_000;
/// See [`LEADER_STRIKE_PPM_MIN`].
const LEADER_STRIKE_PPM_MAX: u64 = 150_000;

/// Least and most chance (ppm) that a leader's append of its no-op brings a strike.
const LEADER_STRIKE_NOOP_PPM_MIN: u64 = 200_000;
/// See [`LEADER_STRIKE_NOOP_PPM_MIN`].
const LEADER_STRIKE_NOOP_PPM_MAX: u64 = 600_000;

/// Chance (ppm) that a run's clients give some writes and cas an EXPTIME.
const EXPIRY_RUNS_PPM: u32 = 800_000;

/// Runs (with faults) that change their membership and transfer leadership among the faults.
const MEMBERSHIP_RUNS_PPM: u32 = 700_000;

/// Runs whose leaders read on leases (when check-quorum is on).
const LEASE_RUNS_PPM: u32 = 400_000;

/// Runs whose followers serve reads.
const FOLLOWER_READ_RUNS_PPM: u32 = 400_000;
/// Least and most chance (ppm) in such a run that a write or cas of a shared file carries one.
const EXPIRING_PPM_MIN: u64 = 100_000;
/// See [`EXPIRING_PPM_MIN`].
const EXPIRING_PPM_MAX: u64 = 500_000;

/// Chance (ppm) that a [`Profile::Figure8`] run sends one entry per message.
const FIGURE8_ONE_ENTRY_PER_MSG_PPM: u32 = 600_000;

/// A run's bias. Every profile draws every parameter; the profile shifts the odds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Profile {
    /// Everything can happen; 3 or 5 nodes.
    Mixed,
    /// Like `Mixed`, always 3 nodes.
    ThreeNodes,
    /// Like `Mixed`, always 5 nodes.
    FiveNodes,
    /// Partitions of every shape, often.
    Partitions,
    /// Crashes with torn writes, disk stalls and process pauses, often.
    Crashes,
    /// A hostile network: heavy loss, duplication and long delays, on top of everything else.
    Chaos,
    /// No faults at all: a reliable network and healthy machines (throughput and liveness).
    Quiet,
    /// Aimed at Raft figure 8's three-term interleaving (and at reads on a new leader that has
    /// not committed in its term yet): 5 nodes, and leaders struck soon after they append,
    /// cut off with at most one follower, isolated or crashed, so that entries reach a
    /// minority, leaders of newer terms append at the same index and lose office before
    /// replicating, and old leaders come back and spread their old-term entries.
    Figure8,
}

impl Profile {
    /// Every profile, for help text.
    pub const ALL: [Profile; 8] = [
        Profile::Mixed,
        Profile::ThreeNodes,
        Profile::FiveNodes,
        Profile::Partitions,
        Profile::Crashes,
        Profile::Chaos,
        Profile::Quiet,
        Profile::Figure8,
    ];

    /// The name used on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Profile::Mixed => "mixed",
            Profile::ThreeNodes => "three-nodes",
            Profile::FiveNodes => "five-nodes",
            Profile::Partitions => "partitions",
            Profile::Crashes => "crashes",
            Profile::Chaos => "chaos",
            Profile::Quiet => "quiet",
            Profile::Figure8 => "figure8",
        }
    }

    /// Mixed into the seed so that seed N of two profiles are different runs.
    fn salt(self) -> u64 {
        match self {
            Profile::Mixed => 0,
            Profile::ThreeNodes => 0x3333_0000_0000_0000,
            Profile::FiveNodes => 0x5555_0000_0000_0000,
            Profile::Partitions => 0x7a7a_0000_0000_0000,
            Profile::Crashes => 0xc0c0_0000_0000_0000,
            Profile::Chaos => 0xcaca_0000_0000_0000,
            Profile::Quiet => 0x9191_0000_0000_0000,
            Profile::Figure8 => 0xf18f_0000_0000_0000,
        }
    }

    /// The generator seed of run `seed` under this profile.
    pub fn rng_seed(self, seed: u64) -> u64 {
        seed ^ self.salt()
    }

    /// The seed of the separate stream the scenario of run `seed` is drawn from.
    pub fn scenario_seed(self, seed: u64) -> u64 {
        self.rng_seed(seed) ^ SCENARIO_STREAM
    }
}

impl fmt::Display for Profile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A profile name that is not one of [`Profile::ALL`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown profile {0:?}")]
pub struct UnknownProfile(pub String);

impl FromStr for Profile {
    type Err = UnknownProfile;

    fn from_str(s: &str) -> Result<Profile, UnknownProfile> {
        Profile::ALL
            .into_iter()
            .find(|p| p.name() == s)
            .ok_or_else(|| UnknownProfile(s.to_owned()))
    }
}

/// A deliberate defect, to prove that the checks catch a broken cluster. Never on by default.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Sabotage {
    /// A healthy cluster.
    None,
    /// The network forges a follower's "I have it all" answer to a leader's AppendEntries (and
    /// loses the request), so a leader commits entries without a majority holding them.
    ForgedAcks,
    /// Disks acknowledge writes before they are durable; a crash then loses acknowledged state.
    LyingDisk,
}

impl Sabotage {
    /// Every choice, for help text.
    pub const ALL: [Sabotage; 3] = [Sabotage::None, Sabotage::ForgedAcks, Sabotage::LyingDisk];

    /// The name used on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Sabotage::None => "none",
            Sabotage::ForgedAcks => "forged-acks",
            Sabotage::LyingDisk => "lying-disk",
        }
    }
}

/// A sabotage name that is not one of [`Sabotage::ALL`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown sabotage {0:?}")]
pub struct UnknownSabotage(pub String);

impl FromStr for Sabotage {
    type Err = UnknownSabotage;

    fn from_str(s: &str) -> Result<Sabotage, UnknownSabotage> {
        Sabotage::ALL
            .into_iter()
            .find(|p| p.name() == s)
            .ok_or_else(|| UnknownSabotage(s.to_owned()))
    }
}

/// The kinds of fault the nemesis can inject, with their weights in a scenario.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Nemesis {
    /// Crash a node (it restarts later from its disk).
    Crash,
    /// Split the cluster in two.
    Split,
    /// Cut the links one way only.
    OneWay,
    /// Cut the leader off.
    IsolateLeader,
    /// One node bridging two halves that cannot hear each other.
    Bridge,
    /// Make a node's fsyncs take very long.
    DiskStall,
    /// Freeze a node's process (as a long GC pause or a stopped VM would).
    Pause,
    /// A membership change through the leader: remove a member (at most one out at a time),
    /// add it back as a learner, promote it.
    Reconfigure,
    /// Ask the leader to hand leadership over.
    Transfer,
}

impl Nemesis {
    /// Every kind, in weight order.
    pub const ALL: [Nemesis; 9] = [
        Nemesis::Crash,
        Nemesis::Split,
        Nemesis::OneWay,
        Nemesis::IsolateLeader,
        Nemesis::Bridge,
        Nemesis::DiskStall,
        Nemesis::Pause,
        Nemesis::Reconfigure,
        Nemesis::Transfer,
    ];
}

/// Every parameter of one run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scenario {
    /// The profile it was drawn under.
    pub profile: Profile,
    /// The run's seed.
    pub seed: u64,
    /// Cluster size: 3 or 5.
    pub nodes: usize,
    /// Raft settings, the same for every node (its `id` is a placeholder: see `raft_config`).
    pub raft: raft::Config,
    /// Concurrent clients.
    pub clients: usize,
    /// Client commands to issue before the faults stop (the final checks add a few).
    pub commands: usize,
    /// File names shared by the clients.
    pub files: usize,
    /// Longest pause of a client between two commands, microseconds.
    pub think_max_us: u64,
    /// How long a client waits for a reply before giving up on it, ms.
    pub client_timeout_ms: u64,
    /// Node-to-node message faults.
    pub links: LinkFaults,
    /// Client-to-node one-way delay range, microseconds.
    pub client_delay_us: (u64, u64),
    /// Fsync latency range, microseconds.
    pub disk_latency_us: (u64, u64),
    /// Time between two faults, ms (0, 0 for none).
    pub fault_interval_ms: (u64, u64),
    /// Weight of each [`Nemesis`] kind, in [`Nemesis::ALL`] order.
    pub fault_weights: [u32; 9],
    /// How long a partition, stall or pause lasts, ms.
    pub fault_duration_ms: (u64, u64),
    /// How long a crashed node stays down, ms.
    pub downtime_ms: (u64, u64),
    /// Chance (ppm) that a crash may take down a majority (otherwise a crash that would leave
    /// fewer than a majority up is skipped): safety must hold, liveness waits for the end.
    pub majority_crash_ppm: u32,
    /// The deliberate defect, if any.
    pub sabotage: Sabotage,
    /// Chance (ppm) that an alarm fires late.
    pub alarm_late_ppm: u32,
    /// How late, at most, ms.
    pub alarm_late_max_ms: u64,
    /// Time between two spurious timeouts (to a random node), ms; (0, 0) for none.
    pub spurious_timeout_ms: (u64, u64),
    /// When the whole cluster loses power at once, ms after the start, if it does.
    pub power_loss_ms: Option<u64>,
    /// When nodes snapshot: mostly every few dozen entries, so most runs compact their logs
    /// and send snapshots to nodes that were down or cut off.
    pub snapshot: replica::SnapshotPolicy,
    /// Snapshot transfer: small chunks, so a transfer takes many and faults strike mid-way.
    pub transfer: replica::TransferConfig,
    /// How many of the clients (the last ones) pipeline: several commands in flight on one
    /// connection, a private file of their own (see [`crate::client`]).
    pub pipelining_clients: usize,
    /// How many commands a pipelining client keeps in flight at most.
    pub pipeline_depth: usize,
    /// Chance (ppm) that a leader's append of entries brings a leader strike (see
    /// [`Profile::Figure8`]); 0 for none.
    pub leader_strike_ppm: u32,
    /// Chance (ppm) of a strike when the append holds the leader's first entry of its term
    /// (its no-op): a new leader deposed before its no-op commits is what figure 8 needs twice.
    pub leader_strike_noop_ppm: u32,
    /// How long after an append of client commands the strike comes, microseconds: soon, so
    /// that the entries sent are cut off before they reach more than one follower.
    pub leader_strike_delay_us: (u64, u64),
    /// How long after the append of a no-op the strike comes, microseconds: from at once (the
    /// no-op stays on a minority) to a few round trips (older entries it carries have reached
    /// a majority, the no-op not yet).
    pub leader_strike_noop_delay_us: (u64, u64),
    /// Chance (ppm) that a client's write or cas of a shared file carries an EXPTIME of a few
    /// seconds (see [`crate::client`]); 0 for none.
    pub expiring_ppm: u32,
}

impl Scenario {
    /// Draws the scenario of run `seed` under `profile`, with `commands` client commands, from
    /// `rng` (a stream of its own: the run draws from another, so that a new scenario parameter
    /// changes nothing else).
    pub fn generate(
        profile: Profile,
        seed: u64,
        commands: usize,
        sabotage: Sabotage,
        rng: &mut SimRng,
    ) -> Scenario {
        let nodes = match profile {
            Profile::ThreeNodes | Profile::Quiet => 3,
            Profile::FiveNodes | Profile::Figure8 => 5,
            _ => {
                if rng.chance(500_000) {
                    3
                } else {
                    5
                }
            }
        };
        let election = rng.between(ELECTION_TIMEOUT_MS_MIN, ELECTION_TIMEOUT_MS_MAX);
        // 4 to 10 heartbeats per election timeout: around the 3 `Config::validate` demands up
        // to etcd's 10.
        let heartbeat = (election / rng.between(4, 10)).max(1);
        // The same settings for every node; `raft_config` puts in each node's id.
        let raft = raft::Config {
            id: raft::NodeId(0),
            election_timeout_ms: election,
            heartbeat_interval_ms: heartbeat,
            max_entries_per_msg: *rng.pick(&ENTRIES_PER_MSG_CHOICES).unwrap_or(&1024),
            max_bytes_per_msg: *rng.pick(&BYTES_PER_MSG_CHOICES).unwrap_or(&4096),
            max_inflight_msgs: *rng.pick(&INFLIGHT_CHOICES).unwrap_or(&64),
            prevote: profile == Profile::Quiet || rng.chance(OPTIONAL_FEATURE_ON_PPM),
            check_quorum: profile == Profile::Quiet || rng.chance(OPTIONAL_FEATURE_ON_PPM),
            // Drawn last (below): parameters added later must not shift earlier draws.
            broadcast_commit: false,
            lease_reads: false,
            follower_reads: false,
        };
        let clients = rng.between(CLIENTS_MIN, CLIENTS_MAX) as usize;
        let files = rng.between(FILES_MIN, FILES_MAX) as usize;
        // Clients pause up to 5-80 ms between commands, so that a run of a few hundred commands
        // spans several seconds of simulated time: many faults, many elections.
        let think_max_us = rng.between(5_000, 80_000);
        // A LAN to a busy datacenter network: 50-300 us at best, 1-5 ms at worst.
        let delay_min_us = rng.between(50, 300);
        let delay_max_us = rng.between(1_000, 5_000);
        // A message held up may arrive up to three election timeouts late: past an election,
        // which is what makes old messages dangerous.
        let long_delay_max_us = rng.between(20, 3 * election) * 1_000;
        let links = match profile {
            Profile::Quiet => LinkFaults::reliable(delay_min_us, delay_max_us),
            // Chaos: 2-8% held up, 5-20% lost, 2-10% duplicated.
            Profile::Chaos => LinkFaults {
                delay_min_us,
                delay_max_us,
                long_delay_ppm: rng.between(20_000, 80_000) as u32,
                long_delay_max_us,
                drop_ppm: rng.between(50_000, 200_000) as u32,
                duplicate_ppm: rng.between(20_000, 100_000) as u32,
            },
            // Otherwise up to 2% held up, 3% lost, 2% duplicated.
            _ => LinkFaults {
                delay_min_us,
                delay_max_us,
                long_delay_ppm: rng.between(0, 20_000) as u32,
                long_delay_max_us,
                drop_ppm: rng.between(0, 30_000) as u32,
                duplicate_ppm: rng.between(0, 20_000) as u32,
            },
        };
        // Weights in Nemesis::ALL order: crash, split, one-way, isolate, bridge, stall, pause.
        // (Reconfigure and Transfer are drawn at the end: see below.)
        let fault_weights = match profile {
            Profile::Quiet => [0; 9],
            Profile::Partitions => [1, 4, 4, 4, 4, 0, 1, 0, 0],
            // The leader strikes do most of the work; a few other faults stir the pot.
            Profile::Figure8 => [1, 1, 0, 1, 0, 0, 1, 0, 0],
            Profile::Crashes => [8, 1, 0, 1, 0, 3, 3, 0, 0],
            _ => [3, 2, 2, 2, 2, 1, 1, 0, 0],
        };
        // A fault every few election timeouts: often enough that elections overlap faults,
        // rarely enough that the cluster also gets work done.
        let fault_interval_ms = match profile {
            Profile::Quiet => (0, 0),
            Profile::Partitions | Profile::Crashes => (election / 4, 2 * election),
            _ => (election / 2, 4 * election),
        };
        let mut scenario = Scenario {
            profile,
            seed,
            nodes,
            raft,
            clients,
            commands,
            files,
            think_max_us,
            // Longer than an election plus a retry, so a timeout means trouble.
            client_timeout_ms: 5 * election,
            links,
            // Clients sit near the cluster; their links are not what is under test.
            client_delay_us: (50, 500),
            disk_latency_us: match sabotage {
                // A disk that lies about fsync keeps writes in a volatile cache for long.
                Sabotage::LyingDisk => (50_000, 500_000),
                // An SSD's fsync: 0.1 ms to a few ms.
                _ => (100, rng.between(500, 3_000)),
            },
            fault_interval_ms,
            fault_weights,
            // Partitions, stalls and pauses outlast an election timeout, sometimes by far.
            fault_duration_ms: (election, 10 * election),
            // From a quick restart (before anyone notices) to a long outage.
            downtime_ms: (election / 5, 5 * election),
            majority_crash_ppm: match profile {
                Profile::Crashes => 200_000,
                _ => 50_000,
            },
            sabotage,
            alarm_late_ppm: 0,
            alarm_late_max_ms: 0,
            spurious_timeout_ms: (0, 0),
            power_loss_ms: None,
            snapshot: replica::SnapshotPolicy::default(),
            transfer: replica::TransferConfig::for_election_timeout(election),
            pipelining_clients: 0,
            pipeline_depth: 1,
            leader_strike_ppm: 0,
            leader_strike_noop_ppm: 0,
            leader_strike_delay_us: (0, 0),
            leader_strike_noop_delay_us: (0, 0),
            expiring_ppm: 0,
        };
        // New parameters are drawn here, after all the others, so that adding one leaves the
        // scenarios of existing seeds as they were (regression seeds stay meaningful).
        scenario.raft.broadcast_commit = rng.chance(500_000);
        if profile != Profile::Quiet {
            // Up to 5% of alarms late by up to an election timeout; a spurious timeout every
            // quarter to four election timeouts.
            scenario.alarm_late_ppm = rng.between(0, 50_000) as u32;
            scenario.alarm_late_max_ms = rng.between(1, election);
            let spurious = rng.between(election / 4, 4 * election);
            scenario.spurious_timeout_ms = (spurious / 2, spurious);
            // A quarter of runs lose power once, somewhere in the first few seconds.
            if rng.chance(250_000) {
                scenario.power_loss_ms = Some(rng.between(election, 40 * election));
            }
        }
        // Half the runs have one or two pipelining clients, two to four commands deep.
        if rng.chance(PIPELINING_RUNS_PPM) {
            scenario.pipelining_clients = rng.between(1, PIPELINING_CLIENTS_MAX) as usize;
            scenario.pipeline_depth = rng.between(2, PIPELINE_DEPTH_MAX) as usize;
        }
        if profile == Profile::Figure8 {
            // Struck often enough that three strikes in a row are common, rarely enough that
            // most entries still commit.
            scenario.leader_strike_ppm =
                rng.between(LEADER_STRIKE_PPM_MIN, LEADER_STRIKE_PPM_MAX) as u32;
            scenario.leader_strike_noop_ppm =
                rng.between(LEADER_STRIKE_NOOP_PPM_MIN, LEADER_STRIKE_NOOP_PPM_MAX) as u32;
            scenario.leader_strike_delay_us = (0, delay_max_us);
            let round_trip_us = 2 * delay_max_us + scenario.disk_latency_us.1;
            scenario.leader_strike_noop_delay_us = (0, 3 * round_trip_us);
            // One entry per message most of the time, so that a follower catching up gets an
            // old-term entry in one message and the new leader's no-op in the next: the moment
            // at which counting replicas would commit the old entry alone.
            if rng.chance(FIGURE8_ONE_ENTRY_PER_MSG_PPM) {
                scenario.raft.max_entries_per_msg = 1;
            }
        }
        // One run in ten keeps the production default (no snapshot in a short run); the others
        // snapshot every 5 to 60 entries, keeping 0 to 20 behind, and send snapshots in
        // chunks of 64 to 2,048 bytes, 1 to 4 at a time.
        if !rng.chance(100_000) {
            scenario.snapshot = replica::SnapshotPolicy {
                entries: rng.between(5, 60),
                bytes: rng.between(2_000, 1 << 20),
                trailing_entries: *rng.pick(&[0, 1, 3, 20]).unwrap_or(&0),
            };
        }
        scenario.transfer.chunk_bytes = rng.between(64, 2_048);
        scenario.transfer.window_chunks = rng.between(1, 4);
        // Most runs give some writes an EXPTIME, so that files expire among reads, cas and
        // deletes, across leaders whose clocks disagree.
        if rng.chance(EXPIRY_RUNS_PPM) {
            scenario.expiring_ppm = rng.between(EXPIRING_PPM_MIN, EXPIRING_PPM_MAX) as u32;
        }
        // Most runs with faults also change their membership and hand leadership over now and
        // then, among the other faults; some read on leases (only with check-quorum, which a
        // lease needs) and some serve reads on followers.
        if profile != Profile::Quiet && rng.chance(MEMBERSHIP_RUNS_PPM) {
            scenario.fault_weights[7] = rng.between(1, 3) as u32;
            scenario.fault_weights[8] = rng.between(0, 2) as u32;
        }
        scenario.raft.lease_reads = scenario.raft.check_quorum && rng.chance(LEASE_RUNS_PPM);
        scenario.raft.follower_reads = rng.chance(FOLLOWER_READ_RUNS_PPM);
        scenario
    }

    /// Turns off what the scenario drew for membership changes, leadership transfers, lease
    /// and follower reads: the run the generator gave before those existed.
    pub fn without_membership(&mut self) {
        self.fault_weights[7] = 0;
        self.fault_weights[8] = 0;
        self.raft.lease_reads = false;
        self.raft.follower_reads = false;
    }

    /// The replica driver's configuration.
    pub fn replica_config(&self) -> replica::Config {
        let mut config = replica::Config::new(self.raft.election_timeout_ms);
        config.snapshot = self.snapshot;
        config.transfer = self.transfer;
        config
    }

    /// The Raft configuration of node `id`.
    pub fn raft_config(&self, id: raft::NodeId) -> raft::Config {
        raft::Config {
            id,
            ..self.raft.clone()
        }
    }

    /// Whether the nemesis is active at all.
    pub fn has_faults(&self) -> bool {
        self.fault_weights.iter().any(|&w| w > 0) && self.fault_interval_ms.1 > 0
    }
}

impl fmt::Display for Scenario {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let r = &self.raft;
        write!(
            f,
            "{} nodes, election {}ms heartbeat {}ms, entries/msg {} bytes/msg {} inflight {}, \
             prevote {} check-quorum {} broadcast-commit {}; snapshot every {} entries keeping {}, \
             chunks {} bytes x{}; {} clients ({} pipelining {} deep), {} files, {} commands, \
             exptime on {}ppm of writes; drop {}ppm dup {}ppm long-delay {}ppm; sabotage {:?}",
            self.nodes,
            r.election_timeout_ms,
            r.heartbeat_interval_ms,
            r.max_entries_per_msg,
            r.max_bytes_per_msg,
            r.max_inflight_msgs,
            r.prevote,
            r.check_quorum,
            r.broadcast_commit,
            self.snapshot.entries,
            self.snapshot.trailing_entries,
            self.transfer.chunk_bytes,
            self.transfer.window_chunks,
            self.clients,
            self.pipelining_clients,
            self.pipeline_depth,
            self.files,
            self.commands,
            self.expiring_ppm,
            self.links.drop_ppm,
            self.links.duplicate_ppm,
            self.links.long_delay_ppm,
            self.sabotage,
        )
    }
}

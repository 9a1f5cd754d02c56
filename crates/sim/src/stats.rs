//! What runs did, counted: client commands and their outcomes, events, faults by kind.

use std::fmt;
use std::ops::AddAssign;

/// Every kind of fault counted; the first seven are the nemesis's, the rest happen per message
/// or per crash.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum FaultKind {
    /// A node crashed (and later restarted from its disk).
    Crash,
    /// The cluster was split in two.
    Split,
    /// Links were cut one way only.
    OneWay,
    /// The leader was cut off.
    IsolateLeader,
    /// A node bridged two halves that could not hear each other.
    Bridge,
    /// A node's disk stalled.
    DiskStall,
    /// A node's process was frozen.
    Pause,
    /// A message was lost by the network.
    MessageDropped,
    /// A message was delivered twice.
    MessageDuplicated,
    /// A message was held up for long (and so overtaken by later ones).
    MessageDelayed,
    /// A message was lost to a partition.
    MessageCut,
    /// A record not yet acknowledged survived a crash (the OS had flushed it).
    UnackedRecordSurvived,
    /// A record not yet acknowledged was lost in a crash.
    UnackedRecordLost,
    /// A node's alarm fired late (a busy or descheduled process).
    TimerLate,
    /// A node got a timeout it did not ask for (harmless by the core's contract).
    TimerSpurious,
    /// Every running node crashed at once (a power failure of the whole cluster); each crash
    /// is also counted as a crash.
    PowerLoss,
    /// A leader was struck soon after an append (cut off with at most one follower, isolated
    /// or crashed; counted under that kind too): see `Profile::Figure8`.
    LeaderStrike,
    /// A membership change committed: a member removed (the leader itself, sometimes).
    MemberRemoved,
    /// A membership change committed: a removed node added back as a learner.
    LearnerAdded,
    /// A membership change committed: a learner promoted to voter.
    LearnerPromoted,
    /// A leadership transfer completed (another member leads).
    LeaderTransferred,
}

impl FaultKind {
    /// Every kind, in display order.
    pub const ALL: [FaultKind; 21] = [
        FaultKind::Crash,
        FaultKind::Split,
        FaultKind::OneWay,
        FaultKind::IsolateLeader,
        FaultKind::Bridge,
        FaultKind::DiskStall,
        FaultKind::Pause,
        FaultKind::MessageDropped,
        FaultKind::MessageDuplicated,
        FaultKind::MessageDelayed,
        FaultKind::MessageCut,
        FaultKind::UnackedRecordSurvived,
        FaultKind::UnackedRecordLost,
        FaultKind::TimerLate,
        FaultKind::TimerSpurious,
        FaultKind::PowerLoss,
        FaultKind::LeaderStrike,
        FaultKind::MemberRemoved,
        FaultKind::LearnerAdded,
        FaultKind::LearnerPromoted,
        FaultKind::LeaderTransferred,
    ];

    /// A short name for reports.
    pub fn name(self) -> &'static str {
        match self {
            FaultKind::Crash => "crash",
            FaultKind::Split => "partition-split",
            FaultKind::OneWay => "partition-one-way",
            FaultKind::IsolateLeader => "partition-leader-isolated",
            FaultKind::Bridge => "partition-bridge",
            FaultKind::DiskStall => "disk-stall",
            FaultKind::Pause => "process-pause",
            FaultKind::MessageDropped => "message-dropped",
            FaultKind::MessageDuplicated => "message-duplicated",
            FaultKind::MessageDelayed => "message-long-delay",
            FaultKind::MessageCut => "message-cut-by-partition",
            FaultKind::UnackedRecordSurvived => "unacked-record-survived-crash",
            FaultKind::UnackedRecordLost => "unacked-record-lost-in-crash",
            FaultKind::TimerLate => "timer-late",
            FaultKind::TimerSpurious => "timer-spurious",
            FaultKind::PowerLoss => "power-loss-whole-cluster",
            FaultKind::LeaderStrike => "leader-struck-after-append",
            FaultKind::MemberRemoved => "member-removed",
            FaultKind::LearnerAdded => "learner-added",
            FaultKind::LearnerPromoted => "learner-promoted",
            FaultKind::LeaderTransferred => "leader-transferred",
        }
    }

    fn slot(self) -> usize {
        self as usize
    }
}

/// Counts per [`FaultKind`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FaultCounts([u64; FaultKind::ALL.len()]);

impl FaultCounts {
    /// Adds `n` faults of `kind`.
    pub fn add(&mut self, kind: FaultKind, n: u64) {
        self.0[kind.slot()] += n;
    }

    /// How many faults of `kind`.
    pub fn get(&self, kind: FaultKind) -> u64 {
        self.0[kind.slot()]
    }

    /// Faults of every kind together.
    pub fn total(&self) -> u64 {
        self.0.iter().sum()
    }
}

impl AddAssign for FaultCounts {
    fn add_assign(&mut self, other: FaultCounts) {
        for (a, b) in self.0.iter_mut().zip(other.0) {
            *a += b;
        }
    }
}

/// What one run (or many, added up) did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RunStats {
    /// Runs counted.
    pub runs: u64,
    /// Client commands invoked (each op in the history).
    pub commands: u64,
    /// Commands that got a definite answer.
    pub definite: u64,
    /// Commands whose outcome stayed unknown (timeout, `ERR_INTERNAL`, too many redirects).
    pub unknown: u64,
    /// Redirects followed by clients.
    pub redirects: u64,
    /// Commands a pipelining client sent while an earlier one of its was still in flight.
    pub pipelined: u64,
    /// Writes and cas sent with an EXPTIME.
    pub expiring: u64,
    /// Clock entries committed (a leader's clock alone, appended while a file was due to expire).
    pub clock_entries: u64,
    /// Sum over definite answers of the simulated time from first send to answer, us.
    pub latency_us_sum: u64,
    /// The longest such time, us.
    pub latency_us_max: u64,
    /// Events the simulator processed.
    pub events: u64,
    /// The most events one run processed (compare with the run's event budget).
    pub events_max: u64,
    /// Messages nodes sent to each other.
    pub messages: u64,
    /// Distinct (term, leader) pairs seen.
    pub leaders: u64,
    /// Terms in which a candidate stood and no leader was seen (split or lost votes).
    pub leaderless_elections: u64,
    /// Entries committed (the longest committed prefix).
    pub committed: u64,
    /// Simulated time, microseconds.
    pub sim_us: u64,
    /// The longest simulated time of one run, microseconds.
    pub sim_us_max: u64,
    /// Faults injected, by kind.
    pub faults: FaultCounts,
    /// Configurations the linearizability checker explored.
    pub checker_states: u64,
    /// Histories the checker gave up on (too concurrent for its budget; not a failure).
    pub checker_inconclusive: u64,
    /// Snapshots nodes made of their stores (durable).
    pub snapshots_made: u64,
    /// Snapshots installed from a leader (durable).
    pub snapshots_installed: u64,
    /// Snapshot chunks sent.
    pub chunks_sent: u64,
    /// Runs in which at least one node installed a snapshot.
    pub runs_with_install: u64,
    /// Runs whose leaders read on leases.
    pub lease_runs: u64,
    /// Read-index requests followers sent their leader (follower reads).
    pub follower_read_requests: u64,
}

impl AddAssign for RunStats {
    fn add_assign(&mut self, o: RunStats) {
        self.runs += o.runs;
        self.commands += o.commands;
        self.definite += o.definite;
        self.unknown += o.unknown;
        self.redirects += o.redirects;
        self.pipelined += o.pipelined;
        self.expiring += o.expiring;
        self.clock_entries += o.clock_entries;
        self.latency_us_sum += o.latency_us_sum;
        self.latency_us_max = self.latency_us_max.max(o.latency_us_max);
        self.events += o.events;
        self.events_max = self.events_max.max(o.events_max);
        self.messages += o.messages;
        self.leaders += o.leaders;
        self.leaderless_elections += o.leaderless_elections;
        self.committed += o.committed;
        self.sim_us += o.sim_us;
        self.sim_us_max = self.sim_us_max.max(o.sim_us_max);
        self.faults += o.faults;
        self.checker_states += o.checker_states;
        self.checker_inconclusive += o.checker_inconclusive;
        self.snapshots_made += o.snapshots_made;
        self.snapshots_installed += o.snapshots_installed;
        self.chunks_sent += o.chunks_sent;
        self.runs_with_install += o.runs_with_install;
        self.lease_runs += o.lease_runs;
        self.follower_read_requests += o.follower_read_requests;
    }
}

impl fmt::Display for RunStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "runs:              {}", self.runs)?;
        writeln!(
            f,
            "client commands:   {} ({} definite, {} unknown outcome, {} redirects followed, {} \
             pipelined)",
            self.commands, self.definite, self.unknown, self.redirects, self.pipelined
        )?;
        writeln!(
            f,
            "command latency:   mean {:.2} ms, max {:.1} ms (definite answers, simulated)",
            self.latency_us_sum as f64 / self.definite.max(1) as f64 / 1_000.0,
            self.latency_us_max as f64 / 1_000.0
        )?;
        writeln!(f, "entries committed: {}", self.committed)?;
        writeln!(
            f,
            "reads:             lease reads in {} runs, {} follower read-index requests",
            self.lease_runs, self.follower_read_requests
        )?;
        writeln!(
            f,
            "expiry:            {} writes and cas with an exptime, {} clock entries committed",
            self.expiring, self.clock_entries
        )?;
        writeln!(
            f,
            "snapshots:         {} made, {} installed ({} chunks sent; installs in {} of {} runs)",
            self.snapshots_made,
            self.snapshots_installed,
            self.chunks_sent,
            self.runs_with_install,
            self.runs
        )?;
        writeln!(
            f,
            "leaders elected:   {} ({} elections without a leader: split or lost votes)",
            self.leaders, self.leaderless_elections
        )?;
        writeln!(f, "messages sent:     {}", self.messages)?;
        writeln!(
            f,
            "events simulated:  {} (at most {} in one run)",
            self.events, self.events_max
        )?;
        writeln!(
            f,
            "simulated time:    {:.1} s (at most {:.1} s in one run)",
            self.sim_us as f64 / 1_000_000.0,
            self.sim_us_max as f64 / 1_000_000.0
        )?;
        writeln!(
            f,
            "checker states:    {} ({} histories inconclusive)",
            self.checker_states, self.checker_inconclusive
        )?;
        writeln!(f, "faults injected:   {}", self.faults.total())?;
        for kind in FaultKind::ALL {
            writeln!(f, "  {:<32} {}", kind.name(), self.faults.get(kind))?;
        }
        Ok(())
    }
}

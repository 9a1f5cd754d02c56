//! What a failed run reports: which check failed, the detail, and how to replay it.

use std::fmt;

use crate::scenario::Profile;

/// Trace lines shown in a failure report by default.
pub const REPORT_TRACE_LINES: usize = 60;

/// The checks a run can fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Check {
    /// Two leaders in one term.
    ElectionSafety,
    /// A node granted its vote to two candidates in one term.
    VoteSafety,
    /// Two logs hold the same index and term with different entries or different prefixes.
    LogMatching,
    /// A new leader lacks an entry committed before its term.
    LeaderCompleteness,
    /// Two nodes applied different entries at one index.
    StateMachineSafety,
    /// A live node's commit index went down.
    CommitMonotonic,
    /// A committed entry is no longer durable on a majority, or was truncated.
    CommittedLost,
    /// The core broke the driver contract of its crate documentation (non-contiguous writes,
    /// commits out of order, a recovered state it refuses, ...).
    CoreContract,
    /// The core panicked.
    CorePanic,
    /// A node installed a snapshot older than what it had applied.
    SnapshotRollback,
    /// The client history is not linearizable.
    Linearizability,
    /// After every fault healed, the cluster did not elect a leader, finish the clients'
    /// commands or converge in time.
    Liveness,
    /// The run used up its event budget ([`crate::RunOptions::events_max`]) before it ended:
    /// something (the cluster or the harness) keeps scheduling work without making progress,
    /// such as messages or timers bouncing microseconds apart.
    Budget,
    /// A client's pipelined read did not see a write the same connection made before it (the
    /// session guarantee the driver's read barrier exists for).
    SessionOrder,
    /// The simulator found itself in a state it does not expect (a bug in the simulator).
    Harness,
}

impl Check {
    /// A short name for reports.
    pub fn name(self) -> &'static str {
        match self {
            Check::ElectionSafety => "election safety",
            Check::VoteSafety => "one vote per term",
            Check::LogMatching => "log matching",
            Check::LeaderCompleteness => "leader completeness",
            Check::StateMachineSafety => "state-machine safety",
            Check::CommitMonotonic => "commit index never decreases",
            Check::CommittedLost => "nothing committed is lost",
            Check::CoreContract => "core driver contract",
            Check::CorePanic => "core panicked",
            Check::SnapshotRollback => "a snapshot never rolls a node back",
            Check::Linearizability => "linearizability",
            Check::Liveness => "liveness",
            Check::Budget => "event budget",
            Check::SessionOrder => "pipelined read sees the connection's writes",
            Check::Harness => "simulator harness",
        }
    }
}

impl fmt::Display for Check {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A check failed: what, and the detail. Carried up to the run, which adds the seed and trace.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{check}: {detail}")]
pub struct Violation {
    /// The check.
    pub check: Check,
    /// What exactly went wrong.
    pub detail: String,
}

impl Violation {
    /// A violation of `check`.
    pub fn new(check: Check, detail: impl Into<String>) -> Violation {
        Violation {
            check,
            detail: detail.into(),
        }
    }
}

/// A failed run: everything needed to understand and replay it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// The profile.
    pub profile: Profile,
    /// The seed.
    pub seed: u64,
    /// What failed.
    pub violation: Violation,
    /// The scenario, in one line.
    pub scenario: String,
    /// When it failed (simulated), in a readable form.
    pub at: String,
    /// The last trace lines before the failure.
    pub trace_tail: Vec<String>,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "FAILED seed {} (profile {}) at {}: {}",
            self.seed, self.profile, self.at, self.violation
        )?;
        writeln!(f, "scenario: {}", self.scenario)?;
        writeln!(
            f,
            "replay:   cargo run --profile sim -p sim -- --profile {} --seed {} --trace",
            self.profile, self.seed
        )?;
        writeln!(f, "last {} trace lines:", self.trace_tail.len())?;
        for line in &self.trace_tail {
            writeln!(f, "  {line}")?;
        }
        Ok(())
    }
}

//! The linearizability checker for raftfs client histories.
//!
//! A history is linearizable when every operation can be given a point between its invocation
//! and its completion such that, applied one after another at those points, the raftfs store
//! (docs/protocol.md) answers exactly what the clients were told. [`check`] decides that in three steps:
//!
//! 1. Every reply must fit its command (a read never answers `OK 5`).
//! 2. Whole-history checks on versions, which come from one store-wide counter and so tie files
//!    together: no version is reported twice, no file is seen at a version given to another file,
//!    and a version observed before a mutation was invoked is smaller than the version the
//!    mutation reports.
//! 3. One search per file (P-compositionality: every command names one file, so apart from the
//!    shared counter the history is linearizable exactly when each file's sub-history is):
//!    Wing & Gong's search with Lowe's memoisation of (linearized set, state) configurations, as
//!    Porcupine does it, within a budget of [`SEARCH_STATES_MAX`] configurations per file.
//!
//! A violation comes back as a [`Violation`] holding a short excerpt: the earliest reply that
//! nothing explains, the few operations that prove it, and the longest linearization found.
//!
//! # Operations of unknown outcome
//! A mutation whose client gave up or got `ERR_INTERNAL` may have taken effect at any point
//! after its invocation, or never: it is treated as completing infinitely late and need not be
//! linearized at all. A read of unknown outcome tells nothing and is ignored. The version such a
//! mutation got was never seen, so the model keeps only a lower bound for it (strictly above the
//! file's previous version, and none of the versions reported anywhere in the history), which a
//! later read, cas or `ERR_VERSION` pins to a number.
//!
//! # Expiry
//! A file written with EXPTIME `e > 0` expires when the replicated clock (the largest stamp of a
//! leader's wall clock in the log so far) reaches the clock at its write plus `e` seconds. The
//! history's [`ClockBound`](crate::history::ClockBound) says how far any member's wall clock
//! could read ahead of or behind real time, so for each version written with an EXPTIME the
//! model knows the earliest time an operation could find it gone (see `model`): completed no
//! earlier than `invoke(write) + e - (ahead + behind)`. From the first operation in the
//! linearization that finds it gone (`ERR_FILE_NOT_FOUND` to a read, cas or delete) the file stays
//! gone until the next successful write or cas: the clock never goes back. A read of a version
//! reports `EXPTIME` 1 to `e` if it was written with one, else 0. A mutation of unknown outcome
//! with an EXPTIME is handled the same way (its invocation is known). Without a clock bound, an
//! expiring version may be found gone at any point after its write.
//!
//! # What the model relaxes
//! It never rejects a linearizable history; it accepts some that are not, in these ways only:
//! - Expiry is checked for being monotone, not for being timely: a file may be found live however
//!   long after it should have expired (the clock advances only as the log does, and a leader
//!   may be cut off), and found gone as early as the bound on every member's clock allows, the
//!   same bound for every write, though the clock of a write accepted by a member with an
//!   accurate clock was tighter.
//! - `EXPTIME` in a read is checked against the range `1..=e`, not against how long ago the
//!   version was written.
//! - Clocks of different files are not compared: the replicated clock is one for the whole
//!   store, so a file found expired at some point bounds the clock at every later point for
//!   every other file, but each file is searched on its own (as for versions, below).
//! - Versions of different files are compared only in step 2: for operations ordered in real
//!   time, and for uniqueness. The order of versions given by *concurrent* operations on
//!   different files is not checked against what those operations observed: if writes of `f`
//!   and `g` overlap, `f` gets 6 and `g` gets 5 (so `g` was written first), a read of `f` that
//!   saw 6 completes, and a later read of `g` finds no file, each file's history is fine and the
//!   checker accepts, though no single order explains it. Catching that needs one search over
//!   all files at once, which is what partitioning avoids.
//! - Likewise the version of a mutation of unknown outcome is bounded by its own file's
//!   versions and kept off every reported version, but not ordered against other files'.
//! - Versions need only grow: the model never assumes the counter steps by exactly one.
//! - Equal times count as concurrent: an operation precedes another only if it completed
//!   strictly before the other was invoked.
//! - That commands pipelined on one connection take effect in the order sent (docs/protocol.md) is not
//!   checked: the history records clients, not connections, and orders operations by time.
//!
//! # Cost
//! Memoisation bounds the search by the distinct configurations, which for the histories the
//! simulator produces (a handful of concurrent clients) grow about linearly: 1 to 3 per
//! operation for 2,000 operations on one file. Operations of unknown outcome stay open to the
//! end and would multiply configurations, so the search linearizes one only right before an
//! operation that observes its effect, tries only the earliest of interchangeable ones, and
//! tries definite operations first (see `model::Guard` and `search`). A file that still needs
//! more than [`SEARCH_STATES_MAX`] configurations makes the answer [`CheckResult::Inconclusive`].

mod explain;
mod global;
mod model;
mod partition;
mod search;
mod violation;

pub use explain::EXPLAIN_STATES_MAX;
pub use model::VersionBound;
pub use violation::{FileState, LinearizedStep, PREFIX_SHOWN_MAX, Violation, ViolationKind};

use crate::history::History;
use fs::Name;
use model::Taken;
use partition::ImpossibleReply;
use search::{Detail, SearchResult};

/// Configurations the search may explore for one file before answering
/// [`CheckResult::Inconclusive`]. Typical simulator histories need 1 to 3 per operation (a
/// 2,000-operation history over 10 files: a few hundred per file; on one file: under 6,000);
/// this leaves a wide margin while keeping a pathological file to well under a second and some
/// tens of MB.
pub const SEARCH_STATES_MAX: usize = 200_000;

/// What the search spent on a history.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Files in the history.
    pub files: usize,
    /// Configurations explored, over all files.
    pub states: usize,
    /// Configurations explored for the most expensive file: compare with the budget.
    pub most_states_one_file: usize,
}

/// The verdict on a history that shows no violation.
#[must_use]
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CheckResult {
    /// Every file's operations have a linearization.
    Linearizable(Stats),
    /// No violation was found, but the search gave up on a file: its history is too
    /// concurrent to decide within the budget.
    Inconclusive {
        /// The first file the search gave up on.
        file: Name,
        /// What the search spent.
        stats: Stats,
    },
}

impl CheckResult {
    /// Whether the history was shown to be linearizable.
    pub fn is_linearizable(&self) -> bool {
        matches!(self, CheckResult::Linearizable(_))
    }

    /// What the search spent.
    pub fn stats(&self) -> Stats {
        match self {
            CheckResult::Linearizable(stats) | CheckResult::Inconclusive { stats, .. } => *stats,
        }
    }
}

/// Checks `history` with the default budget of [`SEARCH_STATES_MAX`] configurations per file.
pub fn check(history: &History) -> Result<CheckResult, Violation> {
    check_with_budget(history, SEARCH_STATES_MAX)
}

/// Checks `history`, exploring at most `states_max` configurations per file. A violation found
/// in any file is returned even if the search gave up on another.
pub fn check_with_budget(history: &History, states_max: usize) -> Result<CheckResult, Violation> {
    let partitions = partition::partition(history)
        .map_err(|ImpossibleReply(op)| Violation::impossible_reply(&op))?;
    let given = global::check(history)?;
    let mut stats = Stats {
        files: partitions.len(),
        ..Stats::default()
    };
    // Every version reported is taken, for every file: its own are all definite here.
    let taken = Taken::new(given.keys().copied());
    let mut gave_up = None;
    for part in &partitions {
        let states = match search::search(&part.ops, &taken, states_max, Detail::Verdict) {
            SearchResult::Linearizable { states } => states,
            SearchResult::NotLinearizable { .. } => {
                return Err(explain::explain(history, part, &given, states_max));
            }
            SearchResult::Inconclusive { states } => {
                gave_up.get_or_insert_with(|| part.name.clone());
                states
            }
        };
        stats.states += states;
        stats.most_states_one_file = stats.most_states_one_file.max(states);
    }
    Ok(match gave_up {
        None => CheckResult::Linearizable(stats),
        Some(file) => CheckResult::Inconclusive { file, stats },
    })
}

//! Putting a node's disk back together at start: the newest snapshot and the log entries the
//! WAL holds, reconciled into what the Raft core is started from. Both runtimes (the server
//! and the simulator) start through here.
//!
//! A crash can leave the log and the snapshot out of step in three ways, all harmless:
//! - entries at or below the snapshot's index remain (a compaction or install was cut short,
//!   or entries are kept behind the snapshot on purpose): they are covered, and skipped;
//! - the log holds the snapshot's index with another term (an install replaced a conflicting
//!   log and the crash came before the log was fixed): everything after the snapshot belongs to
//!   the discarded history and must go ([`Reconciled::truncate_from`]);
//! - the log ends before the snapshot's index: the snapshot is the whole state.
//!
//! A log that starts after the snapshot's next index (or after 1 without a snapshot) has lost
//! entries nobody else may have: the node refuses to start.

use raft::{Entry, HardState, LogIndex, Recovered, Term};

/// What the core starts from, and what the runtime must fix in its log first (durably, in
/// this order: truncate, then discard), so that the log continues right after the snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reconciled {
    /// For `raft::Node::new`.
    pub recovered: Recovered,
    /// Drop the WAL's entries from this index on: they follow a conflicting entry at the
    /// snapshot's index, so they belong to a history the snapshot replaced.
    pub truncate_from: Option<LogIndex>,
    /// Drop the WAL's entries up to and including this index (the snapshot covers them), so
    /// its next entry is the one after the snapshot.
    pub discard_upto: Option<LogIndex>,
}

/// Why a disk cannot be started from.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecoveryError {
    /// Entries between the snapshot (or the start) and the log's first entry are missing.
    #[error(
        "the log starts at index {first} but the snapshot covers only up to {covered}: entries in between are missing"
    )]
    Gap {
        /// The log's first index.
        first: LogIndex,
        /// The last index the snapshot covers (0 without one).
        covered: LogIndex,
    },
}

/// Reconciles the newest snapshot (`(index, term)`, if any) with the log's entries (`first`
/// is the WAL's first index, given separately because the log may be empty).
pub fn reconcile(
    hard_state: HardState,
    snapshot: Option<(LogIndex, Term)>,
    first: LogIndex,
    entries: Vec<Entry>,
) -> Result<Reconciled, RecoveryError> {
    let (covered, covered_term) = snapshot.unwrap_or((LogIndex(0), Term(0)));
    let first_held = entries.first().map_or(first, |e| e.index);
    if first_held.0 > covered.0 + 1 {
        return Err(RecoveryError::Gap {
            first: first_held,
            covered,
        });
    }
    let mut truncate_from = None;
    let mut kept = Vec::with_capacity(entries.len());
    let mut conflict = false;
    for entry in entries {
        if entry.index < covered {
            continue;
        }
        if entry.index == covered {
            conflict = snapshot.is_some() && entry.term != covered_term;
            continue;
        }
        if conflict {
            truncate_from = Some(entry.index);
            break;
        }
        kept.push(entry);
    }
    let discard_upto = (snapshot.is_some() && first <= covered).then_some(covered);
    Ok(Reconciled {
        recovered: Recovered {
            hard_state,
            snapshot,
            entries: kept,
            // The caller adds the configuration the snapshot holds.
            membership: None,
        },
        truncate_from,
        discard_upto,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use raft::Payload;

    fn entries(range: std::ops::RangeInclusive<u64>, term: u64) -> Vec<Entry> {
        range
            .map(|i| Entry {
                index: LogIndex(i),
                term: Term(term),
                payload: Payload::Noop,
            })
            .collect()
    }

    fn indexes(r: &Reconciled) -> Vec<u64> {
        r.recovered.entries.iter().map(|e| e.index.0).collect()
    }

    #[test]
    fn without_a_snapshot_the_log_is_taken_as_it_is() {
        let r = reconcile(HardState::default(), None, LogIndex(1), entries(1..=3, 1));
        let r = r.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(indexes(&r), vec![1, 2, 3]);
        assert_eq!((r.truncate_from, r.discard_upto), (None, None));
    }

    #[test]
    fn entries_covered_by_the_snapshot_are_skipped() {
        let snap = Some((LogIndex(5), Term(1)));
        let r = reconcile(HardState::default(), snap, LogIndex(2), entries(2..=8, 1));
        let r = r.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(indexes(&r), vec![6, 7, 8]);
        assert_eq!((r.truncate_from, r.discard_upto), (None, Some(LogIndex(5))));
    }

    #[test]
    fn a_log_conflicting_at_the_snapshot_index_is_cut_after_it() {
        let snap = Some((LogIndex(5), Term(3)));
        let r = reconcile(HardState::default(), snap, LogIndex(1), entries(1..=8, 2));
        let r = r.unwrap_or_else(|e| panic!("{e}"));
        assert!(indexes(&r).is_empty());
        assert_eq!(r.truncate_from, Some(LogIndex(6)));
        assert_eq!(r.discard_upto, Some(LogIndex(5)));
    }

    #[test]
    fn a_log_ending_before_the_snapshot_leaves_the_snapshot_alone() {
        let snap = Some((LogIndex(9), Term(3)));
        let r = reconcile(HardState::default(), snap, LogIndex(1), entries(1..=4, 2));
        let r = r.unwrap_or_else(|e| panic!("{e}"));
        assert!(indexes(&r).is_empty());
        // The log must continue at 10: everything up to 9 goes.
        assert_eq!((r.truncate_from, r.discard_upto), (None, Some(LogIndex(9))));
    }

    #[test]
    fn a_gap_between_the_snapshot_and_the_log_refuses_to_start() {
        let snap = Some((LogIndex(3), Term(1)));
        let r = reconcile(HardState::default(), snap, LogIndex(6), entries(6..=8, 1));
        assert_eq!(
            r,
            Err(RecoveryError::Gap {
                first: LogIndex(6),
                covered: LogIndex(3)
            })
        );
        let r = reconcile(HardState::default(), None, LogIndex(2), entries(2..=3, 1));
        assert!(r.is_err());
        // An empty log whose prefix was discarded, without the snapshot that covered it.
        let r = reconcile(HardState::default(), None, LogIndex(7), Vec::new());
        assert!(r.is_err());
    }
}

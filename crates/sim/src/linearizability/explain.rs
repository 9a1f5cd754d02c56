//! Shrinking a file's non-linearizable history to the few operations that show why.
//!
//! Two sound reductions, each keeping the history non-linearizable (so the excerpt is a proof on
//! its own):
//! 1. A cut at time `t`: operations that completed by `t` keep their replies, the others invoked
//!    by `t` get unknown outcomes (reads are dropped), and later ones are left out. Every
//!    linearization of the whole history, stopped before its first operation invoked after `t`,
//!    linearizes the cut, so a non-linearizable cut proves the whole history is too; and cuts
//!    only grow with `t`, so a bisection finds the earliest failing one. Its last completion is
//!    the culprit: the first reply that nothing can explain.
//! 2. Setting a reply aside (the operation took effect within its interval or not at all, with
//!    whatever version; a read is dropped) only admits more linearizations, so whatever stays
//!    non-linearizable after setting others' replies aside still proves the violation. Blocks of
//!    operations are set aside greedily, halving the block size, in the manner of delta
//!    debugging. An operation set aside keeps its deadline, so unlike an unknown outcome it
//!    cannot multiply the configurations of the rest of the history.
//!
//! Every search here gets a share of [`EXPLAIN_STATES_MAX`]; a search that runs out counts as
//! "not shown to fail", which can only make the excerpt larger, never wrong.

use super::model::{FileModel, Given, Taken};
use super::partition::{PartOp, Partition};
use super::search::{Detail, SearchResult, search};
use super::violation::{Excerpt, FileState, LinearizedStep, Violation};
use crate::history::{History, OpId, Outcome};
use fs::Name;
use std::collections::HashSet;

/// Configurations all the searches of one explanation may explore together: a violation is
/// rare and worth a fraction of a second, but a pathological one must not stall a test run.
pub const EXPLAIN_STATES_MAX: usize = 1_000_000;

/// Configurations one relaxation attempt may explore: relaxing many mutations at once can make
/// a search expensive, and such an attempt is better abandoned (and split) than finished.
const ATTEMPT_STATES_MAX: usize = 50_000;

/// Builds the violation report for `partition`, whose search failed.
pub(crate) fn explain(
    history: &History,
    partition: &Partition,
    given: &Given,
    states_max: usize,
) -> Violation {
    let mut budget = Budget {
        given,
        file: &partition.name,
        left: EXPLAIN_STATES_MAX,
    };
    let (horizon, cut_ops, longest) = earliest_failing_cut(partition, states_max, &mut budget)
        .unwrap_or_else(|| (None, partition.ops.clone(), Vec::new()));
    let culprits: Vec<OpId> = cut_ops
        .iter()
        .filter(|op| horizon.is_some() && op.complete == horizon)
        .map(|op| op.id)
        .collect();
    let core = set_aside(cut_ops.clone(), &culprits, &mut budget);
    let operations: Vec<_> = core
        .iter()
        .filter(|op| op.must_take_effect())
        .filter_map(|op| history.get(op.id).cloned())
        .collect();
    let longest_prefix = longest
        .iter()
        .filter_map(|&(index, state)| {
            let op = cut_ops.get(index)?;
            let operation = history.get(op.id)?.clone();
            // Completed after the horizon: in the cut its reply did not count.
            let aside = !op.is_definite() && matches!(operation.outcome(), Outcome::Ok(_));
            let state = file_state(partition, state);
            Some(LinearizedStep::new(operation, state, aside))
        })
        .collect();
    Violation::not_linearizable(
        &partition.name,
        Excerpt {
            relaxed: cut_ops.len().saturating_sub(operations.len()),
            operations,
            culprits,
            horizon,
            longest_prefix,
            clock: history
                .clock_bound()
                .filter(|_| partition.ops.iter().any(|op| op.effect.expires())),
        },
    )
}

/// What the explanation may still spend, and what its searches need.
struct Budget<'a> {
    given: &'a Given,
    file: &'a Name,
    left: usize,
}

impl Budget<'_> {
    /// Runs a search with at most `cap` configurations (and what is left), and charges it.
    fn search(&mut self, ops: &[PartOp], cap: usize, detail: Detail) -> SearchResult {
        // A version this file's operations reported counts only while its reply is kept.
        let elsewhere = self.given.iter().filter(|(_, owner)| *owner != self.file);
        let taken = Taken::new(
            elsewhere
                .map(|(version, _)| *version)
                .chain(PartOp::versions_given(ops)),
        );
        let result = search(ops, &taken, cap.min(self.left), detail);
        let spent = match &result {
            SearchResult::Linearizable { states }
            | SearchResult::NotLinearizable { states, .. }
            | SearchResult::Inconclusive { states } => *states,
        };
        self.left = self.left.saturating_sub(spent);
        result
    }
}

/// A longest linearization found: (index into the searched operations, state after).
type Trace = Vec<(usize, FileModel)>;

/// The earliest cut that is not linearizable: its horizon, operations and longest linearization.
fn earliest_failing_cut(
    partition: &Partition,
    states_max: usize,
    budget: &mut Budget<'_>,
) -> Option<(Option<u64>, Vec<PartOp>, Trace)> {
    let mut times: Vec<u64> = partition.ops.iter().filter_map(|op| op.complete).collect();
    times.sort_unstable();
    times.dedup();
    let (mut low, mut high) = (0, times.len());
    let mut found = None;
    // Invariant: the cut at times[high] fails (or high == len: only the whole history is known
    // to fail); cuts before times[low] were not shown to fail.
    while low < high {
        let mid = low + (high - low) / 2;
        let ops = cut(&partition.ops, times[mid]);
        match budget.search(&ops, states_max, Detail::Longest) {
            SearchResult::NotLinearizable { longest, .. } => {
                found = Some((Some(times[mid]), ops, longest));
                high = mid;
            }
            SearchResult::Linearizable { .. } | SearchResult::Inconclusive { .. } => low = mid + 1,
        }
    }
    if found.is_none() {
        // Every cut ran out of budget: fall back on the whole history, without a horizon.
        let ops = partition.ops.clone();
        if let SearchResult::NotLinearizable { longest, .. } =
            budget.search(&ops, states_max, Detail::Longest)
        {
            found = Some((None, ops, longest));
        }
    }
    found
}

/// The history as seen at time `t` (see the module documentation).
fn cut(ops: &[PartOp], t: u64) -> Vec<PartOp> {
    ops.iter()
        .filter(|op| op.invoke <= t)
        .filter_map(|op| match op.complete {
            Some(complete) if complete <= t => Some(op.clone()),
            _ => op.unknown(),
        })
        .collect()
}

/// Sets aside the replies of as many operations of `ops` (other than `keep`) as it can while
/// the history stays non-linearizable; returns the operations as last shown to fail.
fn set_aside(mut ops: Vec<PartOp>, keep: &[OpId], budget: &mut Budget<'_>) -> Vec<PartOp> {
    // Reads first (dropping them is cheapest for the search), latest first within each group.
    let mut candidates: Vec<OpId> = {
        let mut certain: Vec<&PartOp> = ops
            .iter()
            .filter(|op| op.must_take_effect() && !keep.contains(&op.id))
            .collect();
        certain.sort_by_key(|op| {
            let is_read = op.effect.relaxed().is_none();
            (!is_read, std::cmp::Reverse(op.complete), op.id)
        });
        certain.iter().map(|op| op.id).collect()
    };
    let mut block = candidates.len();
    while block > 0 && budget.left > 0 {
        let mut start = 0;
        while start < candidates.len() && budget.left > 0 {
            let end = (start + block).min(candidates.len());
            let chosen: HashSet<OpId> = candidates[start..end].iter().copied().collect();
            let attempt: Vec<PartOp> = ops
                .iter()
                .filter_map(|op| {
                    if chosen.contains(&op.id) {
                        op.optional()
                    } else {
                        Some(op.clone())
                    }
                })
                .collect();
            let result = budget.search(&attempt, ATTEMPT_STATES_MAX, Detail::Verdict);
            if matches!(result, SearchResult::NotLinearizable { .. }) {
                ops = attempt;
                candidates.drain(start..end);
            } else {
                start = end;
            }
        }
        block /= 2;
    }
    ops
}

/// The public form of a model state.
fn file_state(partition: &Partition, state: FileModel) -> FileState {
    let content = state
        .content
        .and_then(|id| partition.contents.get(id as usize).cloned());
    match content {
        Some(content) => FileState::Present {
            version: state.last,
            content,
            exptime_s: state.expiry.map_or(0, |expiry| expiry.exptime_s),
        },
        None => FileState::Absent {
            last_version: state.last,
        },
    }
}

//! Checks on the whole history that the per-file search cannot make, because versions come from
//! one counter shared by every file. Each check only uses facts every linearization must
//! respect, so none can raise a false alarm:
//! - a version is given once: two successful mutations never report the same version;
//! - a version belongs to the file it was given to: no other file is ever seen at it;
//! - versions grow in commit order: a version observed by an operation that completed before a
//!   mutation was invoked is smaller than the version that mutation reports.

use super::model::Given;
use super::violation::{Violation, ViolationKind};
use crate::history::{History, Operation, Outcome};
use fs::{Command, Name, Reply};
use std::collections::HashMap;

/// Runs every whole-history check; the first violation found is returned, else the versions
/// acknowledged in the history.
pub(crate) fn check(history: &History) -> Result<Given, Violation> {
    let given = versions_given(history)?;
    versions_stay_on_their_file(history, &given)?;
    versions_grow_in_real_time(history)?;
    Ok(given
        .into_iter()
        .map(|(version, op)| (version, op.command().name().clone()))
        .collect())
}

/// The version a successful write or cas reports, if `op` is one.
fn version_given(op: &Operation) -> Option<u64> {
    match (op.command(), op.outcome()) {
        (Command::Write { .. } | Command::Cas { .. }, Outcome::Ok(Reply::Written { version })) => {
            Some(*version)
        }
        _ => None,
    }
}

/// The versions `op` saw its file at: the one a read returned, the one an `ERR_VERSION` named,
/// the one a successful cas matched, and the one a successful write or cas gave.
fn versions_observed(op: &Operation) -> impl Iterator<Item = u64> {
    let (seen, given) = match (op.command(), op.outcome()) {
        (Command::Read { .. }, Outcome::Ok(Reply::Contents { version, .. })) => {
            (Some(*version), None)
        }
        (Command::Cas { .. }, Outcome::Ok(Reply::VersionMismatch { current })) => {
            (Some(*current), None)
        }
        (Command::Cas { version, .. }, Outcome::Ok(Reply::Written { version: given })) => {
            (Some(*version), Some(*given))
        }
        (Command::Write { .. }, Outcome::Ok(Reply::Written { version })) => (None, Some(*version)),
        _ => (None, None),
    };
    seen.into_iter().chain(given)
}

/// Maps each version given to the operation that reported it, failing on a duplicate.
fn versions_given(history: &History) -> Result<HashMap<u64, &Operation>, Violation> {
    let mut given: HashMap<u64, &Operation> = HashMap::new();
    for op in history.operations() {
        let Some(version) = version_given(op) else {
            continue;
        };
        if let Some(first) = given.insert(version, op) {
            return Err(Violation::pair(
                op.command().name(),
                ViolationKind::DuplicateVersion { version },
                first,
                op,
            ));
        }
    }
    Ok(given)
}

/// Fails when a file is seen at a version that was given to another file.
fn versions_stay_on_their_file(
    history: &History,
    given: &HashMap<u64, &Operation>,
) -> Result<(), Violation> {
    for op in history.operations() {
        let name = op.command().name();
        for version in versions_observed(op) {
            let Some(owner) = given.get(&version) else {
                continue;
            };
            let owner_name: &Name = owner.command().name();
            if owner_name != name {
                return Err(Violation::pair(
                    name,
                    ViolationKind::VersionOfOtherFile {
                        version,
                        owner: owner_name.clone(),
                    },
                    owner,
                    op,
                ));
            }
        }
    }
    Ok(())
}

/// Fails when a version observed before a mutation was invoked is not smaller than the version
/// that mutation reports.
fn versions_grow_in_real_time(history: &History) -> Result<(), Violation> {
    // (completion time, version, operation) of every observation, by completion time.
    let mut observed: Vec<(u64, u64, &Operation)> = history
        .operations()
        .iter()
        .filter_map(|op| Some((op.complete()?, op)))
        .flat_map(|(complete, op)| versions_observed(op).map(move |v| (complete, v, op)))
        .collect();
    observed.sort_unstable_by_key(|&(complete, version, op)| (complete, version, op.id()));
    let mut mutations: Vec<(u64, u64, &Operation)> = history
        .operations()
        .iter()
        .filter_map(|op| Some((op.invoke(), version_given(op)?, op)))
        .collect();
    mutations.sort_unstable_by_key(|&(invoke, _, op)| (invoke, op.id()));

    // Sweep mutations by invocation, keeping the largest version observed strictly before.
    let mut highest: Option<(u64, &Operation)> = None;
    let mut next = observed.iter().peekable();
    for &(invoke, version, op) in &mutations {
        while let Some(&&(complete, seen, observer)) = next.peek() {
            if complete >= invoke {
                break;
            }
            if highest.is_none_or(|(best, _)| seen > best) {
                highest = Some((seen, observer));
            }
            next.next();
        }
        let Some((seen, observer)) = highest else {
            continue;
        };
        if seen >= version {
            return Err(Violation::pair(
                op.command().name(),
                ViolationKind::VersionsOutOfOrder {
                    earlier: seen,
                    later: version,
                },
                observer,
                op,
            ));
        }
    }
    Ok(())
}

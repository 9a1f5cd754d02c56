//! Guards against a pruned search that loses linearizations: an independent brute-force
//! linearizability check of docs/protocol.md's semantics, which runs the reference store over every
//! order of a small history, and is the ground truth the checker's verdicts are compared with.

use super::generate::{Spec, Store};
use fs::Reply;

/// Most operations a brute-force check is run on: it tries every order.
pub const BRUTE_OPS_MAX: usize = 8;

/// Whether some order of the operations, respecting real time, makes the reference store give
/// every definite reply; unknown mutations may take effect anywhere after their invocation, or
/// not at all; unknown reads are ignored. Versions only have to grow (docs/protocol.md): a mutation may
/// take any version above the last one given.
pub fn linearizable(specs: &[Spec]) -> bool {
    assert!(specs.len() <= BRUTE_OPS_MAX);
    let ops: Vec<&Spec> = specs
        .iter()
        .filter(|op| op.reply.is_some() || op.command.is_mutation())
        .collect();
    // A version above every one mentioned is as good as any larger one.
    let highest = specs
        .iter()
        .filter_map(|op| match op.reply.as_ref()? {
            Reply::Written { version }
            | Reply::Contents { version, .. }
            | Reply::VersionMismatch { current: version } => Some(*version),
            _ => None,
        })
        .max()
        .unwrap_or(0);
    let mut used = vec![false; ops.len()];
    search(&ops, highest, &mut used, &Store::default())
}

fn search(ops: &[&Spec], highest: u64, used: &mut [bool], store: &Store) -> bool {
    if ops
        .iter()
        .zip(used.iter())
        .all(|(op, &u)| u || op.reply.is_none())
    {
        return true;
    }
    for i in 0..ops.len() {
        if used[i] {
            continue;
        }
        // A definite operation that completed before this one was invoked must come first.
        let blocked = ops.iter().enumerate().any(|(j, other)| {
            !used[j] && j != i && other.reply.is_some() && other.complete < ops[i].invoke
        });
        if blocked {
            continue;
        }
        for step in steps(ops[i], store.counter(), highest) {
            let mut next = store.clone();
            let reply = next.apply(&ops[i].command, step);
            if ops[i]
                .reply
                .as_ref()
                .is_some_and(|expected| *expected != reply)
            {
                continue;
            }
            used[i] = true;
            if search(ops, highest, used, &next) {
                return true;
            }
            used[i] = false;
        }
    }
    false
}

/// The counter steps worth trying for `op`: the one its reply names, or any up to one past the
/// highest version mentioned for an unknown outcome.
fn steps(op: &Spec, counter: u64, highest: u64) -> Vec<u64> {
    match &op.reply {
        Some(Reply::Written { version }) if *version > counter => vec![version - counter],
        Some(Reply::Written { .. }) => vec![],
        Some(_) => vec![1],
        None => (1..=highest.saturating_sub(counter) + 1).collect(),
    }
}

//! Splitting a history into one sub-history per file (P-compositionality: every command names
//! one file, so a history is linearizable exactly when each file's sub-history is, but for the
//! store-wide version counter, which `global` covers), each operation turned into its [`Effect`]
//! on the file model.

use super::model::{CONTENT_NEVER_WRITTEN, ContentId, Effect, Expiry};
use crate::history::{ClockBound, History, OpId, Operation, Outcome};
use bytes::Bytes;
use fs::{Command, Name, Reply};
use std::collections::HashMap;

/// One operation of a partition.
#[derive(Clone, Debug)]
pub(crate) struct PartOp {
    /// The operation in the history.
    pub(crate) id: OpId,
    /// When it was invoked.
    pub(crate) invoke: u64,
    /// When it completed, or `None` when its outcome is unknown (completion infinitely late).
    pub(crate) complete: Option<u64>,
    /// What it does to the file if linearized.
    pub(crate) effect: Effect,
    /// Whether it may also be linearized without effect (an operation whose reply the
    /// explanation set aside, yet which happened within its interval if at all).
    pub(crate) optional: bool,
}

impl PartOp {
    /// Whether the operation must be linearized before its completion (it has one).
    pub(crate) fn is_definite(&self) -> bool {
        self.complete.is_some()
    }

    /// Whether linearizing the operation always applies its effect, as the client was told.
    pub(crate) fn must_take_effect(&self) -> bool {
        self.is_definite() && !self.optional
    }

    /// The versions the definite operations among `ops` reported.
    pub(crate) fn versions_given(ops: &[PartOp]) -> impl Iterator<Item = u64> + '_ {
        ops.iter().filter_map(|op| op.effect.version_given())
    }

    /// The same operation with its outcome unknown (taking effect any time after its
    /// invocation, or never), or `None` for a read (which is dropped).
    pub(crate) fn unknown(&self) -> Option<PartOp> {
        Some(PartOp {
            effect: self.effect.relaxed()?,
            complete: None,
            optional: false,
            ..self.clone()
        })
    }

    /// The same operation with its reply set aside: it took effect within its interval or not
    /// at all. `None` for a read (which is dropped).
    pub(crate) fn optional(&self) -> Option<PartOp> {
        if !self.is_definite() {
            return Some(self.clone());
        }
        Some(PartOp {
            effect: self.effect.relaxed()?,
            optional: true,
            ..self.clone()
        })
    }
}

/// The operations on one file, ordered by invocation.
#[derive(Clone, Debug)]
pub(crate) struct Partition {
    /// The file.
    pub(crate) name: Name,
    /// Its operations, ordered by (invoke, id); reads of unknown outcome are left out.
    pub(crate) ops: Vec<PartOp>,
    /// Every content a write or cas on the file carried, indexed by [`ContentId`].
    pub(crate) contents: Vec<Bytes>,
}

/// A reply its command can never receive (for instance a read answered `OK 5`).
#[derive(Clone, Debug)]
pub(crate) struct ImpossibleReply(pub(crate) Box<Operation>);

/// Splits `history` into per-file partitions, ordered by file name so that results are
/// deterministic.
pub(crate) fn partition(history: &History) -> Result<Vec<Partition>, ImpossibleReply> {
    let mut by_name: HashMap<&Name, Vec<&Operation>> = HashMap::new();
    for op in history.operations() {
        by_name.entry(op.command().name()).or_default().push(op);
    }
    let mut partitions = by_name
        .into_iter()
        .map(|(name, ops)| build(name, &ops, history.clock_bound()))
        .collect::<Result<Vec<_>, _>>()?;
    partitions.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(partitions)
}

/// Builds one file's partition; `ops` are in history order (which is invocation-recording order).
fn build(
    name: &Name,
    ops: &[&Operation],
    clock: Option<ClockBound>,
) -> Result<Partition, ImpossibleReply> {
    let mut interner = Interner::default();
    // Intern every written content first, so a read's content gets an id only if it was written.
    for op in ops {
        if let Command::Write { content, .. } | Command::Cas { content, .. } = op.command() {
            interner.intern(content);
        }
    }
    let mut part_ops = Vec::with_capacity(ops.len());
    for op in ops {
        let Some(effect) = effect(op, &interner, clock)? else {
            continue;
        };
        let complete = match op.outcome() {
            Outcome::Ok(_) => Some(op.complete().unwrap_or(op.invoke())),
            Outcome::Unknown => None,
        };
        part_ops.push(PartOp {
            id: op.id(),
            invoke: op.invoke(),
            complete,
            effect,
            optional: false,
        });
    }
    part_ops.sort_by_key(|op| (op.invoke, op.id));
    Ok(Partition {
        name: name.clone(),
        ops: part_ops,
        contents: interner.contents,
    })
}

/// The effect of `op`, `None` for a read whose outcome is unknown, or an error when the reply
/// does not fit the command; `clock` bounds when an expiring version may be found gone.
fn effect(
    op: &Operation,
    interner: &Interner,
    clock: Option<ClockBound>,
) -> Result<Option<Effect>, ImpossibleReply> {
    let impossible = || ImpossibleReply(Box::new(op.clone()));
    // Only definite replies are looked at below, and those have a completion.
    let complete = op.complete().unwrap_or(op.invoke());
    let effect = match (op.command(), op.outcome()) {
        (Command::Read { .. }, Outcome::Unknown) => return Ok(None),
        (Command::Read { .. }, Outcome::Ok(reply)) => match reply {
            Reply::Contents {
                version,
                content,
                exptime_s,
            } => Effect::ReadFound {
                version: *version,
                content: interner.lookup(content),
                exptime_s: *exptime_s,
            },
            Reply::FileNotFound => Effect::ReadNotFound { complete },
            _ => return Err(impossible()),
        },
        (
            Command::Write {
                content, exptime_s, ..
            },
            outcome,
        ) => Effect::Write {
            version: match outcome {
                Outcome::Unknown => None,
                Outcome::Ok(Reply::Written { version }) => Some(*version),
                Outcome::Ok(_) => return Err(impossible()),
            },
            content: interner.lookup(content),
            expiry: Expiry::of(*exptime_s, op.invoke(), clock),
        },
        (
            Command::Cas {
                version: expected,
                content,
                exptime_s,
                ..
            },
            outcome,
        ) => {
            let (expected, content) = (*expected, interner.lookup(content));
            let expiry = Expiry::of(*exptime_s, op.invoke(), clock);
            match outcome {
                Outcome::Unknown => Effect::Cas {
                    expected,
                    content,
                    version: None,
                    expiry,
                },
                Outcome::Ok(Reply::Written { version }) => Effect::Cas {
                    expected,
                    content,
                    version: Some(*version),
                    expiry,
                },
                Outcome::Ok(Reply::VersionMismatch { current }) => Effect::CasMismatch {
                    expected,
                    current: *current,
                    content,
                    expiry,
                },
                Outcome::Ok(Reply::FileNotFound) => Effect::CasNotFound {
                    expected,
                    content,
                    expiry,
                    complete,
                },
                Outcome::Ok(_) => return Err(impossible()),
            }
        }
        (Command::Delete { .. }, outcome) => match outcome {
            Outcome::Unknown | Outcome::Ok(Reply::Deleted) => Effect::Delete,
            Outcome::Ok(Reply::FileNotFound) => Effect::DeleteNotFound { complete },
            Outcome::Ok(_) => return Err(impossible()),
        },
    };
    Ok(Some(effect))
}

/// Gives each distinct content of a file a small id.
#[derive(Default)]
struct Interner {
    ids: HashMap<Bytes, ContentId>,
    contents: Vec<Bytes>,
}

impl Interner {
    fn intern(&mut self, content: &Bytes) {
        if self.ids.contains_key(content) {
            return;
        }
        // A file with 2^32 - 1 distinct contents is far beyond any history the checker can
        // search; saturating keeps the ids valid (extra contents share the last id, which only
        // makes the model more permissive, never stricter).
        let id = ContentId::try_from(self.contents.len()).unwrap_or(CONTENT_NEVER_WRITTEN - 1);
        self.ids.insert(content.clone(), id);
        self.contents.push(content.clone());
    }

    fn lookup(&self, content: &Bytes) -> ContentId {
        self.ids
            .get(content)
            .copied()
            .unwrap_or(CONTENT_NEVER_WRITTEN)
    }
}

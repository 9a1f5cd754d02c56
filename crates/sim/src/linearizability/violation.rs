//! What the checker reports when a history is not linearizable: the file, what is wrong, and a
//! short excerpt of the history that shows it.

use super::model::VersionBound;
use crate::history::{ClockBound, DisplayContent, OpId, Operation};
use bytes::Bytes;
use fs::Name;
use std::fmt;

/// Most steps of the longest linearizable prefix shown when displaying a violation; the steps
/// just before the failure explain it, earlier ones are noise.
pub const PREFIX_SHOWN_MAX: usize = 12;

/// What is wrong with a history.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ViolationKind {
    /// A reply its command can never receive (a read answered `OK 5`, a write answered
    /// `ERR_VERSION`).
    ImpossibleReply,
    /// Two successful mutations report the same version.
    DuplicateVersion {
        /// The version reported twice.
        version: u64,
    },
    /// A file was seen at a version that was given to another file.
    VersionOfOtherFile {
        /// The version.
        version: u64,
        /// The file the version was given to.
        owner: Name,
    },
    /// A version observed by an operation that completed before a mutation was invoked is not
    /// smaller than the version that mutation reports.
    VersionsOutOfOrder {
        /// The version observed first.
        earlier: u64,
        /// The version reported by the later mutation.
        later: u64,
    },
    /// No order of the file's operations explains every reply.
    NotLinearizable,
}

/// A file's state in the model after some linearized operations.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FileState {
    /// The file does not exist.
    Absent {
        /// The version of its last successful write or cas (0 if never written); the next
        /// version must exceed it.
        last_version: VersionBound,
    },
    /// The file exists.
    Present {
        /// Its version.
        version: VersionBound,
        /// Its content.
        content: Bytes,
        /// The EXPTIME the version was written with, seconds (0: it never expires).
        exptime_s: u64,
    },
}

impl fmt::Display for FileState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FileState::Absent { last_version } => {
                write!(f, "absent (last version {last_version})")
            }
            FileState::Present {
                version,
                content,
                exptime_s,
            } => {
                write!(f, "{} at version {version}", DisplayContent(content))?;
                if *exptime_s > 0 {
                    write!(f, ", written with exptime {exptime_s}")?;
                }
                Ok(())
            }
        }
    }
}

/// One operation of a linearization, with the file's state after it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LinearizedStep {
    operation: Operation,
    state_after: FileState,
    reply_set_aside: bool,
}

impl LinearizedStep {
    pub(crate) fn new(
        operation: Operation,
        state_after: FileState,
        reply_set_aside: bool,
    ) -> LinearizedStep {
        LinearizedStep {
            operation,
            state_after,
            reply_set_aside,
        }
    }

    /// The operation (a mutation of unknown outcome appears here only if it took effect).
    pub fn operation(&self) -> &Operation {
        &self.operation
    }

    /// Whether the operation's reply came after the violation's horizon and was not used: the
    /// step applied the command as if its outcome were unknown.
    pub fn reply_set_aside(&self) -> bool {
        self.reply_set_aside
    }

    /// The file's state after it.
    pub fn state_after(&self) -> &FileState {
        &self.state_after
    }
}

/// Proof that a history is not linearizable, small enough to read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation(Box<Report>);

/// The contents of a [`Violation`], boxed so that `Result<_, Violation>` stays small.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Report {
    file: Name,
    kind: ViolationKind,
    operations: Vec<Operation>,
    culprits: Vec<OpId>,
    horizon: Option<u64>,
    relaxed: usize,
    longest_prefix: Vec<LinearizedStep>,
    /// The clock bound expiry was judged by, when a write or cas of the file carries an EXPTIME.
    clock: Option<ClockBound>,
}

/// The parts of a [`ViolationKind::NotLinearizable`] excerpt.
pub(crate) struct Excerpt {
    /// The operations whose replies no order explains.
    pub(crate) operations: Vec<Operation>,
    /// Those among them whose completion first made the history unexplainable.
    pub(crate) culprits: Vec<OpId>,
    /// Operations invoked after this time were left out.
    pub(crate) horizon: Option<u64>,
    /// How many other operations invoked by the horizon were allowed to take effect or not.
    pub(crate) relaxed: usize,
    /// The longest linearization found of the excerpt.
    pub(crate) longest_prefix: Vec<LinearizedStep>,
    /// The history's clock bound, if it has one and a write or cas of the file carries an
    /// EXPTIME.
    pub(crate) clock: Option<ClockBound>,
}

impl Violation {
    /// A violation shown by two operations.
    pub(crate) fn pair(
        file: &Name,
        kind: ViolationKind,
        first: &Operation,
        second: &Operation,
    ) -> Violation {
        let mut operations = vec![first.clone(), second.clone()];
        operations.sort_by_key(|op| (op.invoke(), op.id()));
        Violation(Box::new(Report {
            file: file.clone(),
            kind,
            operations,
            culprits: vec![second.id()],
            horizon: None,
            relaxed: 0,
            longest_prefix: Vec::new(),
            clock: None,
        }))
    }

    /// A reply that does not fit its command.
    pub(crate) fn impossible_reply(op: &Operation) -> Violation {
        Violation(Box::new(Report {
            file: op.command().name().clone(),
            kind: ViolationKind::ImpossibleReply,
            operations: vec![op.clone()],
            culprits: vec![op.id()],
            horizon: None,
            relaxed: 0,
            longest_prefix: Vec::new(),
            clock: None,
        }))
    }

    /// A file whose operations no order explains.
    pub(crate) fn not_linearizable(file: &Name, mut excerpt: Excerpt) -> Violation {
        excerpt.operations.sort_by_key(|op| (op.invoke(), op.id()));
        Violation(Box::new(Report {
            file: file.clone(),
            kind: ViolationKind::NotLinearizable,
            operations: excerpt.operations,
            culprits: excerpt.culprits,
            horizon: excerpt.horizon,
            relaxed: excerpt.relaxed,
            longest_prefix: excerpt.longest_prefix,
            clock: excerpt.clock,
        }))
    }

    /// The file whose operations are at fault.
    pub fn file(&self) -> &Name {
        &self.0.file
    }

    /// What is wrong.
    pub fn kind(&self) -> &ViolationKind {
        &self.0.kind
    }

    /// The operations involved, by invocation time. For [`ViolationKind::NotLinearizable`]
    /// these are the operations whose definite replies no order explains, even when every other
    /// operation on the file invoked by [`horizon`](Violation::horizon) is allowed to have taken
    /// effect or not.
    pub fn operations(&self) -> &[Operation] {
        &self.0.operations
    }

    /// The operations whose reply first made the history unexplainable: for
    /// [`ViolationKind::NotLinearizable`], the history with every operation that completed
    /// earlier is still linearizable.
    pub fn culprits(&self) -> &[OpId] {
        &self.0.culprits
    }

    /// For [`ViolationKind::NotLinearizable`], the time of the culprits' completion: operations
    /// invoked later play no part in the excerpt.
    pub fn horizon(&self) -> Option<u64> {
        self.0.horizon
    }

    /// The longest linearization the search found of the excerpt, with the state after each
    /// step (empty for violations found without a search).
    pub fn longest_prefix(&self) -> &[LinearizedStep] {
        &self.0.longest_prefix
    }
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let file = &self.0.file;
        write!(f, "history not linearizable, file {file}: ")?;
        match &self.0.kind {
            ViolationKind::ImpossibleReply => f.write_str("a reply its command can never get")?,
            ViolationKind::DuplicateVersion { version } => {
                write!(f, "two successful mutations both report version {version}")?
            }
            ViolationKind::VersionOfOtherFile { version, owner } => write!(
                f,
                "{file} was seen at version {version}, which was given to file {owner}"
            )?,
            ViolationKind::VersionsOutOfOrder { earlier, later } => write!(
                f,
                "version {earlier} was observed before a mutation began, \
                 yet that mutation reports version {later}"
            )?,
            ViolationKind::NotLinearizable => write!(
                f,
                "no order of these {} operations explains their replies",
                self.0.operations.len()
            )?,
        }
        writeln!(f)?;
        if let Some(horizon) = self.0.horizon {
            writeln!(
                f,
                "(however the {} other operations on {file} invoked by t={horizon} went, \
                 whatever their replies said; later ones left out)",
                self.0.relaxed
            )?;
        }
        if let Some(clock) = self.0.clock {
            writeln!(
                f,
                "(expiry judged with every member's clock at most {} ms ahead of and {} ms behind \
                 real time; {} time units to the ms)",
                clock.ahead_ms, clock.behind_ms, clock.units_per_ms
            )?;
        }
        for op in &self.0.operations {
            let mark = if self.0.culprits.contains(&op.id()) {
                "!"
            } else {
                " "
            };
            writeln!(f, "{mark} {op}")?;
        }
        if self.0.kind != ViolationKind::NotLinearizable {
            return Ok(());
        }
        let shown = self.0.longest_prefix.len().min(PREFIX_SHOWN_MAX);
        writeln!(
            f,
            "longest linearizable prefix found: {} operations{}",
            self.0.longest_prefix.len(),
            if shown < self.0.longest_prefix.len() {
                format!(", the last {shown} shown")
            } else {
                String::new()
            }
        )?;
        for step in &self.0.longest_prefix[self.0.longest_prefix.len() - shown..] {
            let note = if step.reply_set_aside {
                " (reply after t, set aside)"
            } else {
                ""
            };
            writeln!(
                f,
                "  {}{note}\n      => {}",
                step.operation, step.state_after
            )?;
        }
        f.write_str("after which no remaining operation can come next")
    }
}

impl std::error::Error for Violation {}

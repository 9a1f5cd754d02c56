//! A record of what clients asked the cluster and what they were told: the input of the
//! linearizability checker.
//!
//! The simulator (or a real-process test) records each command when a client sends it
//! ([`History::invoke`]) and again when the client gets its answer ([`History::complete`]) or stops
//! waiting ([`History::give_up`]). Times are in any unit that never goes backwards. Two operations
//! are ordered in real time only when one completed strictly before the other was invoked, so
//! equal times count as concurrent: give every event a distinct time (an event counter will do)
//! to let the checker see every real-time order.
//!
//! Times are only compared, except to judge expiry: a history that says how its times relate to
//! real time and how far the members' clocks could read from it ([`ClockBound`]) lets the checker
//! bound how early a file written with an EXPTIME may be found gone. Without one, it may be found
//! gone at any point after its write.

use bytes::Bytes;
use fs::{Command, Reply};
use std::fmt;

/// Longest prefix of a file's content shown when displaying an operation or a state; content may
/// be up to a MiB, and a few dozen bytes are enough to tell the simulator's values apart.
pub const CONTENT_SHOWN_BYTES_MAX: usize = 32;

/// Identifies one operation of a [`History`]: operations are numbered from 0 in the order
/// [`History::invoke`] recorded them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct OpId(usize);

impl OpId {
    /// The operation's position in its history.
    pub fn index(self) -> usize {
        self.0
    }
}

impl fmt::Display for OpId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Through `pad`, so that width and alignment flags apply.
        f.pad(&format!("#{}", self.0))
    }
}

/// What a client learned about its operation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// A definite answer: the operation took effect (or, for an error reply, observed the state)
    /// exactly once, somewhere between its invocation and its completion.
    Ok(Reply),
    /// No answer, or `ERR_INTERNAL`: a mutation may or may not have taken effect, at any point
    /// after its invocation (even after the client stopped waiting). A read with this outcome
    /// tells nothing and is ignored by the checker.
    Unknown,
}

/// Where an operation stands in its client's life; kept apart from [`Outcome`] so that an
/// unknown outcome can still be told apart from one still awaited.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Status {
    /// Invoked, no answer yet.
    Pending,
    /// The client got an answer (possibly `ERR_INTERNAL`).
    Completed,
    /// The client stopped waiting without an answer.
    GaveUp,
}

/// One client command and what came of it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Operation {
    id: OpId,
    client: u64,
    invoke: u64,
    complete: Option<u64>,
    command: Command,
    outcome: Outcome,
    status: Status,
}

impl Operation {
    /// The operation's identity in its history.
    pub fn id(&self) -> OpId {
        self.id
    }

    /// The client that issued it (for display; the checker orders operations by time only).
    pub fn client(&self) -> u64 {
        self.client
    }

    /// When the client sent the command.
    pub fn invoke(&self) -> u64 {
        self.invoke
    }

    /// When the client got its answer; `None` while pending or after it gave up. For an
    /// [`Outcome::Unknown`] operation the checker treats completion as infinitely late anyway.
    pub fn complete(&self) -> Option<u64> {
        self.complete
    }

    /// The command sent.
    pub fn command(&self) -> &Command {
        &self.command
    }

    /// What the client learned.
    pub fn outcome(&self) -> &Outcome {
        &self.outcome
    }

    /// Whether the client is still waiting for an answer.
    pub fn is_pending(&self) -> bool {
        self.status == Status::Pending
    }
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:<5} client {:<3} [{}..",
            self.id, self.client, self.invoke
        )?;
        if let Some(complete) = self.complete {
            write!(f, "{complete}")?;
        }
        write!(f, "] {} -> ", DisplayCommand(&self.command))?;
        match (&self.outcome, self.status) {
            (Outcome::Ok(reply), _) => write!(f, "{}", DisplayReply(reply)),
            (Outcome::Unknown, Status::Pending) => f.write_str("unknown (pending)"),
            (Outcome::Unknown, Status::GaveUp) => f.write_str("unknown (gave up)"),
            (Outcome::Unknown, Status::Completed) => f.write_str("unknown (ERR_INTERNAL)"),
        }
    }
}

/// Why a [`History`] refused to record an event; each is a mistake of the recording client.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HistoryError {
    /// The id does not belong to this history.
    #[error("no operation {0} in this history")]
    UnknownOp(OpId),
    /// The operation was already completed or given up.
    #[error("operation {0} already has its outcome")]
    AlreadyFinished(OpId),
    /// The completion time is earlier than the invocation time.
    #[error("operation {op} cannot complete at {complete}: it was invoked at {invoke}")]
    CompletedBeforeInvoked {
        /// The operation.
        op: OpId,
        /// Its invocation time.
        invoke: u64,
        /// The rejected completion time.
        complete: u64,
    },
    /// `ERR_REDIRECT` and `ERR_CMD_ERR` say the command was not executed: they are not an
    /// outcome. Retry the operation (keeping it open) or [`History::give_up`].
    #[error("operation {op}: {reply:?} is not an outcome; retry the command or give up")]
    NotAnOutcome {
        /// The operation.
        op: OpId,
        /// The reply that says nothing happened.
        reply: Reply,
    },
}

/// How a history's times relate to real time, and how far the clocks that judged expiry (each
/// member's wall clock, which stamps commands) could read from it while the history was made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClockBound {
    /// History time units per millisecond of real time (at least 1).
    pub units_per_ms: u64,
    /// The most any member's wall clock read ahead of real time, ms.
    pub ahead_ms: u64,
    /// The most any member's wall clock read behind real time, ms.
    pub behind_ms: u64,
}

/// The operations of one run, in invocation order, as recorded by the clients.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct History {
    ops: Vec<Operation>,
    clock: Option<ClockBound>,
}

impl History {
    /// An empty history.
    pub fn new() -> History {
        History::default()
    }

    /// Records that `client` sent `command` at `time`; its outcome is unknown until
    /// [`complete`](History::complete) is called.
    pub fn invoke(&mut self, client: u64, time: u64, command: Command) -> OpId {
        let id = OpId(self.ops.len());
        self.ops.push(Operation {
            id,
            client,
            invoke: time,
            complete: None,
            command,
            outcome: Outcome::Unknown,
            status: Status::Pending,
        });
        id
    }

    /// Records the reply the client got at `time`. `ERR_INTERNAL` makes the outcome unknown;
    /// `ERR_REDIRECT` and `ERR_CMD_ERR` are refused (the operation stays open).
    pub fn complete(&mut self, op: OpId, time: u64, reply: Reply) -> Result<(), HistoryError> {
        let entry = self.pending_mut(op)?;
        if time < entry.invoke {
            return Err(HistoryError::CompletedBeforeInvoked {
                op,
                invoke: entry.invoke,
                complete: time,
            });
        }
        entry.outcome = match reply {
            Reply::Internal => Outcome::Unknown,
            Reply::Redirect(_) | Reply::CmdErr => {
                return Err(HistoryError::NotAnOutcome { op, reply });
            }
            reply => Outcome::Ok(reply),
        };
        entry.complete = Some(time);
        entry.status = Status::Completed;
        Ok(())
    }

    /// Records that the client stopped waiting without an answer: the outcome stays unknown.
    pub fn give_up(&mut self, op: OpId) -> Result<(), HistoryError> {
        let entry = self.pending_mut(op)?;
        entry.status = Status::GaveUp;
        Ok(())
    }

    /// Records how the history's times relate to real time and how far the members' clocks
    /// could be off; the checker then bounds how early an expiring file may be found gone.
    pub fn set_clock_bound(&mut self, bound: ClockBound) {
        self.clock = Some(bound);
    }

    /// The clock bound, if one was recorded.
    pub fn clock_bound(&self) -> Option<ClockBound> {
        self.clock
    }

    /// All operations, in recording order (an operation's index is its [`OpId`]).
    pub fn operations(&self) -> &[Operation] {
        &self.ops
    }

    /// The operation with this id, if it belongs to this history.
    pub fn get(&self, op: OpId) -> Option<&Operation> {
        self.ops.get(op.0)
    }

    /// How many operations were recorded.
    pub fn len(&self) -> usize {
        self.ops.len()
    }

    /// Whether nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    /// Displays only the operations named (unknown ids are skipped), one per line, ordered by
    /// invocation time.
    pub fn display_subset<'a>(&'a self, ops: &[OpId]) -> impl fmt::Display + 'a {
        let mut chosen: Vec<&Operation> = ops.iter().filter_map(|&id| self.get(id)).collect();
        chosen.sort_by_key(|op| (op.invoke, op.id));
        chosen.dedup_by_key(|op| op.id);
        DisplayOperations(chosen)
    }

    fn pending_mut(&mut self, op: OpId) -> Result<&mut Operation, HistoryError> {
        let entry = self.ops.get_mut(op.0).ok_or(HistoryError::UnknownOp(op))?;
        if entry.status != Status::Pending {
            return Err(HistoryError::AlreadyFinished(op));
        }
        Ok(entry)
    }
}

impl fmt::Display for History {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut chosen: Vec<&Operation> = self.ops.iter().collect();
        chosen.sort_by_key(|op| (op.invoke, op.id));
        DisplayOperations(chosen).fmt(f)
    }
}

/// Operations one per line.
struct DisplayOperations<'a>(Vec<&'a Operation>);

impl fmt::Display for DisplayOperations<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for op in &self.0 {
            writeln!(f, "{op}")?;
        }
        Ok(())
    }
}

/// A command in a compact, readable form (not its wire form: content is quoted and shortened).
pub(crate) struct DisplayCommand<'a>(pub(crate) &'a Command);

impl fmt::Display for DisplayCommand<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Command::Read { name } => write!(f, "read {name}"),
            Command::Write {
                name,
                content,
                exptime_s,
            } => {
                write!(f, "write {name} {}", DisplayContent(content))?;
                fmt_exptime(f, *exptime_s)
            }
            Command::Cas {
                name,
                version,
                content,
                exptime_s,
            } => {
                write!(f, "cas {name} {version} {}", DisplayContent(content))?;
                fmt_exptime(f, *exptime_s)
            }
            Command::Delete { name } => write!(f, "delete {name}"),
        }
    }
}

fn fmt_exptime(f: &mut fmt::Formatter<'_>, exptime_s: u64) -> fmt::Result {
    if exptime_s == 0 {
        Ok(())
    } else {
        write!(f, " exptime {exptime_s}")
    }
}

/// A reply in its wire vocabulary, with content quoted and shortened.
pub(crate) struct DisplayReply<'a>(pub(crate) &'a Reply);

impl fmt::Display for DisplayReply<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Reply::Contents {
                version,
                exptime_s,
                content,
            } => {
                write!(f, "CONTENTS {version} {}", DisplayContent(content))?;
                fmt_exptime(f, *exptime_s)
            }
            Reply::Written { version } => write!(f, "OK {version}"),
            Reply::Deleted => f.write_str("OK"),
            Reply::FileNotFound => f.write_str("ERR_FILE_NOT_FOUND"),
            Reply::VersionMismatch { current } => write!(f, "ERR_VERSION {current}"),
            Reply::CmdErr => f.write_str("ERR_CMD_ERR"),
            Reply::Internal => f.write_str("ERR_INTERNAL"),
            Reply::Redirect(addr) => write!(f, "ERR_REDIRECT {addr}"),
            Reply::Done(n) => write!(f, "OK {n}"),
            Reply::Members(m) => write!(f, "MEMBERS {}", m.len()),
            Reply::MemberError(why) => write!(f, "ERR_MEMBER {why}"),
            Reply::Snapshot { index, file, .. } => {
                write!(f, "SNAPSHOT i{index} {} bytes", file.len())
            }
        }
    }
}

/// File content quoted, with non-printable bytes escaped, shortened to
/// [`CONTENT_SHOWN_BYTES_MAX`] bytes.
pub(crate) struct DisplayContent<'a>(pub(crate) &'a Bytes);

impl fmt::Display for DisplayContent<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shown = &self.0[..self.0.len().min(CONTENT_SHOWN_BYTES_MAX)];
        write!(f, "\"{}\"", shown.escape_ascii())?;
        if self.0.len() > shown.len() {
            write!(f, "...({} bytes)", self.0.len())?;
        }
        Ok(())
    }
}

//! Everything a node asks its driver to do: the output of `Node::step`.

use crate::entry::Entry;
use crate::error::{ProposeError, ReadError};
use crate::ids::{LogIndex, NodeId, ProposalId, ReadId, Term};
use crate::message::Message;
use crate::persist::HardState;
use crate::role::Role;
use crate::time::Millis;

/// One output of [`crate::Node::step`]; the crate documentation says how a driver carries them out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Send `msg` to peer `to`. Delivery may be lost, late, duplicated or reordered.
    Send {
        /// Destination peer.
        to: NodeId,
        /// The message.
        msg: Message,
    },
    /// Drop every log entry with index `>= from`; always followed by a `LogStore` of the entries
    /// that replace them, and must reach the disk before it.
    LogTruncate {
        /// First index to drop.
        from: LogIndex,
    },
    /// Append these entries (contiguous, following the current log) and report them durable with
    /// `Event::LogStored` once they are fsync'd.
    LogStore {
        /// Entries to append, in index order.
        entries: Vec<Entry>,
    },
    /// Make this hard state durable and report it with `Event::StateSaved`.
    SaveState(HardState),
    /// This entry is committed: apply it. Entries come in index order, each exactly once.
    Commit(Entry),
    /// Proposal `id` took log slot `index` in `term`; it succeeded if `Commit` later reports an
    /// entry with this index and term, and failed if that index commits with another term.
    Appended {
        /// The proposal.
        id: ProposalId,
        /// Its log slot.
        index: LogIndex,
        /// The leader's term when it was appended.
        term: Term,
    },
    /// Proposal `id` was not appended.
    CommitError {
        /// The proposal.
        id: ProposalId,
        /// Why.
        error: ProposeError,
    },
    /// Read `id` may be served once the state machine has applied `index`.
    ReadReady {
        /// The read.
        id: ReadId,
        /// The commit index the read must observe.
        index: LogIndex,
    },
    /// Read `id` cannot be served here.
    ReadError {
        /// The read.
        id: ReadId,
        /// Why.
        error: ReadError,
    },
    /// Call `step(_, Event::Timeout)` at or after `at`; replaces any earlier alarm.
    Alarm {
        /// When to deliver the timeout.
        at: Millis,
    },
    /// The node's role, term or known leader changed; emitted at the end of a step, after every
    /// other action of that step.
    RoleChanged {
        /// The new role.
        role: Role,
        /// The current term.
        term: Term,
        /// The leader of `term`, if known (this node's id when it leads).
        leader: Option<NodeId>,
    },
}

//! Everything a node asks its driver to do: the output of `Node::step`.

use crate::entry::Entry;
use crate::error::{ProposeError, ReadError};
use crate::ids::{LogIndex, NodeId, ProposalId, ReadId, Term};
use crate::membership::ChangeError;
use crate::message::{InstallSnapshotRequest, Message};
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
    /// Membership change `id` was refused; nothing was appended.
    ChangeRefused {
        /// The change.
        id: ProposalId,
        /// Why.
        error: ChangeError,
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
    /// Leader: follower `to` needs entries that are compacted away; send it the snapshot at
    /// `request.index` (the node's latest, named by `Event::SnapshotSaved` or an install), in
    /// chunks on the driver's own path, with `request` beside them. The receiving driver stages
    /// the whole snapshot durably, then feeds `Message::InstallSnapshot(request)` to its node.
    /// When the transfer ends either way, report `Event::SnapshotReport`. Emitted once per need:
    /// not again while that transfer is outstanding.
    SendSnapshot {
        /// The follower.
        to: NodeId,
        /// The metadata to deliver with the snapshot.
        request: InstallSnapshotRequest,
    },
    /// Follower: make the staged snapshot at `index` (from `Message::InstallSnapshot`) this
    /// node's snapshot, restore the state machine from it (applied becomes `index`; apply no
    /// `Commit` at or below it), and fix the WAL: drop its entries at or below `index`, and,
    /// unless `kept_entries_after`, every entry after `index` too. Storage order as for
    /// `LogTruncate`: after every storage action emitted before it, and before any emitted after
    /// it. Once durable, report `Event::SnapshotInstalled { index, term }`.
    InstallSnapshot {
        /// Last index the snapshot covers.
        index: LogIndex,
        /// Term of the entry at `index`.
        term: Term,
        /// True if the log held the snapshot's last entry, so the entries after `index` stay
        /// (figure 13, step 6); false if the whole log is discarded.
        kept_entries_after: bool,
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

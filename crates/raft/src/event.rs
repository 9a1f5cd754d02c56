//! Everything that can happen to a node: the input of `Node::step`.

use bytes::Bytes;

use crate::ids::{LogIndex, NodeId, ProposalId, ReadId, Term};
use crate::membership::MembershipChange;
use crate::message::Message;
use crate::persist::HardState;

/// One input to [`crate::Node::step`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A batch of client commands to replicate. On a leader each takes a log slot (reported by
    /// `Action::Appended`) and the whole batch goes to disk and to followers together; elsewhere
    /// each is answered by `Action::CommitError`.
    Append(Vec<(ProposalId, Bytes)>),
    /// An alarm fired. The node compares its own deadlines with `now`, so a spurious, early or
    /// late timeout is harmless.
    Timeout,
    /// A message from a peer; `from` is the sender as the transport knows it.
    Message {
        /// The peer that sent the message.
        from: NodeId,
        /// The message.
        msg: Message,
    },
    /// The log is durable up to `index`, and the entry written at `index` had `term`. Ignored if
    /// the log no longer holds that term at that index (the entry was truncated since).
    LogStored {
        /// Last durable index of the write being acknowledged.
        index: LogIndex,
        /// Term of the entry at `index` in that write.
        term: Term,
    },
    /// This hard state (from an earlier `Action::SaveState`) is durable.
    StateSaved(HardState),
    /// A linearizable read: answered by `Action::ReadReady` or `Action::ReadError`.
    ReadIndex(ReadId),
    /// The driver has made durable a snapshot of its state machine through `index`, which it had
    /// applied (so `index` is committed), and whose entry at `index` has `term`. The node records
    /// it as its latest snapshot and drops the in-memory entries below `keep_from` (clamped to
    /// `index + 1` at most; never below what is already dropped), so that the log's base becomes
    /// `keep_from - 1`. Keeping a few entries before `index` lets slightly slow followers catch
    /// up from the log instead of by snapshot. The driver trims its WAL prefix on its own (the
    /// node emits nothing for that). Ignored if not newer than the node's latest snapshot; a
    /// snapshot beyond the commit index, or whose term contradicts the log, is a driver bug
    /// (asserted in debug builds, ignored otherwise).
    SnapshotSaved {
        /// Last index the snapshot covers.
        index: LogIndex,
        /// Term of the entry at `index`.
        term: Term,
        /// First index to keep in memory.
        keep_from: LogIndex,
    },
    /// Leader: the driver's transfer to `to` of the snapshot at `index` (started by
    /// `Action::SendSnapshot`) ended, delivered and staged by the follower (`installed`) or not.
    /// If `to` still waits for that snapshot, the leader probes it again: after `index` if it
    /// was delivered, else from its last known match (a fresh `SendSnapshot` follows if still
    /// needed, after the next heartbeat answer). Stale reports are ignored.
    SnapshotReport {
        /// The follower the snapshot went to.
        to: NodeId,
        /// The snapshot's index, as in the `SendSnapshot` request.
        index: LogIndex,
        /// True if the follower received the whole snapshot.
        installed: bool,
    },
    /// An `Action::InstallSnapshot { index, term, .. }` is carried out and durable: the snapshot
    /// is the node's snapshot, the state machine was restored from it, and the WAL was fixed.
    /// Only now does the node count the snapshot's entries as durable and acknowledge them.
    /// Ignored unless it names the latest install the node asked for.
    SnapshotInstalled {
        /// The installed snapshot's index.
        index: LogIndex,
        /// The installed snapshot's term.
        term: Term,
    },
    /// A single-server membership change (see [`crate::membership`]). On a leader that may
    /// make it, the new configuration takes a log slot (`Action::Appended`; it is in force once
    /// that slot commits); otherwise `Action::ChangeRefused` says why.
    ChangeMembership {
        /// Who waits for the outcome.
        id: ProposalId,
        /// The change.
        change: MembershipChange,
    },
    /// Leader: hand leadership to voter `to` (or, with `None`, the most up-to-date voter) once
    /// it holds the whole log, by `TimeoutNow`. Proposals are refused meanwhile (naming the
    /// target); the attempt ends after an election timeout. Ignored elsewhere, or if `to` is
    /// not another voter.
    TransferLeadership {
        /// The voter to hand over to.
        to: Option<NodeId>,
    },
}

//! Everything that can happen to a node: the input of `Node::step`.

use bytes::Bytes;

use crate::ids::{LogIndex, NodeId, ProposalId, ReadId, Term};
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
}

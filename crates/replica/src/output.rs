//! What the replica asks its runtime to do, and the clock readings the runtime passes in.

use fs::Reply;
use raft::{Entry, HardState, LogIndex, Message, Millis, NodeId, Role, Term};

/// The clocks at the moment of a call: the runtime reads them, the replica never does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Now {
    /// A monotonic reading (any origin) for the core's timers and the parking deadlines.
    pub mono: Millis,
    /// The wall clock in milliseconds since the Unix epoch: the stamp expiry is judged by.
    pub wall_ms: u64,
}

/// One thing for the runtime to do. Outputs of one call come in the order they must be carried
/// out; storage outputs in particular must reach the disk in that order (see the crate docs).
#[derive(Debug)]
pub enum Output<T> {
    /// Send `msg` to peer `to` (loss, delay, duplication and reordering are harmless).
    Send {
        /// Destination peer.
        to: NodeId,
        /// The message.
        msg: Message,
    },
    /// Drop every log entry with index `>= from` (before the `LogStore` that follows it).
    LogTruncate {
        /// First index to drop.
        from: LogIndex,
    },
    /// Append these entries; call [`crate::Replica::log_stored`] once they are durable.
    LogStore {
        /// Entries in index order, continuing the log.
        entries: Vec<Entry>,
    },
    /// Make this hard state durable; call [`crate::Replica::state_saved`] once it is.
    SaveState(HardState),
    /// Answer a client.
    Reply {
        /// The waiter the runtime handed in with the request.
        token: T,
        /// The answer.
        reply: Reply,
    },
    /// Call [`crate::Replica::timeout`] at or after `at` (on the `Now::mono` clock); replaces
    /// any earlier timer.
    Timer {
        /// When.
        at: Millis,
    },
    /// This committed entry was applied to the store (for observers: traces, checks, metrics).
    Applied(Entry),
    /// The node's role, term or known leader changed (for logs and observers).
    RoleChanged {
        /// The new role.
        role: Role,
        /// The current term.
        term: Term,
        /// The leader of `term`, if known.
        leader: Option<NodeId>,
    },
    /// A committed entry does not hold a command this replica can decode. Every replica skips
    /// it the same way, so they stay in step; the entry passed its checksum, so it is a bug
    /// worth reporting loudly.
    BadEntry {
        /// The entry's index.
        index: LogIndex,
        /// Why it does not decode.
        error: String,
    },
}

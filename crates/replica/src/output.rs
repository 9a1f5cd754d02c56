//! What the replica asks its runtime to do, and the clock readings the runtime passes in.

use bytes::Bytes;
use fs::{Reply, Store};
use raft::{Entry, HardState, LogIndex, Millis, NodeId, Role, Term};

use crate::wire::{Offer, PeerMessage};

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
    /// Send `msg` to peer `to` (loss, delay, duplication and reordering are harmless). Chunk
    /// acks may share the Raft messages' path; chunks themselves go through `SendChunk`.
    Send {
        /// Destination peer.
        to: NodeId,
        /// The message.
        msg: PeerMessage,
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
    /// Answer backup request `token` (an `Admin::Snapshot`) with a snapshot file of `store`,
    /// which reflects the log up to `index` (whose entry has `term`) and every write
    /// acknowledged before the request arrived; serialise it away from the caller's thread,
    /// in the same file format as `SaveSnapshot`. Nothing is reported back.
    Backup {
        /// Who waits for the backup.
        token: T,
        /// Last index the backup covers.
        index: LogIndex,
        /// Term of the entry at `index`.
        term: Term,
        /// The store as of `index`.
        store: Store,
        /// The configuration in force at `index`.
        membership: raft::Membership,
    },
    /// Write a snapshot of `store` (which reflects the log up to `index`, whose entry has
    /// `term`) durably and atomically, with a checksum, away from the caller's thread if it is
    /// large; then call [`crate::Replica::snapshot_saved`]. The store value is the replica's
    /// view at `index` and stays valid however the replica moves on.
    SaveSnapshot {
        /// Last index the snapshot covers.
        index: LogIndex,
        /// Term of the entry at `index`.
        term: Term,
        /// The store as of `index`.
        store: Store,
        /// The configuration in force at `index`, to be written beside the store.
        membership: raft::Membership,
    },
    /// Drop the log entries up to and including `upto` from the disk (a durable snapshot covers
    /// them). In order with the other storage outputs; no report is needed.
    LogDiscard {
        /// Last index to drop.
        upto: LogIndex,
    },
    /// Read `len` bytes at `offset` of the snapshot file at `offer.index` and send them to `to`
    /// as a [`PeerMessage::Chunk`], on a path that does not hold up Raft's messages. If that
    /// snapshot can no longer be read, call [`crate::Replica::chunk_unavailable`].
    SendChunk {
        /// The follower.
        to: NodeId,
        /// The snapshot, and the request to put in the chunk.
        offer: Offer,
        /// Where the chunk starts in the file.
        offset: u64,
        /// Its length.
        len: u64,
        /// The whole file's length.
        total_bytes: u64,
    },
    /// Write `data` at `offset` of the staging file for `offer` (at offset 0, start a new
    /// staging file, dropping any other). Chunks come in order.
    StageChunk {
        /// The snapshot being received.
        offer: Offer,
        /// Where `data` goes.
        offset: u64,
        /// The bytes.
        data: Bytes,
    },
    /// Every byte of `offer` is staged: make the staging file durable, verify its checksum and
    /// restore a store from it, then call [`crate::Replica::snapshot_staged`].
    StageFinish {
        /// The snapshot received.
        offer: Offer,
    },
    /// Make the staged snapshot at `index` this node's snapshot (atomically: it is durable
    /// before anything after it is), then drop the log up to `index` and, unless `keep_log`,
    /// everything after it too; in order with the other storage outputs. Once durable, call
    /// [`crate::Replica::snapshot_installed`]. The replica has switched to the staged store.
    InstallSnapshot {
        /// The snapshot's last index.
        index: LogIndex,
        /// Its term.
        term: Term,
        /// Whether the log after `index` stays (it matched the snapshot).
        keep_log: bool,
    },
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
    /// Whom the transport must be able to reach changed: every member of the configuration in
    /// force and of any newer one in the log, with its addresses. Dial these, accept them, and
    /// drop links to anyone else.
    Members(raft::Membership),
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

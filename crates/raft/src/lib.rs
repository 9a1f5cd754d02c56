//! The raftfs consensus core: a pure, deterministic Raft state machine.
//!
//! A [`Node`] owns no clock, thread, socket, file or unseeded randomness. Its driver (the tokio
//! runtime in production, the simulator in tests) feeds it [`Event`]s through [`Node::step`] and
//! carries out the [`Action`]s it returns. Given the same seed and the same events, a node always
//! returns the same actions.
//!
//! It implements Raft as in Ongaro's thesis (2014): leader election with randomised timeouts,
//! pre-vote (9.6), check-quorum and leader stickiness (6.2, 9.6), log replication with
//! per-follower probe/replicate modes, pipelining and fast backtracking (5.3, 10.2.1),
//! durable-only commit counting, the figure 8 commit rule (5.4.2), a leader no-op on election
//! (6.4), ReadIndex reads (6.4), and log compaction by snapshots (chapter 5), whose bytes the
//! node never sees: the driver takes, stores, streams and restores them.
//!
//! # What a driver must do
//!
//! 1. **Start.** Read back from disk the hard state, the snapshot's index and term (if any) and
//!    the durable entries after it, as a [`Recovered`] (`Recovered::default()` on first start;
//!    WAL entries at or below the snapshot's index are left out). Call [`Node::new`] with the
//!    configuration, the voters (the same list on every member), what is recovered, the index
//!    the state machine already reflects (`applied`: the snapshot's index once restored from
//!    it, 0 without a snapshot) and a seed. Then call `step(now, Event::Timeout)` once: the first
//!    step of any kind starts the node (it arms its timer, re-reports committed entries after
//!    `applied`, and a single-node cluster elects itself).
//! 2. **Carry out every action of a step, in the order returned**, before or while feeding the
//!    next events (`Node::step_into` lets a busy driver reuse one action buffer). The rules per
//!    action follow.
//! 3. **Storage: `SaveState`, `LogTruncate`, `LogStore`.** Make them durable in the order they
//!    were emitted (one writer thread doing them in order does this); several may share one
//!    fsync (group commit). `LogTruncate { from }` always precedes the `LogStore` of the entries
//!    that replace the dropped ones and must never reach the disk after it.
//!    Once durable, report them: `Event::StateSaved(hard_state)` for a `SaveState`, and
//!    `Event::LogStored { index, term }` with the index and term of the last entry of a
//!    `LogStore` (one acknowledgement may cover several writes: give the last one; likewise
//!    acknowledging only the latest of several `SaveState`s is enough). Report in the order
//!    written. Never report what is not yet durable.
//! 4. **`Send`.** Deliver to the peer whenever convenient: the node has already held back every
//!    message that depends on a term or vote not yet durable, and a leader's entries may go out
//!    while its own write is still in flight (thesis 10.2.1). Messages may be dropped,
//!    duplicated, delayed or reordered without harm. Use [`Message::encode`] and
//!    [`Message::decode`]; drop what does not decode.
//! 5. **Incoming messages.** Feed each as `Event::Message { from, msg }`, where `from` is the
//!    peer as the transport knows it.
//! 6. **`Commit`.** Apply the entry to the state machine. Entries come in index order, each once,
//!    no-ops included (skip them). Apply nothing that did not come through `Commit` (or a
//!    snapshot, step 11). A committed entry is durable on a majority, though perhaps not yet on
//!    this node's disk.
//! 7. **Proposals.** Send client commands as `Event::Append` (batch what arrived together).
//!    `Appended { id, index, term }` gives each its slot; the command succeeded when `Commit`
//!    reports an entry at `index` with `term`, and failed if an entry with another term commits
//!    there. `CommitError` means it was not appended (redirect to `leader`). When `RoleChanged`
//!    reports that this node no longer leads, the fate of its appended but uncommitted proposals
//!    is unknown (answer `ERR_INTERNAL`).
//! 8. **Reads.** Send `Event::ReadIndex(id)`; on `ReadReady { id, index }` serve the read once
//!    the state machine has applied `index`; on `ReadError` redirect or fail it.
//! 9. **Time.** Keep one timer. `Alarm { at }` replaces the previous alarm; at or after `at`,
//!    call `step(now, Event::Timeout)`. Pass a monotonic clock reading as `now` to every step
//!    (in milliseconds from any origin). An early, late or spurious timeout is harmless.
//! 10. **Restart.** After a crash, go back to step 1 with what is durable. Everything reported
//!     by `LogStored`, `StateSaved`, `SnapshotSaved` and `SnapshotInstalled` must still be
//!     there: that is what makes a restarted node never vote twice in a term nor forget an entry
//!     it acknowledged.
//! 11. **Taking snapshots.** Whenever convenient (say, every so many applied entries), make a
//!     durable snapshot of the state machine at an applied index and report
//!     `Event::SnapshotSaved { index, term, keep_from }` (`term`: the term of the entry at
//!     `index`). The node then drops its entries below `keep_from` (at most `index + 1`); drop
//!     the WAL's entries below it too, at leisure, and older snapshots once no transfer uses
//!     them. Keep the snapshot the node last named (by `SnapshotSaved` or an install): it is the
//!     one `SendSnapshot` asks for.
//! 12. **`SendSnapshot { to, request }`.** Stream the snapshot at `request.index` to `to` in
//!     bounded chunks on a path of its own (one slow transfer must not delay heartbeats), with
//!     `request` beside it; the sending needs no other gating. When the transfer ends, report
//!     `Event::SnapshotReport { to, index, installed }`: `installed` if the receiver staged it
//!     all, false if it failed or was abandoned. Always report: until then the node sends `to`
//!     no entries. The receiving driver stages the chunks durably apart from its live
//!     snapshot, and once the whole snapshot is staged feeds `Event::Message { from, msg:
//!     Message::InstallSnapshot(request) }` (`request` as the sender gave it; a node may ignore
//!     it, then discard the staged copy when a later one arrives).
//! 13. **`InstallSnapshot { index, term, kept_entries_after }`.** Make the staged snapshot at
//!     `index` the node's snapshot, restore the state machine from it (applied becomes `index`;
//!     no `Commit` at or below it follows), and fix the WAL: its entries up to `index` are
//!     covered, and unless `kept_entries_after`, every entry after `index` goes too. Order it
//!     among the storage actions like `LogTruncate` (after those emitted before it, before
//!     those after it), and make a crash leave the old state or the new one: for example drop
//!     the entries after `index` first (they are uncommitted), then switch the snapshot
//!     atomically, and let recovery skip WAL entries at or below the snapshot's index. Once
//!     durable, report `Event::SnapshotInstalled { index, term }`; only then does the node
//!     acknowledge the snapshot's entries to its leader.
//!
//! # Modules
//! Public vocabulary: [`ids`], [`time`], [`config`], [`entry`], [`persist`], [`message`],
//! [`event`], [`action`], [`role`], [`error`]. Inside the node: `log` (the in-memory log above
//! its snapshot base), `progress` (per-follower replication state), `inflights` (the pipelining
//! window), `quorum` (majority arithmetic), `election` (randomised deadlines and vote tallies),
//! `read_index` (pending linearizable reads), and `node` (the step function and the roles).
//! With the `testing` feature, `testing` offers a small deterministic multi-node harness.

pub mod action;
pub mod config;
pub mod entry;
pub mod error;
pub mod event;
pub mod ids;
pub mod membership;
pub mod message;
pub mod persist;
pub mod role;
pub mod time;

mod election;
mod inflights;
mod log;
mod node;
mod progress;
mod quorum;
mod read_index;

#[cfg(feature = "testing")]
pub mod testing;

pub use action::Action;
pub use config::{Config, ConfigError};
pub use entry::{Entry, Payload};
pub use error::{Error, ProposeError, ReadError, RecoveryError};
pub use event::Event;
pub use ids::{LogIndex, NodeId, ProposalId, ReadId, Term};
pub use membership::{
    Addresses, ChangeError, Member, Membership, MembershipChange, MembershipError,
};
pub use message::{
    AppendEntriesRequest, AppendEntriesResponse, AppendOutcome, Heartbeat, HeartbeatResponse,
    InstallSnapshotRequest, Message, ReadIndexRequest, ReadIndexResponse, TimeoutNow, VoteRequest,
    VoteResponse, WireError,
};
pub use node::{Node, RECOVERED_INDEX_MAX};
pub use persist::{HardState, Recovered};
pub use role::Role;
pub use time::Millis;

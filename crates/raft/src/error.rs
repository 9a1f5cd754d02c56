//! Errors a caller can act on.

use thiserror::Error;

use crate::config::ConfigError;
use crate::ids::{LogIndex, NodeId, Term};
use crate::membership::MembershipError;

/// Why `Node::new` refused to build a node.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum Error {
    /// The configuration is invalid.
    #[error("invalid configuration: {0}")]
    Config(#[from] ConfigError),
    /// The bootstrap or recovered membership is invalid.
    #[error("invalid membership: {0}")]
    Membership(#[from] MembershipError),
    /// What the driver read back from disk does not hang together.
    #[error("inconsistent recovered state: {0}")]
    Recovery(#[from] RecoveryError),
}

/// An inconsistency in `Recovered` (or with `applied`) found by `Node::new`.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum RecoveryError {
    /// An entry is not where the one before it (or the snapshot) says it should be.
    #[error("expected an entry at index {expected}, found index {found}")]
    EntryOutOfPlace {
        /// The index that should come next.
        expected: LogIndex,
        /// The index found.
        found: LogIndex,
    },
    /// The snapshot's index is beyond [`crate::RECOVERED_INDEX_MAX`]: no real log gets
    /// there, and accepting it would bring index arithmetic near overflow.
    #[error("snapshot index {index} is implausibly large")]
    IndexTooLarge {
        /// The snapshot's index.
        index: LogIndex,
    },
    /// An entry's term is lower than its predecessor's (or the snapshot's).
    #[error("term decreases at index {index}")]
    TermDecreases {
        /// The offending entry.
        index: LogIndex,
    },
    /// An entry's term is above the saved term: the hard state was not saved before the log,
    /// against the documented order.
    #[error("entry {index} has term {term} above the saved term {saved}")]
    TermAheadOfHardState {
        /// The offending entry.
        index: LogIndex,
        /// Its term.
        term: Term,
        /// The saved term.
        saved: Term,
    },
    /// The saved commit index is beyond the recovered log.
    #[error("commit index {commit} is beyond the last log index {last}")]
    CommitBeyondLog {
        /// The saved commit index.
        commit: LogIndex,
        /// The last recovered index.
        last: LogIndex,
    },
    /// The state machine claims to have applied entries the log does not have.
    #[error("applied index {applied} is beyond the last log index {last}")]
    AppliedBeyondLog {
        /// The applied index given.
        applied: LogIndex,
        /// The last recovered index.
        last: LogIndex,
    },
    /// The state machine is older than the log's snapshot: entries in between are gone.
    #[error("applied index {applied} is before the snapshot index {snapshot}")]
    AppliedBeforeSnapshot {
        /// The applied index given.
        applied: LogIndex,
        /// The snapshot's index.
        snapshot: LogIndex,
    },
}

/// Why a proposal was not appended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum ProposeError {
    /// This node is not the leader (or is stepping down); `leader` is the leader if known.
    #[error("not the leader (leader: {leader:?})")]
    NotLeader {
        /// The leader of the current term, if known.
        leader: Option<NodeId>,
    },
}

/// Why a read could not be served.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum ReadError {
    /// This node is not the leader, or lost leadership before confirming the read; `leader` is
    /// the leader if known.
    #[error("not the leader (leader: {leader:?})")]
    NotLeader {
        /// The leader of the current term, if known.
        leader: Option<NodeId>,
    },
}

//! What the node asks the driver to keep across restarts, and what the driver reads back.

use serde::{Deserialize, Serialize};

use crate::entry::Entry;
use crate::ids::{LogIndex, NodeId, Term};
use crate::membership::Membership;

/// The small state a node must not lose: its term and vote (Raft figure 2), plus a commit hint.
///
/// `term` and `vote` are saved whenever they change, and the node sends nothing that depends on
/// them until the driver reports them durable. `commit` is only a hint (the commit index at the
/// time of the save): it is not saved on every commit, and a restarted node re-learns the rest
/// from the leader. It lets a restarted node re-apply what it knew was committed at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct HardState {
    /// The latest term this node has seen.
    pub term: Term,
    /// The candidate this node voted for in `term`, if any.
    pub vote: Option<NodeId>,
    /// A lower bound of the commit index at the time of saving.
    pub commit: LogIndex,
}

/// What the driver read back from disk at start-up; `Recovered::default()` for a fresh node.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Recovered {
    /// The last durable hard state.
    pub hard_state: HardState,
    /// Index and term of the last entry covered by the newest snapshot, if any; the log starts
    /// right after it.
    pub snapshot: Option<(LogIndex, Term)>,
    /// The durable log entries after the snapshot, contiguous and in index order.
    pub entries: Vec<Entry>,
    /// The configuration the snapshot holds (in force at its index); `None` without a snapshot
    /// (or from a snapshot older than configurations in snapshots), when the bootstrap
    /// configuration given to `Node::new` applies at the log's start.
    pub membership: Option<Membership>,
}

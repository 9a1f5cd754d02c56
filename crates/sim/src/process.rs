//! One simulated process: the production replica driver (crate `replica`, exactly the code
//! `raftfs serve` runs) plus what the simulated runtime keeps around it: requests received and
//! not yet taken up, and which alarm is current.

use std::collections::BTreeMap;

use bytes::Bytes;
use raft::{LogIndex, Node, NodeId};
use replica::{Offer, Replica};

/// Who waits for an answer: a client and the attempt of its command (stale answers are ignored
/// by the client), and the connection the reply goes back on, for a pipelining client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Waiter {
    /// The client.
    pub client: usize,
    /// The attempt.
    pub attempt: u64,
    /// The connection (`Simulation`'s numbering), if the client pipelines.
    pub conn: Option<usize>,
}

impl Waiter {
    /// The waiter of the simulator's own administrative commands (membership changes and
    /// leadership transfers the nemesis asks for): no client waits for them.
    pub const ADMIN: Waiter = Waiter {
        client: usize::MAX,
        attempt: 0,
        conn: None,
    };
}

/// A client command as the node received it.
pub type Request = replica::Request<Waiter>;

/// A running node. See the module documentation.
#[derive(Debug)]
pub struct Process {
    /// The driver, with the core and the store inside.
    pub replica: Replica<Waiter>,
    /// Requests received and not yet taken up (the node takes them in batches).
    pub inbox: Vec<Request>,
    /// Whether a batch pick-up is already scheduled.
    pub drain_scheduled: bool,
    /// Bumped at every `Timer` output: only the latest timer fires.
    pub alarm_generation: u64,
    /// The snapshot being received and the bytes staged so far (a staging file, removed at
    /// restart: so it lives and dies with the process).
    pub staging: Option<(Offer, Vec<u8>)>,
    /// A staged snapshot made durable and verified, waiting for the core to install it.
    pub staged: Option<(LogIndex, Bytes)>,
    /// Per follower, the snapshot file its transfer reads (an open file handle: it stays
    /// readable after a newer snapshot replaces it).
    pub sending: BTreeMap<NodeId, (LogIndex, Bytes)>,
}

impl Process {
    /// A freshly started process around `replica`.
    pub fn new(replica: Replica<Waiter>) -> Process {
        Process {
            replica,
            inbox: Vec::new(),
            drain_scheduled: false,
            alarm_generation: 0,
            staging: None,
            staged: None,
            sending: BTreeMap::new(),
        }
    }

    /// The consensus core.
    pub fn core(&self) -> &Node {
        self.replica.core()
    }

    /// The file store.
    pub fn store(&self) -> &fs::Store {
        self.replica.store()
    }

    /// The last index applied to the store.
    pub fn applied(&self) -> LogIndex {
        self.replica.applied()
    }

    /// Commands waiting in any form (for the end-of-run report).
    pub fn in_flight(&self) -> usize {
        self.replica.in_flight() + self.inbox.len()
    }
}

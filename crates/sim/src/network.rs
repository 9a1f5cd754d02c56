//! The simulated network between nodes: per-message delay, loss and duplication (and so
//! reordering), plus partitions that come and go.
//!
//! A partition is a set of blocked directed links. It is judged when a message arrives, so a
//! partition also swallows what was already in flight, and a message delayed past the healing
//! gets through, as with a switch that buffers.

use std::collections::BTreeSet;
use std::fmt;

use raft::NodeId;

use crate::random::SimRng;

/// The message-level fault rates and delays of one run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LinkFaults {
    /// Shortest one-way delay, microseconds.
    pub delay_min_us: u64,
    /// Longest ordinary one-way delay, microseconds.
    pub delay_max_us: u64,
    /// Chance (ppm) that a message is held up for a long time instead.
    pub long_delay_ppm: u32,
    /// Longest such delay, microseconds.
    pub long_delay_max_us: u64,
    /// Chance (ppm) that a message is lost.
    pub drop_ppm: u32,
    /// Chance (ppm) that a message is delivered twice.
    pub duplicate_ppm: u32,
}

impl LinkFaults {
    /// A reliable LAN: short delays, nothing lost, duplicated or held up.
    pub fn reliable(delay_min_us: u64, delay_max_us: u64) -> LinkFaults {
        LinkFaults {
            delay_min_us,
            delay_max_us,
            long_delay_ppm: 0,
            long_delay_max_us: delay_max_us,
            drop_ppm: 0,
            duplicate_ppm: 0,
        }
    }
}

/// What the network decided for one message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fate {
    /// Delay of the first copy, `None` if the message is lost.
    pub first: Option<u64>,
    /// Delay of a duplicate, if one is made.
    pub duplicate: Option<u64>,
    /// Whether the first copy was held up for long.
    pub long: bool,
}

/// The shape of a partition; see [`Partition::blocked`] for the links each one cuts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Partition {
    /// Two sides that cannot hear each other.
    Split {
        /// One side.
        a: Vec<NodeId>,
        /// The other side.
        b: Vec<NodeId>,
    },
    /// `deaf` hears `loud` but `loud` does not hear `deaf` (messages from `deaf` are lost).
    OneWay {
        /// Nodes whose messages to `loud` are lost.
        deaf: Vec<NodeId>,
        /// Nodes that still reach `deaf`.
        loud: Vec<NodeId>,
    },
    /// One node (the leader, when there is one) cut off from everyone.
    Isolated(NodeId),
    /// `bridge` reaches both halves, which cannot hear each other.
    Bridge {
        /// The node connected to both sides.
        bridge: NodeId,
        /// One half.
        left: Vec<NodeId>,
        /// The other half.
        right: Vec<NodeId>,
    },
}

impl Partition {
    /// The directed links `(from, to)` this partition cuts, among `nodes`.
    pub fn blocked(&self, nodes: &[NodeId]) -> BTreeSet<(NodeId, NodeId)> {
        let mut cut = BTreeSet::new();
        let both = |cut: &mut BTreeSet<(NodeId, NodeId)>, a: &[NodeId], b: &[NodeId]| {
            for &x in a {
                for &y in b {
                    cut.insert((x, y));
                    cut.insert((y, x));
                }
            }
        };
        match self {
            Partition::Split { a, b } => both(&mut cut, a, b),
            Partition::OneWay { deaf, loud } => {
                for &x in deaf {
                    for &y in loud {
                        cut.insert((x, y));
                    }
                }
            }
            Partition::Isolated(node) => {
                let others: Vec<NodeId> = nodes.iter().copied().filter(|n| n != node).collect();
                both(&mut cut, &[*node], &others);
            }
            Partition::Bridge { left, right, .. } => both(&mut cut, left, right),
        }
        cut
    }
}

impl fmt::Display for Partition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let list = |nodes: &[NodeId]| {
            nodes
                .iter()
                .map(|n| n.to_string())
                .collect::<Vec<_>>()
                .join(",")
        };
        match self {
            Partition::Split { a, b } => write!(f, "split {{{}}} | {{{}}}", list(a), list(b)),
            Partition::OneWay { deaf, loud } => {
                write!(f, "one-way {{{}}} -/-> {{{}}}", list(deaf), list(loud))
            }
            Partition::Isolated(node) => write!(f, "isolate {node}"),
            Partition::Bridge {
                bridge,
                left,
                right,
            } => write!(
                f,
                "bridge {bridge} between {{{}}} and {{{}}}",
                list(left),
                list(right)
            ),
        }
    }
}

/// The network between the nodes of one run.
#[derive(Debug, Clone)]
pub struct Network {
    nodes: Vec<NodeId>,
    faults: LinkFaults,
    blocked: BTreeSet<(NodeId, NodeId)>,
}

impl Network {
    /// A fully connected network among `nodes` with these message faults.
    pub fn new(nodes: Vec<NodeId>, faults: LinkFaults) -> Network {
        Network {
            nodes,
            faults,
            blocked: BTreeSet::new(),
        }
    }

    /// Decides the fate of one message (drawn when it is sent).
    pub fn fate(&self, rng: &mut SimRng) -> Fate {
        let f = &self.faults;
        if rng.chance(f.drop_ppm) {
            return Fate {
                first: None,
                duplicate: None,
                long: false,
            };
        }
        let long = rng.chance(f.long_delay_ppm);
        let first = if long {
            rng.between(f.delay_max_us, f.long_delay_max_us)
        } else {
            rng.between(f.delay_min_us, f.delay_max_us)
        };
        let duplicate = if rng.chance(f.duplicate_ppm) {
            // The copy may be held up too: duplicates are how old messages come back.
            Some(rng.between(f.delay_min_us, f.long_delay_max_us.max(f.delay_max_us)))
        } else {
            None
        };
        Fate {
            first: Some(first),
            duplicate,
            long,
        }
    }

    /// Whether a message from `from` to `to` is lost to a partition now.
    pub fn is_blocked(&self, from: NodeId, to: NodeId) -> bool {
        !self.blocked.is_empty() && self.blocked.contains(&(from, to))
    }

    /// Puts `partition` in place (replacing any other).
    pub fn partition(&mut self, partition: &Partition) {
        self.blocked = partition.blocked(&self.nodes);
    }

    /// Removes every partition.
    pub fn heal(&mut self) {
        self.blocked.clear();
    }

    /// Whether any link is cut.
    pub fn is_partitioned(&self) -> bool {
        !self.blocked.is_empty()
    }

    /// Stops losing, duplicating and holding up messages (the end of a run), keeping the
    /// ordinary delays.
    pub fn make_reliable(&mut self) {
        self.faults = LinkFaults::reliable(self.faults.delay_min_us, self.faults.delay_max_us);
    }
}

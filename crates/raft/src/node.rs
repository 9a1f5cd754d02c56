//! The Raft node: `step` and the roles.

use crate::action::Action;
use crate::config::Config;
use crate::entry::Entry;
use crate::error::Error;
use crate::event::Event;
use crate::ids::{LogIndex, NodeId, Term};
use crate::persist::Recovered;
use crate::role::Role;
use crate::time::Millis;

/// One Raft node: a deterministic state machine driven by [`Node::step`].
#[derive(Debug)]
pub struct Node {
    config: Config,
    voters: Vec<NodeId>,
}

impl Node {
    /// Builds a node from its configuration, the cluster's voters (the same list on every
    /// member), what the driver read back from disk, the index the state machine already
    /// reflects, and a seed for its election timeouts.
    pub fn new(
        config: Config,
        voters: Vec<NodeId>,
        recovered: Recovered,
        applied: LogIndex,
        seed: u64,
    ) -> Result<Node, Error> {
        let _ = (recovered, applied, seed);
        config.validate()?;
        Ok(Node { config, voters })
    }

    /// Feeds one event to the node at time `now` and returns what the driver must do.
    pub fn step(&mut self, now: Millis, event: Event) -> Vec<Action> {
        let _ = (now, event);
        todo!()
    }

    /// This node's id.
    pub fn id(&self) -> NodeId {
        self.config.id
    }

    /// The role this node plays now.
    pub fn role(&self) -> Role {
        todo!()
    }

    /// The current term.
    pub fn term(&self) -> Term {
        todo!()
    }

    /// The leader of the current term, if known.
    pub fn leader(&self) -> Option<NodeId> {
        todo!()
    }

    /// The highest index known committed.
    pub fn commit_index(&self) -> LogIndex {
        todo!()
    }

    /// The index of the last entry in the log (durable or not).
    pub fn last_index(&self) -> LogIndex {
        todo!()
    }

    /// The highest index known durable on this node's disk.
    pub fn durable_index(&self) -> LogIndex {
        todo!()
    }

    /// The voters of the cluster.
    pub fn voters(&self) -> &[NodeId] {
        &self.voters
    }

    /// The entry at `index`, if the in-memory log holds it.
    pub fn entry(&self, index: LogIndex) -> Option<&Entry> {
        let _ = index;
        todo!()
    }
}

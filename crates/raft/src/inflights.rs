//! The pipelining window: AppendEntries messages sent to one follower and not yet acknowledged.

use std::collections::VecDeque;

use crate::ids::LogIndex;

/// The last index of each unacknowledged AppendEntries, oldest first, at most `capacity` of them.
#[derive(Debug, Clone)]
pub(crate) struct Inflights {
    /// Last entry index carried by each message in flight, increasing.
    last_indexes: VecDeque<LogIndex>,
    /// Most messages in flight (`Config::max_inflight_msgs`).
    capacity: usize,
}

impl Inflights {
    /// An empty window of `capacity` messages.
    pub(crate) fn new(capacity: usize) -> Inflights {
        Inflights {
            last_indexes: VecDeque::new(),
            capacity,
        }
    }

    /// True if no more messages may be sent until an acknowledgement frees a slot.
    pub(crate) fn is_full(&self) -> bool {
        self.last_indexes.len() >= self.capacity
    }

    /// Number of messages in flight.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.last_indexes.len()
    }

    /// Records a message whose last entry is `last`.
    pub(crate) fn add(&mut self, last: LogIndex) {
        debug_assert!(!self.is_full(), "a full window takes no more messages");
        debug_assert!(self.last_indexes.back().is_none_or(|&b| b < last));
        self.last_indexes.push_back(last);
    }

    /// Frees every message whose entries are all acknowledged by a match at `index`.
    pub(crate) fn free_le(&mut self, index: LogIndex) {
        while self.last_indexes.front().is_some_and(|&i| i <= index) {
            self.last_indexes.pop_front();
        }
    }

    /// Frees the oldest message: used when a heartbeat answer shows the follower alive while the
    /// window stays full, as the answers to those messages were probably lost.
    pub(crate) fn free_first(&mut self) {
        self.last_indexes.pop_front();
    }

    /// Forgets every message (on a change of replication mode).
    pub(crate) fn reset(&mut self) {
        self.last_indexes.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_fills_and_frees_by_acknowledged_index() {
        let mut w = Inflights::new(3);
        for i in [10, 20, 30] {
            w.add(LogIndex(i));
        }
        assert!(w.is_full());
        w.free_le(LogIndex(25));
        assert_eq!(w.len(), 1);
        assert!(!w.is_full());
        w.free_le(LogIndex(5));
        assert_eq!(w.len(), 1);
        w.free_first();
        assert_eq!(w.len(), 0);
    }
}

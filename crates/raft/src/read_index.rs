//! Linearizable reads by ReadIndex (thesis 6.4): the leader records its commit index when a read
//! arrives, confirms it is still the leader with a round of heartbeats sent after that, and then
//! lets the read be served once that index is applied.
//!
//! Rounds are numbered. A read needs a majority to answer a round sent after it arrived; at most
//! one round started for reads is outstanding at a time, so reads that arrive while one is in
//! flight share the next round (batching, as group commit does for writes). Periodic heartbeats
//! start rounds too, so a lost round costs at most one heartbeat interval.
//!
//! A round started for reads goes only to as many voters as a majority needs besides the
//! leader: the first to answer the round before (they were the fastest), or to every peer when
//! too few did. With 5 members that halves the messages and the followers' work per read. If
//! one of them is slow or gone, a round goes to every follower once a fifth of a heartbeat
//! interval has passed without a majority.
//!
//! A read comes from this node's driver or from a follower that will serve it
//! ([`ReadOrigin`]). Lease reads (`Config::lease_reads`) skip the queue while the leader holds
//! a lease; the lease is only as safe as the clocks, which is why it is opt-in. (A paused
//! process cannot wake up believing an expired lease: the node judges the lease by the `now`
//! its driver read after the request arrived, see `Node::read_index`.)

use std::collections::VecDeque;

use crate::ids::{LogIndex, NodeId, ReadId};

/// Who asked for a read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ReadOrigin {
    /// This node's driver.
    Local(ReadId),
    /// A follower, under its own number for the read.
    Remote(NodeId, u64),
}

/// A read waiting for its round to be confirmed.
#[derive(Debug, Clone, Copy)]
struct PendingRead {
    id: ReadOrigin,
    /// The commit index when the read was accepted.
    index: LogIndex,
    /// The first round that may confirm it (sent after it arrived).
    round: u64,
}

/// A leader's reads in progress.
#[derive(Debug, Clone, Default)]
pub(crate) struct ReadQueue {
    /// Reads that arrived before this leader committed an entry of its term; they get an index
    /// only then, as the commit index is not known to be current before (thesis 6.4, step 1).
    before_commit: Vec<ReadOrigin>,
    /// Reads waiting for confirmation, in arrival (and round) order.
    pending: VecDeque<PendingRead>,
    /// The last round sent.
    sent_round: u64,
    /// The last round a majority has answered.
    confirmed_round: u64,
    /// Voters other than the leader that answered `sent_round`, in the order they did.
    answered: Vec<NodeId>,
}

impl ReadQueue {
    /// Parks a read until the leader has committed an entry of its term.
    pub(crate) fn defer(&mut self, id: ReadOrigin) {
        self.before_commit.push(id);
    }

    /// Takes the parked reads (once an entry of the term is committed).
    pub(crate) fn take_deferred(&mut self) -> Vec<ReadOrigin> {
        std::mem::take(&mut self.before_commit)
    }

    /// Queues a read at `index`. Returns true if a round should be started for it now (none is
    /// outstanding); otherwise it waits for the round in flight to finish.
    pub(crate) fn add(&mut self, id: ReadOrigin, index: LogIndex) -> bool {
        self.pending.push_back(PendingRead {
            id,
            index,
            round: self.sent_round + 1,
        });
        self.confirmed_round >= self.sent_round
    }

    /// Numbers a new round of heartbeats.
    pub(crate) fn start_round(&mut self) -> u64 {
        self.sent_round += 1;
        self.answered.clear();
        self.sent_round
    }

    /// Voter `from` answered `round`: remembered, in order, if that is the latest round.
    pub(crate) fn answered_by(&mut self, from: NodeId, round: u64) {
        if round == self.sent_round && !self.answered.contains(&from) {
            self.answered.push(from);
        }
    }

    /// The first `count` voters to answer the latest round, if that many did.
    pub(crate) fn fastest(&self, count: usize) -> Option<&[NodeId]> {
        self.answered.get(..count)
    }

    /// The last round sent (the leader's own answer to every round).
    pub(crate) fn sent_round(&self) -> u64 {
        self.sent_round
    }

    /// A majority has answered up to `round`: returns the reads now confirmed, with their index.
    pub(crate) fn confirm(&mut self, round: u64) -> Vec<(ReadOrigin, LogIndex)> {
        let mut ready = Vec::new();
        if round <= self.confirmed_round {
            return ready;
        }
        self.confirmed_round = round;
        while let Some(read) = self.pending.front().copied().filter(|r| r.round <= round) {
            self.pending.pop_front();
            ready.push((read.id, read.index));
        }
        ready
    }

    /// True if reads wait for a round not yet sent and none is outstanding.
    pub(crate) fn wants_round(&self) -> bool {
        self.confirmed_round >= self.sent_round
            && self
                .pending
                .back()
                .is_some_and(|r| r.round > self.sent_round)
    }

    /// Takes every read, answered or not (on losing leadership).
    pub(crate) fn drain(&mut self) -> Vec<ReadOrigin> {
        let mut ids = std::mem::take(&mut self.before_commit);
        ids.extend(self.pending.drain(..).map(|r| r.id));
        ids
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_arriving_during_a_round_share_the_next_one() {
        let mut q = ReadQueue::default();
        assert!(q.add(ReadOrigin::Local(ReadId(1)), LogIndex(5)));
        let r1 = q.start_round();
        // Arrives while round 1 is in flight: needs round 2.
        assert!(!q.add(ReadOrigin::Local(ReadId(2)), LogIndex(6)));
        assert!(!q.add(ReadOrigin::Local(ReadId(3)), LogIndex(6)));
        assert_eq!(
            q.confirm(r1),
            vec![(ReadOrigin::Local(ReadId(1)), LogIndex(5))]
        );
        assert!(q.wants_round());
        let r2 = q.start_round();
        assert!(!q.wants_round());
        assert_eq!(q.confirm(r2).len(), 2);
        assert!(!q.wants_round());
    }

    #[test]
    fn an_old_round_never_confirms_a_newer_read() {
        let mut q = ReadQueue::default();
        let r1 = q.start_round();
        q.add(ReadOrigin::Local(ReadId(1)), LogIndex(1));
        assert!(q.confirm(r1).is_empty());
        let r2 = q.start_round();
        assert_eq!(
            q.confirm(r2),
            vec![(ReadOrigin::Local(ReadId(1)), LogIndex(1))]
        );
    }

    #[test]
    fn drain_returns_parked_and_pending_reads() {
        let mut q = ReadQueue::default();
        q.defer(ReadOrigin::Local(ReadId(1)));
        q.add(ReadOrigin::Local(ReadId(2)), LogIndex(1));
        assert_eq!(
            q.drain(),
            vec![ReadOrigin::Local(ReadId(1)), ReadOrigin::Local(ReadId(2))]
        );
        assert!(q.drain().is_empty());
    }
}

//! Elections: randomised timeouts from the node's seeded generator, and vote tallies.

use std::collections::BTreeMap;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::ids::NodeId;
use crate::quorum::{VoteResult, vote_result};
use crate::time::Millis;

/// Draws election deadlines uniformly from `[now + min, now + 2*min)` (thesis 3.4), so that
/// nodes rarely time out together and split the vote.
#[derive(Debug, Clone)]
pub(crate) struct ElectionTimer {
    rng: ChaCha8Rng,
    min_ms: u64,
}

impl ElectionTimer {
    /// A timer for node `id`. The node's id picks the generator's stream, so nodes handed the
    /// same seed still draw different timeouts.
    pub(crate) fn new(seed: u64, id: NodeId, min_ms: u64) -> ElectionTimer {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        rng.set_stream(id.0);
        ElectionTimer { rng, min_ms }
    }

    /// A fresh randomised election deadline.
    pub(crate) fn deadline(&mut self, now: Millis) -> Millis {
        // `Config::validate` keeps min_ms in 1..=ELECTION_TIMEOUT_MS_MAX, so 2*min cannot overflow
        // and the range is never empty.
        let timeout = self.rng.random_range(self.min_ms..self.min_ms * 2);
        now.after(timeout)
    }
}

/// The answers to one (pre-)vote round; a voter's first answer counts, repeats are ignored.
#[derive(Debug, Clone, Default)]
pub(crate) struct VoteTally {
    answers: BTreeMap<NodeId, bool>,
}

impl VoteTally {
    /// Records `voter`'s answer unless it already answered.
    pub(crate) fn record(&mut self, voter: NodeId, granted: bool) {
        self.answers.entry(voter).or_insert(granted);
    }

    /// The outcome among `voters` voters.
    pub(crate) fn result(&self, voters: usize) -> VoteResult {
        let granted = self.answers.values().filter(|&&g| g).count();
        vote_result(voters, granted, self.answers.len() - granted)
    }

    /// Forgets every answer (a new round).
    pub(crate) fn clear(&mut self) {
        self.answers.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deadlines_are_in_range_and_depend_on_seed_and_id() {
        let mut a = ElectionTimer::new(7, NodeId(1), 100);
        let mut b = ElectionTimer::new(7, NodeId(2), 100);
        let da: Vec<_> = (0..50).map(|_| a.deadline(Millis(1000))).collect();
        let db: Vec<_> = (0..50).map(|_| b.deadline(Millis(1000))).collect();
        assert!(da.iter().all(|d| (1100..1200).contains(&d.0)));
        assert_ne!(da, db);
        let mut again = ElectionTimer::new(7, NodeId(1), 100);
        let da2: Vec<_> = (0..50).map(|_| again.deadline(Millis(1000))).collect();
        assert_eq!(da, da2);
    }

    #[test]
    fn repeated_answers_count_once() {
        let mut t = VoteTally::default();
        t.record(NodeId(1), true);
        t.record(NodeId(2), true);
        t.record(NodeId(2), false);
        assert_eq!(t.result(5), VoteResult::Pending);
        t.record(NodeId(3), true);
        assert_eq!(t.result(5), VoteResult::Won);
    }
}

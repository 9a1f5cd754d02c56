//! The run's single source of randomness: one ChaCha generator seeded from the run's seed.
//!
//! Every random choice of a run (scenario, delays, faults, client commands, the seeds handed to
//! each Raft node) is drawn from this one generator, in the order the run makes them. Since the
//! run itself is a deterministic function of those draws, the seed alone replays it exactly.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// One in a million: probabilities are given in parts per million so that scenarios stay in
/// integers (no float rounding can differ between machines).
pub const PER_MILLION: u32 = 1_000_000;

/// The seeded generator; see the module documentation.
#[derive(Debug, Clone)]
pub struct SimRng(ChaCha8Rng);

impl SimRng {
    /// A generator whose whole output is fixed by `seed`.
    pub fn new(seed: u64) -> SimRng {
        SimRng(ChaCha8Rng::seed_from_u64(seed))
    }

    /// A uniformly random `u64` (used to seed the Raft nodes).
    pub fn next_u64(&mut self) -> u64 {
        self.0.random()
    }

    /// A uniform value in `lo..=hi`; `lo` when `hi < lo`.
    pub fn between(&mut self, lo: u64, hi: u64) -> u64 {
        if hi <= lo {
            return lo;
        }
        self.0.random_range(lo..=hi)
    }

    /// A uniform index in `0..n`; 0 when `n` is 0.
    pub fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            return 0;
        }
        self.0.random_range(0..n)
    }

    /// True with probability `per_million` / 1,000,000.
    pub fn chance(&mut self, per_million: u32) -> bool {
        if per_million == 0 {
            return false;
        }
        self.0.random_range(0..PER_MILLION) < per_million
    }

    /// A uniformly chosen element, `None` for an empty slice.
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> Option<&'a T> {
        if items.is_empty() {
            return None;
        }
        items.get(self.below(items.len()))
    }

    /// The index chosen with probability proportional to its weight; `None` if all are 0.
    pub fn weighted(&mut self, weights: &[u32]) -> Option<usize> {
        let total: u64 = weights.iter().map(|&w| u64::from(w)).sum();
        if total == 0 {
            return None;
        }
        let mut ticket = self.between(0, total - 1);
        for (i, &w) in weights.iter().enumerate() {
            if ticket < u64::from(w) {
                return Some(i);
            }
            ticket -= u64::from(w);
        }
        None
    }

    /// Shuffles `items` in place (Fisher-Yates, drawing from this generator).
    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = self.below(i + 1);
            items.swap(i, j);
        }
    }
}

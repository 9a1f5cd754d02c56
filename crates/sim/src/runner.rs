//! Many seeds at once: runs seeds over several threads and adds up what they did.
//!
//! Each run is independent and deterministic, so how seeds are spread over threads changes
//! nothing but the wall time; totals are sums, and failures are sorted by seed.

use std::ops::Range;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::failure::Failure;
use crate::simulation::{RunOptions, run};
use crate::stats::RunStats;
use crate::trace::TraceMode;

/// What a batch of runs did.
#[derive(Debug, Clone, Default)]
pub struct Totals {
    /// Everything counted, over every run.
    pub stats: RunStats,
    /// Every failed run, by seed.
    pub failures: Vec<Failure>,
}

/// Runs `seeds`, each as `template` says (its own seed ignored), on `threads` threads. Every
/// run keeps only the tail of its trace.
pub fn run_seeds(template: RunOptions, seeds: Range<u64>, threads: usize) -> Totals {
    let next = AtomicU64::new(seeds.start);
    let totals = Mutex::new(Totals::default());
    std::thread::scope(|scope| {
        for _ in 0..threads.max(1) {
            scope.spawn(|| {
                let mut mine = Totals::default();
                loop {
                    let seed = next.fetch_add(1, Ordering::Relaxed);
                    if seed >= seeds.end {
                        break;
                    }
                    let report = run(RunOptions {
                        seed,
                        trace: TraceMode::Tail,
                        ..template
                    });
                    mine.stats += report.stats;
                    mine.failures.extend(report.failure);
                }
                // A poisoned lock only means another thread panicked; its totals are lost
                // but ours are still worth adding.
                let mut all = match totals.lock() {
                    Ok(guard) => guard,
                    Err(poisoned) => poisoned.into_inner(),
                };
                all.stats += mine.stats;
                all.failures.append(&mut mine.failures);
            });
        }
    });
    let mut totals = match totals.into_inner() {
        Ok(t) => t,
        Err(poisoned) => poisoned.into_inner(),
    };
    totals.failures.sort_by_key(|f| f.seed);
    totals
}

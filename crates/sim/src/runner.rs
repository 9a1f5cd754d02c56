//! Many seeds at once: runs seeds over several threads and adds up what they did.
//!
//! Each run is independent and deterministic, so how seeds are spread over threads changes
//! nothing but the wall time; totals are sums, and failures are sorted by seed.

use std::ops::Range;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::failure::Failure;
use crate::simulation::{RunOptions, RunReport, run};
use crate::stats::RunStats;
use crate::trace::TraceMode;

/// What a batch of runs did.
#[derive(Debug, Clone, Default)]
pub struct Totals {
    /// Everything counted, over every run.
    pub stats: RunStats,
    /// Every failed run, by seed.
    pub failures: Vec<Failure>,
    /// The run whose healed cluster took longest to converge: (seed, election timeouts).
    pub slowest_heal: Option<(u64, f64)>,
}

impl Totals {
    fn add(&mut self, seed: u64, report: RunReport) {
        self.stats += report.stats;
        self.failures.extend(report.failure);
        if let Some(e) = report.heal_elections {
            self.note_heal(seed, e);
        }
    }

    fn note_heal(&mut self, seed: u64, elections: f64) {
        let slower = match self.slowest_heal {
            None => true,
            Some((s, e)) => elections > e || (elections == e && seed < s),
        };
        if slower {
            self.slowest_heal = Some((seed, elections));
        }
    }
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
                    mine.add(seed, report);
                }
                // A poisoned lock only means another thread panicked; its totals are lost
                // but ours are still worth adding.
                let mut all = match totals.lock() {
                    Ok(guard) => guard,
                    Err(poisoned) => poisoned.into_inner(),
                };
                all.stats += mine.stats;
                all.failures.append(&mut mine.failures);
                if let Some((seed, e)) = mine.slowest_heal {
                    all.note_heal(seed, e);
                }
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

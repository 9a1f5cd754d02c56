//! Guards against unreadable failures: shared helpers that run seeds and, when one fails, show
//! every failure report (seed, check, trace tail, replay command) in the panic message.

use sim::{Profile, RunOptions, Totals, run_seeds};

/// Client commands per run in the seeded sweeps: with ~2,000 seeds, about a million in all.
pub const COMMANDS_PER_RUN: usize = 500;

/// Runs `seeds` under `profile` on this thread, prints the totals and fails with every
/// failure report if any run failed.
pub fn sweep(profile: Profile, seeds: std::ops::Range<u64>) -> Totals {
    sweep_with(RunOptions::new(profile, 0, COMMANDS_PER_RUN), seeds)
}

/// Like [`sweep`], with every option of `template` but the seed.
pub fn sweep_with(template: RunOptions, seeds: std::ops::Range<u64>) -> Totals {
    let profile = template.profile;
    let totals = run_seeds(template, seeds.clone(), 1);
    println!("profile {profile}, seeds {seeds:?}:\n{}", totals.stats);
    assert_clean(&totals);
    totals
}

/// Fails with every failure report if `totals` holds any.
pub fn assert_clean(totals: &Totals) {
    if totals.failures.is_empty() {
        return;
    }
    let mut text = String::new();
    for failure in &totals.failures {
        text.push_str(&failure.to_string());
        text.push('\n');
    }
    let seeds: Vec<u64> = totals.failures.iter().map(|f| f.seed).collect();
    panic!(
        "{} runs failed (seeds {seeds:?}):\n{text}",
        totals.failures.len()
    );
}

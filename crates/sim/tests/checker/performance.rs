//! Guards against a checker too slow for the simulator, which checks thousands of histories per
//! test suite: measures typical large histories (run with --nocapture to see the numbers) and
//! requires them to be decided well within the budget.

use super::generate::{Params, generate, record};
use sim::linearizability::{SEARCH_STATES_MAX, check};
use std::time::Instant;

fn measure(label: &str, params: Params, seeds: u64) {
    let mut slowest = 0.0f64;
    let mut total = 0.0;
    let mut most_states = 0;
    for seed in 0..seeds {
        let history = record(&generate(seed, &params));
        let start = Instant::now();
        let result = check(&history);
        let ms = start.elapsed().as_secs_f64() * 1e3;
        let result = result.unwrap_or_else(|violation| panic!("false alarm:\n{violation}"));
        assert!(result.is_linearizable(), "{result:?}");
        let stats = result.stats();
        // Typical histories stay far from the budget.
        assert!(
            stats.most_states_one_file * 20 < SEARCH_STATES_MAX,
            "{stats:?}"
        );
        slowest = slowest.max(ms);
        total += ms;
        most_states = most_states.max(stats.most_states_one_file);
    }
    println!(
        "{label}: mean {:.2} ms, slowest {slowest:.2} ms, most configurations for one file {most_states}",
        total / seeds as f64
    );
}

#[test]
fn two_thousand_operations_over_ten_files_and_five_clients() {
    let params = Params {
        ops: 2000,
        files: 10,
        clients: 5,
        unknown_percent: 2,
        duration_max: 20,
        gap_max: 10,
        ..Params::new(0, 0, 0)
    };
    measure("2000 ops, 10 files, 5 clients, 2% unknown", params, 5);
}

#[test]
fn two_thousand_operations_with_many_unknown_outcomes() {
    let params = Params {
        ops: 2000,
        files: 10,
        clients: 5,
        unknown_percent: 10,
        duration_max: 20,
        gap_max: 10,
        ..Params::new(0, 0, 0)
    };
    measure("2000 ops, 10 files, 5 clients, 10% unknown", params, 3);
}

#[test]
fn two_thousand_operations_on_one_hot_file() {
    let params = Params {
        ops: 2000,
        files: 1,
        clients: 5,
        unknown_percent: 2,
        duration_max: 20,
        gap_max: 10,
        ..Params::new(0, 0, 0)
    };
    measure("2000 ops, 1 file, 5 clients, 2% unknown", params, 3);
}

#[test]
fn one_hot_file_with_many_unknown_outcomes_and_slow_operations() {
    let params = Params {
        ops: 2000,
        files: 1,
        clients: 5,
        unknown_percent: 10,
        duration_max: 50,
        gap_max: 10,
        ..Params::new(0, 0, 0)
    };
    measure("2000 ops, 1 file, 5 clients, 10% unknown, slow", params, 3);
}

//! Guards against a run that never ends: a run that keeps scheduling events (a loop of messages
//! or timers microseconds apart never reaches a deadline in simulated time) must stop at its
//! event budget with a failure that names the budget, and healthy runs must stay far below it.

use sim::{Check, Profile, RunOptions, run};

use crate::common::COMMANDS_PER_RUN;

#[test]
fn a_run_over_its_event_budget_fails_naming_the_budget() {
    let mut options = RunOptions::new(Profile::Mixed, 3, COMMANDS_PER_RUN);
    options.events_max = 5_000;
    let report = run(options);
    let failure = report
        .failure
        .expect("5,000 events cannot finish 500 commands");
    assert_eq!(failure.violation.check, Check::Budget, "{failure}");
    assert!(
        failure.violation.detail.contains("budget of 5000 events"),
        "{failure}"
    );
    assert_eq!(
        report.stats.events, 5_001,
        "it stops at the first event over"
    );
}

#[test]
fn healthy_runs_use_a_fraction_of_the_default_budget() {
    for (profile, seed) in [(Profile::FiveNodes, 1), (Profile::Crashes, 2)] {
        let options = RunOptions::new(profile, seed, COMMANDS_PER_RUN);
        let report = run(options);
        assert!(report.failure.is_none(), "{:?}", report.failure);
        assert!(
            report.stats.events * 4 < options.events_max,
            "{profile} seed {seed}: {} events of a budget of {}",
            report.stats.events,
            options.events_max
        );
    }
}

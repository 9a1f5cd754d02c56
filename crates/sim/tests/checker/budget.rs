//! Guards against a checker that runs forever on a pathological history: the search stops at
//! its budget and says so, and a definite violation elsewhere is still reported.

use super::build::*;
use sim::linearizability::{
    CheckResult, SEARCH_STATES_MAX, ViolationKind, check, check_with_budget,
};

/// Thirty mutually concurrent reads and a write, then a read no order explains: proving that
/// takes trying every subset of the reads.
fn pathological(s: &mut Script, name: &str) {
    s.op(0, (0, 100), write(name, "a"), ok(1));
    for client in 1..=30 {
        s.op(client, (0, 100), read(name), not_found());
    }
    s.op(99, (200, 201), read(name), not_found());
}

#[test]
fn pathological_history_is_inconclusive() {
    let mut s = Script::new();
    pathological(&mut s, "f");
    match check(&s.history) {
        Ok(CheckResult::Inconclusive { file: f, stats }) => {
            assert_eq!(f, file("f"));
            assert!(stats.most_states_one_file > SEARCH_STATES_MAX);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn smaller_budget_gives_up_sooner() {
    let mut s = Script::new();
    pathological(&mut s, "f");
    let result = check_with_budget(&s.history, 1_000).unwrap();
    assert!(!result.is_linearizable());
    assert!(result.stats().states <= 1_001);
}

#[test]
fn violation_elsewhere_is_still_reported() {
    let mut s = Script::new();
    pathological(&mut s, "a");
    s.op(1, (300, 301), write("z", "x"), ok(2));
    s.op(2, (302, 303), read("z"), not_found());
    let violation = check_with_budget(&s.history, 1_000).unwrap_err();
    assert_eq!(violation.kind(), &ViolationKind::NotLinearizable);
    assert_eq!(violation.file(), &file("z"));
}

//! Documents what the model knowingly relaxes (see the `linearizability` module): histories
//! that are not linearizable yet are accepted. If the checker learns to catch one, move it to
//! `rejects`.

use super::build::*;
use sim::linearizability::{CheckResult, check};

#[test]
fn version_order_of_concurrent_writes_to_different_files() {
    // g got the smaller version, so it was written before f; f's 6 was seen by t=3, so g
    // existed by then, yet a read of g from t=4 finds nothing.
    let mut s = Script::new();
    s.op(1, (0, 10), write("f", "a"), ok(6));
    s.op(2, (0, 10), write("g", "b"), ok(5));
    s.op(3, (1, 3), read("f"), contents(6, "a"));
    s.op(3, (4, 5), read("g"), not_found());
    assert!(matches!(
        check(&s.history),
        Ok(CheckResult::Linearizable(_))
    ));
}

#[test]
fn version_steps_larger_than_one() {
    // Not a relaxation of SPEC.md, which only promises growth, but worth stating.
    let mut s = Script::new();
    s.op(1, (0, 1), write("f", "a"), ok(3));
    s.op(1, (2, 3), write("f", "b"), ok(10));
    assert_linearizable(&s.history);
}

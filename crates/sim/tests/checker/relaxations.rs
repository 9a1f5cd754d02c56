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
    // Not a relaxation of docs/protocol.md, which only promises growth, but worth stating.
    let mut s = Script::new();
    s.op(1, (0, 1), write("f", "a"), ok(3));
    s.op(1, (2, 3), write("f", "b"), ok(10));
    assert_linearizable(&s.history);
}

#[test]
fn expiry_that_comes_late() {
    // The clock moves only with the log; that a file is gone once its time is up is not checked.
    let mut s = Script::with_clocks(0, 0);
    s.op(1, (0, 10), write_exp("f", "a", 1), ok(1));
    s.op(2, (100_000, 100_010), read("f"), contents_exp(1, "a", 1));
    assert_linearizable(&s.history);
}

#[test]
fn expiry_order_across_files() {
    // g was written before f with the same exptime, so the replicated clock that expired f had
    // expired g too; but each file's history is searched alone, with its own clock.
    let mut s = Script::with_clocks(0, 0);
    s.op(1, (0, 10), write_exp("g", "b", 1), ok(1));
    s.op(1, (20, 30), write_exp("f", "a", 1), ok(2));
    s.op(2, (2_000, 2_010), read("f"), not_found());
    s.op(2, (2_020, 2_030), read("g"), contents_exp(1, "b", 1));
    assert_linearizable(&s.history);
}

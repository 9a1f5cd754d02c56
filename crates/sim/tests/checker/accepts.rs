//! Guards against false alarms: linearizable histories with concurrency, unknown outcomes, cas
//! loops and re-created files are all accepted.

use super::build::*;
use fs::Reply;
use sim::history::History;
use sim::linearizability::{CheckResult, check};

/// Every permutation of `0..n`.
fn permutations(n: usize) -> Vec<Vec<usize>> {
    if n == 0 {
        return vec![vec![]];
    }
    let mut all = Vec::new();
    for rest in permutations(n - 1) {
        for at in 0..=rest.len() {
            let mut p = rest.clone();
            p.insert(at, n - 1);
            all.push(p);
        }
    }
    all
}

#[test]
fn empty_history() {
    assert_eq!(
        check(&History::new()),
        Ok(CheckResult::Linearizable(Default::default()))
    );
}

#[test]
fn concurrent_writes_take_effect_in_every_order() {
    let contents_of = ["a", "b", "c", "d"];
    for order in permutations(4) {
        let mut s = Script::new();
        // Four overlapping writes; versions follow the order they took effect in.
        for (client, content) in contents_of.iter().enumerate() {
            let version = order.iter().position(|&w| w == client).unwrap() as u64 + 1;
            s.op(client as u64, (0, 10), write("f", content), ok(version));
        }
        // A concurrent read saw the first, later reads see the last.
        s.op(9, (5, 12), read("f"), contents(1, contents_of[order[0]]));
        s.op(9, (13, 14), read("f"), contents(4, contents_of[order[3]]));
        assert_linearizable(&s.history);
    }
}

#[test]
fn concurrent_mixed_operations_in_every_order() {
    // A write, a cas, a delete and a read overlap on an existing file; apply them sequentially in
    // every order to find the replies, and the history must be accepted each time.
    for order in permutations(4) {
        let mut s = Script::new();
        s.op(0, (0, 1), write("f", "init"), ok(1));
        let mut present: Option<(u64, &str)> = Some((1, "init"));
        let mut next_version = 2;
        let mut replies: [Option<Reply>; 4] = Default::default();
        for &which in &order {
            let reply = match which {
                0 => {
                    present = Some((next_version, "w"));
                    next_version += 1;
                    ok(next_version - 1)
                }
                1 => match present {
                    Some((1, _)) => {
                        present = Some((next_version, "c"));
                        next_version += 1;
                        ok(next_version - 1)
                    }
                    Some((current, _)) => mismatch(current),
                    None => not_found(),
                },
                2 => match present.take() {
                    Some(_) => deleted(),
                    None => not_found(),
                },
                _ => match present {
                    Some((version, content)) => contents(version, content),
                    None => not_found(),
                },
            };
            replies[which] = Some(reply);
        }
        let commands = [write("f", "w"), cas("f", 1, "c"), delete("f"), read("f")];
        for (client, (command, reply)) in commands.into_iter().zip(replies).enumerate() {
            s.op(client as u64 + 1, (2, 10), command, reply.unwrap());
        }
        let last = match present {
            Some((version, content)) => contents(version, content),
            None => not_found(),
        };
        s.op(9, (11, 12), read("f"), last);
        assert_linearizable(&s.history);
    }
}

#[test]
fn read_concurrent_with_a_write_may_see_either_side() {
    for seen in [contents(1, "a"), contents(2, "b")] {
        let mut s = Script::new();
        s.op(1, (0, 1), write("f", "a"), ok(1));
        s.op(1, (2, 10), write("f", "b"), ok(2));
        s.op(2, (3, 4), read("f"), seen);
        assert_linearizable(&s.history);
    }
}

#[test]
fn equal_times_count_as_concurrent() {
    // The read completes at the instant the write is invoked: either may be first.
    let mut s = Script::new();
    s.op(1, (0, 5), read("f"), contents(1, "a"));
    s.op(2, (5, 9), write("f", "a"), ok(1));
    assert_linearizable(&s.history);
}

#[test]
fn unknown_write_that_took_effect_revealed_by_a_later_read() {
    let mut s = Script::new();
    s.op(1, (0, 1), write("f", "a"), ok(1));
    s.unknown(2, 2, write("f", "b"));
    s.op(1, (3, 4), read("f"), contents(1, "a"));
    // Other files used versions 2..=6 meanwhile; the unknown write got 7.
    s.op(3, (5, 6), write("g", "x"), ok(6));
    s.op(1, (20, 21), read("f"), contents(7, "b"));
    s.op(1, (22, 23), cas("f", 7, "c"), ok(8));
    s.op(1, (24, 25), read("f"), contents(8, "c"));
    assert_linearizable(&s.history);
}

#[test]
fn unknown_write_that_did_not_take_effect() {
    let mut s = Script::new();
    s.unknown(2, 0, write("f", "b"));
    s.op(1, (3, 4), read("f"), not_found());
    s.op(1, (5, 6), write("f", "a"), ok(1));
    s.op(1, (7, 8), read("f"), contents(1, "a"));
    assert_linearizable(&s.history);
}

#[test]
fn unknown_write_taking_effect_long_after_the_client_gave_up() {
    let mut s = Script::new();
    s.unknown(2, 0, write("f", "late"));
    s.op(1, (3, 4), read("f"), not_found());
    s.op(1, (5, 6), write("f", "a"), ok(1));
    s.op(1, (100, 101), read("f"), contents(1, "a"));
    s.op(1, (200, 201), read("f"), contents(5, "late"));
    assert_linearizable(&s.history);
}

#[test]
fn err_internal_write_revealed_by_err_version() {
    let mut s = Script::new();
    let w = s.history.invoke(1, 0, write("f", "a"));
    s.history.complete(w, 3, Reply::Internal).unwrap();
    s.op(2, (4, 5), cas("f", 1, "b"), mismatch(3));
    s.op(2, (6, 7), cas("f", 3, "b"), ok(4));
    assert_linearizable(&s.history);
}

#[test]
fn unknown_write_revealed_by_a_delete() {
    let mut s = Script::new();
    s.unknown(1, 0, write("f", "a"));
    s.op(2, (4, 5), delete("f"), deleted());
    s.op(2, (6, 7), read("f"), not_found());
    assert_linearizable(&s.history);
}

#[test]
fn unknown_cas_that_took_effect_and_one_that_did_not() {
    let mut s = Script::new();
    s.op(1, (0, 1), write("f", "a"), ok(1));
    s.unknown(1, 2, cas("f", 1, "b"));
    s.unknown(2, 2, cas("f", 1, "c"));
    s.op(3, (10, 11), read("f"), contents(9, "c"));
    assert_linearizable(&s.history);
}

#[test]
fn chained_unknown_cas_operations() {
    // Two unknown cas in a row, the second expecting the first's unseen version.
    let mut s = Script::new();
    s.op(1, (0, 1), write("f", "a"), ok(1));
    s.unknown(1, 2, cas("f", 1, "b"));
    s.unknown(2, 3, cas("f", 4, "c"));
    s.op(3, (10, 11), read("f"), contents(6, "c"));
    assert_linearizable(&s.history);
}

#[test]
fn unknown_delete_that_took_effect_and_one_that_did_not() {
    for took_effect in [true, false] {
        let mut s = Script::new();
        s.op(1, (0, 1), write("f", "a"), ok(1));
        s.unknown(2, 2, delete("f"));
        let reply = if took_effect {
            not_found()
        } else {
            contents(1, "a")
        };
        s.op(1, (5, 6), read("f"), reply);
        assert_linearizable(&s.history);
    }
}

#[test]
fn unknown_write_then_unknown_delete_then_recreated() {
    let mut s = Script::new();
    s.unknown(1, 0, write("f", "a"));
    s.unknown(2, 1, delete("f"));
    s.op(3, (2, 3), read("f"), contents(2, "a"));
    s.op(3, (4, 5), read("f"), not_found());
    s.op(3, (6, 7), write("f", "b"), ok(3));
    assert_linearizable(&s.history);
}

#[test]
fn reads_with_unknown_outcome_are_ignored() {
    let mut s = Script::new();
    s.op(1, (0, 1), write("f", "a"), ok(1));
    let r = s.history.invoke(2, 2, read("f"));
    s.history.complete(r, 3, Reply::Internal).unwrap();
    s.history.invoke(3, 4, read("f")); // still pending when the run ended
    assert_linearizable(&s.history);
}

#[test]
fn cas_loop() {
    // Three clients increment a counter with read-then-cas, retrying on ERR_VERSION.
    let mut s = Script::new();
    s.op(0, (0, 1), write("n", "0"), ok(1));
    s.op(1, (2, 3), read("n"), contents(1, "0"));
    s.op(2, (2, 4), read("n"), contents(1, "0"));
    s.op(3, (2, 5), read("n"), contents(1, "0"));
    s.op(1, (6, 9), cas("n", 1, "1"), ok(2));
    s.op(2, (6, 9), cas("n", 1, "1"), mismatch(2));
    s.op(3, (7, 12), cas("n", 1, "1"), mismatch(3));
    s.op(2, (10, 11), read("n"), contents(2, "1"));
    s.op(2, (12, 14), cas("n", 2, "2"), ok(3));
    s.op(3, (13, 15), read("n"), contents(3, "2"));
    s.op(3, (16, 17), cas("n", 3, "3"), ok(4));
    s.op(1, (18, 19), read("n"), contents(4, "3"));
    assert_linearizable(&s.history);
}

#[test]
fn delete_and_recreate() {
    let mut s = Script::new();
    s.op(1, (0, 1), write("f", "a"), ok(1));
    s.op(1, (2, 3), delete("f"), deleted());
    s.op(2, (4, 5), read("f"), not_found());
    s.op(2, (6, 7), delete("f"), not_found());
    s.op(2, (8, 9), cas("f", 1, "x"), not_found());
    s.op(1, (10, 11), write("f", "a"), ok(2));
    s.op(2, (12, 13), read("f"), contents(2, "a"));
    // The old version does not come back: no ABA.
    s.op(2, (14, 15), cas("f", 1, "x"), mismatch(2));
    assert_linearizable(&s.history);
}

#[test]
fn same_content_written_twice() {
    let mut s = Script::new();
    s.op(1, (0, 10), write("f", "same"), ok(1));
    s.op(2, (0, 10), write("f", "same"), ok(2));
    s.op(3, (3, 4), read("f"), contents(1, "same"));
    s.op(3, (11, 12), read("f"), contents(2, "same"));
    assert_linearizable(&s.history);
}

#[test]
fn versions_interleave_across_files() {
    let mut s = Script::new();
    s.op(1, (0, 1), write("f", "a"), ok(1));
    s.op(2, (2, 3), write("g", "b"), ok(2));
    s.op(1, (4, 5), write("f", "c"), ok(3));
    s.op(2, (6, 7), read("g"), contents(2, "b"));
    s.op(2, (8, 9), read("f"), contents(3, "c"));
    assert_linearizable(&s.history);
}

#[test]
fn binary_content() {
    let mut s = Script::new();
    s.op(1, (0, 1), write("f", "a\r\nb\0"), ok(1));
    s.op(2, (2, 3), read("f"), contents(1, "a\r\nb\0"));
    assert_linearizable(&s.history);
}

//! Guards against a checker that misjudges expiry: a version found expired must stay gone until
//! the next write, may be found gone only once the clock bound allows, and reads report EXPTIME in
//! range; yet every history a store judging expiry by skewed members' clocks can give is
//! accepted. Times here are milliseconds (`Script::with_clocks`).

use super::build::*;
use bytes::Bytes;
use fs::{Command, Name, Reply, Store};
use proptest::prelude::*;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use sim::history::{ClockBound, History};
use sim::linearizability::{CheckResult, ViolationKind, check};

#[test]
fn a_version_found_expired_is_never_read_again() {
    let mut s = Script::with_clocks(0, 0);
    s.op(1, (0, 10), write_exp("f", "a", 1), ok(1));
    s.op(2, (2_000, 2_010), read("f"), not_found());
    let again = s.op(3, (3_000, 3_010), read("f"), contents_exp(1, "a", 1));
    let violation = assert_violation(&s.history, ViolationKind::NotLinearizable);
    assert_eq!(violation.culprits(), &[again]);
    // The report says which clocks expiry was judged by.
    assert!(violation.to_string().contains("0 ms ahead"), "{violation}");
}

#[test]
fn a_version_found_expired_does_not_match_a_cas_or_take_a_delete() {
    for (command, reply) in [
        (cas("f", 1, "b"), ok(2)),
        (cas("f", 7, "b"), mismatch(1)),
        (delete("f"), deleted()),
    ] {
        let mut s = Script::with_clocks(100, 100);
        s.op(1, (0, 10), write_exp("f", "a", 2), ok(1));
        s.op(2, (5_000, 5_010), delete("f"), not_found());
        s.op(3, (6_000, 6_010), command, reply);
        assert_violation(&s.history, ViolationKind::NotLinearizable);
    }
}

#[test]
fn expiry_found_before_the_clock_bound_allows_is_rejected() {
    // Clocks within 500 ms either way: a file written from t=1000 with exptime 2 expires no
    // earlier than 1000 - 500 + 2000 by any clock, and reads no later than 500 ahead of it.
    for finder in [read("f"), delete("f"), cas("f", 1, "b")] {
        let mut s = Script::with_clocks(500, 500);
        s.op(1, (1_000, 1_010), write_exp("f", "a", 2), ok(1));
        s.op(2, (1_500, 1_999), finder.clone(), not_found());
        assert_violation(&s.history, ViolationKind::NotLinearizable);

        let mut s = Script::with_clocks(500, 500);
        s.op(1, (1_000, 1_010), write_exp("f", "a", 2), ok(1));
        s.op(2, (1_500, 2_000), finder, not_found());
        assert_linearizable(&s.history);
    }
}

#[test]
fn an_unknown_write_with_an_exptime_expires_no_earlier_than_the_bound_allows() {
    // The file exists without expiry; an unknown write with exptime 1 is the only way it can
    // be gone, and that not before t = 10 + 1000 - 200.
    let mut s = Script::with_clocks(100, 100);
    s.op(1, (0, 5), write("f", "a"), ok(1));
    s.unknown(2, 10, write_exp("f", "b", 1));
    s.op(3, (700, 799), read("f"), not_found());
    assert_violation(&s.history, ViolationKind::NotLinearizable);

    let mut s = Script::with_clocks(100, 100);
    s.op(1, (0, 5), write("f", "a"), ok(1));
    s.unknown(2, 10, write_exp("f", "b", 1));
    s.op(3, (700, 810), read("f"), not_found());
    assert_linearizable(&s.history);
}

#[test]
fn an_unknown_cas_with_an_exptime_may_be_found_expired() {
    let mut s = Script::with_clocks(0, 0);
    s.op(1, (0, 5), write("f", "a"), ok(1));
    s.unknown(2, 10, cas_exp("f", 1, "b", 1));
    s.op(3, (2_000, 2_010), read("f"), not_found());
    // Gone for good: written again, it is found again.
    s.op(1, (3_000, 3_010), write("f", "c"), ok(3));
    s.op(3, (4_000, 4_010), read("f"), contents(3, "c"));
    assert_linearizable(&s.history);
}

#[test]
fn legal_expiry_under_the_widest_skew_is_accepted() {
    // Clocks up to 2 s ahead and 2 s behind: a leader 2 s behind may stamp a write invoked at
    // t=10,000 with 8,000, so that it expires at 11,000 by the clocks, which a member 2 s ahead
    // reads at t=9,000. A file with exptime 3 may be found gone at once.
    let mut s = Script::with_clocks(2_000, 2_000);
    s.op(1, (10_000, 10_050), write_exp("f", "a", 3), ok(1));
    s.op(2, (10_060, 10_070), read("f"), contents_exp(1, "a", 3));
    s.op(3, (10_100, 10_200), read("f"), contents_exp(1, "a", 1));
    s.op(2, (10_100, 10_200), cas("f", 1, "x"), not_found());
    s.op(3, (10_300, 10_400), read("f"), not_found());
    s.op(2, (10_400, 10_500), delete("f"), not_found());
    // A write after expiry is a write like any other.
    s.op(1, (10_500, 10_600), write_exp("f", "b", 1), ok(3));
    s.op(3, (10_700, 10_800), read("f"), contents_exp(3, "b", 1));
    assert_linearizable(&s.history);
}

#[test]
fn without_a_clock_bound_an_expiring_version_may_be_found_gone_at_once() {
    let mut s = Script::new();
    s.op(1, (0, 1), write_exp("f", "a", 3), ok(1));
    s.op(2, (2, 3), read("f"), not_found());
    assert_linearizable(&s.history);
    // ... but only once.
    s.op(2, (4, 5), read("f"), contents_exp(1, "a", 1));
    assert_violation(&s.history, ViolationKind::NotLinearizable);
}

#[test]
fn exptime_reported_out_of_range_is_rejected() {
    for (written, reported) in [(3, 4), (3, 0), (0, 1), (1, 2)] {
        let mut s = Script::with_clocks(0, 0);
        s.op(1, (0, 10), write_exp("f", "a", written), ok(1));
        s.op(2, (20, 30), read("f"), contents_exp(1, "a", reported));
        assert_violation(&s.history, ViolationKind::NotLinearizable);
    }
    for (written, reported) in [(3, 1), (3, 3), (0, 0), (1, 1)] {
        let mut s = Script::with_clocks(0, 0);
        s.op(1, (0, 10), write_exp("f", "a", written), ok(1));
        s.op(2, (20, 30), read("f"), contents_exp(1, "a", reported));
        assert_linearizable(&s.history);
    }
}

#[test]
fn a_cas_replaces_the_expiry() {
    let mut s = Script::with_clocks(0, 0);
    s.op(1, (0, 10), write_exp("f", "a", 1), ok(1));
    s.op(1, (20, 30), cas("f", 1, "b"), ok(2));
    // The cas wrote a version that never expires.
    s.op(2, (5_000, 5_010), read("f"), not_found());
    assert_violation(&s.history, ViolationKind::NotLinearizable);

    let mut s = Script::with_clocks(0, 0);
    s.op(1, (0, 10), write("f", "a"), ok(1));
    s.op(1, (20, 30), cas_exp("f", 1, "b", 1), ok(2));
    s.op(2, (40, 50), read("f"), contents_exp(2, "b", 1));
    s.op(2, (5_000, 5_010), read("f"), not_found());
    assert_linearizable(&s.history);
}

// ----- Random histories a store with skewed clocks gives -----

/// Files, clients and the longest EXPTIME of the generated histories: few files, so that
/// expiry meets reads, cas and deletes.
const FILES: usize = 2;
const CLIENTS: usize = 4;
const EXPTIME_S_MAX: u64 = 3;

/// A random history as a cluster gives it: each operation takes effect at a point inside its
/// interval (an unknown one perhaps later, or never), in the order of those points, applied to
/// the production store with the stamp of some member's clock at that point: off true time by
/// up to `ahead_ms` ahead and `behind_ms` behind. Times are milliseconds.
fn generate_expiring(seed: u64, ops: usize, ahead_ms: u64, behind_ms: u64) -> History {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let names: Vec<Name> = (0..FILES)
        .map(|i| Name::new(format!("f{i}")).unwrap())
        .collect();
    // (point or None, invoke, complete, client, name, kind, hidden)
    let mut planned = Vec::with_capacity(ops);
    let mut free = [0u64; CLIENTS];
    for index in 0..ops {
        let client = rng.random_range(0..CLIENTS);
        let invoke = free[client] + rng.random_range(0..=400);
        let complete = invoke + rng.random_range(0..=300);
        free[client] = complete + 1;
        let hidden = rng.random_ratio(1, 10);
        let point = if !hidden {
            Some(rng.random_range(invoke..=complete))
        } else if rng.random_bool(0.5) {
            Some(rng.random_range(invoke..=complete + 2_000))
        } else {
            None
        };
        let name = names[rng.random_range(0..FILES)].clone();
        let kind = rng.random_range(0..4u8);
        planned.push((point, index, invoke, complete, client, name, kind, hidden));
    }
    planned.sort_by_key(|p| (p.0.is_none(), p.0, p.1));
    let mut store = Store::new();
    let mut done = Vec::with_capacity(ops);
    for (point, index, invoke, complete, client, name, kind, hidden) in planned {
        let command = command(&mut rng, &store, name, kind, index);
        let reply = point.map(|at| {
            // Some member's clock at this point; the store never lets the clock go back.
            let skew = rng.random_range(0..=ahead_ms + behind_ms);
            let stamp = 1_000_000 + at + skew - behind_ms;
            store.apply(&command, stamp)
        });
        let reply = if hidden { None } else { reply };
        done.push((invoke, index, complete, client, command, reply));
    }
    done.sort_by_key(|d| (d.0, d.1));
    let mut history = History::new();
    history.set_clock_bound(ClockBound {
        units_per_ms: 1,
        ahead_ms,
        behind_ms,
    });
    for (invoke, _, complete, client, command, reply) in done {
        let id = history.invoke(client as u64, invoke, command);
        match reply {
            Some(reply) => history.complete(id, complete, reply).unwrap(),
            None => history.give_up(id).unwrap(),
        }
    }
    history
}

/// A command of `kind` on `name`; a cas usually expects the version a read would find now.
fn command(rng: &mut ChaCha8Rng, store: &Store, name: Name, kind: u8, index: usize) -> Command {
    let content = Bytes::from(format!("v{index}"));
    let exptime_s = if rng.random_bool(0.5) {
        rng.random_range(1..=EXPTIME_S_MAX)
    } else {
        0
    };
    match kind {
        0 => Command::Read { name },
        1 => Command::Write {
            name,
            content,
            exptime_s,
        },
        2 => {
            let version = match store.read(&name) {
                Reply::Contents { version, .. } if rng.random_ratio(2, 3) => version,
                _ => rng.random_range(0..=store.version() + 1),
            };
            Command::Cas {
                name,
                version,
                content,
                exptime_s,
            }
        }
        _ => Command::Delete { name },
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn histories_of_a_store_with_skewed_clocks_are_accepted(
        seed in any::<u64>(),
        ops in 1usize..120,
        ahead_ms in 0u64..2_500,
        behind_ms in 0u64..2_500,
    ) {
        let history = generate_expiring(seed, ops, ahead_ms, behind_ms);
        match check(&history) {
            Ok(CheckResult::Linearizable(_)) => {}
            Ok(other) => prop_assert!(false, "{other:?}\n{history}"),
            Err(violation) => prop_assert!(false, "false alarm:\n{violation}\n{history}"),
        }
    }
}

/// The generated histories exercise expiry: reads find expiring versions, and tightening the
/// clock bound to nothing makes some of them fail (a file found gone too early for clocks that
/// were in fact off), so the bound is what lets them pass.
#[test]
fn generated_histories_depend_on_expiry_and_the_clock_bound() {
    let (mut expiring_reads, mut fail_when_tightened) = (0, 0);
    for seed in 0..100 {
        let mut history = generate_expiring(seed, 100, 2_000, 2_000);
        expiring_reads += history
            .operations()
            .iter()
            .filter(|op| {
                matches!(
                    op.outcome(),
                    sim::history::Outcome::Ok(Reply::Contents { exptime_s, .. }) if *exptime_s > 0
                )
            })
            .count();
        assert!(check(&history).is_ok_and(|r| r.is_linearizable()));
        history.set_clock_bound(ClockBound {
            units_per_ms: 1,
            ahead_ms: 0,
            behind_ms: 0,
        });
        fail_when_tightened += usize::from(check(&history).is_err());
    }
    assert!(expiring_reads > 500, "{expiring_reads}");
    assert!(fail_when_tightened > 10, "{fail_when_tightened}");
}

//! Guards against missed violations: each known non-linearizable history shape is rejected, and
//! the report names the file and the operations that show it.

use super::build::*;
use fs::Reply;
use sim::linearizability::ViolationKind;

#[test]
fn stale_read_after_acknowledged_write() {
    let mut s = Script::new();
    s.op(1, (0, 1), write("f", "a"), ok(1));
    let newer = s.op(1, (2, 3), write("f", "b"), ok(2));
    let stale = s.op(2, (4, 5), read("f"), contents(1, "a"));
    let violation = assert_violation(&s.history, ViolationKind::NotLinearizable);
    assert_eq!(violation.file(), &file("f"));
    assert_eq!(violation.culprits(), &[stale]);
    // The acknowledged newer write and the stale read are the heart of it.
    let ops = involved(&violation);
    assert!(ops.contains(&newer) && ops.contains(&stale), "{violation}");
}

#[test]
fn read_of_value_never_written() {
    let mut s = Script::new();
    s.op(1, (0, 1), write("f", "a"), ok(1));
    let bogus = s.op(2, (2, 3), read("f"), contents(1, "zzz"));
    let violation = assert_violation(&s.history, ViolationKind::NotLinearizable);
    // Nothing else is needed to explain this one.
    assert_eq!(involved(&violation), vec![bogus], "{violation}");
}

#[test]
fn read_of_value_never_written_on_an_empty_store() {
    let mut s = Script::new();
    let bogus = s.op(2, (2, 3), read("f"), contents(1, "zzz"));
    let violation = assert_violation(&s.history, ViolationKind::NotLinearizable);
    assert_eq!(involved(&violation), vec![bogus]);
}

#[test]
fn lost_acknowledged_write() {
    // Both writes acknowledged; version order says "b" came last, yet a later read sees "a".
    let mut s = Script::new();
    s.op(1, (0, 10), write("f", "a"), ok(1));
    s.op(2, (0, 10), write("f", "b"), ok(2));
    let read = s.op(3, (11, 12), read("f"), contents(1, "a"));
    let violation = assert_violation(&s.history, ViolationKind::NotLinearizable);
    assert_eq!(violation.culprits(), &[read]);
}

#[test]
fn lost_acknowledged_write_read_as_absent() {
    let mut s = Script::new();
    s.op(1, (0, 1), write("f", "a"), ok(1));
    s.op(2, (2, 3), read("f"), not_found());
    assert_violation(&s.history, ViolationKind::NotLinearizable);
}

#[test]
fn two_cas_with_the_same_expected_version_both_succeed() {
    let mut s = Script::new();
    s.op(1, (0, 1), write("f", "a"), ok(1));
    let first = s.op(1, (2, 10), cas("f", 1, "b"), ok(2));
    let second = s.op(2, (2, 10), cas("f", 1, "c"), ok(3));
    let violation = assert_violation(&s.history, ViolationKind::NotLinearizable);
    let ops = involved(&violation);
    assert!(ops.contains(&first) && ops.contains(&second), "{violation}");
}

#[test]
fn versions_go_backwards_across_sequential_writes_to_different_files() {
    // Per file each history is fine; only the store-wide counter forbids it.
    let mut s = Script::new();
    let first = s.op(1, (0, 1), write("f", "a"), ok(5));
    let second = s.op(1, (2, 3), write("g", "b"), ok(3));
    let violation = assert_violation(
        &s.history,
        ViolationKind::VersionsOutOfOrder {
            earlier: 5,
            later: 3,
        },
    );
    assert_eq!(involved(&violation), vec![first, second]);
    assert_eq!(violation.file(), &file("g"));
}

#[test]
fn versions_go_backwards_across_sequential_writes_to_one_file() {
    let mut s = Script::new();
    s.op(1, (0, 1), write("f", "a"), ok(5));
    s.op(1, (2, 3), write("f", "b"), ok(3));
    assert_violation(
        &s.history,
        ViolationKind::VersionsOutOfOrder {
            earlier: 5,
            later: 3,
        },
    );
}

#[test]
fn version_read_before_a_write_began_is_not_below_it() {
    let mut s = Script::new();
    s.op(1, (0, 1), write("f", "a"), ok(4));
    s.op(2, (2, 3), read("f"), contents(4, "a"));
    s.op(3, (4, 5), write("g", "b"), ok(2));
    assert_violation(
        &s.history,
        ViolationKind::VersionsOutOfOrder {
            earlier: 4,
            later: 2,
        },
    );
}

#[test]
fn duplicate_version() {
    let mut s = Script::new();
    let first = s.op(1, (0, 10), write("f", "a"), ok(1));
    let second = s.op(2, (0, 10), write("g", "b"), ok(1));
    let violation = assert_violation(&s.history, ViolationKind::DuplicateVersion { version: 1 });
    assert_eq!(involved(&violation), vec![first, second]);
}

#[test]
fn duplicate_version_on_one_file() {
    let mut s = Script::new();
    s.op(1, (0, 10), write("f", "a"), ok(1));
    s.op(2, (0, 10), cas("f", 1, "b"), ok(1));
    assert_violation(&s.history, ViolationKind::DuplicateVersion { version: 1 });
}

#[test]
fn delete_acknowledged_then_file_read_back() {
    let mut s = Script::new();
    s.op(1, (0, 1), write("f", "a"), ok(1));
    let gone = s.op(1, (2, 3), delete("f"), deleted());
    let back = s.op(2, (4, 5), read("f"), contents(1, "a"));
    let violation = assert_violation(&s.history, ViolationKind::NotLinearizable);
    assert_eq!(violation.culprits(), &[back]);
    assert!(involved(&violation).contains(&gone), "{violation}");
}

#[test]
fn read_sees_write_invoked_after_the_read_completed() {
    // The version read is the one the later write reports: the version order catches it.
    let mut s = Script::new();
    let early = s.op(1, (0, 1), read("f"), contents(1, "a"));
    let late = s.op(2, (2, 3), write("f", "a"), ok(1));
    let violation = assert_violation(
        &s.history,
        ViolationKind::VersionsOutOfOrder {
            earlier: 1,
            later: 1,
        },
    );
    assert_eq!(involved(&violation), vec![early, late]);
}

#[test]
fn read_sees_write_of_unknown_outcome_invoked_after_the_read_completed() {
    // No version to compare: only the search can tell.
    let mut s = Script::new();
    let early = s.op(1, (0, 1), read("f"), contents(1, "a"));
    let late = s.unknown(2, 2, write("f", "a"));
    let violation = assert_violation(&s.history, ViolationKind::NotLinearizable);
    assert_eq!(violation.culprits(), &[early]);
    // The read is impossible by its completion: the write comes after the horizon.
    assert!(!involved(&violation).contains(&late));
    assert_eq!(violation.horizon(), Some(1));
}

#[test]
fn err_version_names_a_version_the_file_cannot_have() {
    let mut s = Script::new();
    s.op(1, (0, 1), write("f", "a"), ok(1));
    let cas = s.op(2, (2, 3), cas("f", 7, "b"), mismatch(5));
    let violation = assert_violation(&s.history, ViolationKind::NotLinearizable);
    assert_eq!(violation.culprits(), &[cas]);
}

#[test]
fn err_version_naming_the_expected_version() {
    // A cas refused with the very version it expected contradicts itself.
    let mut s = Script::new();
    s.op(1, (0, 1), write("f", "a"), ok(1));
    s.op(2, (2, 3), cas("f", 1, "b"), mismatch(1));
    assert_violation(&s.history, ViolationKind::NotLinearizable);
}

#[test]
fn err_version_naming_a_version_given_to_another_file() {
    let mut s = Script::new();
    s.op(1, (0, 10), write("f", "a"), ok(1));
    s.op(3, (0, 10), write("g", "z"), ok(2));
    s.op(2, (11, 12), cas("f", 7, "b"), mismatch(2));
    assert_violation(
        &s.history,
        ViolationKind::VersionOfOtherFile {
            version: 2,
            owner: file("g"),
        },
    );
}

#[test]
fn cas_creating_a_file() {
    let mut s = Script::new();
    s.op(1, (0, 1), cas("f", 0, "a"), ok(1));
    assert_violation(&s.history, ViolationKind::NotLinearizable);
}

#[test]
fn one_unknown_write_cannot_have_two_versions() {
    let mut s = Script::new();
    s.unknown(1, 0, write("f", "a"));
    s.op(2, (5, 6), read("f"), contents(5, "a"));
    s.op(2, (7, 8), read("f"), contents(6, "a"));
    assert_violation(&s.history, ViolationKind::NotLinearizable);
}

#[test]
fn unknown_write_cannot_take_a_version_below_an_acknowledged_one() {
    let mut s = Script::new();
    s.op(1, (0, 1), write("f", "a"), ok(4));
    s.unknown(1, 2, write("f", "b"));
    s.op(2, (5, 6), read("f"), contents(3, "b"));
    assert_violation(&s.history, ViolationKind::NotLinearizable);
}

#[test]
fn impossible_reply_to_a_read() {
    let mut s = Script::new();
    let read = s.op(1, (0, 1), read("f"), ok(3));
    let violation = assert_violation(&s.history, ViolationKind::ImpossibleReply);
    assert_eq!(involved(&violation), vec![read]);
}

#[test]
fn impossible_reply_to_a_write() {
    let mut s = Script::new();
    s.op(1, (0, 1), write("f", "a"), Reply::FileNotFound);
    assert_violation(&s.history, ViolationKind::ImpossibleReply);
}

#[test]
fn report_shows_the_culprit_and_the_prefix() {
    let mut s = Script::new();
    s.op(1, (0, 1), write("f", "a"), ok(1));
    s.op(1, (2, 3), write("f", "b"), ok(2));
    s.op(2, (4, 5), read("f"), contents(1, "a"));
    let violation = assert_violation(&s.history, ViolationKind::NotLinearizable);
    let text = violation.to_string();
    assert!(text.contains("file f"), "{text}");
    assert!(text.contains("! #2"), "the culprit is marked: {text}");
    assert!(text.contains("longest linearizable prefix"), "{text}");
    assert!(!violation.longest_prefix().is_empty());
}

#[test]
fn violation_in_a_long_history_is_reduced_to_a_short_excerpt() {
    // 200 well-behaved operations on two files, then one stale read of "f".
    let mut s = Script::new();
    let mut version = 0;
    for i in 0..100u64 {
        for name in ["f", "g"] {
            version += 1;
            let content = format!("{name}{i}");
            s.op(1, (10 * i, 10 * i + 1), write(name, &content), ok(version));
            s.op(
                2,
                (10 * i + 2, 10 * i + 3),
                read(name),
                contents(version, &content),
            );
        }
    }
    let stale = s.op(3, (2000, 2001), read("f"), contents(1, "f0"));
    let violation = assert_violation(&s.history, ViolationKind::NotLinearizable);
    assert_eq!(violation.culprits(), &[stale]);
    assert!(violation.operations().len() <= 3, "{violation}");
}

#[test]
fn report_reads_well() {
    let mut s = Script::new();
    s.op(1, (0, 1), write("f", "a"), ok(1));
    s.op(1, (2, 3), write("f", "b"), ok(2));
    s.op(2, (2, 9), read("f"), contents(2, "b"));
    s.op(2, (10, 11), read("f"), contents(1, "a"));
    let violation = assert_violation(&s.history, ViolationKind::NotLinearizable);
    let expected = "\
history not linearizable, file f: no order of these 2 operations explains their replies
(however the 2 other operations on f invoked by t=11 went, whatever their replies said; later ones left out)
  #1    client 1   [2..3] write f \"b\" -> OK 2
! #3    client 2   [10..11] read f -> CONTENTS 1 \"a\"
longest linearizable prefix found: 3 operations
  #0    client 1   [0..1] write f \"a\" -> OK 1
      => \"a\" at version 1
  #1    client 1   [2..3] write f \"b\" -> OK 2
      => \"b\" at version 2
  #2    client 2   [2..9] read f -> CONTENTS 2 \"b\"
      => \"b\" at version 2
after which no remaining operation can come next";
    assert_eq!(violation.to_string(), expected);
}

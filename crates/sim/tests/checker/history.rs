//! Guards against a history builder that records something other than what the clients saw, or
//! that displays it unreadably.

use super::build::*;
use bytes::Bytes;
use fs::{Command, Reply};
use sim::history::{History, HistoryError, Outcome};

#[test]
fn records_invocations_and_replies() {
    let mut h = History::new();
    let a = h.invoke(7, 10, write("f", "a"));
    let b = h.invoke(8, 11, read("f"));
    assert!(h.get(a).unwrap().is_pending());
    h.complete(a, 12, ok(1)).unwrap();
    h.complete(b, 13, contents(1, "a")).unwrap();
    let op = h.get(a).unwrap();
    assert_eq!((op.client(), op.invoke(), op.complete()), (7, 10, Some(12)));
    assert_eq!(op.outcome(), &Outcome::Ok(ok(1)));
    assert!(!op.is_pending());
    assert_eq!(h.len(), 2);
    assert_eq!(h.operations()[1].id(), b);
}

#[test]
fn err_internal_makes_the_outcome_unknown() {
    let mut h = History::new();
    let a = h.invoke(1, 0, write("f", "a"));
    h.complete(a, 5, Reply::Internal).unwrap();
    let op = h.get(a).unwrap();
    assert_eq!(op.outcome(), &Outcome::Unknown);
    assert_eq!(op.complete(), Some(5));
}

#[test]
fn giving_up_leaves_the_outcome_unknown() {
    let mut h = History::new();
    let a = h.invoke(1, 0, delete("f"));
    h.give_up(a).unwrap();
    let op = h.get(a).unwrap();
    assert_eq!(op.outcome(), &Outcome::Unknown);
    assert_eq!(op.complete(), None);
    assert!(!op.is_pending());
}

#[test]
fn refuses_misuse() {
    let mut h = History::new();
    let a = h.invoke(1, 10, read("f"));
    assert_eq!(
        h.complete(a, 9, not_found()),
        Err(HistoryError::CompletedBeforeInvoked {
            op: a,
            invoke: 10,
            complete: 9
        })
    );
    let redirect = Reply::Redirect("127.0.0.1:8081".into());
    assert!(matches!(
        h.complete(a, 11, redirect),
        Err(HistoryError::NotAnOutcome { .. })
    ));
    assert!(matches!(
        h.complete(a, 11, Reply::CmdErr),
        Err(HistoryError::NotAnOutcome { .. })
    ));
    // Refused replies leave the operation open.
    assert!(h.get(a).unwrap().is_pending());
    h.complete(a, 11, not_found()).unwrap();
    assert_eq!(
        h.complete(a, 12, not_found()),
        Err(HistoryError::AlreadyFinished(a))
    );
    assert_eq!(h.give_up(a), Err(HistoryError::AlreadyFinished(a)));
    let mut other = History::new();
    assert!(matches!(other.give_up(a), Err(HistoryError::UnknownOp(_))));
}

#[test]
fn displays_one_line_per_operation_by_invocation_time() {
    let mut s = Script::new();
    let late = s.op(2, (5, 9), read("f"), contents(3, "hello"));
    let early = s.op(1, (1, 4), cas("f", 2, "hello"), ok(3));
    let lost = s.unknown(3, 6, delete("f"));
    let text = s.history.to_string();
    let expected = "\
#1    client 1   [1..4] cas f 2 \"hello\" -> OK 3
#0    client 2   [5..9] read f -> CONTENTS 3 \"hello\"
#2    client 3   [6..] delete f -> unknown (gave up)
";
    assert_eq!(text, expected);
    let subset = s
        .history
        .display_subset(&[lost, late, early, late])
        .to_string();
    assert_eq!(subset, expected);
    let only = s.history.display_subset(&[lost]).to_string();
    assert_eq!(
        only,
        "#2    client 3   [6..] delete f -> unknown (gave up)\n"
    );
}

#[test]
fn displays_binary_and_long_content_shortened() {
    let mut h = History::new();
    let long = Bytes::from(vec![b'x'; 1000]);
    h.invoke(
        1,
        0,
        Command::Write {
            name: file("f"),
            content: long,
            exptime_s: 30,
        },
    );
    let a = h.invoke(1, 1, write("f", "a\r\n\0"));
    h.complete(a, 2, Reply::Internal).unwrap();
    let text = h.to_string();
    assert!(
        text.contains(&format!("\"{}\"...(1000 bytes) exptime 30", "x".repeat(32))),
        "{text}"
    );
    assert!(
        text.contains(r#""a\r\n\x00" -> unknown (ERR_INTERNAL)"#),
        "{text}"
    );
    assert!(text.contains("unknown (pending)"), "{text}");
}

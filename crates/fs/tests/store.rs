//! Guards the file store's semantics against docs/protocol.md: every row of the command table, the
//! store-wide version counter, and expiry judged deterministically from clock stamps that never
//! go backwards.

// Test helpers unwrap like tests do: a failure there is a test failure.
#![allow(clippy::unwrap_used)]

use bytes::Bytes;
use fs::{Command, Name, Reply, Store};

fn name(s: &str) -> Name {
    Name::new(s.as_bytes().to_vec()).unwrap()
}

fn read(n: &str) -> Command {
    Command::Read { name: name(n) }
}

fn write(n: &str, content: &str, exptime_s: u64) -> Command {
    Command::Write {
        name: name(n),
        content: Bytes::copy_from_slice(content.as_bytes()),
        exptime_s,
    }
}

fn cas(n: &str, version: u64, content: &str, exptime_s: u64) -> Command {
    Command::Cas {
        name: name(n),
        version,
        content: Bytes::copy_from_slice(content.as_bytes()),
        exptime_s,
    }
}

fn delete(n: &str) -> Command {
    Command::Delete { name: name(n) }
}

fn contents(version: u64, exptime_s: u64, content: &str) -> Reply {
    Reply::Contents {
        version,
        exptime_s,
        content: Bytes::copy_from_slice(content.as_bytes()),
    }
}

// ---- The docs/protocol.md command table, row by row ----

#[test]
fn read_of_missing_file_is_file_not_found() {
    let mut store = Store::new();
    assert_eq!(store.apply(&read("foo"), 0), Reply::FileNotFound);
    assert_eq!(read_at(&store, "foo", 0), Reply::FileNotFound);
}

#[test]
fn read_returns_version_content_and_no_expiry() {
    let mut store = Store::new();
    store.apply(&write("foo", "abcdef", 0), 0);
    assert_eq!(store.apply(&read("foo"), 10), contents(1, 0, "abcdef"));
    assert_eq!(read_at(&store, "foo", 10), contents(1, 0, "abcdef"));
}

#[test]
fn first_write_on_a_fresh_store_is_version_1_and_versions_grow() {
    let mut store = Store::new();
    assert_eq!(
        store.apply(&write("foo", "a", 0), 0),
        Reply::Written { version: 1 }
    );
    assert_eq!(
        store.apply(&write("bar", "b", 0), 0),
        Reply::Written { version: 2 }
    );
    assert_eq!(
        store.apply(&write("foo", "c", 0), 0),
        Reply::Written { version: 3 }
    );
    assert_eq!(store.version(), 3);
}

#[test]
fn seed_transcript_write_cas_read() {
    // The example session of the original protocol description: write foo 6 / cas foo 1 7 0 / read foo.
    let mut store = Store::new();
    assert_eq!(store.apply(&read("foo"), 0), Reply::FileNotFound);
    assert_eq!(
        store.apply(&write("foo", "abcdef", 0), 0),
        Reply::Written { version: 1 }
    );
    assert_eq!(store.apply(&read("foo"), 0), contents(1, 0, "abcdef"));
    assert_eq!(
        store.apply(&cas("foo", 1, "ghijklm", 0), 0),
        Reply::Written { version: 2 }
    );
    assert_eq!(store.apply(&read("foo"), 0), contents(2, 0, "ghijklm"));
}

#[test]
fn cas_with_current_version_replaces_content_with_new_version() {
    let mut store = Store::new();
    store.apply(&write("foo", "old", 0), 0);
    store.apply(&write("other", "x", 0), 0);
    assert_eq!(
        store.apply(&cas("foo", 1, "new", 0), 0),
        Reply::Written { version: 3 }
    );
    assert_eq!(read_at(&store, "foo", 0), contents(3, 0, "new"));
}

#[test]
fn cas_with_stale_version_is_err_version_with_current_and_changes_nothing() {
    let mut store = Store::new();
    store.apply(&write("foo", "a", 0), 0);
    store.apply(&write("foo", "b", 0), 0);
    let before = store.clone();
    assert_eq!(
        store.apply(&cas("foo", 1, "c", 0), 0),
        Reply::VersionMismatch { current: 2 }
    );
    assert_eq!(
        store, before,
        "a failed cas consumes no version and changes nothing"
    );
    assert_eq!(
        store.apply(&write("x", "", 0), 0),
        Reply::Written { version: 3 }
    );
}

#[test]
fn cas_never_creates_a_file() {
    let mut store = Store::new();
    assert_eq!(store.apply(&cas("foo", 0, "a", 0), 0), Reply::FileNotFound);
    assert_eq!(store.apply(&cas("foo", 1, "a", 0), 0), Reply::FileNotFound);
    assert_eq!(store.file_count(), 0);
    assert_eq!(store.version(), 0);
}

#[test]
fn delete_removes_the_file_and_consumes_no_version() {
    let mut store = Store::new();
    store.apply(&write("foo", "abc", 0), 0);
    assert_eq!(store.apply(&delete("foo"), 0), Reply::Deleted);
    assert_eq!(store.apply(&read("foo"), 0), Reply::FileNotFound);
    assert_eq!(store.version(), 1);
    assert_eq!(store.file_count(), 0);
    assert_eq!(store.content_bytes(), 0);
}

#[test]
fn delete_of_missing_file_is_file_not_found() {
    let mut store = Store::new();
    assert_eq!(store.apply(&delete("foo"), 0), Reply::FileNotFound);
}

#[test]
fn recreated_file_never_reuses_an_old_version() {
    let mut store = Store::new();
    store.apply(&write("foo", "a", 0), 0);
    store.apply(&delete("foo"), 0);
    assert_eq!(
        store.apply(&write("foo", "a", 0), 0),
        Reply::Written { version: 2 }
    );
    // A cas that remembered version 1 must not succeed on the new incarnation (no ABA).
    assert_eq!(
        store.apply(&cas("foo", 1, "b", 0), 0),
        Reply::VersionMismatch { current: 2 }
    );
}

#[test]
fn metrics_track_files_bytes_version_and_clock() {
    let mut store = Store::new();
    store.apply(&write("a", "12345", 0), 100);
    store.apply(&write("b", "123", 0), 200);
    store.apply(&write("a", "1", 0), 300);
    assert_eq!(store.file_count(), 2);
    assert_eq!(store.content_bytes(), 4);
    assert_eq!(store.version(), 3);
    assert_eq!(store.last_clock_ms(), 300);
}

#[test]
fn binary_content_is_kept_exactly() {
    let mut store = Store::new();
    let content = Bytes::from((0..=255u8).chain([b'\r', b'\n', 0]).collect::<Vec<_>>());
    let command = Command::Write {
        name: name("bin"),
        content: content.clone(),
        exptime_s: 0,
    };
    store.apply(&command, 0);
    assert_eq!(
        read_at(&store, "bin", 0),
        Reply::Contents {
            version: 1,
            exptime_s: 0,
            content
        }
    );
}

// ---- Expiry ----

#[test]
fn remaining_seconds_are_rounded_up() {
    let mut store = Store::new();
    store.apply(&write("foo", "x", 10), 1_000); // expires at 11_000
    assert_eq!(read_at(&store, "foo", 1_000), contents(1, 10, "x"));
    assert_eq!(read_at(&store, "foo", 1_001), contents(1, 10, "x"));
    assert_eq!(read_at(&store, "foo", 1_999), contents(1, 10, "x"));
    assert_eq!(read_at(&store, "foo", 2_000), contents(1, 9, "x"));
    assert_eq!(read_at(&store, "foo", 10_999), contents(1, 1, "x"));
}

#[test]
fn file_expires_at_the_exact_millisecond() {
    let mut store = Store::new();
    store.apply(&write("foo", "x", 2), 500); // expires at 2_500
    assert_eq!(read_at(&store, "foo", 2_499), contents(1, 1, "x"));
    assert_eq!(read_at(&store, "foo", 2_500), Reply::FileNotFound);
    let mut applied = store.clone();
    assert_eq!(applied.apply(&read("foo"), 2_499), contents(1, 1, "x"));
    assert_eq!(applied.apply(&read("foo"), 2_500), Reply::FileNotFound);
    assert_eq!(
        applied.file_count(),
        0,
        "an expired file is purged by apply"
    );
    assert_eq!(applied.content_bytes(), 0);
}

#[test]
fn expired_file_behaves_as_if_it_never_existed() {
    let mut store = Store::new();
    store.apply(&write("foo", "x", 1), 0);
    let mut cas_store = store.clone();
    assert_eq!(
        cas_store.apply(&cas("foo", 1, "y", 0), 1_000),
        Reply::FileNotFound
    );
    let mut del_store = store.clone();
    assert_eq!(del_store.apply(&delete("foo"), 1_000), Reply::FileNotFound);
    // A write creates it anew, with a new version and no memory of the old expiry.
    assert_eq!(
        store.apply(&write("foo", "z", 0), 1_000),
        Reply::Written { version: 2 }
    );
    assert_eq!(read_at(&store, "foo", 1_000_000), contents(2, 0, "z"));
}

#[test]
fn write_cancels_an_earlier_expiry() {
    let mut store = Store::new();
    store.apply(&write("foo", "x", 1), 0);
    store.apply(&write("foo", "y", 0), 500);
    assert_eq!(store.apply(&read("foo"), 5_000), contents(2, 0, "y"));
}

#[test]
fn cas_replaces_the_expiry() {
    let mut store = Store::new();
    store.apply(&write("foo", "x", 0), 0);
    store.apply(&cas("foo", 1, "y", 3), 1_000); // expires at 4_000
    assert_eq!(read_at(&store, "foo", 1_000), contents(2, 3, "y"));
    assert_eq!(store.apply(&read("foo"), 4_000), Reply::FileNotFound);

    store.apply(&write("bar", "x", 1), 0);
    store.apply(&cas("bar", 3, "y", 0), 900);
    assert_eq!(store.apply(&read("bar"), 100_000), contents(4, 0, "y"));
}

#[test]
fn stale_expiry_never_deletes_a_rewritten_file() {
    let mut store = Store::new();
    store.apply(&write("foo", "x", 1), 0); // would expire at 1_000
    store.apply(&write("foo", "y", 5), 500); // now expires at 5_500
    store.apply(&write("bar", "z", 0), 2_000); // an apply past the old expiry purges
    assert_eq!(store.apply(&read("foo"), 2_000), contents(2, 4, "y"));
    assert_eq!(store.file_count(), 2);
}

#[test]
fn stale_expiry_never_deletes_a_recreated_file() {
    let mut store = Store::new();
    store.apply(&write("foo", "x", 1), 0); // would expire at 1_000
    store.apply(&delete("foo"), 100);
    store.apply(&write("foo", "y", 0), 200); // re-created, never expires
    store.apply(&read("bar"), 10_000);
    assert_eq!(store.apply(&read("foo"), 10_000), contents(2, 0, "y"));

    // Re-created after expiry with the same lifetime at the same instant it used to have.
    let mut store = Store::new();
    store.apply(&write("foo", "x", 1), 0); // expires at 1_000
    store.apply(&write("foo", "y", 1), 1_000); // expired, re-created: expires at 2_000
    assert_eq!(store.apply(&read("foo"), 1_999), contents(2, 1, "y"));
}

#[test]
fn lagging_stamp_never_resurrects_an_expired_file() {
    let mut store = Store::new();
    store.apply(&write("foo", "x", 1), 0); // expires at 1_000
    assert_eq!(store.apply(&read("foo"), 1_000), Reply::FileNotFound);
    // A new leader whose clock lags stamps 400: the effective clock stays at 1_000.
    assert_eq!(store.apply(&read("foo"), 400), Reply::FileNotFound);
    assert_eq!(read_at(&store, "foo", 400), Reply::FileNotFound);
    assert_eq!(store.read(&name("foo")), Reply::FileNotFound);
    assert_eq!(store.last_clock_ms(), 1_000);
}

#[test]
fn lagging_stamp_judges_expiry_and_new_lifetimes_from_the_last_clock() {
    let mut store = Store::new();
    store.apply(&write("foo", "x", 0), 10_000);
    // Lagging stamp 3_000: the effective clock is 10_000, so the file expires at 12_000.
    store.apply(&write("bar", "y", 2), 3_000);
    assert_eq!(read_at(&store, "bar", 0), contents(2, 2, "y"));
    assert_eq!(read_at(&store, "bar", 12_000), Reply::FileNotFound);
}

#[test]
fn read_is_judged_at_the_replicated_clock_alone() {
    let mut store = Store::new();
    store.apply(&write("foo", "x", 1), 0); // expires at 1_000
    // However far a serving member's own clock has run, only the log moves the clock.
    assert_eq!(store.read(&name("foo")), contents(1, 1, "x"));
    store.tick(999);
    assert_eq!(store.read(&name("foo")), contents(1, 1, "x"));
    assert_eq!(store.next_expiry_ms(), Some(1_000));
    store.tick(1_000);
    assert_eq!(store.read(&name("foo")), Reply::FileNotFound);
    assert_eq!(store.file_count(), 0, "a clock entry purges what expired");
    assert_eq!(store.next_expiry_ms(), None);
    // A lagging clock entry moves nothing back.
    store.tick(10);
    assert_eq!(store.last_clock_ms(), 1_000);
}

#[test]
fn expiry_saturates_instead_of_overflowing() {
    let mut store = Store::new();
    store.apply(&write("foo", "x", u64::MAX), 1_000);
    assert_eq!(
        read_at(&store, "foo", 1_000),
        contents(1, (u64::MAX - 1_000).div_ceil(1_000), "x")
    );
    // At the very end of time a lifetime saturates to the current instant: expired at once.
    let mut store = Store::new();
    assert_eq!(
        store.apply(&write("foo", "x", 1), u64::MAX),
        Reply::Written { version: 1 }
    );
    assert_eq!(read_at(&store, "foo", u64::MAX), Reply::FileNotFound);
    assert_eq!(store.file_count(), 0);
}

#[test]
fn purge_drops_only_expired_files_and_keeps_counts() {
    let mut store = Store::new();
    for (i, exptime) in [1u64, 2, 3, 0, 2].iter().enumerate() {
        store.apply(&write(&format!("f{i}"), "ab", *exptime), 0);
    }
    assert_eq!(store.file_count(), 5);
    store.apply(&read("none"), 2_000);
    assert_eq!(store.file_count(), 2); // f2 (until 3_000) and f3 (never)
    assert_eq!(store.content_bytes(), 4);
    assert_eq!(read_at(&store, "f2", 2_000), contents(3, 1, "ab"));
    assert_eq!(read_at(&store, "f3", 2_000), contents(4, 0, "ab"));
}

/// What a read served outside the log would answer once the replicated clock reaches `clock_ms`
/// (on a copy: `store` itself is left as it was).
fn read_at(store: &Store, file: &str, clock_ms: u64) -> Reply {
    let mut copy = store.clone();
    copy.tick(clock_ms);
    copy.read(&name(file))
}

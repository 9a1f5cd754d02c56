//! Guards the snapshot format: a restored store equals and behaves exactly like the original,
//! the layout stays as documented, and `restore` refuses (never panics on) anything corrupt.

// Test helpers unwrap like tests do: a failure there is a test failure.
#![allow(clippy::unwrap_used)]

use bytes::Bytes;
use fs::store::{SNAPSHOT_FORMAT_VERSION, SNAPSHOT_MAGIC, SnapshotError};
use fs::{Command, Name, NameError, Reply, Store};
use proptest::prelude::*;

fn name(s: &str) -> Name {
    Name::new(s.as_bytes().to_vec()).unwrap()
}

fn write(n: &str, content: &[u8], exptime_s: u64) -> Command {
    Command::Write {
        name: name(n),
        content: Bytes::copy_from_slice(content),
        exptime_s,
    }
}

/// A snapshot header, built by hand from the documented layout.
fn header(counter: u64, clock_ms: u64, files: u64) -> Vec<u8> {
    let mut out = SNAPSHOT_MAGIC.to_vec();
    out.extend_from_slice(&SNAPSHOT_FORMAT_VERSION.to_le_bytes());
    out.extend_from_slice(&counter.to_le_bytes());
    out.extend_from_slice(&clock_ms.to_le_bytes());
    out.extend_from_slice(&files.to_le_bytes());
    out
}

/// One file record, built by hand from the documented layout.
fn record(name: &[u8], version: u64, expires_at_ms: u64, content: &[u8]) -> Vec<u8> {
    let mut out = vec![name.len() as u8];
    out.extend_from_slice(name);
    out.extend_from_slice(&version.to_le_bytes());
    out.extend_from_slice(&expires_at_ms.to_le_bytes());
    out.extend_from_slice(&(content.len() as u64).to_le_bytes());
    out.extend_from_slice(content);
    out
}

fn sample_store() -> Store {
    let mut store = Store::new();
    store.apply(&write("zeta", b"last", 0), 100);
    store.apply(&write("alpha", b"a\r\n\0b", 5), 200);
    store.apply(&write("mid", b"", 0), 300);
    store
}

#[test]
fn layout_matches_the_documented_format() {
    let mut expected = header(3, 300, 3);
    expected.extend(record(b"alpha", 2, 5_200, b"a\r\n\0b"));
    expected.extend(record(b"mid", 3, 0, b""));
    expected.extend(record(b"zeta", 1, 0, b"last"));
    assert_eq!(sample_store().snapshot(), expected);
    assert_eq!(&expected[..8], b"RAFTFSS\0");
    assert_eq!(Store::new().snapshot(), header(0, 0, 0));
}

#[test]
fn equal_stores_reached_by_different_histories_give_equal_bytes() {
    // One file purged by expiry, the other deleted: no trace of either may remain.
    let mut a = Store::new();
    a.apply(&write("x", b"1", 0), 0);
    a.apply(&write("y", b"2", 1), 0);
    a.apply(&Command::Read { name: name("x") }, 2_000);
    let mut b = Store::new();
    b.apply(&write("x", b"1", 0), 0);
    b.apply(&write("y", b"2", 0), 0);
    b.apply(&Command::Delete { name: name("y") }, 2_000);
    assert_eq!(a, b);
    assert_eq!(a.snapshot(), b.snapshot());
    assert_eq!(Store::restore(&a.snapshot()).unwrap(), b);
    assert_eq!(a.digest(), b.digest());
}

#[test]
fn digest_tells_apart_stores_that_differ_in_one_field() {
    let base = sample_store();
    let mut content = base.clone();
    content.apply(&write("zz", b"x", 0), 0);
    let mut other = base.clone();
    other.apply(&write("zz", b"y", 0), 0);
    assert_ne!(content.digest(), other.digest(), "content");
    let mut expiring = base.clone();
    expiring.apply(&write("zz", b"x", 9), 0);
    assert_ne!(content.digest(), expiring.digest(), "expiry");
    let mut clock = base.clone();
    clock.tick(base.last_clock_ms() + 1);
    assert_ne!(base.digest(), clock.digest(), "clock");
    assert_ne!(Store::new().digest(), 0);
}

#[test]
fn restore_refuses_bad_magic() {
    let mut bytes = sample_store().snapshot();
    bytes[0] = b'X';
    assert_eq!(Store::restore(&bytes), Err(SnapshotError::BadMagic));
    assert_eq!(Store::restore(b""), Err(SnapshotError::Truncated));
}

#[test]
fn restore_refuses_an_unknown_format_version() {
    let mut bytes = sample_store().snapshot();
    bytes[8..12].copy_from_slice(&2u32.to_le_bytes());
    assert_eq!(
        Store::restore(&bytes),
        Err(SnapshotError::UnsupportedFormat(2))
    );
}

#[test]
fn restore_refuses_every_truncation() {
    let bytes = sample_store().snapshot();
    for len in 0..bytes.len() {
        assert_eq!(
            Store::restore(&bytes[..len]),
            Err(SnapshotError::Truncated),
            "prefix of {len} bytes"
        );
    }
}

#[test]
fn restore_refuses_trailing_bytes() {
    let mut bytes = sample_store().snapshot();
    bytes.push(0);
    assert_eq!(Store::restore(&bytes), Err(SnapshotError::TrailingBytes(1)));
}

#[test]
fn restore_refuses_invalid_names() {
    for (bad, why) in [
        (&b""[..], NameError::Empty),
        (b"a b", NameError::BadByte(b' ')),
        (b"caf\xc3\xa9", NameError::BadByte(0xc3)),
        (&[b'n'; 251][..], NameError::TooLong),
    ] {
        let mut bytes = header(1, 0, 1);
        bytes.extend(record(bad, 1, 0, b"x"));
        assert_eq!(Store::restore(&bytes), Err(SnapshotError::BadName(why)));
    }
}

#[test]
fn restore_refuses_unordered_or_duplicate_names() {
    let mut bytes = header(2, 0, 2);
    bytes.extend(record(b"b", 1, 0, b""));
    bytes.extend(record(b"a", 2, 0, b""));
    assert_eq!(
        Store::restore(&bytes),
        Err(SnapshotError::NamesOutOfOrder(name("a")))
    );
    let mut bytes = header(2, 0, 2);
    bytes.extend(record(b"a", 1, 0, b""));
    bytes.extend(record(b"a", 2, 0, b""));
    assert_eq!(
        Store::restore(&bytes),
        Err(SnapshotError::NamesOutOfOrder(name("a")))
    );
}

#[test]
fn restore_refuses_impossible_versions() {
    for version in [0, 6] {
        let mut bytes = header(5, 0, 1);
        bytes.extend(record(b"a", version, 0, b""));
        assert_eq!(
            Store::restore(&bytes),
            Err(SnapshotError::BadFileVersion {
                name: name("a"),
                version,
                counter: 5
            })
        );
    }
}

#[test]
fn restore_refuses_files_expired_by_the_snapshot_clock() {
    let mut bytes = header(1, 5_000, 1);
    bytes.extend(record(b"a", 1, 5_000, b""));
    assert_eq!(
        Store::restore(&bytes),
        Err(SnapshotError::ExpiredFile(name("a")))
    );
    let mut bytes = header(1, 5_000, 1);
    bytes.extend(record(b"a", 1, 5_001, b""));
    assert!(Store::restore(&bytes).is_ok());
}

#[test]
fn huge_file_count_is_refused_without_allocating_for_it() {
    let bytes = header(1, 0, u64::MAX);
    assert_eq!(Store::restore(&bytes), Err(SnapshotError::Truncated));
    let mut bytes = header(1, 0, 1);
    bytes.extend(record(b"a", 1, 0, b""));
    let at = bytes.len() - 8;
    bytes[at..].copy_from_slice(&u64::MAX.to_le_bytes());
    assert_eq!(Store::restore(&bytes), Err(SnapshotError::Truncated));
}

#[test]
fn exhausted_version_counter_answers_internal_and_changes_nothing() {
    let mut bytes = header(u64::MAX, 0, 1);
    bytes.extend(record(b"a", u64::MAX, 0, b"x"));
    let mut store = Store::restore(&bytes).unwrap();
    let before = store.clone();
    assert_eq!(store.apply(&write("b", b"y", 0), 0), Reply::Internal);
    let cas = Command::Cas {
        name: name("a"),
        version: u64::MAX,
        content: Bytes::from_static(b"z"),
        exptime_s: 0,
    };
    assert_eq!(store.apply(&cas, 0), Reply::Internal);
    assert_eq!(store, before);
}

#[test]
fn restored_store_keeps_remaining_lifetimes() {
    let store = sample_store();
    let restored = Store::restore(&store.snapshot()).unwrap();
    assert_eq!(
        read_at(&restored, "alpha", 4_000),
        read_at(&store, "alpha", 4_000)
    );
    assert_eq!(read_at(&restored, "alpha", 5_200), Reply::FileNotFound);
    assert_eq!(restored.last_clock_ms(), 300);
    assert_eq!(restored.content_bytes(), store.content_bytes());
}

// ---- Properties ----

const NAMES: [&str; 3] = ["a", "b", "long.name-with_punct~"];

fn command_strategy() -> impl Strategy<Value = Command> {
    let file = (0..NAMES.len()).prop_map(|i| name(NAMES[i]));
    let content = proptest::collection::vec(any::<u8>(), 0..16).prop_map(Bytes::from);
    let exptime = prop_oneof![Just(0u64), 1..4u64];
    prop_oneof![
        file.clone().prop_map(|name| Command::Read { name }),
        (file.clone(), content.clone(), exptime.clone()).prop_map(|(name, content, exptime_s)| {
            Command::Write {
                name,
                content,
                exptime_s,
            }
        }),
        (file.clone(), 0..8u64, content, exptime).prop_map(
            |(name, version, content, exptime_s)| Command::Cas {
                name,
                version,
                content,
                exptime_s,
            }
        ),
        file.prop_map(|name| Command::Delete { name }),
    ]
}

/// Commands with stamps that advance (and sometimes lag).
fn history() -> impl Strategy<Value = Vec<(Command, u64)>> {
    proptest::collection::vec((command_strategy(), 0..3_000u64, any::<bool>()), 0..40).prop_map(
        |steps| {
            let mut clock = 0u64;
            steps
                .into_iter()
                .map(|(command, advance, lag)| {
                    clock += advance;
                    (command, if lag { clock / 2 } else { clock })
                })
                .collect()
        },
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn round_trip_gives_an_equal_store_that_behaves_identically(
        before in history(),
        after in history(),
    ) {
        let mut original = Store::new();
        let mut end = 0;
        for (command, stamp) in &before {
            original.apply(command, *stamp);
            end = end.max(*stamp);
        }
        let bytes = original.snapshot();
        let mut restored = Store::restore(&bytes).unwrap();
        prop_assert_eq!(&restored, &original);
        prop_assert_eq!(restored.snapshot(), bytes);
        prop_assert_eq!(restored.digest(), original.digest());
        for (command, stamp) in &after {
            let stamp = end + stamp;
            prop_assert_eq!(restored.apply(command, stamp), original.apply(command, stamp));
            // The incrementally kept digest equals one computed from scratch by a restore.
            let fresh = Store::restore(&original.snapshot()).unwrap();
            prop_assert_eq!(original.digest(), fresh.digest());
        }
        prop_assert_eq!(restored.snapshot(), original.snapshot());
        prop_assert_eq!(restored.digest(), original.digest());
    }

    #[test]
    fn digests_are_equal_exactly_when_snapshots_are(a in history(), b in history()) {
        let build = |history: &[(Command, u64)]| {
            let mut store = Store::new();
            for (command, stamp) in history {
                store.apply(command, *stamp);
            }
            store
        };
        let (a, b) = (build(&a), build(&b));
        prop_assert_eq!(a.snapshot() == b.snapshot(), a.digest() == b.digest());
    }

    #[test]
    fn restore_never_panics_on_random_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        prop_assert!(Store::restore(&bytes).is_err());
        // And behind a valid header, so the file records are what is random.
        let mut framed = header(u64::MAX, 0, 3);
        framed.extend_from_slice(&bytes);
        if let Ok(store) = Store::restore(&framed) {
            prop_assert_eq!(store.snapshot(), framed, "only canonical bytes are accepted");
        }
    }

    #[test]
    fn restore_of_a_corrupted_snapshot_errs_or_is_canonical(
        before in history(),
        flips in proptest::collection::vec((any::<prop::sample::Index>(), 1..=255u8), 1..4),
        cut in any::<prop::sample::Index>(),
    ) {
        let mut original = Store::new();
        for (command, stamp) in &before {
            original.apply(command, *stamp);
        }
        let mut bytes = original.snapshot();
        for (at, mask) in flips {
            let at = at.index(bytes.len());
            bytes[at] ^= mask;
        }
        if let Ok(store) = Store::restore(&bytes) {
            prop_assert_eq!(store.snapshot(), bytes.clone(), "only canonical bytes are accepted");
        }
        let cut = cut.index(bytes.len());
        prop_assert!(Store::restore(&original.snapshot()[..cut]).is_err());
    }
}

/// What a read served outside the log would answer once the replicated clock reaches `clock_ms`
/// (on a copy: `store` itself is left as it was).
fn read_at(store: &Store, file: &str, clock_ms: u64) -> Reply {
    let mut copy = store.clone();
    copy.tick(clock_ms);
    copy.read(&name(file))
}

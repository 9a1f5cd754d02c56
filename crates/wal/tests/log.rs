//! Guards the log's contract case by case: bounds, typed refusals, what survives a reopen
//! and what does not, rollover, and how many fsyncs a sync costs.

// Tests may unwrap (house rule); helpers outside #[test] need saying so.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fs;

use bytes::Bytes;
use wal::{Entry, Error, Log, Options};

fn entries(lo: u64, hi: u64, term: u64) -> Vec<Entry> {
    (lo..hi)
        .map(|i| Entry::new(i, term, format!("entry {i} term {term}").into_bytes()))
        .collect()
}

fn small() -> Options {
    Options {
        segment_bytes: 256,
        ..Options::default()
    }
}

fn segment_files(dir: &std::path::Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".wal"))
        .collect();
    names.sort();
    names
}

#[test]
fn fresh_log_is_empty_at_one() {
    let dir = tempfile::tempdir().unwrap();
    let (log, report) = Log::open(dir.path(), Options::default()).unwrap();
    assert_eq!((log.first_index(), log.last_index()), (1, 0));
    assert_eq!((report.first_index, report.last_index), (1, 0));
    assert_eq!(log.term(0), None);
    assert_eq!(log.term(1), None);
    assert_eq!(log.read(1, 1).unwrap(), vec![]);
}

#[test]
fn appended_entries_read_back_before_and_after_sync_and_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, _) = Log::open(dir.path(), small()).unwrap();
    let all = entries(1, 40, 3);
    log.append(&all[..20]).unwrap();
    assert_eq!(log.read(1, 21).unwrap(), all[..20]);
    log.sync().unwrap();
    log.append(&all[20..]).unwrap();
    assert_eq!(log.read(1, 40).unwrap(), all);
    assert_eq!(log.read(15, 25).unwrap(), all[14..24]);
    assert_eq!(log.term(39), Some(3));
    log.sync().unwrap();
    drop(log);

    let (log, report) = Log::open(dir.path(), small()).unwrap();
    assert_eq!(report.torn_tail, None);
    assert!(report.segments > 1, "small segments roll over");
    assert_eq!(segment_files(dir.path()).len(), report.segments);
    assert_eq!(log.read(1, 40).unwrap(), all);
}

#[test]
fn unsynced_changes_are_gone_after_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, _) = Log::open(dir.path(), small()).unwrap();
    log.append(&entries(1, 10, 1)).unwrap();
    log.sync().unwrap();
    log.append(&entries(10, 20, 1)).unwrap();
    log.truncate_suffix(5).unwrap();
    log.discard_prefix(3).unwrap();
    drop(log);
    let (log, _) = Log::open(dir.path(), small()).unwrap();
    assert_eq!((log.first_index(), log.last_index()), (1, 9));
    assert_eq!(log.read(1, 10).unwrap(), entries(1, 10, 1));
}

#[test]
fn refusals_are_typed_and_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, _) = Log::open(dir.path(), small()).unwrap();
    log.append(&entries(1, 5, 2)).unwrap();
    assert!(matches!(
        log.append(&entries(6, 7, 2)),
        Err(Error::NotContiguous {
            expected: 5,
            found: 6
        })
    ));
    let mut gap = entries(5, 7, 2);
    gap[1].index = 7;
    assert!(matches!(
        log.append(&gap),
        Err(Error::NotContiguous { expected: 6, .. })
    ));
    assert!(matches!(
        log.append(&entries(5, 6, 1)),
        Err(Error::TermDecreased { index: 5, .. })
    ));
    let huge = Entry::new(5, 2, Bytes::from(vec![0; wal::RECORD_DATA_BYTES_MAX + 1]));
    assert!(matches!(
        log.append(&[huge]),
        Err(Error::EntryTooLarge { index: 5, .. })
    ));
    assert_eq!(log.last_index(), 4);
    assert!(matches!(log.read(0, 2), Err(Error::OutOfRange { .. })));
    assert!(matches!(log.read(2, 6), Err(Error::OutOfRange { .. })));
    assert!(matches!(log.read(3, 2), Err(Error::OutOfRange { .. })));
    log.discard_prefix(2).unwrap();
    assert!(matches!(
        log.truncate_suffix(2),
        Err(Error::Compacted {
            from: 2,
            first_index: 3
        })
    ));
    assert!(matches!(
        log.discard_prefix(u64::MAX),
        Err(Error::IndexOverflow)
    ));
    assert_eq!((log.first_index(), log.last_index()), (3, 4));
}

#[test]
fn options_are_validated() {
    let dir = tempfile::tempdir().unwrap();
    let options = Options {
        segment_bytes: 10,
        ..Options::default()
    };
    assert!(matches!(
        Log::open(dir.path(), options),
        Err(Error::InvalidOptions(_))
    ));
}

#[test]
fn truncation_survives_reopen_and_new_entries_replace_old() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, _) = Log::open(dir.path(), small()).unwrap();
    log.append(&entries(1, 30, 1)).unwrap();
    log.sync().unwrap();
    log.truncate_suffix(7).unwrap();
    assert_eq!(log.last_index(), 6);
    log.append(&entries(7, 12, 2)).unwrap();
    log.sync().unwrap();
    drop(log);
    let (log, _) = Log::open(dir.path(), small()).unwrap();
    let mut expected = entries(1, 7, 1);
    expected.extend(entries(7, 12, 2));
    assert_eq!(log.read(1, 12).unwrap(), expected);
    assert_eq!(log.last_index(), 11);
}

#[test]
fn discard_beyond_last_empties_the_log_and_sets_the_next_index() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, _) = Log::open(dir.path(), small()).unwrap();
    log.append(&entries(1, 20, 1)).unwrap();
    log.sync().unwrap();
    log.discard_prefix(100).unwrap();
    assert_eq!((log.first_index(), log.last_index()), (101, 100));
    assert!(matches!(
        log.append(&entries(20, 21, 1)),
        Err(Error::NotContiguous { expected: 101, .. })
    ));
    log.sync().unwrap();
    assert!(segment_files(dir.path()).is_empty(), "old segments removed");
    drop(log);

    let (mut log, _) = Log::open(dir.path(), small()).unwrap();
    assert_eq!((log.first_index(), log.last_index()), (101, 100));
    log.append(&entries(101, 110, 4)).unwrap();
    log.sync().unwrap();
    drop(log);
    let (log, _) = Log::open(dir.path(), small()).unwrap();
    assert_eq!(log.read(101, 110).unwrap(), entries(101, 110, 4));
    assert_eq!(log.term(100), None);
}

#[test]
fn discard_inside_a_segment_keeps_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, _) = Log::open(dir.path(), small()).unwrap();
    log.append(&entries(1, 30, 1)).unwrap();
    log.discard_prefix(12).unwrap();
    log.sync().unwrap();
    drop(log);
    let (log, _) = Log::open(dir.path(), small()).unwrap();
    assert_eq!((log.first_index(), log.last_index()), (13, 29));
    assert_eq!(log.read(13, 30).unwrap(), entries(13, 30, 1));
    assert_eq!(log.term(12), None);
}

#[test]
fn one_sync_without_rollover_costs_one_fdatasync() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, _) = Log::open(dir.path(), Options::default()).unwrap();
    log.append(&entries(1, 2, 1)).unwrap();
    log.sync().unwrap(); // creates the first segment: file + directory
    let counters = log.counters();
    let before = counters.fsyncs();
    log.append(&entries(2, 50, 1)).unwrap();
    log.sync().unwrap();
    assert_eq!(counters.fsyncs() - before, 1);
    log.sync().unwrap();
    assert_eq!(counters.fsyncs() - before, 1, "nothing to sync, no fsync");
    assert!(counters.bytes_written() > 0);
}

#[test]
fn a_failed_sync_poisons_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let hook = std::sync::Arc::new(wal::FaultHook::new());
    let options = Options {
        fault_hook: Some(hook.clone()),
        ..small()
    };
    let (mut log, _) = Log::open(dir.path(), options).unwrap();
    log.append(&entries(1, 3, 1)).unwrap();
    hook.fail_syncs(true);
    assert!(matches!(log.sync(), Err(Error::Io { .. })));
    hook.fail_syncs(false);
    assert!(matches!(log.sync(), Err(Error::Poisoned(_))));
    assert!(matches!(
        log.append(&entries(3, 4, 1)),
        Err(Error::Poisoned(_))
    ));
}

/// Length of the only segment file in `dir`.
fn only_segment_len(dir: &std::path::Path) -> u64 {
    let names = segment_files(dir);
    assert_eq!(names.len(), 1, "{names:?}");
    fs::metadata(dir.join(&names[0])).unwrap().len()
}

#[test]
fn the_tail_is_preallocated_with_zeros_and_reopens_clean() {
    let dir = tempfile::tempdir().unwrap();
    let options = Options {
        preallocate_bytes: 4096,
        ..Options::default()
    };
    let (mut log, _) = Log::open(dir.path(), options.clone()).unwrap();
    log.append(&entries(1, 4, 1)).unwrap();
    log.sync().unwrap();
    let records_end = log.disk_bytes();
    // The first sync wrote the window after the records.
    assert_eq!(only_segment_len(dir.path()), records_end + 4096);
    // Later syncs write inside it: the file's size stays as it was.
    log.append(&entries(4, 10, 1)).unwrap();
    log.sync().unwrap();
    assert_eq!(only_segment_len(dir.path()), records_end + 4096);
    drop(log);

    // The zeros are the end of the records, not a torn write.
    let (mut log, report) = Log::open(dir.path(), options.clone()).unwrap();
    assert_eq!(report.torn_tail, None);
    assert_eq!(report.last_index, 9);
    assert_eq!(log.read(1, 10).unwrap(), entries(1, 10, 1));
    // Appends after a reopen fill the same window, and past it the window moves on.
    let filled = 4096 / entries(10, 11, 1)[0].data.len() as u64;
    log.append(&entries(10, 10 + filled, 2)).unwrap();
    log.sync().unwrap();
    assert_eq!(only_segment_len(dir.path()), log.disk_bytes() + 4096);
    // A truncation cuts the file at the records; the next sync preallocates again.
    log.truncate_suffix(12).unwrap();
    log.append(&entries(12, 14, 3)).unwrap();
    log.sync().unwrap();
    assert_eq!(only_segment_len(dir.path()), log.disk_bytes() + 4096);
    drop(log);
    let (log, report) = Log::open(dir.path(), options).unwrap();
    assert_eq!(report.torn_tail, None);
    let mut expected = entries(1, 10, 1);
    expected.extend(entries(10, 12, 2));
    expected.extend(entries(12, 14, 3));
    assert_eq!(log.read(1, 14).unwrap(), expected);
}

#[test]
fn preallocation_stops_at_the_segment_size_and_can_be_off() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, _) = Log::open(
        dir.path(),
        Options {
            segment_bytes: 1000,
            preallocate_bytes: 1 << 20,
            ..Options::default()
        },
    )
    .unwrap();
    log.append(&entries(1, 3, 1)).unwrap();
    log.sync().unwrap();
    assert_eq!(only_segment_len(dir.path()), 1000);
    drop(log);

    let dir = tempfile::tempdir().unwrap();
    let (mut log, _) = Log::open(
        dir.path(),
        Options {
            preallocate_bytes: 0,
            ..Options::default()
        },
    )
    .unwrap();
    log.append(&entries(1, 3, 1)).unwrap();
    log.sync().unwrap();
    assert_eq!(only_segment_len(dir.path()), log.disk_bytes());
}

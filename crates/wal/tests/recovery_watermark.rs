//! Guards "recovery trusts only what is durable": every record carries the durable watermark,
//! the torn-tail rule never cuts at or below the watermark (the records' or the caller's floor)
//! and refuses instead, naming the file, the offset and the watermark; a legitimate truncation
//! never causes a false refusal; version 1 segments still open; and opening fsyncs every file
//! it keeps (a failed fsync refuses the open), as do the hard-state and snapshot loads.

// Tests may unwrap (house rule); helpers outside #[test] need saying so.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use wal::{
    Entry, Error, FaultHook, HardState, Log, Options, Problem, RECORD_HEADER_BYTES,
    RECORD_HEADER_BYTES_V1, SEGMENT_HEADER_BYTES, SnapshotMeta, Writer, hard_state,
    load_latest_snapshot_with, save_snapshot,
};

const SEGMENT_BYTES: u64 = 600;
const ENTRIES: u64 = 150;
/// Entries per sync in the reference log, so that records carry many different watermarks.
const BATCH: u64 = 10;

fn options() -> Options {
    Options {
        segment_bytes: SEGMENT_BYTES,
        ..Options::default()
    }
}

fn hooked(hook: &Arc<FaultHook>) -> Options {
    Options {
        fault_hook: Some(Arc::clone(hook)),
        ..options()
    }
}

fn entry(index: u64) -> Entry {
    let size = 5 + (index * 7 % 40) as usize;
    Entry::new(index, 1 + index / 50, vec![index as u8; size])
}

/// One record as the FORMAT section lays it out (version 2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Record {
    index: u64,
    watermark: u64,
    start: u64,
    end: u64,
}

/// The segment files of `dir`, oldest first.
fn segments(dir: &Path) -> Vec<PathBuf> {
    let mut names: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "wal"))
        .collect();
    names.sort();
    names
}

/// Parses a version 2 segment by hand, from the FORMAT section: records up to the zeros of the
/// preallocated space.
fn records(path: &Path) -> Vec<Record> {
    let bytes = fs::read(path).unwrap();
    assert_eq!(u32::from_le_bytes(bytes[8..12].try_into().unwrap()), 2);
    let u64_at = |at: usize| u64::from_le_bytes(bytes[at..at + 8].try_into().unwrap());
    let mut at = SEGMENT_HEADER_BYTES;
    let mut out = Vec::new();
    while at < bytes.len() && bytes[at..].iter().any(|&b| b != 0) {
        let len = u32::from_le_bytes(bytes[at + 4..at + 8].try_into().unwrap()) as usize;
        let end = at + RECORD_HEADER_BYTES + len;
        let crc = u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap());
        assert_eq!(
            crc,
            crc32c::crc32c(&bytes[at + 4..end]),
            "CRC covers 4..32+len"
        );
        out.push(Record {
            index: u64_at(at + 8),
            watermark: u64_at(at + 24),
            start: at as u64,
            end: end as u64,
        });
        at = end;
    }
    out
}

/// Writes the reference log, `BATCH` entries per sync.
fn build(dir: &Path) {
    let (mut log, _) = Log::open(dir, options()).unwrap();
    for lo in (1..=ENTRIES).step_by(BATCH as usize) {
        let batch: Vec<Entry> = (lo..lo + BATCH).map(entry).collect();
        log.append(&batch).unwrap();
        log.sync().unwrap();
    }
}

fn copy(from: &Path) -> tempfile::TempDir {
    let to = tempfile::tempdir().unwrap();
    for e in fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        fs::copy(e.path(), to.path().join(e.file_name())).unwrap();
    }
    to
}

/// Every file of a directory with its bytes, to show a refused open changed nothing.
fn snapshot_of(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (
                e.file_name().into_string().unwrap(),
                fs::read(e.path()).unwrap(),
            )
        })
        .collect()
}

fn cut(path: &Path, len: u64) {
    fs::OpenOptions::new()
        .write(true)
        .open(path)
        .unwrap()
        .set_len(len)
        .unwrap();
}

fn flip(path: &Path, offset: u64) {
    let mut bytes = fs::read(path).unwrap();
    bytes[offset as usize] ^= 0x5a;
    fs::write(path, bytes).unwrap();
}

/// Opens with `floor` and checks the log holds exactly entries 1..=last.
fn expect_prefix(dir: &Path, floor: u64, last: u64, what: &str) -> wal::RecoveryReport {
    let (log, report) =
        Log::open_with_floor(dir, options(), floor).unwrap_or_else(|e| panic!("{what}: {e}"));
    assert_eq!(log.last_index(), last, "{what}");
    let expected: Vec<Entry> = (1..=last).map(entry).collect();
    assert_eq!(log.read(1, last + 1).unwrap(), expected, "{what}");
    report
}

/// Opens with `floor`, expects a refusal naming `segment`, `offset` and the watermark, and
/// checks that the directory is unchanged.
fn expect_refused(dir: &Path, floor: u64, segment: &Path, offset: u64, what: &str) -> Problem {
    let before = snapshot_of(dir);
    let error = match Log::open_with_floor(dir, options(), floor) {
        Ok(_) => panic!("{what}: opened"),
        Err(error) => error,
    };
    let Error::Corrupt {
        path,
        offset: at,
        problem,
    } = &error
    else {
        panic!("{what}: wrong error {error}");
    };
    assert_eq!(path.file_name(), segment.file_name(), "{what}: {error}");
    assert_eq!(*at, offset, "{what}: {error}");
    let message = error.to_string();
    let name = segment.file_name().unwrap().to_str().unwrap();
    assert!(
        message.contains(name)
            && message.contains(&format!("offset {offset}"))
            && message.contains(&format!("watermark {floor}")),
        "{what}: message {message}"
    );
    assert_eq!(
        snapshot_of(dir),
        before,
        "{what}: a refused open changed files"
    );
    problem.clone()
}

#[test]
fn every_record_carries_the_watermark_of_the_sync_before_it() {
    let dir = tempfile::tempdir().unwrap();
    let big = Options::default();
    let (mut log, _) = Log::open(dir.path(), big.clone()).unwrap();
    for (lo, hi) in [(1, 4), (4, 9), (9, 11)] {
        log.append(&(lo..hi).map(entry).collect::<Vec<_>>())
            .unwrap();
        log.sync().unwrap();
    }
    drop(log);
    let (mut log, report) = Log::open(dir.path(), big.clone()).unwrap();
    assert_eq!((report.last_index, report.watermark), (10, 8));
    // After a reopen the first batch says everything recovered was durable.
    log.append(&(11..13).map(entry).collect::<Vec<_>>())
        .unwrap();
    log.sync().unwrap();
    drop(log);
    let seen: Vec<(u64, u64)> = records(&segments(dir.path())[0])
        .iter()
        .map(|r| (r.index, r.watermark))
        .collect();
    let expected: Vec<(u64, u64)> = (1..=12)
        .map(|i| {
            let w = match i {
                1..=3 => 0,
                4..=8 => 3,
                9..=10 => 8,
                _ => 10,
            };
            (i, w)
        })
        .collect();
    assert_eq!(seen, expected);
}

#[test]
fn a_rollover_inside_a_sync_raises_the_watermark_of_the_next_segment() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, _) = Log::open(dir.path(), options()).unwrap();
    log.append(&(1..=60).map(entry).collect::<Vec<_>>())
        .unwrap();
    log.sync().unwrap();
    let files = segments(dir.path());
    assert!(files.len() >= 3);
    let mut previous_last = 0;
    for path in &files {
        let recs = records(path);
        for r in &recs {
            // The segment before was fdatasynced before this one was created.
            assert_eq!(r.watermark, previous_last, "record {}", r.index);
        }
        previous_last = recs.last().unwrap().index;
    }
}

/// Cutting the last segment at every offset, with the caller's floor inside it: damage at or
/// below the floor refuses (naming file, offset and watermark) and changes nothing; above it,
/// the torn tail is cut exactly as without a floor.
#[test]
fn a_cut_at_or_below_the_floor_refuses_and_above_it_is_cut() {
    let reference = tempfile::tempdir().unwrap();
    build(reference.path());
    let files = segments(reference.path());
    let tail = files.last().unwrap();
    let recs = records(tail);
    assert!(recs.len() >= 4, "the last segment holds several records");
    let tail_first = recs[0].index;
    let floors = [0, tail_first + 1, ENTRIES - 1, ENTRIES];
    let len = recs.last().unwrap().end;
    for floor in floors {
        for offset in 0..len {
            let dir = copy(reference.path());
            let path = dir.path().join(tail.file_name().unwrap());
            cut(&path, offset);
            let what = format!("floor {floor}, cut at {offset}");
            // The record the cut lands in (or that starts at it), and where it starts.
            let (damaged, start) = match recs.iter().find(|r| offset < r.end) {
                _ if offset < SEGMENT_HEADER_BYTES as u64 => (tail_first, 0),
                Some(r) => (r.index, r.start),
                None => unreachable!(),
            };
            let at_boundary = offset == start && offset != 0;
            if at_boundary {
                // Nothing torn: the log just ends before `damaged`.
                if damaged - 1 < floor {
                    let problem = expect_refused(dir.path(), floor, &path, offset, &what);
                    assert!(
                        matches!(problem, Problem::EndsBelowWatermark { last_index, .. } if last_index == damaged - 1),
                        "{what}: {problem:?}"
                    );
                } else {
                    expect_prefix(dir.path(), floor, damaged - 1, &what);
                }
            } else if damaged <= floor {
                let problem = expect_refused(dir.path(), floor, &path, start, &what);
                assert!(
                    matches!(problem, Problem::DamagedBelowWatermark { index, .. } if index == damaged),
                    "{what}: {problem:?}"
                );
            } else {
                let report = expect_prefix(dir.path(), floor, damaged - 1, &what);
                let torn = report.torn_tail.expect("a torn tail was cut");
                assert_eq!(torn.offset, start, "{what}");
            }
        }
    }
}

/// A flipped byte in the final record is a torn tail only above the floor.
#[test]
fn a_flip_in_the_final_record_refuses_at_or_below_the_floor() {
    let reference = tempfile::tempdir().unwrap();
    build(reference.path());
    let tail = segments(reference.path()).pop().unwrap();
    let last = *records(&tail).last().unwrap();
    assert_eq!(last.index, ENTRIES);
    for offset in last.start..last.end {
        for floor in [ENTRIES - 1, ENTRIES] {
            let dir = copy(reference.path());
            let path = dir.path().join(tail.file_name().unwrap());
            flip(&path, offset);
            let what = format!("floor {floor}, flip at {offset}");
            if floor >= ENTRIES {
                expect_refused(dir.path(), floor, &path, last.start, &what);
            } else {
                expect_prefix(dir.path(), floor, ENTRIES - 1, &what);
            }
        }
    }
}

/// A removed (torn-header) or missing last segment may not take the log below the floor.
#[test]
fn a_log_that_would_end_below_the_floor_refuses() {
    let reference = tempfile::tempdir().unwrap();
    build(reference.path());
    let files = segments(reference.path());
    let tail = files.last().unwrap();
    let tail_first = records(tail)[0].index;

    // The last segment's header torn: removed if nothing durable was in it, refused otherwise.
    let dir = copy(reference.path());
    let path = dir.path().join(tail.file_name().unwrap());
    fs::write(&path, b"raftwal").unwrap();
    let problem = expect_refused(dir.path(), tail_first, &path, 0, "torn header");
    assert!(matches!(problem, Problem::DamagedBelowWatermark { .. }));
    let report = expect_prefix(dir.path(), tail_first - 1, tail_first - 1, "torn header");
    assert_eq!(report.removed.len(), 1);

    // The last segment gone altogether: the log ends at the segment before.
    let dir = copy(reference.path());
    fs::remove_file(dir.path().join(tail.file_name().unwrap())).unwrap();
    let before = &files[files.len() - 2];
    let end = records(before).last().unwrap().end;
    let path = dir.path().join(before.file_name().unwrap());
    let problem = expect_refused(dir.path(), ENTRIES, &path, end, "missing segment");
    assert_eq!(
        problem,
        Problem::EndsBelowWatermark {
            last_index: tail_first - 1,
            watermark: ENTRIES
        }
    );

    // An empty directory with a floor: the entries are simply not there.
    let dir = tempfile::tempdir().unwrap();
    assert!(matches!(
        Log::open_with_floor(dir.path(), options(), 3),
        Err(Error::Corrupt {
            problem: Problem::EndsBelowWatermark { .. },
            ..
        })
    ));
}

/// Without a floor, the records' own watermarks never make a torn tail refuse: each vouches
/// only for entries before it.
#[test]
fn record_watermarks_never_refuse_a_torn_tail_on_their_own() {
    let reference = tempfile::tempdir().unwrap();
    build(reference.path());
    let tail = segments(reference.path()).pop().unwrap();
    let recs = records(&tail);
    for r in &recs {
        let dir = copy(reference.path());
        cut(&dir.path().join(tail.file_name().unwrap()), r.start + 3);
        let report = expect_prefix(dir.path(), 0, r.index - 1, "cut");
        assert!(report.torn_tail.is_some());
        assert!(report.watermark < r.index, "{report:?}");
    }
}

/// Raft's conflict truncation lowers the last index below earlier watermarks; new records
/// carry the lowered one, so a crash at any fsync of truncate + append, reopened with a floor
/// at the truncation point (a commit index never passes a conflict), is never refused.
#[test]
fn truncation_then_appends_then_a_crash_is_never_refused() {
    let reference = tempfile::tempdir().unwrap();
    build(reference.path());
    let newer = |i: u64| Entry::new(i, 50, vec![i as u8; 30]);
    let from = 97;
    let mut crashes = 0;
    for k in 0.. {
        let dir = copy(reference.path());
        let hook = Arc::new(FaultHook::new());
        let (mut log, _) = Log::open(dir.path(), hooked(&hook)).unwrap();
        hook.fail_syncs_after(k);
        log.truncate_suffix(from).unwrap();
        let first = log.sync().is_ok();
        let second = first && {
            log.append(&(from..from + 30).map(newer).collect::<Vec<_>>())
                .unwrap();
            log.sync().is_ok()
        };
        drop(log);
        let (log, report) = Log::open_with_floor(dir.path(), options(), from - 1)
            .unwrap_or_else(|e| panic!("crash at fsync {k}: {e}"));
        assert!(report.watermark <= log.last_index(), "{report:?}");
        for e in log.read(1, log.last_index() + 1).unwrap() {
            assert!(e == entry(e.index) || (e.index >= from && e == newer(e.index)));
        }
        if second {
            assert_eq!(log.last_index(), from + 29);
            break;
        }
        crashes += 1;
    }
    assert!(crashes >= 4, "only {crashes} crash points");

    // Truncation with nothing written after it: the records left vouch only for entries before
    // them, so the shorter log opens with the floor at its end.
    let dir = copy(reference.path());
    let (mut log, _) = Log::open(dir.path(), options()).unwrap();
    log.truncate_suffix(from).unwrap();
    log.sync().unwrap();
    drop(log);
    expect_prefix(dir.path(), from - 1, from - 1, "truncated");

    // A record written after the truncation carries the lowered watermark, and a torn one of
    // that batch is cut as before.
    let (mut log, _) = Log::open(dir.path(), options()).unwrap();
    log.truncate_suffix(from - 10).unwrap();
    log.append(&(from - 10..from).map(newer).collect::<Vec<_>>())
        .unwrap();
    log.sync().unwrap();
    drop(log);
    let all: Vec<Record> = segments(dir.path())
        .iter()
        .flat_map(|p| records(p))
        .collect();
    let first_new = all.iter().find(|r| r.index == from - 10).unwrap();
    assert_eq!(first_new.watermark, from - 11, "lowered to below the cut");
    assert!(all.iter().all(|r| r.watermark < r.index));
    let tail = segments(dir.path()).pop().unwrap();
    let recs = records(&tail);
    let last = recs.last().unwrap();
    cut(&tail, last.end - 1);
    let (log, report) = Log::open_with_floor(dir.path(), options(), from - 11).unwrap();
    assert_eq!(log.last_index(), from - 2);
    assert!(report.torn_tail.is_some());
}

#[test]
fn reopen_after_reopen_keeps_working() {
    let dir = tempfile::tempdir().unwrap();
    let mut last = 0;
    for round in 0..6 {
        let (mut log, report) = Log::open_with_floor(dir.path(), options(), last).unwrap();
        assert_eq!(report.last_index, last, "round {round}");
        assert_eq!(report.torn_tail, None, "round {round}");
        assert_eq!(
            log.read(1, last + 1).unwrap(),
            (1..=last).map(entry).collect::<Vec<_>>()
        );
        if round % 2 == 0 {
            let batch: Vec<Entry> = (last + 1..last + 8).map(entry).collect();
            log.append(&batch).unwrap();
            log.sync().unwrap();
            // The first batch after a reopen vouches for everything recovered.
            let first_new = segments(dir.path())
                .iter()
                .flat_map(|p| records(p))
                .find(|r| r.index == last + 1)
                .unwrap();
            assert_eq!(first_new.watermark, last, "round {round}");
            last += 7;
        }
    }
}

/// Writes the version 1 layout by hand (FORMAT: 24-byte records without a watermark).
fn write_v1_segment(dir: &Path, first: u64, entries: &[Entry]) -> PathBuf {
    let mut bytes = Vec::new();
    bytes.extend_from_slice(b"raftwal\0");
    bytes.extend_from_slice(&1u32.to_le_bytes());
    bytes.extend_from_slice(&first.to_le_bytes());
    let crc = crc32c::crc32c(&bytes);
    bytes.extend_from_slice(&crc.to_le_bytes());
    for e in entries {
        let start = bytes.len();
        bytes.extend_from_slice(&[0; 4]);
        bytes.extend_from_slice(&(1 + e.data.len() as u32).to_le_bytes());
        bytes.extend_from_slice(&e.index.to_le_bytes());
        bytes.extend_from_slice(&e.term.to_le_bytes());
        bytes.push(e.kind);
        bytes.extend_from_slice(&e.data);
        let crc = crc32c::crc32c(&bytes[start + 4..]);
        bytes[start..start + 4].copy_from_slice(&crc.to_le_bytes());
        assert_eq!(
            bytes.len() - start,
            RECORD_HEADER_BYTES_V1 + 1 + e.data.len()
        );
    }
    let path = dir.join(format!("{first:020}.wal"));
    fs::write(&path, bytes).unwrap();
    path
}

#[test]
fn version_1_segments_still_open_and_are_never_appended_to() {
    let dir = tempfile::tempdir().unwrap();
    let v1_a = write_v1_segment(dir.path(), 1, &(1..=10).map(entry).collect::<Vec<_>>());
    let v1_b = write_v1_segment(dir.path(), 11, &(11..=20).map(entry).collect::<Vec<_>>());
    let original_b = fs::read(&v1_b).unwrap();
    let (mut log, report) = Log::open(dir.path(), options()).unwrap();
    assert_eq!((report.last_index, report.watermark), (20, 0));
    assert_eq!(
        log.read(1, 21).unwrap(),
        (1..=20).map(entry).collect::<Vec<_>>()
    );
    log.append(&(21..=25).map(entry).collect::<Vec<_>>())
        .unwrap();
    log.sync().unwrap();
    drop(log);
    // The old tail is left as it was; the new entries start a version 2 segment.
    assert_eq!(fs::read(&v1_b).unwrap(), original_b);
    let files = segments(dir.path());
    assert_eq!(files.len(), 3);
    let v2 = records(&files[2]);
    assert_eq!(v2[0].index, 21);
    assert!(v2.iter().all(|r| r.watermark == 20));
    let (log, report) = Log::open(dir.path(), options()).unwrap();
    assert_eq!(report.watermark, 20);
    assert_eq!(
        log.read(1, 26).unwrap(),
        (1..=25).map(entry).collect::<Vec<_>>()
    );
    drop(log);

    // Damage in a version 1 segment is still found: a flip in the middle refuses.
    flip(&v1_a, SEGMENT_HEADER_BYTES as u64 + 30);
    assert!(matches!(
        Log::open(dir.path(), options()),
        Err(Error::Corrupt { path, .. }) if path == v1_a
    ));
}

#[test]
fn a_torn_or_empty_version_1_tail_is_repaired_then_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let v1 = write_v1_segment(dir.path(), 1, &(1..=6).map(entry).collect::<Vec<_>>());
    let len = fs::metadata(&v1).unwrap().len();
    cut(&v1, len - 2);
    let (log, report) = Log::open(dir.path(), options()).unwrap();
    assert_eq!(log.last_index(), 5);
    assert!(report.torn_tail.is_some());
    drop(log);

    // A version 1 segment holding only its header is replaced by a version 2 one.
    let dir = tempfile::tempdir().unwrap();
    write_v1_segment(dir.path(), 1, &[]);
    let (mut log, _) = Log::open(dir.path(), options()).unwrap();
    log.append(&(1..=3).map(entry).collect::<Vec<_>>()).unwrap();
    log.sync().unwrap();
    drop(log);
    let files = segments(dir.path());
    assert_eq!(files.len(), 1);
    assert_eq!(records(&files[0]).len(), 3);
    let (log, _) = Log::open(dir.path(), options()).unwrap();
    assert_eq!(
        log.read(1, 4).unwrap(),
        (1..=3).map(entry).collect::<Vec<_>>()
    );
}

/// Open fdatasyncs each segment it keeps and the meta file, and fsyncs the directory.
#[test]
fn open_fsyncs_every_kept_file_and_the_directory() {
    let dir = tempfile::tempdir().unwrap();
    let (log, _) = Log::open(dir.path(), options()).unwrap();
    assert_eq!(
        log.counters().fsyncs(),
        0,
        "an empty directory has nothing to sync"
    );
    drop(log);
    build(dir.path());
    let (mut log, _) = Log::open(dir.path(), options()).unwrap();
    let n = segments(dir.path()).len() as u64;
    assert_eq!(
        log.counters().fsyncs(),
        n + 1,
        "{n} segments and the directory"
    );
    log.discard_prefix(5).unwrap();
    log.sync().unwrap();
    drop(log);
    let hook = Arc::new(FaultHook::new());
    let (log, report) = Log::open(dir.path(), hooked(&hook)).unwrap();
    assert_eq!(
        log.counters().fsyncs(),
        n + 2,
        "segments, meta file, directory"
    );
    assert_eq!(hook.syncs_seen(), n + 2);
    assert_eq!(report.first_index, 6);
}

/// A failed fsync at open, at any point, refuses the open and names a file of the log.
#[test]
fn an_fsync_failure_on_open_refuses_to_open() {
    let dir = tempfile::tempdir().unwrap();
    build(dir.path());
    let n = segments(dir.path()).len() as u64;
    for k in 0..=n {
        let hook = Arc::new(FaultHook::new());
        hook.fail_syncs_after(k);
        match Log::open(dir.path(), hooked(&hook)) {
            Err(Error::Io { path, .. }) => {
                assert!(path.starts_with(dir.path()), "fsync {k}: {path:?}");
                if k < n {
                    assert_eq!(path, segments(dir.path())[k as usize], "fsync {k}");
                } else {
                    assert_eq!(path, dir.path(), "the directory is synced last");
                }
            }
            other => panic!("fsync {k} failed but open said {other:?}"),
        }
    }
    let (log, _) = Log::open(dir.path(), options()).unwrap();
    assert_eq!(log.last_index(), ENTRIES);
}

/// The newest records (no later record vouches for them) are written back before the open's
/// fdatasync; a higher floor leaves fewer to write back.
#[test]
fn open_writes_back_only_the_records_above_the_watermark() {
    let dir = tempfile::tempdir().unwrap();
    build(dir.path());
    let tail = segments(dir.path()).pop().unwrap();
    let recs = records(&tail);
    let watermark = recs.last().unwrap().watermark;
    // The header too, when no record of the segment is vouched for.
    let above = |w: u64| -> u64 {
        let header = if w < recs[0].index {
            SEGMENT_HEADER_BYTES as u64
        } else {
            0
        };
        header
            + recs
                .iter()
                .filter(|r| r.index > w)
                .map(|r| r.end - r.start)
                .sum::<u64>()
    };
    let (log, report) = Log::open(dir.path(), options()).unwrap();
    assert_eq!(report.watermark, watermark);
    assert_eq!(report.resynced_bytes, above(watermark));
    assert_eq!(log.counters().bytes_written(), report.resynced_bytes);
    drop(log);
    let (_, report) = Log::open_with_floor(dir.path(), options(), ENTRIES - 2).unwrap();
    assert_eq!(report.resynced_bytes, above(ENTRIES - 2));
    let (_, report) = Log::open_with_floor(dir.path(), options(), ENTRIES).unwrap();
    assert_eq!(report.resynced_bytes, 0);
}

#[test]
fn hard_state_and_snapshot_loads_fsync_the_file_and_the_directory() {
    let dir = tempfile::tempdir().unwrap();
    let hook = Arc::new(FaultHook::new());
    let opts = hooked(&hook);
    assert_eq!(hard_state::load_with(dir.path(), &opts).unwrap(), None);
    assert_eq!(load_latest_snapshot_with(dir.path(), &opts).unwrap(), None);
    assert_eq!(hook.syncs_seen(), 0, "nothing loaded, nothing synced");

    let state = HardState {
        term: 3,
        vote: 1,
        commit: 9,
    };
    hard_state::save(dir.path(), &state).unwrap();
    let meta = SnapshotMeta {
        index: 9,
        term: 3,
        config: Bytes::from_static(b"members"),
    };
    save_snapshot(dir.path(), &meta, b"image").unwrap();
    assert_eq!(
        hard_state::load_with(dir.path(), &opts).unwrap(),
        Some(state)
    );
    assert_eq!(hook.syncs_seen(), 2, "hard state file, directory");
    let (loaded, data) = load_latest_snapshot_with(dir.path(), &opts)
        .unwrap()
        .unwrap();
    assert_eq!((loaded, &data[..]), (meta, &b"image"[..]));
    assert_eq!(hook.syncs_seen(), 4, "snapshot file, directory");

    // A failed fsync is an error naming the file (first) or the directory (second).
    let hs_path = dir.path().join(hard_state::HARD_STATE_FILE);
    let snap_path = dir.path().join(format!("{:020}.snap", 9));
    for (k, expected) in [(0, hs_path.as_path()), (1, dir.path())] {
        hook.fail_syncs_after(k);
        match hard_state::load_with(dir.path(), &opts) {
            Err(Error::Io { path, .. }) => assert_eq!(path, expected),
            other => panic!("hard state loaded with fsync {k} failing: {other:?}"),
        }
    }
    for (k, expected) in [(0, snap_path.as_path()), (1, dir.path())] {
        hook.fail_syncs_after(k);
        match load_latest_snapshot_with(dir.path(), &opts) {
            Err(Error::Io { path, .. }) => assert_eq!(path, expected),
            other => panic!("snapshot loaded with fsync {k} failing: {other:?}"),
        }
    }
}

/// Through the group-commit writer, each batch's records carry the end of the batch before.
#[test]
fn writer_batches_carry_the_previous_batch_end() {
    let dir = tempfile::tempdir().unwrap();
    let (log, _) = Log::open(dir.path(), Options::default()).unwrap();
    let writer = Writer::spawn(log).unwrap();
    let before = writer.fsyncs();
    for i in 1..=5 {
        writer.append_wait(vec![entry(i)]).unwrap();
    }
    // The first batch: segment and directory; then one fdatasync per batch, nothing extra.
    assert_eq!(writer.fsyncs() - before, 2 + 4);
    writer.shutdown().unwrap();
    let recs = records(&segments(dir.path())[0]);
    let marks: Vec<u64> = recs.iter().map(|r| r.watermark).collect();
    assert_eq!(marks, vec![0, 1, 2, 3, 4]);
}

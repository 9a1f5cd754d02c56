//! Guards recovery against torn writes and corruption: a log over many segments is cut,
//! bit-flipped or followed by garbage at many offsets; recovery must keep exactly the intact
//! prefix when the damage is a torn tail, and refuse to open, naming the segment and offset,
//! when intact records follow the damage. Also guards against leftovers of an interrupted
//! truncation or discard coming back as log entries.

// Tests may unwrap (house rule); helpers outside #[test] need saying so.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fs;
use std::path::{Path, PathBuf};

use wal::{Entry, Error, Log, Options, Problem, RECORD_HEADER_BYTES, SEGMENT_HEADER_BYTES};

const SEGMENT_BYTES: u64 = 600;
const ENTRIES: u64 = 150;

fn options() -> Options {
    Options {
        segment_bytes: SEGMENT_BYTES,
        ..Options::default()
    }
}

fn entry(index: u64) -> Entry {
    let size = 5 + (index * 7 % 40) as usize;
    Entry::new(index, 1 + index / 50, vec![index as u8; size])
}

/// One segment file and where its records lie.
struct Layout {
    path: PathBuf,
    /// (index, start offset, end offset) of each record.
    records: Vec<(u64, u64, u64)>,
}

impl Layout {
    fn record_at(&self, offset: u64) -> Option<(u64, u64, u64)> {
        self.records
            .iter()
            .copied()
            .find(|&(_, start, end)| start <= offset && offset < end)
    }
}

/// Writes the reference log and maps its files from the format (FORMAT in the crate doc).
fn build(dir: &Path) -> Vec<Layout> {
    let (mut log, _) = Log::open(dir, options()).unwrap();
    let all: Vec<Entry> = (1..=ENTRIES).map(entry).collect();
    log.append(&all).unwrap();
    log.sync().unwrap();
    drop(log);
    let mut names: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "wal"))
        .collect();
    names.sort();
    let mut layouts = Vec::new();
    for path in names {
        let first: u64 = path.file_stem().unwrap().to_str().unwrap().parse().unwrap();
        let bytes = fs::read(&path).unwrap();
        let len = bytes.len() as u64;
        let mut records = Vec::new();
        let mut at = SEGMENT_HEADER_BYTES as u64;
        let mut index = first;
        // Records up to the preallocated zeros (or the end of the file).
        while at < len && bytes[at as usize..].iter().any(|&b| b != 0) {
            // The kind byte comes before the data.
            let end = at + (RECORD_HEADER_BYTES + 1 + entry(index).data.len()) as u64;
            records.push((index, at, end));
            at = end;
            index += 1;
        }
        assert!(at <= len, "layout matches the format");
        assert!(
            len <= SEGMENT_BYTES,
            "preallocation stops at the segment size"
        );
        layouts.push(Layout { path, records });
    }
    assert!(layouts.len() >= 8, "the log spans several segments");
    layouts
}

/// A fresh copy of the reference log to damage.
fn copy(from: &Path) -> tempfile::TempDir {
    let to = tempfile::tempdir().unwrap();
    for e in fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        fs::copy(e.path(), to.path().join(e.file_name())).unwrap();
    }
    to
}

fn in_copy(copy: &tempfile::TempDir, original: &Path) -> PathBuf {
    copy.path().join(original.file_name().unwrap())
}

/// Opens the damaged log and checks it holds exactly entries 1..=last.
fn expect_prefix(dir: &Path, last: u64, torn: bool, what: &str) {
    let (log, report) = Log::open(dir, options()).unwrap_or_else(|e| panic!("{what}: {e}"));
    assert_eq!(log.last_index(), last, "{what}");
    assert_eq!(report.torn_tail.is_some(), torn, "{what}: {report:?}");
    let expected: Vec<Entry> = (1..=last).map(entry).collect();
    assert_eq!(log.read(1, last + 1).unwrap(), expected, "{what}");
}

/// Opens the damaged log and checks it refuses, naming `segment` and `offset`.
fn expect_corrupt(dir: &Path, segment: &Path, offset: u64, what: &str) {
    match Log::open(dir, options()) {
        Err(error @ Error::Corrupt { .. }) => {
            let Error::Corrupt {
                path, offset: at, ..
            } = &error
            else {
                unreachable!()
            };
            assert_eq!(path.file_name(), segment.file_name(), "{what}: {error}");
            assert_eq!(*at, offset, "{what}: {error}");
            let message = error.to_string();
            assert!(
                message.contains(segment.file_name().unwrap().to_str().unwrap())
                    && message.contains(&format!("offset {offset}")),
                "{what}: message {message}"
            );
        }
        Ok(_) => panic!("{what}: opened a corrupt log"),
        Err(other) => panic!("{what}: wrong error {other}"),
    }
}

fn flip(path: &Path, offset: u64) {
    let mut bytes = fs::read(path).unwrap();
    bytes[offset as usize] ^= 0x5a;
    fs::write(path, bytes).unwrap();
}

fn cut(path: &Path, len: u64) {
    fs::OpenOptions::new()
        .write(true)
        .open(path)
        .unwrap()
        .set_len(len)
        .unwrap();
}

fn append_bytes(path: &Path, extra: &[u8]) {
    let mut bytes = fs::read(path).unwrap();
    bytes.extend_from_slice(extra);
    fs::write(path, bytes).unwrap();
}

/// Last index held by segments before `segment` (they are untouched).
fn before(layouts: &[Layout], segment: usize) -> u64 {
    layouts[segment].records[0].0 - 1
}

/// Offsets to try in the last segment: all of its header and last three records, and every
/// fifth byte elsewhere.
fn last_segment_offsets(tail: &Layout) -> Vec<u64> {
    let len = tail.records.last().unwrap().2;
    let dense_from = tail.records[tail.records.len().saturating_sub(3)].1;
    (0..len)
        .filter(|&o| o < SEGMENT_HEADER_BYTES as u64 || o >= dense_from || o % 5 == 0)
        .collect()
}

#[test]
fn cutting_the_last_segment_keeps_exactly_the_intact_prefix() {
    let reference = tempfile::tempdir().unwrap();
    let layouts = build(reference.path());
    let last = layouts.len() - 1;
    let tail = &layouts[last];
    for offset in last_segment_offsets(tail) {
        let dir = copy(reference.path());
        cut(&in_copy(&dir, &tail.path), offset);
        let kept = tail
            .records
            .iter()
            .rev()
            .find(|r| r.2 <= offset)
            .map(|r| r.0)
            .unwrap_or(before(&layouts, last));
        let at_boundary =
            offset == SEGMENT_HEADER_BYTES as u64 || tail.records.iter().any(|r| r.2 == offset);
        expect_prefix(dir.path(), kept, !at_boundary, &format!("cut at {offset}"));
    }
}

#[test]
fn a_flipped_byte_is_a_torn_tail_only_in_the_last_record() {
    let reference = tempfile::tempdir().unwrap();
    let layouts = build(reference.path());
    let last = layouts.len() - 1;
    let tail = &layouts[last];
    let final_record = *tail.records.last().unwrap();
    for offset in last_segment_offsets(tail) {
        let dir = copy(reference.path());
        let path = in_copy(&dir, &tail.path);
        flip(&path, offset);
        let what = format!("flip at {offset}");
        match tail.record_at(offset) {
            Some(record) if record == final_record => {
                expect_prefix(dir.path(), final_record.0 - 1, true, &what)
            }
            Some((_, start, _)) => expect_corrupt(dir.path(), &path, start, &what),
            None => expect_corrupt(dir.path(), &path, 0, &what),
        }
    }
}

#[test]
fn damage_in_an_earlier_segment_is_corruption() {
    let reference = tempfile::tempdir().unwrap();
    let layouts = build(reference.path());
    for layout in &layouts[..layouts.len() - 1] {
        let len = layout.records.last().unwrap().2;
        for offset in (0..len).step_by(11) {
            let dir = copy(reference.path());
            let path = in_copy(&dir, &layout.path);
            flip(&path, offset);
            let start = layout.record_at(offset).map_or(0, |r| r.1);
            expect_corrupt(dir.path(), &path, start, &format!("flip at {offset}"));
        }
        // Cut in the middle of a record, and exactly at a record boundary (a gap follows).
        let (_, start, end) = layout.records[layout.records.len() / 2];
        let dir = copy(reference.path());
        let path = in_copy(&dir, &layout.path);
        cut(&path, start + (end - start) / 2);
        expect_corrupt(dir.path(), &path, start, "cut inside a record");
        let dir = copy(reference.path());
        cut(&in_copy(&dir, &layout.path), end);
        assert!(
            matches!(
                Log::open(dir.path(), options()),
                Err(Error::Corrupt {
                    problem: Problem::Gap { .. },
                    ..
                })
            ),
            "cut at a boundary leaves a gap"
        );
    }
}

#[test]
fn garbage_after_the_tail_is_cut_and_zeros_are_the_end() {
    let reference = tempfile::tempdir().unwrap();
    let layouts = build(reference.path());
    let tail = layouts.last().unwrap();
    let mut seed = 0x9e37_79b9_u64;
    for len in [1, 7, 23, 24, 25, 100, 4096] {
        let garbage: Vec<u8> = (0..len)
            .map(|_| {
                seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
                (seed >> 56) as u8
            })
            .collect();
        for (extra, torn) in [(garbage, true), (vec![0; len], false)] {
            let dir = copy(reference.path());
            append_bytes(&in_copy(&dir, &tail.path), &extra);
            expect_prefix(dir.path(), ENTRIES, torn, &format!("{len} extra bytes"));
            // The repaired log takes new entries and keeps them.
            let (mut log, _) = Log::open(dir.path(), options()).unwrap();
            log.append(&[entry(ENTRIES + 1)]).unwrap();
            log.sync().unwrap();
            drop(log);
            expect_prefix(dir.path(), ENTRIES + 1, false, "after repair");
        }
    }
}

#[test]
fn a_torn_new_segment_header_is_removed() {
    let reference = tempfile::tempdir().unwrap();
    build(reference.path());
    for len in [0, 5, 23] {
        let dir = copy(reference.path());
        let name = format!("{:020}.wal", ENTRIES + 1);
        let header = {
            // A real header as the log would write it, then torn.
            let probe = tempfile::tempdir().unwrap();
            let (mut log, _) = Log::open(probe.path(), options()).unwrap();
            log.discard_prefix(ENTRIES).unwrap();
            log.append(&[entry(ENTRIES + 1)]).unwrap();
            log.sync().unwrap();
            fs::read(probe.path().join(&name)).unwrap()
        };
        fs::write(dir.path().join(&name), &header[..len]).unwrap();
        let (log, report) = Log::open(dir.path(), options()).unwrap();
        assert_eq!(log.last_index(), ENTRIES);
        assert_eq!(report.removed.len(), 1, "{report:?}");
    }
}

#[test]
fn a_leftover_segment_behind_a_truncation_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, _) = Log::open(dir.path(), options()).unwrap();
    log.append(&(1..=ENTRIES).map(entry).collect::<Vec<_>>())
        .unwrap();
    log.sync().unwrap();
    let mut names: Vec<PathBuf> = fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "wal"))
        .collect();
    names.sort();
    let leftover_path = names.last().unwrap().clone();
    let leftover = fs::read(&leftover_path).unwrap();

    // Conflict truncation far back, then a few entries of a newer term.
    log.truncate_suffix(10).unwrap();
    let newer: Vec<Entry> = (10..15).map(|i| Entry::new(i, 9, vec![1; 8])).collect();
    log.append(&newer).unwrap();
    log.sync().unwrap();
    drop(log);
    assert!(!leftover_path.exists(), "truncated segment removed");

    // As if the removal had been lost: the old tail must not come back as entries.
    fs::write(&leftover_path, &leftover).unwrap();
    match Log::open(dir.path(), options()) {
        Err(Error::Corrupt { path, .. }) => assert_eq!(path, leftover_path),
        other => panic!("leftover accepted: {other:?}"),
    }
}

#[test]
fn a_contiguous_leftover_with_a_lower_term_is_refused() {
    let reference = tempfile::tempdir().unwrap();
    let layouts = build(reference.path());
    let dir = copy(reference.path());
    // Rewrite segment k with a newer term, ending exactly where segment k + 1 started.
    let k = 2;
    let (lo, hi) = (layouts[k].records[0].0, layouts[k + 1].records[0].0);
    let (mut log, _) = Log::open(dir.path(), options()).unwrap();
    log.truncate_suffix(lo).unwrap();
    let newer: Vec<Entry> = (lo..hi)
        .map(|i| Entry::new(i, 100, entry(i).data))
        .collect();
    log.append(&newer).unwrap();
    log.sync().unwrap();
    drop(log);
    // As if the removal of segment k + 1 had been lost: contiguous, but its terms go down.
    let leftover = in_copy(&dir, &layouts[k + 1].path);
    assert!(!leftover.exists());
    fs::copy(&layouts[k + 1].path, &leftover).unwrap();
    match Log::open(dir.path(), options()) {
        Err(Error::Corrupt {
            path,
            offset,
            problem: Problem::TermDecreased { previous: 100, .. },
        }) => {
            assert_eq!(path, leftover);
            assert_eq!(offset, SEGMENT_HEADER_BYTES as u64);
        }
        other => panic!("leftover accepted: {other:?}"),
    }
}

#[test]
fn a_leftover_segment_before_the_first_index_is_removed() {
    let reference = tempfile::tempdir().unwrap();
    let layouts = build(reference.path());
    let dir = copy(reference.path());
    let (mut log, _) = Log::open(dir.path(), options()).unwrap();
    log.discard_prefix(ENTRIES - 5).unwrap();
    log.sync().unwrap();
    drop(log);
    // As if the crash came after the meta file but before the old segments were removed.
    let first = &layouts[0].path;
    fs::copy(first, in_copy(&dir, first)).unwrap();
    let (log, report) = Log::open(dir.path(), options()).unwrap();
    assert_eq!(
        (log.first_index(), log.last_index()),
        (ENTRIES - 4, ENTRIES)
    );
    assert_eq!(report.removed.len(), 1);
    assert!(!in_copy(&dir, first).exists());
}

/// Runs `change` on a copy of `reference` with the `k`-th fsync failing (as if the machine
/// crashed there with every earlier write in place), then reopens. Returns the entries found.
fn crash_at(reference: &Path, k: u64, change: &dyn Fn(&mut Log)) -> Option<(u64, Vec<Entry>)> {
    let dir = copy(reference);
    let hook = std::sync::Arc::new(wal::FaultHook::new());
    let faulty = Options {
        fault_hook: Some(hook.clone()),
        ..options()
    };
    let (mut log, _) = Log::open(dir.path(), faulty).unwrap();
    hook.fail_syncs_after(k);
    change(&mut log);
    let completed = log.sync().is_ok();
    drop(log);
    let (log, _) = Log::open(dir.path(), options())
        .unwrap_or_else(|e| panic!("crash at fsync {k}: reopen failed: {e}"));
    let found = log.read(log.first_index(), log.last_index() + 1).unwrap();
    (!completed).then_some((log.first_index(), found))
}

/// Changes made to the log before the sync that crashes.
type Change = Box<dyn Fn(&mut Log)>;
/// The entry the changed log holds at an index.
type NewEntry = Box<dyn Fn(u64) -> Entry>;

/// A crash at any fsync of a sync that truncates, rewrites over several segments and discards
/// leaves a log that opens and holds only entries of the old or the new log, contiguously.
#[test]
fn a_crash_at_any_fsync_of_a_sync_leaves_a_valid_log() {
    let reference = tempfile::tempdir().unwrap();
    build(reference.path());
    let newer = |i: u64| Entry::new(i, 10, vec![i as u8; 20]);
    let scenarios: Vec<(&str, Change, NewEntry)> = vec![
        (
            "truncate, rewrite, discard",
            Box::new(move |log: &mut Log| {
                log.truncate_suffix(60).unwrap();
                log.append(&(60..200).map(newer).collect::<Vec<_>>())
                    .unwrap();
                log.discard_prefix(40).unwrap();
            }),
            Box::new(move |i| if i < 60 { entry(i) } else { newer(i) }),
        ),
        (
            "discard beyond the end, then append",
            Box::new(move |log: &mut Log| {
                log.discard_prefix(300).unwrap();
                log.append(&(301..340).map(newer).collect::<Vec<_>>())
                    .unwrap();
            }),
            Box::new(newer),
        ),
    ];
    for (name, change, new_entry) in &scenarios {
        let mut crashes = 0;
        for k in 0.. {
            let Some((first, found)) = crash_at(reference.path(), k, change.as_ref()) else {
                break; // the sync needed fewer than k + 1 fsyncs: every point was tried
            };
            crashes += 1;
            for (i, e) in (first..).zip(&found) {
                assert!(
                    *e == entry(i) || *e == new_entry(i),
                    "{name}, crash at fsync {k}: entry {i} is neither old nor new: {e:?}"
                );
            }
        }
        assert!(crashes >= 5, "{name}: only {crashes} crash points");
    }
}

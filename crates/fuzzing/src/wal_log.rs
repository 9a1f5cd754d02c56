//! The WAL's recovery reader: a log directory holding arbitrary bytes, opened.

use std::collections::BTreeMap;
use std::path::Path;

use wal::{Entry, Error, Log, Options, SEGMENT_HEADER_BYTES};

/// Bytes of a version 1 record header; version 2 records have 8 more (the watermark).
const RECORD_HEADER_V1: usize = wal::RECORD_HEADER_BYTES_V1;

/// A segment file through [`Log::open`], twice: the input as is (segment 1), and the input with
/// every CRC recomputed (its header's and each record's, where the lengths frame one), so that
/// the fuzzer reaches the checks behind the checksums (index continuity, terms, watermarks,
/// the torn-tail rule); that copy is named by the first index its header holds, with a
/// `log.meta` saying the log starts there. The input is also opened as a `log.meta` file and
/// loaded as a `hard_state` file.
///
/// Asserts: no panic; a refusal is [`Error::Corrupt`] and leaves the directory exactly as it
/// was; an opened log is valid (its report agrees with it, every entry reads back with
/// consecutive indexes, non-decreasing terms and the terms [`Log::term`] reports) and usable:
/// one more entry appended, synced and reopened reads back after the recovered ones.
pub fn wal_recovery(data: &[u8]) {
    open_segment(1, data, false);
    let sealed = seal(data);
    let first = match sealed.get(12..20) {
        Some(field) => u64::from_le_bytes(field.try_into().expect("an 8-byte field")),
        None => 1,
    };
    open_segment(first, &sealed, first > 1);
    open_meta(data);
    load_hard_state(data);
}

/// The input with its segment header CRC and every framed record's CRC made right.
fn seal(data: &[u8]) -> Vec<u8> {
    let mut buf = data.to_vec();
    if buf.len() < SEGMENT_HEADER_BYTES {
        return buf;
    }
    let crc = crc32c::crc32c(&buf[0..20]);
    buf[20..24].copy_from_slice(&crc.to_le_bytes());
    let header_bytes = match buf[8..12] {
        [1, 0, 0, 0] => RECORD_HEADER_V1,
        _ => wal::RECORD_HEADER_BYTES,
    };
    let mut pos = SEGMENT_HEADER_BYTES;
    while pos + header_bytes <= buf.len() {
        let len = u32::from_le_bytes(buf[pos + 4..pos + 8].try_into().expect("a 4-byte field"));
        let end = pos + header_bytes + len as usize;
        if end > buf.len() {
            break;
        }
        let crc = crc32c::crc32c(&buf[pos + 4..end]);
        buf[pos..pos + 4].copy_from_slice(&crc.to_le_bytes());
        pos = end;
    }
    buf
}

/// A sealed file as the WAL writes them: magic, version 1, payload, CRC32C of all before it.
fn sealed_file(magic: &[u8; 8], payload: &[u8]) -> Vec<u8> {
    let mut out = magic.to_vec();
    out.extend_from_slice(&1u32.to_le_bytes());
    out.extend_from_slice(payload);
    let crc = crc32c::crc32c(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

fn open_segment(first: u64, bytes: &[u8], with_meta: bool) {
    let dir = crate::scratch_dir();
    let name = format!("{first:020}.wal");
    std::fs::write(dir.path().join(name), bytes).expect("write the segment");
    if with_meta {
        let meta = sealed_file(b"raftmeta", &first.to_le_bytes());
        std::fs::write(dir.path().join("log.meta"), meta).expect("write the meta file");
    }
    open_and_check(dir.path());
}

fn open_meta(bytes: &[u8]) {
    let dir = crate::scratch_dir();
    std::fs::write(dir.path().join("log.meta"), bytes).expect("write the meta file");
    open_and_check(dir.path());
}

fn load_hard_state(bytes: &[u8]) {
    let dir = crate::scratch_dir();
    std::fs::write(dir.path().join(wal::hard_state::HARD_STATE_FILE), bytes)
        .expect("write the hard state");
    match wal::hard_state::load(dir.path()) {
        Ok(state) => assert!(state.is_some(), "a hard state file loads as none"),
        Err(e) => assert!(matches!(e, Error::Corrupt { .. }), "untyped refusal: {e}"),
    }
}

/// Every file of `dir` and its bytes.
fn contents(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    std::fs::read_dir(dir)
        .expect("list the scratch directory")
        .map(|entry| {
            let entry = entry.expect("a directory entry");
            let bytes = std::fs::read(entry.path()).expect("read a scratch file");
            (entry.file_name().to_string_lossy().into_owned(), bytes)
        })
        .collect()
}

fn open_and_check(dir: &Path) {
    let before = contents(dir);
    let (mut log, report) = match Log::open(dir, Options::default()) {
        Ok(opened) => opened,
        Err(e) => {
            assert!(matches!(e, Error::Corrupt { .. }), "untyped refusal: {e}");
            assert_eq!(
                before,
                contents(dir),
                "a refused open changed the directory"
            );
            return;
        }
    };
    let (first, last) = (log.first_index(), log.last_index());
    assert_eq!((report.first_index, report.last_index), (first, last));
    assert!(
        first >= 1 && last >= first - 1,
        "log bounds [{first}, {last}]"
    );
    let entries = read_all(&log);
    let Some(next) = last.checked_add(1).filter(|&n| n < u64::MAX) else {
        return;
    };
    // The recovered log must take the next entry and keep it across a reopen.
    let term = entries.last().map_or(1, |e| e.term);
    let extra = Entry::new(next, term, &b"fuzz"[..]);
    log.append(std::slice::from_ref(&extra))
        .expect("a recovered log takes the next entry");
    log.sync().expect("a recovered log syncs");
    drop(log);
    let (log, _) = Log::open(dir, Options::default())
        .unwrap_or_else(|e| panic!("a recovered log that took an entry fails to reopen: {e}"));
    assert_eq!((log.first_index(), log.last_index()), (first, next));
    let mut expected = entries;
    expected.push(extra);
    assert_eq!(read_all(&log), expected, "entries changed across a reopen");
}

/// Every entry of `log`, checked for consecutive indexes and non-decreasing terms.
fn read_all(log: &Log) -> Vec<Entry> {
    let (first, last) = (log.first_index(), log.last_index());
    let entries = log
        .read(first, last + 1)
        .unwrap_or_else(|e| panic!("a recovered log cannot read [{first}, {last}]: {e}"));
    assert_eq!(entries.len() as u64, last + 1 - first);
    let mut previous_term = 0;
    for (entry, index) in entries.iter().zip(first..) {
        assert_eq!(entry.index, index, "recovered indexes are not consecutive");
        assert!(entry.term >= previous_term, "recovered terms go down");
        assert_eq!(log.term(index), Some(entry.term));
        previous_term = entry.term;
    }
    entries
}

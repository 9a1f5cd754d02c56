//! One segment file: its name, its header, the scan that checks it, and its in-memory index.

use std::path::PathBuf;

use bytes::Bytes;

use crate::error::Problem;
use crate::record::{self, Format, RECORD_DATA_BYTES_MAX};

/// Bytes of the header at the start of every segment: magic (8), version (4), first index (8),
/// CRC (4).
pub const SEGMENT_HEADER_BYTES: usize = 24;

/// Identifies a raftfs log segment (and keeps us from reading some other file as one).
const SEGMENT_MAGIC: [u8; 8] = *b"raftwal\0";

/// The segment format version this code writes: records carry a watermark.
const SEGMENT_VERSION: u32 = 2;

/// The older version still read: records without a watermark.
const SEGMENT_VERSION_V1: u32 = 1;

/// Extension of segment files; anything else in the directory is not a segment.
const SEGMENT_SUFFIX: &str = ".wal";

/// Digits of the zero-padded first index in a segment name: enough for any u64, so names sort
/// in index order.
const INDEX_DIGITS: usize = 20;

/// The file name of the segment whose first entry has `first_index`.
pub(crate) fn file_name(first_index: u64) -> String {
    format!(
        "{first_index:0width$}{SEGMENT_SUFFIX}",
        width = INDEX_DIGITS
    )
}

/// The first index a segment file name stands for, or `None` if it is not a segment name.
pub(crate) fn parse_file_name(name: &str) -> Option<u64> {
    let digits = name.strip_suffix(SEGMENT_SUFFIX)?;
    if digits.len() != INDEX_DIGITS || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// The header of a segment starting at `first_index`.
pub(crate) fn encode_header(first_index: u64) -> [u8; SEGMENT_HEADER_BYTES] {
    let mut header = [0; SEGMENT_HEADER_BYTES];
    header[0..8].copy_from_slice(&SEGMENT_MAGIC);
    header[8..12].copy_from_slice(&SEGMENT_VERSION.to_le_bytes());
    header[12..20].copy_from_slice(&first_index.to_le_bytes());
    let crc = crc32c::crc32c(&header[0..20]);
    header[20..24].copy_from_slice(&crc.to_le_bytes());
    header
}

/// Checks a segment header against the first index its file name promises; returns the record
/// layout its version implies.
fn check_header(buf: &[u8], first_index: u64) -> Result<Format, Problem> {
    if buf.len() < SEGMENT_HEADER_BYTES {
        return Err(Problem::Truncated {
            needed: SEGMENT_HEADER_BYTES as u64,
            available: buf.len() as u64,
        });
    }
    let stored = record::read_u32(buf, 20);
    let computed = crc32c::crc32c(&buf[0..20]);
    if stored != computed {
        return Err(Problem::ChecksumMismatch { stored, computed });
    }
    if buf[0..8] != SEGMENT_MAGIC {
        return Err(Problem::BadMagic);
    }
    let format = match record::read_u32(buf, 8) {
        SEGMENT_VERSION => Format::V2,
        SEGMENT_VERSION_V1 => Format::V1,
        version => return Err(Problem::UnsupportedVersion(version)),
    };
    let found = record::read_u64(buf, 12);
    if found != first_index {
        return Err(Problem::IndexMismatch {
            expected: first_index,
            found,
        });
    }
    Ok(format)
}

/// Where a segment's intact records are, as learned by a scan or kept up to date by appends.
#[derive(Debug, Clone)]
pub(crate) struct SegmentIndex {
    /// Index of the first record (also the number in the file name).
    pub(crate) first_index: u64,
    /// The segment file.
    pub(crate) path: PathBuf,
    /// Byte offset of each record; record `i` holds index `first_index + i`.
    pub(crate) offsets: Vec<u64>,
    /// Term of each record, parallel to `offsets`.
    pub(crate) terms: Vec<u64>,
    /// Bytes of the file that hold the header and intact records.
    pub(crate) len: u64,
    /// Record layout, from the header's version. New segments are always [`Format::V2`].
    pub(crate) format: Format,
    /// Highest watermark carried by any record in `offsets` (0 for none, or for version 1).
    pub(crate) watermark: u64,
}

impl SegmentIndex {
    /// A current-format segment holding only its header.
    pub(crate) fn new(first_index: u64, path: PathBuf) -> Self {
        SegmentIndex {
            first_index,
            path,
            offsets: Vec::new(),
            terms: Vec::new(),
            len: SEGMENT_HEADER_BYTES as u64,
            format: Format::V2,
            watermark: 0,
        }
    }

    /// Byte offset of the record holding `index`, or the end of the intact records if `index`
    /// is past them. `index` must not be below `first_index`.
    pub(crate) fn offset_of(&self, index: u64) -> u64 {
        let slot = usize::try_from(index - self.first_index).unwrap_or(usize::MAX);
        self.offsets.get(slot).copied().unwrap_or(self.len)
    }

    /// One past the last index this segment holds.
    pub(crate) fn next_index(&self) -> u64 {
        self.first_index + self.offsets.len() as u64
    }

    /// The byte range of the records for indexes `[lo, hi)`, all inside this segment.
    pub(crate) fn byte_range(&self, lo: u64, hi: u64) -> (u64, u64) {
        let start = self.offsets[(lo - self.first_index) as usize];
        let end = match self.offsets.get((hi - self.first_index) as usize) {
            Some(&offset) => offset,
            None => self.len,
        };
        (start, end)
    }

    /// Term of `index`, if this segment holds it.
    pub(crate) fn term(&self, index: u64) -> Option<u64> {
        let slot = index.checked_sub(self.first_index)?;
        self.terms.get(usize::try_from(slot).ok()?).copied()
    }
}

/// Where and why a scan stopped before the end of the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Damage {
    /// Byte offset of the header or record that failed.
    pub(crate) offset: u64,
    /// What was wrong with it.
    pub(crate) problem: Problem,
    /// Whether the failure cannot be a torn write: an intact record with a plausible index lies
    /// further on, or the failing record itself was intact but out of sequence.
    pub(crate) beyond_tail: bool,
}

/// The result of checking every record of one segment.
#[derive(Debug)]
pub(crate) struct Scan {
    /// The intact records up to the first damage (or the whole file).
    pub(crate) index: SegmentIndex,
    /// The first damage found, if any.
    pub(crate) damage: Option<Damage>,
}

/// Checks the header and every record of a segment's bytes, stopping at the first failure.
///
/// `prev_term` is the last term of the segment before, so terms are checked across files.
pub(crate) fn scan(buf: &Bytes, mut index: SegmentIndex, prev_term: Option<u64>) -> Scan {
    let format = match check_header(buf, index.first_index) {
        Ok(format) => format,
        Err(problem) => return torn_header(buf, index, problem),
    };
    index.format = format;
    let mut pos = SEGMENT_HEADER_BYTES;
    let mut last_term = prev_term;
    while pos < buf.len() {
        let expected = index.next_index();
        let failure = match record::decode(buf, pos, format) {
            // Preallocated space: the records end here (see `Options::preallocate_bytes`).
            Err(_) if is_zero_tail(&buf[pos..]) => break,
            Err(problem) => Some(Damage {
                offset: pos as u64,
                problem,
                beyond_tail: intact_record_after(buf, pos, expected, format),
            }),
            Ok(record::Decoded { entry, .. }) if entry.index != expected => Some(Damage {
                offset: pos as u64,
                problem: Problem::IndexMismatch {
                    expected,
                    found: entry.index,
                },
                beyond_tail: true,
            }),
            Ok(record::Decoded { entry, .. }) if last_term.is_some_and(|t| entry.term < t) => {
                Some(Damage {
                    offset: pos as u64,
                    problem: Problem::TermDecreased {
                        previous: last_term.unwrap_or_default(),
                        found: entry.term,
                    },
                    beyond_tail: true,
                })
            }
            Ok(record::Decoded { entry, .. }) if entry.index == u64::MAX => Some(Damage {
                offset: pos as u64,
                problem: Problem::IndexOverflow,
                beyond_tail: true,
            }),
            Ok(record::Decoded {
                entry, watermark, ..
            }) if watermark >= entry.index => Some(Damage {
                offset: pos as u64,
                problem: Problem::WatermarkAhead {
                    index: entry.index,
                    watermark,
                },
                beyond_tail: true,
            }),
            Ok(record::Decoded {
                entry,
                watermark,
                len,
            }) => {
                index.offsets.push(pos as u64);
                index.terms.push(entry.term);
                index.watermark = index.watermark.max(watermark);
                last_term = Some(entry.term);
                pos += len;
                None
            }
        };
        if let Some(damage) = failure {
            index.len = pos as u64;
            return Scan {
                index,
                damage: Some(damage),
            };
        }
    }
    index.len = pos as u64;
    Scan {
        index,
        damage: None,
    }
}

/// Whether `rest` holds only zeros: the unused end of a preallocated segment. No record can
/// look like that (its index is at least 1), and a torn record leaves some nonzero byte.
fn is_zero_tail(rest: &[u8]) -> bool {
    rest.iter().all(|&b| b == 0)
}

/// The scan of a segment whose header failed its check.
fn torn_header(buf: &Bytes, mut index: SegmentIndex, problem: Problem) -> Scan {
    index.len = 0;
    // A header whose CRC holds but whose content is wrong was written that way: not torn.
    let intact = !matches!(
        problem,
        Problem::Truncated { .. } | Problem::ChecksumMismatch { .. }
    );
    // The version is unknown: look for intact records of either layout.
    let beyond_tail = intact
        || intact_record_after(buf, 0, index.first_index, Format::V2)
        || intact_record_after(buf, 0, index.first_index, Format::V1);
    let damage = Some(Damage {
        offset: 0,
        problem,
        beyond_tail,
    });
    Scan { index, damage }
}

/// Whether an intact record whose index is `expected` or later starts anywhere after `from`.
///
/// This is what tells a torn tail (nothing valid follows) from damage in the middle of the log
/// (a flipped length field, say, after which the following records are still intact). Only
/// offsets whose index field is plausible are CRC-checked, so the search is cheap.
fn intact_record_after(buf: &Bytes, from: usize, expected: u64, format: Format) -> bool {
    let header_bytes = format.header_bytes();
    if buf.len() < header_bytes {
        return false;
    }
    // No record can be shorter than its header, so indexes further ahead than this are garbage.
    let reach = (buf.len() / header_bytes) as u64 + 1;
    let last_start = buf.len() - header_bytes;
    (from + 1..=last_start).any(|pos| {
        let index = record::read_u64(buf, pos + 8);
        let data_len = record::read_u32(buf, pos + 4) as usize;
        index >= expected
            && index - expected <= reach
            && data_len <= RECORD_DATA_BYTES_MAX
            && pos + header_bytes + data_len <= buf.len()
            && record::decode(buf, pos, format).is_ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entry::Entry;

    fn segment(first: u64, entries: &[Entry]) -> Vec<u8> {
        let mut buf = encode_header(first).to_vec();
        for e in entries {
            record::encode(e, e.index - 1, &mut buf);
        }
        buf
    }

    fn entries(first: u64, n: u64) -> Vec<Entry> {
        (first..first + n)
            .map(|i| Entry::new(i, 1, vec![i as u8; 10]))
            .collect()
    }

    fn run(buf: Vec<u8>, first: u64) -> Scan {
        scan(
            &Bytes::from(buf),
            SegmentIndex::new(first, "x".into()),
            None,
        )
    }

    #[test]
    fn names_round_trip_and_sort() {
        assert_eq!(parse_file_name(&file_name(42)), Some(42));
        assert_eq!(parse_file_name(&file_name(u64::MAX)), Some(u64::MAX));
        assert!(file_name(9) < file_name(10));
        assert_eq!(parse_file_name("42.wal"), None);
        assert_eq!(parse_file_name("log.meta"), None);
    }

    #[test]
    fn clean_segment_scans_fully() {
        let scan = run(segment(5, &entries(5, 3)), 5);
        assert_eq!(scan.damage, None);
        assert_eq!(scan.index.next_index(), 8);
        assert_eq!(scan.index.watermark, 6);
    }

    #[test]
    fn a_watermark_not_below_its_record_is_beyond_tail() {
        let mut buf = encode_header(1).to_vec();
        record::encode(&Entry::new(1, 1, &b"a"[..]), 0, &mut buf);
        let at = buf.len();
        record::encode(&Entry::new(2, 1, &b"b"[..]), 1, &mut buf);
        // Rewrite the second record's watermark to 2 (its own index) with a valid CRC.
        buf[at + 24..at + 32].copy_from_slice(&2u64.to_le_bytes());
        let crc = crc32c::crc32c(&buf[at + 4..]);
        buf[at..at + 4].copy_from_slice(&crc.to_le_bytes());
        let damage = run(buf, 1).damage.expect("damage");
        assert!(damage.beyond_tail);
        assert!(matches!(
            damage.problem,
            Problem::WatermarkAhead { index: 2, .. }
        ));
    }

    #[test]
    fn torn_last_record_is_not_beyond_tail() {
        let mut buf = segment(1, &entries(1, 3));
        buf.truncate(buf.len() - 3);
        let scan = run(buf, 1);
        assert_eq!(scan.index.next_index(), 3);
        assert!(!scan.damage.expect("damage").beyond_tail);
    }

    #[test]
    fn flipped_length_in_the_middle_is_beyond_tail() {
        let mut buf = segment(1, &entries(1, 3));
        buf[SEGMENT_HEADER_BYTES + 4] ^= 0x01;
        let scan = run(buf, 1);
        assert_eq!(scan.index.next_index(), 1);
        assert!(scan.damage.expect("damage").beyond_tail);
    }

    #[test]
    fn header_naming_another_index_is_beyond_tail() {
        let scan = run(segment(5, &entries(5, 1)), 6);
        assert!(scan.damage.expect("damage").beyond_tail);
    }

    #[test]
    fn torn_header_alone_is_not_beyond_tail() {
        let mut buf = segment(5, &[]);
        buf.truncate(10);
        assert!(!run(buf, 5).damage.expect("damage").beyond_tail);
    }
}

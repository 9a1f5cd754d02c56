//! One log record: an entry framed with its length and a CRC32C (layout in the crate doc).
//!
//! Pure: bytes in, bytes out. Everything read is checked before it is believed.

use bytes::Bytes;

use crate::entry::Entry;
use crate::error::Problem;

/// Bytes before a record's data in the current format (version 2): CRC (4), data length (4),
/// index (8), term (8), watermark (8).
pub const RECORD_HEADER_BYTES: usize = 32;

/// Bytes before a record's data in format version 1, which had no watermark. Still read.
pub const RECORD_HEADER_BYTES_V1: usize = 24;

/// Largest data one record may hold, besides its kind byte. A Raft entry carries one client
/// command (at most 1 MiB of file content by default); 64 MiB leaves room for larger settings
/// while keeping a corrupt length field from making recovery allocate or skip gigabytes.
pub const RECORD_DATA_BYTES_MAX: usize = 64 << 20;

/// The record layout of one segment, set by the version in its header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Format {
    /// Version 1: no watermark; its records read as watermark 0 (they vouch for nothing).
    V1,
    /// Version 2, the one written: every record carries the durable watermark.
    V2,
}

impl Format {
    /// Bytes before a record's data.
    pub(crate) fn header_bytes(self) -> usize {
        match self {
            Format::V1 => RECORD_HEADER_BYTES_V1,
            Format::V2 => RECORD_HEADER_BYTES,
        }
    }
}

/// A record read back and checked against its CRC.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Decoded {
    /// The entry it holds.
    pub(crate) entry: Entry,
    /// Highest index the log had made durable before this record was written (0 in version 1).
    pub(crate) watermark: u64,
    /// Bytes the record takes on disk.
    pub(crate) len: usize,
}

/// Bytes a record for `data_len` bytes of data takes on disk in the current format.
pub(crate) fn encoded_len(data_len: usize) -> u64 {
    (RECORD_HEADER_BYTES + 1 + data_len) as u64
}

/// Appends the current-format record for `entry` to `out`, carrying `watermark`. The caller has
/// checked the data size.
pub(crate) fn encode(entry: &Entry, watermark: u64, out: &mut Vec<u8>) {
    assert!(
        entry.data.len() <= RECORD_DATA_BYTES_MAX,
        "record size is checked at append"
    );
    assert!(
        watermark < entry.index,
        "a record is written after everything its watermark vouches for"
    );
    let start = out.len();
    out.extend_from_slice(&[0; 4]); // CRC, filled in below
    // Fits: bounded by RECORD_DATA_BYTES_MAX above.
    out.extend_from_slice(&(1 + entry.data.len() as u32).to_le_bytes());
    out.extend_from_slice(&entry.index.to_le_bytes());
    out.extend_from_slice(&entry.term.to_le_bytes());
    out.extend_from_slice(&watermark.to_le_bytes());
    out.push(entry.kind);
    out.extend_from_slice(&entry.data);
    let crc = crc32c::crc32c(&out[start + 4..]);
    out[start..start + 4].copy_from_slice(&crc.to_le_bytes());
}

/// Decodes the record of layout `format` starting at `buf[pos..]`.
///
/// Checks the framing and the CRC only; the caller checks the index, term and watermark against
/// what the position implies.
pub(crate) fn decode(buf: &Bytes, pos: usize, format: Format) -> Result<Decoded, Problem> {
    let header_bytes = format.header_bytes();
    let available = buf.len().saturating_sub(pos);
    if available < header_bytes {
        return Err(Problem::Truncated {
            needed: header_bytes as u64,
            available: available as u64,
        });
    }
    let header = &buf[pos..pos + header_bytes];
    let stored = read_u32(header, 0);
    let data_len = read_u32(header, 4) as usize;
    if data_len > 1 + RECORD_DATA_BYTES_MAX {
        return Err(Problem::LengthTooLarge {
            length: data_len as u64,
            max: 1 + RECORD_DATA_BYTES_MAX as u64,
        });
    }
    let total = header_bytes + data_len;
    if available < total {
        return Err(Problem::Truncated {
            needed: total as u64,
            available: available as u64,
        });
    }
    let computed = crc32c::crc32c(&buf[pos + 4..pos + total]);
    if computed != stored {
        return Err(Problem::ChecksumMismatch { stored, computed });
    }
    let watermark = match format {
        Format::V1 => 0,
        Format::V2 => read_u64(header, 24),
    };
    let data_at = pos + header_bytes;
    // Length 0 is an entry from before kinds: kind 0, no data (see the crate doc).
    let (kind, data) = match data_len {
        0 => (0, Bytes::new()),
        _ => (buf[data_at], buf.slice(data_at + 1..pos + total)),
    };
    Ok(Decoded {
        entry: Entry {
            index: read_u64(header, 8),
            term: read_u64(header, 16),
            kind,
            data,
        },
        watermark,
        len: total,
    })
}

/// Reads a little-endian u32 at `at`; the caller has checked the length.
pub(crate) fn read_u32(buf: &[u8], at: usize) -> u32 {
    let mut bytes = [0; 4];
    bytes.copy_from_slice(&buf[at..at + 4]);
    u32::from_le_bytes(bytes)
}

/// Reads a little-endian u64 at `at`; the caller has checked the length.
pub(crate) fn read_u64(buf: &[u8], at: usize) -> u64 {
    let mut bytes = [0; 8];
    bytes.copy_from_slice(&buf[at..at + 8]);
    u64::from_le_bytes(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encoded(entry: &Entry) -> Bytes {
        let mut out = Vec::new();
        encode(entry, entry.index - 1, &mut out);
        Bytes::from(out)
    }

    #[test]
    fn round_trip() {
        let entry = Entry::of_kind(7, 3, 9, &b"hello"[..]);
        let buf = encoded(&entry);
        assert_eq!(buf.len() as u64, encoded_len(5));
        let decoded = decode(&buf, 0, Format::V2).unwrap();
        assert_eq!(
            decoded,
            Decoded {
                entry,
                watermark: 6,
                len: buf.len()
            }
        );
    }

    /// A record laid out by hand: CRC, length, index, term, the watermark if given (version 2),
    /// then `stored` (the kind and the data).
    fn by_hand(index: u64, term: u64, watermark: Option<u64>, stored: &[u8]) -> Bytes {
        let mut buf = Vec::new();
        buf.extend_from_slice(&[0; 4]);
        buf.extend_from_slice(&(stored.len() as u32).to_le_bytes());
        buf.extend_from_slice(&index.to_le_bytes());
        buf.extend_from_slice(&term.to_le_bytes());
        if let Some(watermark) = watermark {
            buf.extend_from_slice(&watermark.to_le_bytes());
        }
        buf.extend_from_slice(stored);
        let crc = crc32c::crc32c(&buf[4..]);
        buf[0..4].copy_from_slice(&crc.to_le_bytes());
        Bytes::from(buf)
    }

    #[test]
    fn version_1_records_read_with_watermark_zero() {
        let decoded = decode(&by_hand(9, 2, None, b"\x05abc"), 0, Format::V1).unwrap();
        assert_eq!(decoded.entry, Entry::of_kind(9, 2, 5, &b"abc"[..]));
        assert_eq!((decoded.watermark, decoded.len), (0, 28));
    }

    #[test]
    fn a_record_of_length_zero_reads_as_kind_zero_without_data() {
        let decoded = decode(&by_hand(4, 1, Some(3), b""), 0, Format::V2).unwrap();
        assert_eq!(decoded.entry, Entry::new(4, 1, Bytes::new()));
        assert_eq!((decoded.watermark, decoded.len), (3, RECORD_HEADER_BYTES));
    }

    #[test]
    fn the_kind_is_stored_in_front_of_the_data() {
        let buf = encoded(&Entry::of_kind(2, 1, 7, &b"xy"[..]));
        assert_eq!(read_u32(&buf, 4), 3);
        assert_eq!(&buf[RECORD_HEADER_BYTES..], b"\x07xy");
    }

    #[test]
    fn every_flipped_bit_is_detected() {
        let buf = encoded(&Entry::new(1, 1, &b"abc"[..])).to_vec();
        for bit in 0..buf.len() * 8 {
            let mut bad = buf.clone();
            bad[bit / 8] ^= 1 << (bit % 8);
            assert!(
                decode(&Bytes::from(bad), 0, Format::V2).is_err(),
                "bit {bit}"
            );
        }
    }

    #[test]
    fn zeros_and_short_buffers_are_rejected() {
        assert!(decode(&Bytes::from(vec![0; 64]), 0, Format::V2).is_err());
        let buf = encoded(&Entry::new(1, 1, &b"abc"[..]));
        for len in 0..buf.len() {
            assert!(matches!(
                decode(&buf.slice(..len), 0, Format::V2),
                Err(Problem::Truncated { .. })
            ));
        }
    }

    #[test]
    fn huge_length_is_rejected_before_reading() {
        let mut buf = encoded(&Entry::new(1, 1, &b""[..])).to_vec();
        buf[4..8].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(matches!(
            decode(&Bytes::from(buf), 0, Format::V2),
            Err(Problem::LengthTooLarge { .. })
        ));
    }
}

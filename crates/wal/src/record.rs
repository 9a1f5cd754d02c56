//! One log record: an entry framed with its length and a CRC32C (layout in the crate doc).
//!
//! Pure: bytes in, bytes out. Everything read is checked before it is believed.

use bytes::Bytes;

use crate::entry::Entry;
use crate::error::Problem;

/// Bytes before a record's data: CRC (4), data length (4), index (8), term (8).
pub const RECORD_HEADER_BYTES: usize = 24;

/// Largest data one record may hold. A Raft entry carries one client command (at most 1 MiB of
/// file content by default); 64 MiB leaves room for larger settings while keeping a corrupt
/// length field from making recovery allocate or skip gigabytes.
pub const RECORD_DATA_BYTES_MAX: usize = 64 << 20;

/// Bytes a record for `data_len` bytes of data takes on disk.
pub(crate) fn encoded_len(data_len: usize) -> u64 {
    (RECORD_HEADER_BYTES + data_len) as u64
}

/// Appends the record for `entry` to `out`. The caller has checked the data size.
pub(crate) fn encode(entry: &Entry, out: &mut Vec<u8>) {
    assert!(
        entry.data.len() <= RECORD_DATA_BYTES_MAX,
        "record size is checked at append"
    );
    let start = out.len();
    out.extend_from_slice(&[0; 4]); // CRC, filled in below
    // Fits: bounded by RECORD_DATA_BYTES_MAX above.
    out.extend_from_slice(&(entry.data.len() as u32).to_le_bytes());
    out.extend_from_slice(&entry.index.to_le_bytes());
    out.extend_from_slice(&entry.term.to_le_bytes());
    out.extend_from_slice(&entry.data);
    let crc = crc32c::crc32c(&out[start + 4..]);
    out[start..start + 4].copy_from_slice(&crc.to_le_bytes());
}

/// Decodes the record starting at `buf[pos..]`, returning it and its encoded length.
///
/// Checks the framing and the CRC only; the caller checks the index and term against what the
/// position implies.
pub(crate) fn decode(buf: &Bytes, pos: usize) -> Result<(Entry, usize), Problem> {
    let available = buf.len().saturating_sub(pos);
    if available < RECORD_HEADER_BYTES {
        return Err(Problem::Truncated {
            needed: RECORD_HEADER_BYTES as u64,
            available: available as u64,
        });
    }
    let header = &buf[pos..pos + RECORD_HEADER_BYTES];
    let stored = read_u32(header, 0);
    let data_len = read_u32(header, 4) as usize;
    if data_len > RECORD_DATA_BYTES_MAX {
        return Err(Problem::LengthTooLarge {
            length: data_len as u64,
            max: RECORD_DATA_BYTES_MAX as u64,
        });
    }
    let total = RECORD_HEADER_BYTES + data_len;
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
    let entry = Entry {
        index: read_u64(header, 8),
        term: read_u64(header, 16),
        data: buf.slice(pos + RECORD_HEADER_BYTES..pos + total),
    };
    Ok((entry, total))
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
        encode(entry, &mut out);
        Bytes::from(out)
    }

    #[test]
    fn round_trip() {
        let entry = Entry::new(7, 3, &b"hello"[..]);
        let buf = encoded(&entry);
        assert_eq!(buf.len() as u64, encoded_len(5));
        assert_eq!(decode(&buf, 0), Ok((entry, buf.len())));
    }

    #[test]
    fn every_flipped_bit_is_detected() {
        let buf = encoded(&Entry::new(1, 1, &b"abc"[..])).to_vec();
        for bit in 0..buf.len() * 8 {
            let mut bad = buf.clone();
            bad[bit / 8] ^= 1 << (bit % 8);
            assert!(decode(&Bytes::from(bad), 0).is_err(), "bit {bit}");
        }
    }

    #[test]
    fn zeros_and_short_buffers_are_rejected() {
        assert!(decode(&Bytes::from(vec![0; 64]), 0).is_err());
        let buf = encoded(&Entry::new(1, 1, &b"abc"[..]));
        for len in 0..buf.len() {
            assert!(matches!(
                decode(&buf.slice(..len), 0),
                Err(Problem::Truncated { .. })
            ));
        }
    }

    #[test]
    fn huge_length_is_rejected_before_reading() {
        let mut buf = encoded(&Entry::new(1, 1, &b""[..])).to_vec();
        buf[4..8].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(matches!(
            decode(&Bytes::from(buf), 0),
            Err(Problem::LengthTooLarge { .. })
        ));
    }
}

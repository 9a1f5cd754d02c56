//! Small whole files sealed with a CRC: the log meta, the hard state and snapshots.
//!
//! Layout: magic (8 bytes) | version (u32 LE) | payload | CRC32C (u32 LE) of every byte before
//! it. Written with the atomic temp-file dance of [`Disk::write_atomic`], read back whole and
//! checked before the payload is believed.

use std::path::Path;

use bytes::Bytes;

use crate::disk::Disk;
use crate::error::{Error, Problem};
use crate::record;

/// The only version of these files this code writes and reads.
const SEALED_VERSION: u32 = 1;

/// Bytes around the payload: magic, version, CRC.
const SEALED_OVERHEAD_BYTES: usize = 8 + 4 + 4;

/// Atomically replaces `dir/name` with a sealed file holding the concatenated `payload` parts.
pub(crate) fn write(
    disk: &Disk,
    dir: &Path,
    name: &str,
    magic: &[u8; 8],
    payload: &[&[u8]],
) -> Result<(), Error> {
    let version = SEALED_VERSION.to_le_bytes();
    let crc = checksum(magic, payload).to_le_bytes();
    let mut parts: Vec<&[u8]> = Vec::with_capacity(payload.len() + 3);
    parts.push(magic);
    parts.push(&version);
    parts.extend_from_slice(payload);
    parts.push(&crc);
    disk.write_atomic(dir, name, &parts)
}

/// The bytes of a sealed file holding the concatenated `payload` parts, in memory: exactly
/// what [`write`] puts on disk (a backup streamed to a client is such a file).
pub(crate) fn seal(magic: &[u8; 8], payload: &[&[u8]]) -> Vec<u8> {
    let len = payload.iter().map(|p| p.len()).sum::<usize>() + SEALED_OVERHEAD_BYTES;
    let mut bytes = Vec::with_capacity(len);
    bytes.extend_from_slice(magic);
    bytes.extend_from_slice(&SEALED_VERSION.to_le_bytes());
    for part in payload {
        bytes.extend_from_slice(part);
    }
    bytes.extend_from_slice(&checksum(magic, payload).to_le_bytes());
    bytes
}

/// The CRC32C a sealed file ends with: of magic, version and payload.
fn checksum(magic: &[u8; 8], payload: &[&[u8]]) -> u32 {
    let mut crc = crc32c::crc32c(magic);
    crc = crc32c::crc32c_append(crc, &SEALED_VERSION.to_le_bytes());
    for part in payload {
        crc = crc32c::crc32c_append(crc, part);
    }
    crc
}

/// The CRC32C stored at the end of a sealed file's bytes (not checked here), if it is long
/// enough to hold one.
pub(crate) fn stored_checksum(bytes: &[u8]) -> Option<u32> {
    (bytes.len() >= SEALED_OVERHEAD_BYTES).then(|| record::read_u32(bytes, bytes.len() - 4))
}

/// Checks a sealed file's bytes and returns its payload.
pub(crate) fn open(path: &Path, bytes: &Bytes, magic: &[u8; 8]) -> Result<Bytes, Error> {
    let corrupt = |offset: usize, problem| Error::Corrupt {
        path: path.to_path_buf(),
        offset: offset as u64,
        problem,
    };
    if bytes.len() < SEALED_OVERHEAD_BYTES {
        return Err(corrupt(
            0,
            Problem::Truncated {
                needed: SEALED_OVERHEAD_BYTES as u64,
                available: bytes.len() as u64,
            },
        ));
    }
    let crc_at = bytes.len() - 4;
    let stored = record::read_u32(bytes, crc_at);
    let computed = crc32c::crc32c(&bytes[..crc_at]);
    if stored != computed {
        return Err(corrupt(
            crc_at,
            Problem::ChecksumMismatch { stored, computed },
        ));
    }
    if bytes[0..8] != magic[..] {
        return Err(corrupt(0, Problem::BadMagic));
    }
    let version = record::read_u32(bytes, 8);
    if version != SEALED_VERSION {
        return Err(corrupt(8, Problem::UnsupportedVersion(version)));
    }
    Ok(bytes.slice(12..crc_at))
}

/// Checks that a fixed-size payload has exactly `len` bytes.
pub(crate) fn expect_len(path: &Path, payload: &Bytes, len: usize) -> Result<(), Error> {
    let problem = match payload.len() {
        n if n < len => Problem::Truncated {
            needed: len as u64,
            available: n as u64,
        },
        n if n > len => Problem::TrailingBytes((n - len) as u64),
        _ => return Ok(()),
    };
    Err(Error::Corrupt {
        path: path.to_path_buf(),
        offset: 12,
        problem,
    })
}

//! The log meta file: the first index, which a discarded prefix moves forward.
//!
//! Segment names say where each segment starts, but a discarded prefix usually ends inside a
//! segment, and a log emptied by a newer snapshot has no segment at all; so the first index is
//! kept here, in a sealed file replaced atomically.

use std::path::Path;

use crate::disk::{self, Disk};
use crate::error::{Error, Problem};
use crate::record;
use crate::sealed;

/// Name of the meta file inside the log directory.
pub(crate) const META_FILE: &str = "log.meta";

/// Identifies the meta file.
const META_MAGIC: [u8; 8] = *b"raftmeta";

/// Payload: the first index, u64 LE.
const META_PAYLOAD_BYTES: usize = 8;

/// Reads the first index recorded in `dir`, or `None` for a log that never discarded anything.
pub(crate) fn load(dir: &Path) -> Result<Option<u64>, Error> {
    let path = dir.join(META_FILE);
    let Some(bytes) = disk::read_optional(&path)? else {
        return Ok(None);
    };
    let payload = sealed::open(&path, &bytes, &META_MAGIC)?;
    sealed::expect_len(&path, &payload, META_PAYLOAD_BYTES)?;
    let first_index = record::read_u64(&payload, 0);
    if first_index == 0 {
        // Index 0 is never an entry (Raft counts from 1), so it cannot be a first index.
        return Err(Error::Corrupt {
            path,
            offset: 12,
            problem: Problem::IndexMismatch {
                expected: 1,
                found: 0,
            },
        });
    }
    Ok(Some(first_index))
}

/// Durably records `first_index` as the log's first index.
pub(crate) fn save(disk: &Disk, dir: &Path, first_index: u64) -> Result<(), Error> {
    sealed::write(
        disk,
        dir,
        META_FILE,
        &META_MAGIC,
        &[&first_index.to_le_bytes()],
    )
}

//! Settings of a [`crate::Log`], checked before it opens.

use std::sync::Arc;

use crate::error::Error;
use crate::fault::FaultHook;
use crate::record::RECORD_HEADER_BYTES;
use crate::segment::SEGMENT_HEADER_BYTES;

/// Default size at which a segment is closed and a new one started. 64 MiB keeps the number of
/// files small for a long log while a recovery scan still reads one segment at a time into memory.
pub const SEGMENT_BYTES_DEFAULT: u64 = 64 << 20;

/// Smallest segment size accepted: a header plus one record without data (only its kind).
/// Anything smaller could never hold an entry; tests use values just above this to exercise
/// rollover.
pub const SEGMENT_BYTES_MIN: u64 = (SEGMENT_HEADER_BYTES + RECORD_HEADER_BYTES + 1) as u64;

/// Default for [`Options::preallocate_bytes`]. Writing 1 MiB of zeros and fdatasyncing it takes
/// about as long as a few small appends, and lasts for hundreds of group commits.
pub const PREALLOCATE_BYTES_DEFAULT: u64 = 1 << 20;

/// How a [`crate::Log`] lays out its files.
#[derive(Debug, Clone)]
pub struct Options {
    /// A segment is rolled over once the next record would take it past this size. A single
    /// record larger than this still goes in, alone in its segment.
    pub segment_bytes: u64,
    /// Zeros written ahead of the last record of the tail segment (never past
    /// `segment_bytes`), so that the fdatasync of a group commit writes data only: overwriting
    /// written blocks leaves the file's size, and so its inode, unchanged. Growing a file on
    /// every append costs a metadata write with each fdatasync (on ext4 without a journal, a
    /// second synchronous IO). 0 turns preallocation off.
    pub preallocate_bytes: u64,
    /// Test-only fault injection on every sync; `None` in production.
    pub fault_hook: Option<Arc<FaultHook>>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            segment_bytes: SEGMENT_BYTES_DEFAULT,
            preallocate_bytes: PREALLOCATE_BYTES_DEFAULT,
            fault_hook: None,
        }
    }
}

impl Options {
    /// Checks the settings against each other and the format's limits.
    pub fn validate(&self) -> Result<(), Error> {
        if self.segment_bytes < SEGMENT_BYTES_MIN {
            return Err(Error::InvalidOptions(
                "segment_bytes is smaller than a segment header plus one record",
            ));
        }
        Ok(())
    }
}

//! One Raft log entry as this crate stores it.

use bytes::Bytes;

/// A log entry: its position, the term of the leader that created it, and opaque data.
///
/// Indexes and terms are plain `u64` here; the Raft crate wraps them in its own newtypes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Position in the log; the first entry of a fresh log has index 1.
    pub index: u64,
    /// Term of the leader that appended it.
    pub term: u64,
    /// The command, opaque to the log.
    pub data: Bytes,
}

impl Entry {
    /// Builds an entry.
    pub fn new(index: u64, term: u64, data: impl Into<Bytes>) -> Self {
        Entry {
            index,
            term,
            data: data.into(),
        }
    }
}

//! One Raft log entry as this crate stores it.

use bytes::Bytes;

/// A log entry: its position, the term of the leader that created it, a kind and opaque data.
///
/// Indexes and terms are plain `u64` here; the Raft crate wraps them in its own newtypes. The
/// kind is a byte the log stores in front of the data without interpreting it (the Raft crate
/// keeps its payload tag there): a caller with the data in one buffer and the kind apart need
/// not join them into a new one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Position in the log; the first entry of a fresh log has index 1.
    pub index: u64,
    /// Term of the leader that appended it.
    pub term: u64,
    /// What the data is, opaque to the log.
    pub kind: u8,
    /// The command, opaque to the log.
    pub data: Bytes,
}

impl Entry {
    /// Builds an entry of kind 0.
    pub fn new(index: u64, term: u64, data: impl Into<Bytes>) -> Self {
        Entry::of_kind(index, term, 0, data)
    }

    /// Builds an entry of `kind`.
    pub fn of_kind(index: u64, term: u64, kind: u8, data: impl Into<Bytes>) -> Self {
        Entry {
            index,
            term,
            kind,
            data: data.into(),
        }
    }
}

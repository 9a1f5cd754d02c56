//! The errors of this crate: what went wrong, where, in a form a caller can act on.

use std::fmt;
use std::io;
use std::path::PathBuf;
use std::sync::Arc;

/// Everything that can fail in the log, the hard state, the snapshot files and the writer.
///
/// `Clone` so that the group-commit writer can hand the same failure to every operation of a
/// batch (and to every later one, once poisoned); I/O errors are shared behind an `Arc` for that.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Error {
    /// A system call failed. After this the log is poisoned: what is on disk is unknown.
    #[error("I/O error: {op} {path}: {source}")]
    Io {
        /// What we were doing (`"fdatasync"`, `"rename"`, ...).
        op: &'static str,
        /// The file or directory involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: Arc<io::Error>,
    },
    /// A file on disk failed its checks: the data cannot be trusted and we refuse to guess.
    #[error("corrupt {path} at byte offset {offset}: {problem}")]
    Corrupt {
        /// The segment, hard-state, meta or snapshot file.
        path: PathBuf,
        /// Byte offset in that file where the bad record or field starts.
        offset: u64,
        /// What was wrong there.
        problem: Problem,
    },
    /// An appended entry does not have the index the log expects next.
    #[error("entry index {found} does not follow the log: expected {expected}")]
    NotContiguous {
        /// `last_index + 1`, or the previous entry's index + 1 within the batch.
        expected: u64,
        /// The index the caller gave.
        found: u64,
    },
    /// An appended entry has a lower term than the entry before it (a Raft log never does).
    #[error("entry {index} has term {term}, lower than the previous entry's term {previous}")]
    TermDecreased {
        /// The offending entry's index.
        index: u64,
        /// Its term.
        term: u64,
        /// The term of the entry before it.
        previous: u64,
    },
    /// An entry's data is larger than one record may hold.
    #[error("entry {index} holds {bytes} bytes, more than the limit of {max}")]
    EntryTooLarge {
        /// The offending entry's index.
        index: u64,
        /// Its data length.
        bytes: usize,
        /// [`crate::RECORD_DATA_BYTES_MAX`].
        max: usize,
    },
    /// A snapshot's membership config is larger than [`crate::SNAPSHOT_CONFIG_BYTES_MAX`].
    #[error("snapshot config holds {bytes} bytes, more than the limit of {max}")]
    ConfigTooLarge {
        /// The config's length.
        bytes: usize,
        /// The limit.
        max: usize,
    },
    /// A read asked for entries the log does not hold.
    #[error("range [{lo}, {hi}) is outside the log [{first_index}, {last_index}]")]
    OutOfRange {
        /// Requested low bound (inclusive).
        lo: u64,
        /// Requested high bound (exclusive).
        hi: u64,
        /// The log's first index.
        first_index: u64,
        /// The log's last index.
        last_index: u64,
    },
    /// A suffix truncation reached below the first index: those entries are in a snapshot.
    #[error("cannot truncate from {from}: entries before {first_index} were discarded")]
    Compacted {
        /// The requested truncation point.
        from: u64,
        /// The log's first index.
        first_index: u64,
    },
    /// An index would not fit in a u64.
    #[error("log index overflow")]
    IndexOverflow,
    /// [`crate::Options`] failed validation.
    #[error("invalid options: {0}")]
    InvalidOptions(&'static str),
    /// An earlier I/O error left the on-disk state unknown; the log refuses all further work.
    #[error("log poisoned by an earlier failure: {0}")]
    Poisoned(Arc<Error>),
    /// The writer's queue is full ([`crate::WRITER_QUEUE_OPS_MAX`]); try again later.
    #[error("the log writer queue is full")]
    QueueFull,
    /// The writer thread is gone (shut down, or it panicked).
    #[error("the log writer thread has stopped")]
    WriterClosed,
}

impl Error {
    /// Wraps an I/O error with what we were doing and on which path.
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        Error::Io {
            op,
            path: path.into(),
            source: Arc::new(source),
        }
    }

    /// Whether this error means the disk state is unknown (so the log must stop), as opposed
    /// to a refused request that changed nothing.
    pub fn is_fatal(&self) -> bool {
        matches!(
            self,
            Error::Io { .. } | Error::Corrupt { .. } | Error::Poisoned(_)
        )
    }
}

/// What was wrong with bytes read from disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// The file ends inside a header or record.
    Truncated {
        /// Bytes the header or record needs.
        needed: u64,
        /// Bytes left in the file.
        available: u64,
    },
    /// The file does not start with the magic bytes of its kind.
    BadMagic,
    /// A format version this code does not read.
    UnsupportedVersion(u32),
    /// The stored CRC32C does not match the bytes.
    ChecksumMismatch {
        /// CRC stored in the file.
        stored: u32,
        /// CRC computed over the bytes read.
        computed: u32,
    },
    /// A length field exceeds its limit.
    LengthTooLarge {
        /// The stored length.
        length: u64,
        /// The limit.
        max: u64,
    },
    /// A record or segment header holds another index than its position implies.
    IndexMismatch {
        /// The index the position implies.
        expected: u64,
        /// The index stored.
        found: u64,
    },
    /// A record's term is lower than the term before it.
    TermDecreased {
        /// The previous record's term.
        previous: u64,
        /// This record's term.
        found: u64,
    },
    /// A record read back has another term than the index says it had when it was scanned.
    TermMismatch {
        /// The term recorded in memory.
        expected: u64,
        /// The term read.
        found: u64,
    },
    /// A segment does not start where the previous one ended (entries missing).
    Gap {
        /// The first index the segment should have.
        expected: u64,
        /// The first index it has.
        found: u64,
    },
    /// An index at the very end of the u64 range, where the next one could not be counted.
    IndexOverflow,
    /// Bytes after the end of a fixed-size or length-delimited file.
    TrailingBytes(u64),
    /// An intact record claims a watermark at or above its own index: it vouches for itself,
    /// which the log never writes.
    WatermarkAhead {
        /// The record's index.
        index: u64,
        /// The watermark it carries.
        watermark: u64,
    },
    /// Damage that would pass for a torn tail, but at an index the log had made durable: the
    /// recovery policy never cuts there.
    DamagedBelowWatermark {
        /// Index of the first damaged record (or of the segment, for a damaged header).
        index: u64,
        /// The durable watermark: the highest index known to have been fsynced.
        watermark: u64,
        /// What was wrong with the bytes there.
        cause: Box<Problem>,
    },
    /// After recovery the log would end below the durable watermark: records known to have
    /// been fsynced are missing.
    EndsBelowWatermark {
        /// The last index the log would have.
        last_index: u64,
        /// The durable watermark.
        watermark: u64,
    },
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::Truncated { needed, available } => {
                write!(f, "truncated: needs {needed} bytes, {available} left")
            }
            Problem::BadMagic => write!(f, "bad magic bytes"),
            Problem::UnsupportedVersion(v) => write!(f, "unsupported format version {v}"),
            Problem::ChecksumMismatch { stored, computed } => write!(
                f,
                "CRC32C mismatch: stored {stored:#010x}, computed {computed:#010x}"
            ),
            Problem::LengthTooLarge { length, max } => {
                write!(f, "length {length} exceeds the limit {max}")
            }
            Problem::IndexMismatch { expected, found } => {
                write!(f, "index {found} where {expected} was expected")
            }
            Problem::TermDecreased { previous, found } => {
                write!(f, "term {found} is lower than the previous term {previous}")
            }
            Problem::TermMismatch { expected, found } => {
                write!(f, "term {found} where {expected} was expected")
            }
            Problem::Gap { expected, found } => write!(
                f,
                "segment starts at index {found} but the log continues at {expected}"
            ),
            Problem::IndexOverflow => write!(f, "index at the end of the u64 range"),
            Problem::TrailingBytes(n) => write!(f, "{n} unexpected trailing bytes"),
            Problem::WatermarkAhead { index, watermark } => write!(
                f,
                "record {index} carries watermark {watermark}, not below its own index"
            ),
            Problem::DamagedBelowWatermark {
                index,
                watermark,
                cause,
            } => write!(
                f,
                "{cause}, at index {index}, at or below the durable watermark {watermark} \
                 (fsynced records are damaged; refusing to cut them as a torn tail)"
            ),
            Problem::EndsBelowWatermark {
                last_index,
                watermark,
            } => write!(
                f,
                "the log ends at index {last_index}, below the durable watermark {watermark} \
                 (fsynced records are missing)"
            ),
        }
    }
}

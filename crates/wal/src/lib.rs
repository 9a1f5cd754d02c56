//! The raftfs durable log: checksummed segments, group commit, hard state and snapshot files.
//!
//! - [`Log`] ([`log`]): the Raft log, one owner, an explicit [`Log::sync`] for durability.
//!   Opening it runs [`recovery`], which checks every record.
//! - [`Writer`] ([`writer`]): a dedicated thread that owns the log and makes each batch of
//!   queued operations durable with one fdatasync (group commit).
//! - [`HardState`] ([`hard_state`]) and snapshots ([`snapshot`]): small files replaced
//!   atomically.
//!
//! No tokio here: async callers submit to the [`Writer`] and get a completion callback.
//! Durability is always an explicit call; nothing is synced in `Drop`.
//!
//! # Durability
//!
//! `append`, `truncate_suffix` and `discard_prefix` change only the in-memory view (appended
//! entries are kept in memory until the next sync). [`Log::sync`] writes them out and fsyncs,
//! in an order chosen so that a crash at any point leaves a valid log (see [`Log::sync`]). After
//! `sync` returns, a crash and reopen shows exactly the entries and first/last index the log had;
//! a crash before shows the state of the previous sync, or (for a crash during `sync`) a state
//! between the two that is a valid Raft log: the old log or a prefix of the new one, possibly
//! without the discarded prefix.
//!
//! # FORMAT
//!
//! All integers are little-endian. CRCs are CRC32C (Castagnoli).
//!
//! A log directory holds segment files `<first index, 20 digits>.wal` and, once a prefix has
//! been discarded, `log.meta`. Other files (the hard state, snapshots, temp files) are ignored
//! by the log.
//!
//! Segment file: a header, then records back to back, nothing else.
//!
//! ```text
//! segment header (SEGMENT_HEADER_BYTES = 24)
//!   0   8  magic "raftwal\0"
//!   8   4  format version (1)
//!  12   8  first index (equals the number in the file name)
//!  20   4  CRC32C of bytes 0..20
//!
//! record (RECORD_HEADER_BYTES = 24, then the data)
//!   0   4  CRC32C of bytes 4..24+len (length, index, term and data)
//!   4   4  len: data length, at most RECORD_DATA_BYTES_MAX
//!   8   8  index
//!  16   8  term
//!  24 len  data
//! ```
//!
//! Record `i` of a segment holds index `first index + i`; terms never decrease through the log.
//! A segment is rolled over when the next record would take it past
//! [`Options::segment_bytes`]; a segment is fdatasynced before its successor is created.
//!
//! Sealed files (`log.meta`, `hard_state`, `<index, 20 digits>.snap`), always replaced whole
//! through a temp file, fsync, rename and directory fsync:
//!
//! ```text
//!   0   8  magic: "raftmeta", "rafths\0\0" or "raftsnap"
//!   8   4  format version (1)
//!  12   n  payload
//! 12+n  4  CRC32C of bytes 0..12+n
//!
//! payloads
//!   log.meta    first index (8)
//!   hard_state  term (8) | vote (8, 0 = none) | commit (8)
//!   .snap       index (8) | term (8) | config length c (8) | config (c) | data (the rest)
//! ```
//!
//! # Recovery policy
//!
//! Opening a log reads every segment and checks the header and every record (CRC, length bound,
//! index continuity, non-decreasing term). At the first failure in a segment:
//! - if it is the last segment and no intact record with a plausible index (the expected one or
//!   later) starts anywhere after the failure, it is a torn write: the segment is cut there and
//!   the cut fsynced (a segment whose header is torn is removed);
//! - otherwise (an earlier segment, or intact records follow, as after a flipped length field,
//!   or the failing record is intact but has the wrong index or a lower term) the log refuses
//!   to open with [`Error::Corrupt`], naming the file, the byte offset and the problem.
//!
//! Segments wholly before the first index (left by a discard cut short) are removed. The rest
//! must be contiguous and the first must hold the first index; a gap (such as a leftover segment
//! of an interrupted truncation) is corruption, never read as part of the log. Because `sync`
//! removes truncated segments newest first with a directory fsync after each, and fsyncs a cut
//! before writing over it, no crash can leave such a leftover behind a valid log.
//!
//! Known limit: a crash during a batch write may in principle persist a later page of the batch
//! and not an earlier one; recovery then sees intact records after a torn one and refuses to
//! open rather than guess. That errs on the side of never dropping a record silently.

pub mod disk;
pub mod entry;
pub mod error;
pub mod fault;
pub mod hard_state;
pub mod log;
mod meta;
pub mod options;
pub mod record;
pub mod recovery;
mod sealed;
pub mod segment;
pub mod snapshot;
pub mod writer;

pub use disk::Counters;
pub use entry::Entry;
pub use error::{Error, Problem};
pub use fault::FaultHook;
pub use hard_state::HardState;
pub use log::Log;
pub use options::{Options, SEGMENT_BYTES_DEFAULT, SEGMENT_BYTES_MIN};
pub use record::{RECORD_DATA_BYTES_MAX, RECORD_HEADER_BYTES};
pub use recovery::{RecoveryReport, TornTail};
pub use segment::SEGMENT_HEADER_BYTES;
pub use snapshot::{SNAPSHOT_CONFIG_BYTES_MAX, SnapshotMeta, load_latest_snapshot, save_snapshot};
pub use writer::{Completion, Durable, Op, Rejected, WRITER_QUEUE_OPS_MAX, Writer};

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
//! Segment file: a header, then records back to back, then zeros to the end of the file: space
//! preallocated by [`Options::preallocate_bytes`] (none when it is 0, or once a segment is full
//! or cut). Scanning stops at the first position from which every byte is zero.
//!
//! ```text
//! segment header (SEGMENT_HEADER_BYTES = 24)
//!   0   8  magic "raftwal\0"
//!   8   4  format version (2; version 1 is still read)
//!  12   8  first index (equals the number in the file name)
//!  20   4  CRC32C of bytes 0..20
//!
//! record, version 2 (RECORD_HEADER_BYTES = 32, then the kind and the data)
//!   0   4  CRC32C of bytes 4..32+len (length, index, term, watermark, kind and data)
//!   4   4  len: 1 + data length, at most 1 + RECORD_DATA_BYTES_MAX
//!   8   8  index
//!  16   8  term
//!  24   8  watermark: the durable watermark when the record was written (below index)
//!  32   1  kind
//!  33 len-1 data
//!
//! record, version 1 (RECORD_HEADER_BYTES_V1 = 24): as version 2 without the watermark
//!   0   4  CRC32C of bytes 4..24+len
//!   4   4  len
//!   8   8  index
//!  16   8  term
//!  24 len  kind (1), data (len-1)
//! ```
//! A record of length 0, which entries before they had a kind could leave, reads as kind 0
//! with no data.
//!
//! Record `i` of a segment holds index `first index + i`; terms never decrease through the log.
//! All records of a segment have the layout of its header's version. Version 1 segments (from
//! before the watermark) are read as if every record carried watermark 0, and are never
//! appended to: the first write after an upgrade starts a version 2 segment (replacing a
//! version 1 tail that holds no record). A segment is rolled over when the next record would
//! take it past [`Options::segment_bytes`]; a segment is fdatasynced before its successor is
//! created.
//!
//! The durable watermark `D` is the highest index such that every entry of the log up to it
//! is fsynced and stays in the log across a crash. The log keeps it in memory: after a
//! successful sync (or open) `D` is the last index; a truncation from `t`, once its cut is
//! fsynced (before any new record is written), lowers it to `min(D, t - 1)`; a rollover in the
//! middle of a sync raises it to the end of the segment just fdatasynced. Every record carries
//! the `D` of the moment it was written, so a record's watermark is always below its own index
//! and never names an entry a later durable truncation removed. Keeping it costs 8 bytes per
//! record and no fsync of its own.
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
//! index continuity, non-decreasing term, a watermark below the record's index). The durable
//! watermark `W` is the highest watermark of any intact record, or the caller's floor if that
//! is higher ([`Log::open_with_floor`]: the saved hard state's commit index). A position from
//! which the rest of the file is zeros is the clean end of a segment's records (preallocated
//! space, never written), not a failure. At the first failure in a segment:
//! - if it is the last segment, no intact record with a plausible index (the expected one or
//!   later) starts anywhere after the failure, and the failing record's index (for a torn
//!   header, the segment's first index) is above `W` or below the first index, it is a torn
//!   write: the segment is cut there (a segment whose header is torn is removed);
//! - if the same holds but the index is at or below `W` (and not below the first index), the
//!   damaged record had been made durable: the log refuses to open with [`Error::Corrupt`] and
//!   [`Problem::DamagedBelowWatermark`], naming the file, the offset, the index and `W`;
//! - otherwise (an earlier segment, or intact records follow, as after a flipped length field,
//!   or the failing record is intact but has the wrong index, a lower term or a watermark not
//!   below its index) the log refuses to open with [`Error::Corrupt`], naming the file, the
//!   byte offset and the problem.
//!
//! Segments wholly before the first index (left by a discard cut short) are removed. The rest
//! must be contiguous and the first must hold the first index; a gap (such as a leftover segment
//! of an interrupted truncation) is corruption, never read as part of the log. Because `sync`
//! removes truncated segments newest first with a directory fsync after each, and fsyncs a cut
//! before writing over it, no crash can leave such a leftover behind a valid log. If the log
//! would then end below `W` (entries known durable are missing: a removed last segment, say),
//! it refuses to open with [`Problem::EndsBelowWatermark`], naming the last segment and its end
//! (or the directory, if no segment is left).
//!
//! Every decision is made before anything is changed, so a refusal leaves the directory as it
//! was. Then recovery makes durable what it keeps, before the log is reported as recovered:
//! each segment kept is fdatasynced, and so is the meta file; the directory is fsynced when it
//! holds a log file or one was removed. A crashed process's writes may sit only in the page
//! cache, so recovery counts as durable only what it fsynced itself; any failed fsync refuses
//! the open, naming the file. After a failed fsync Linux may also mark the unwritten pages
//! clean, so that they read back but an fsync would not write them: the records of the last
//! segment above `W` (those no later record vouches for) are therefore written back in place
//! before its fdatasync ([`RecoveryReport::resynced_bytes`]). [`hard_state::load`] and
//! [`load_latest_snapshot`] likewise fdatasync the file they read and fsync its directory.
//!
//! What each source of `W` can catch: a record's watermark is below its own index, so the
//! records before a torn one never vouch for it; the records' `W` bounds the write-back and
//! names the watermark when later records are intact (refused anyway, as above). The caller's
//! floor is what can vouch for the newest records: with the hard state's commit index passed
//! in, a tail cut that would drop committed entries refuses instead. Entries above both are
//! cut as torn, as they have always been (Raft tolerates losing entries never counted durable).
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

pub use disk::{Counters, SYNC_BUCKET_BOUNDS_US, SYNC_BUCKETS, SyncLatency};
pub use entry::Entry;
pub use error::{Error, Problem};
pub use fault::FaultHook;
pub use hard_state::HardState;
pub use log::Log;
pub use options::{Options, PREALLOCATE_BYTES_DEFAULT, SEGMENT_BYTES_DEFAULT, SEGMENT_BYTES_MIN};
pub use record::{RECORD_DATA_BYTES_MAX, RECORD_HEADER_BYTES, RECORD_HEADER_BYTES_V1};
pub use recovery::{RecoveryReport, TornTail};
pub use segment::SEGMENT_HEADER_BYTES;
pub use snapshot::{
    SNAPSHOT_CONFIG_BYTES_MAX, SnapshotMeta, decode_snapshot, encode_snapshot,
    install_staged_snapshot, load_latest_snapshot, load_latest_snapshot_with, load_snapshot_file,
    prune_snapshots, save_snapshot, snapshot_checksum, snapshot_path, write_snapshot_file,
};
pub use writer::{Completion, Durable, Op, Rejected, WRITER_QUEUE_OPS_MAX, Writer};

//! The system calls this crate makes, counted and open to fault injection.
//!
//! Every fsync goes through `Disk`, so the counters are exact and a test hook can fail or hold
//! any of them. The atomic-replace dance shared by the meta, hard-state and snapshot files lives
//! here too.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::error::Error;
use crate::fault::FaultHook;

/// Suffix of a file being written before it is renamed into place. Such files are never read:
/// a crash can leave one half-written.
pub(crate) const TEMP_SUFFIX: &str = ".tmp";

/// Upper bounds of the fsync latency buckets, in microseconds: from a fast NVMe flush (50 µs)
/// to a disk stalled for seconds, roughly three per decade, so a p99 read off them is within a
/// factor of about two. A last, unbounded bucket counts the rest.
pub const SYNC_BUCKET_BOUNDS_US: [u64; 16] = [
    50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000,
    1_000_000, 2_500_000, 10_000_000,
];

/// Buckets of [`SyncLatency`]: one per bound and one past the last.
pub const SYNC_BUCKETS: usize = SYNC_BUCKET_BOUNDS_US.len() + 1;

/// How long fsyncs took: counts per bucket of [`SYNC_BUCKET_BOUNDS_US`] (not cumulative; the
/// last bucket is beyond the last bound) and the total time. A copy, read from [`Counters`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SyncLatency {
    /// fsyncs per bucket: `counts[i]` took at most `SYNC_BUCKET_BOUNDS_US[i]` and more than
    /// the bound before it.
    pub counts: [u64; SYNC_BUCKETS],
    /// Time spent in all of them, nanoseconds.
    pub sum_nanos: u64,
}

/// Running totals for metrics and tests, shared between a log and its writer thread.
#[derive(Debug, Default)]
pub struct Counters {
    fsyncs: AtomicU64,
    bytes_written: AtomicU64,
    /// fsyncs per latency bucket (see [`SyncLatency`]); atomics so a reader on another thread
    /// never holds up the writer.
    sync_buckets: [AtomicU64; SYNC_BUCKETS],
    sync_nanos: AtomicU64,
    /// Bytes of the log's segment files, as of the writer's last batch.
    log_bytes: AtomicU64,
    /// When the batch being committed began, as nanoseconds after [`clock_base`] plus one;
    /// 0 between batches. Lets a reader elsewhere see a disk that stalls in the middle.
    batch_started: AtomicU64,
}

/// The origin of [`Counters`]' batch clock: the first time anyone asked.
fn clock_base() -> Instant {
    static BASE: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    *BASE.get_or_init(Instant::now)
}

impl Counters {
    /// How long fsyncs (files and directories) have taken so far.
    pub fn sync_latency(&self) -> SyncLatency {
        let mut counts = [0; SYNC_BUCKETS];
        for (count, bucket) in counts.iter_mut().zip(&self.sync_buckets) {
            *count = bucket.load(Ordering::Relaxed);
        }
        SyncLatency {
            counts,
            sum_nanos: self.sync_nanos.load(Ordering::Relaxed),
        }
    }

    /// Bytes of the log's segment files on disk (records and headers, compacted segments
    /// gone), as of the writer thread's last batch.
    pub fn log_bytes(&self) -> u64 {
        self.log_bytes.load(Ordering::Relaxed)
    }

    pub(crate) fn set_log_bytes(&self, bytes: u64) {
        self.log_bytes.store(bytes, Ordering::Relaxed);
    }

    /// Marks the start of a batch's disk work (see [`Counters::batch_running_for`]).
    pub(crate) fn batch_started(&self) {
        let nanos = u64::try_from(clock_base().elapsed().as_nanos()).unwrap_or(u64::MAX - 1);
        self.batch_started.store(nanos + 1, Ordering::Relaxed);
    }

    /// Marks the end of a batch's disk work.
    pub(crate) fn batch_ended(&self) {
        self.batch_started.store(0, Ordering::Relaxed);
    }

    /// How long the batch the log is committing now (writes and fsyncs) has run, or `None`
    /// between batches: a figure that grows without bound shows a disk that has stopped.
    pub fn batch_running_for(&self) -> Option<Duration> {
        match self.batch_started.load(Ordering::Relaxed) {
            0 => None,
            started => {
                let now = clock_base().elapsed();
                Some(now.saturating_sub(Duration::from_nanos(started - 1)))
            }
        }
    }

    /// Counts one fsync that took `took`.
    fn synced(&self, took: Duration) {
        self.fsyncs.fetch_add(1, Ordering::Relaxed);
        let micros = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        let bucket = SYNC_BUCKET_BOUNDS_US.partition_point(|&bound| bound < micros);
        self.sync_buckets[bucket].fetch_add(1, Ordering::Relaxed);
        let nanos = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX);
        self.sync_nanos.fetch_add(nanos, Ordering::Relaxed);
    }

    /// Number of fsync/fdatasync calls made on files and directories.
    pub fn fsyncs(&self) -> u64 {
        self.fsyncs.load(Ordering::Relaxed)
    }

    /// Number of bytes handed to `write` (records, headers, meta, hard-state and snapshot files).
    pub fn bytes_written(&self) -> u64 {
        self.bytes_written.load(Ordering::Relaxed)
    }
}

/// Counted, fault-injectable file operations.
#[derive(Debug, Clone, Default)]
pub(crate) struct Disk {
    pub(crate) counters: Arc<Counters>,
    pub(crate) fault: Option<Arc<FaultHook>>,
}

impl Disk {
    pub(crate) fn new(fault: Option<Arc<FaultHook>>) -> Self {
        Disk {
            counters: Arc::default(),
            fault,
        }
    }

    /// fdatasync: the file's data and the metadata needed to read it back (its size).
    pub(crate) fn sync_data(&self, file: &File, path: &Path) -> Result<(), Error> {
        self.before_sync(path)?;
        let start = Instant::now();
        file.sync_data()
            .map_err(|e| Error::io("fdatasync", path, e))?;
        self.counters.synced(start.elapsed());
        Ok(())
    }

    /// fsync of a directory, so that files created, renamed or removed in it stay that way.
    pub(crate) fn sync_dir(&self, dir: &Path) -> Result<(), Error> {
        self.before_sync(dir)?;
        let handle = File::open(dir).map_err(|e| Error::io("open directory", dir, e))?;
        let start = Instant::now();
        handle
            .sync_all()
            .map_err(|e| Error::io("fsync directory", dir, e))?;
        self.counters.synced(start.elapsed());
        Ok(())
    }

    /// Writes all of `buf` at `offset` (positional, so no shared cursor to get wrong).
    pub(crate) fn write_at(
        &self,
        file: &File,
        path: &Path,
        buf: &[u8],
        offset: u64,
    ) -> Result<(), Error> {
        file.write_all_at(buf, offset)
            .map_err(|e| Error::io("write", path, e))?;
        self.counters
            .bytes_written
            .fetch_add(buf.len() as u64, Ordering::Relaxed);
        Ok(())
    }

    /// Replaces `dir/name` with the concatenation of `parts` atomically: write `name.tmp`, fsync
    /// it, rename it over `name`, fsync the directory. A crash leaves either the old file or the
    /// new one, plus maybe a torn temp file that readers ignore.
    pub(crate) fn write_atomic(
        &self,
        dir: &Path,
        name: &str,
        parts: &[&[u8]],
    ) -> Result<(), Error> {
        let final_path = dir.join(name);
        let temp_path = dir.join(format!("{name}{TEMP_SUFFIX}"));
        let mut file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&temp_path)
            .map_err(|e| Error::io("create", &temp_path, e))?;
        for part in parts {
            file.write_all(part)
                .map_err(|e| Error::io("write", &temp_path, e))?;
            self.counters
                .bytes_written
                .fetch_add(part.len() as u64, Ordering::Relaxed);
        }
        self.sync_data(&file, &temp_path)?;
        drop(file);
        fs::rename(&temp_path, &final_path).map_err(|e| Error::io("rename", &temp_path, e))?;
        self.sync_dir(dir)
    }

    /// fdatasyncs the file at `path` through a read-only handle: what another process wrote may
    /// sit only in the page cache, and recovery may believe only what is on disk.
    pub(crate) fn sync_path(&self, path: &Path) -> Result<(), Error> {
        let file = File::open(path).map_err(|e| Error::io("open", path, e))?;
        self.sync_data(&file, path)
    }

    /// Reads a whole file and fdatasyncs it, so that what was read is on disk (a crashed
    /// process's writes may sit only in the page cache); `None` if it does not exist.
    pub(crate) fn read_durable(&self, path: &Path) -> Result<Option<Bytes>, Error> {
        let mut file = match File::open(path) {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::io("open", path, e)),
        };
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)
            .map_err(|e| Error::io("read", path, e))?;
        self.sync_data(&file, path)?;
        Ok(Some(Bytes::from(bytes)))
    }

    /// Removes a file; its removal is durable only after the next [`Disk::sync_dir`].
    pub(crate) fn remove(&self, path: &Path) -> Result<(), Error> {
        match fs::remove_file(path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(Error::io("remove", path, e)),
        }
    }

    fn before_sync(&self, path: &Path) -> Result<(), Error> {
        match &self.fault {
            Some(hook) => hook
                .before_sync()
                .map_err(|e| Error::io("fsync (injected)", path, e)),
            None => Ok(()),
        }
    }
}

/// Reads a whole file, or `None` if it does not exist.
pub(crate) fn read_optional(path: &Path) -> Result<Option<Bytes>, Error> {
    match fs::read(path) {
        Ok(bytes) => Ok(Some(Bytes::from(bytes))),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io("read", path, e)),
    }
}

/// Creates `dir` and its parents if needed, making the new directory entries durable.
pub(crate) fn create_dir(disk: &Disk, dir: &Path) -> Result<(), Error> {
    if dir.is_dir() {
        return Ok(());
    }
    fs::create_dir_all(dir).map_err(|e| Error::io("create directory", dir, e))?;
    // The new directory's own entry lives in its parent: make that durable too.
    if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        disk.sync_dir(parent)?;
    }
    disk.sync_dir(dir)
}

/// Lists the plain file names in `dir`.
pub(crate) fn list_names(dir: &Path) -> Result<Vec<(String, PathBuf)>, Error> {
    let mut names = Vec::new();
    let entries = fs::read_dir(dir).map_err(|e| Error::io("read directory", dir, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| Error::io("read directory", dir, e))?;
        if let Some(name) = entry.file_name().to_str() {
            names.push((name.to_owned(), entry.path()));
        }
    }
    names.sort();
    Ok(names)
}

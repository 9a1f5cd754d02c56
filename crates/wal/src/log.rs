//! The log itself: an in-memory view over checksummed segments, made durable by `sync`.
//!
//! `append`, `truncate_suffix` and `discard_prefix` only change the in-memory view; `sync`
//! carries every change to disk in an order that keeps each crash point recoverable, then
//! fsyncs. So a crash between syncs leaves the disk exactly as the last sync left it.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;

use crate::disk::{self, Counters, Disk};
use crate::entry::Entry;
use crate::error::{Error, Problem};
use crate::meta;
use crate::options::Options;
use crate::record::{self, Format, RECORD_DATA_BYTES_MAX};
use crate::recovery::{self, RecoveryReport};
use crate::segment::{self, SegmentIndex};

/// A durable, segmented Raft log with one owner.
///
/// Invariants: the view holds the contiguous entries `[first_index, last_index]`; on disk,
/// `segments` are contiguous and their terms never decrease; `pending` continues the view's
/// disk part (or starts at `first_index` when nothing on disk is in view).
#[derive(Debug)]
pub struct Log {
    dir: PathBuf,
    options: Options,
    disk: Disk,
    /// First index of the view.
    first_index: u64,
    /// First index as durably recorded (meta file); lags `first_index` until `sync`.
    durable_first: u64,
    /// The durable watermark: every entry of the log up to this index is fsynced and stays in
    /// the log across a crash. Raised by each sync (and at open), lowered by a durable
    /// truncation; every record written carries it (see the crate doc, FORMAT).
    durable_last: u64,
    /// Segments on disk, oldest first. May hold entries before `first_index`.
    segments: Vec<SegmentIndex>,
    /// Disk entries at or after this index were truncated from the view, not yet from disk.
    cut: Option<u64>,
    /// Entries appended since the last sync, not yet written.
    pending: Vec<Entry>,
    /// Write handle on the last segment, opened on first use, with the file's length: records
    /// end at the segment's `len`, zeros (preallocated) from there to this length.
    tail: Option<(File, u64)>,
    /// Set by a failed sync: disk state unknown, every later call fails.
    poisoned: Option<Arc<Error>>,
}

impl Log {
    /// Opens (or creates) the log in `dir`, checking every record and fsyncing what it keeps;
    /// see the crate doc for what recovery repairs and what it refuses. The same as
    /// [`Log::open_with_floor`] with a floor of 0: only the watermarks in the records bound
    /// the torn-tail rule.
    pub fn open(dir: &Path, options: Options) -> Result<(Log, RecoveryReport), Error> {
        Log::open_with_floor(dir, options, 0)
    }

    /// [`Log::open`], with `floor` an index the caller knows was durable in this log: recovery
    /// refuses to cut any entry at or below it, or to end below it.
    ///
    /// Pass the saved hard state's commit index: the Raft core only saves a commit index it
    /// knows durable, and never truncates committed entries. Entries a durable snapshot covers
    /// need not be in the log, so pass 0 when the commit index is not above the newest
    /// snapshot's index.
    pub fn open_with_floor(
        dir: &Path,
        options: Options,
        floor: u64,
    ) -> Result<(Log, RecoveryReport), Error> {
        options.validate()?;
        let disk = Disk::new(options.fault_hook.clone());
        disk::create_dir(&disk, dir)?;
        let recovered = recovery::recover(&disk, dir, floor)?;
        let log = Log {
            dir: dir.to_path_buf(),
            options,
            disk,
            first_index: recovered.first_index,
            durable_first: recovered.first_index,
            // Recovery fsynced everything it kept.
            durable_last: recovered.report.last_index,
            segments: recovered.segments,
            cut: None,
            pending: Vec::new(),
            tail: None,
            poisoned: None,
        };
        Ok((log, recovered.report))
    }

    /// The directory holding the segments.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The options the log was opened with.
    pub fn options(&self) -> &Options {
        &self.options
    }

    /// Fsync and byte counters (shared with a [`crate::Writer`] running this log).
    pub fn counters(&self) -> Arc<Counters> {
        Arc::clone(&self.disk.counters)
    }

    /// Bytes of the segment files on disk (what compaction has not removed yet).
    pub fn disk_bytes(&self) -> u64 {
        self.segments.iter().map(|s| s.len).sum()
    }

    /// The disk handle, for files the writer saves next to the log.
    pub(crate) fn disk(&self) -> &Disk {
        &self.disk
    }

    /// Index of the first entry in the log.
    pub fn first_index(&self) -> u64 {
        self.first_index
    }

    /// Index of the last entry; `first_index() - 1` when the log is empty.
    pub fn last_index(&self) -> u64 {
        match self.pending.last() {
            Some(entry) => entry.index,
            None => self.disk_end().max(self.first_index) - 1,
        }
    }

    /// Term of the entry at `index`, or `None` if the log does not hold it.
    pub fn term(&self, index: u64) -> Option<u64> {
        if index < self.first_index || index > self.last_index() {
            return None;
        }
        match self.pending.first() {
            Some(p) if index >= p.index => self
                .pending
                .get(usize::try_from(index - p.index).ok()?)
                .map(|e| e.term),
            _ => self.segment_of(index)?.term(index),
        }
    }

    /// The entries `[lo, hi)`, reading and checking on-disk records as needed.
    pub fn read(&self, lo: u64, hi: u64) -> Result<Vec<Entry>, Error> {
        self.check_poisoned()?;
        let last_index = self.last_index();
        if lo < self.first_index || lo > hi || hi > last_index.saturating_add(1) {
            return Err(Error::OutOfRange {
                lo,
                hi,
                first_index: self.first_index,
                last_index,
            });
        }
        let mut out = Vec::with_capacity(usize::try_from(hi - lo).unwrap_or(0));
        let disk_hi = hi.min(self.disk_end());
        let mut next = lo;
        while next < disk_hi {
            let Some(s) = self.segment_of(next) else {
                break;
            };
            let until = disk_hi.min(s.next_index());
            read_segment(s, next, until, &mut out)?;
            next = until;
        }
        for entry in &self.pending {
            if entry.index >= next && entry.index < hi {
                out.push(entry.clone());
            }
        }
        Ok(out)
    }

    /// Appends `entries`, which must be contiguous, start at `last_index() + 1`, never lower
    /// the term, and each fit in a record. Not durable until [`Log::sync`].
    pub fn append(&mut self, entries: &[Entry]) -> Result<(), Error> {
        self.check_poisoned()?;
        let mut expected = self
            .last_index()
            .checked_add(1)
            .ok_or(Error::IndexOverflow)?;
        let mut previous = self.term(self.last_index());
        for entry in entries {
            if entry.index != expected {
                return Err(Error::NotContiguous {
                    expected,
                    found: entry.index,
                });
            }
            if entry.index == u64::MAX {
                // The index after it could not be counted.
                return Err(Error::IndexOverflow);
            }
            if entry.data.len() > RECORD_DATA_BYTES_MAX {
                return Err(Error::EntryTooLarge {
                    index: entry.index,
                    bytes: entry.data.len(),
                    max: RECORD_DATA_BYTES_MAX,
                });
            }
            if let Some(previous) = previous.filter(|&p| entry.term < p) {
                return Err(Error::TermDecreased {
                    index: entry.index,
                    term: entry.term,
                    previous,
                });
            }
            previous = Some(entry.term);
            // Cannot saturate: an entry at u64::MAX was refused above.
            expected = expected.saturating_add(1);
        }
        self.pending.extend_from_slice(entries);
        Ok(())
    }

    /// Drops every entry with index `>= from` (Raft's conflict truncation). `from` may not be
    /// below `first_index()`: those entries live in a snapshot now. Durable after `sync`.
    pub fn truncate_suffix(&mut self, from: u64) -> Result<(), Error> {
        self.check_poisoned()?;
        if from < self.first_index {
            return Err(Error::Compacted {
                from,
                first_index: self.first_index,
            });
        }
        if from > self.last_index() {
            return Ok(());
        }
        match self.pending.first().map(|p| p.index) {
            Some(start) if from >= start => self.pending.truncate((from - start) as usize),
            _ => {
                self.pending.clear();
                if from < self.disk_end() {
                    self.cut = Some(from);
                }
            }
        }
        Ok(())
    }

    /// Drops every entry with index `<= upto` (after a snapshot covering them is durable).
    /// `upto` may be beyond `last_index()`: the log becomes empty and the next append must
    /// start at `upto + 1`. Durable after `sync`.
    pub fn discard_prefix(&mut self, upto: u64) -> Result<(), Error> {
        self.check_poisoned()?;
        let first = upto.checked_add(1).ok_or(Error::IndexOverflow)?;
        if first <= self.first_index {
            return Ok(());
        }
        self.first_index = first;
        if let Some(start) = self.pending.first().map(|p| p.index) {
            let drop = usize::try_from(first.saturating_sub(start))
                .unwrap_or(usize::MAX)
                .min(self.pending.len());
            self.pending.drain(..drop);
        }
        Ok(())
    }

    /// Makes everything appended, truncated and discarded so far durable.
    ///
    /// Order, so that a crash at any point leaves a valid log: (1) remove truncated segments,
    /// newest first, fsyncing the directory after each, then cut the segment holding the
    /// truncation point and fdatasync it, and lower the watermark below the cut; (2) record a
    /// new first index in the meta file and remove segments wholly before it; (3) write pending
    /// records, each carrying the watermark, fdatasyncing a segment (and the directory, if that
    /// segment is new) before creating the next, then fdatasync the last and fsync the
    /// directory if a segment was created; raise the watermark to the last index. Any failure
    /// poisons the log.
    pub fn sync(&mut self) -> Result<(), Error> {
        self.check_poisoned()?;
        let result = self.sync_steps();
        if let Err(error) = &result {
            self.poisoned = Some(Arc::new(error.clone()));
        }
        result
    }

    fn sync_steps(&mut self) -> Result<(), Error> {
        if let Some(from) = self.cut.take() {
            self.truncate_disk(from)?;
        }
        if self.first_index > self.durable_first {
            meta::save(&self.disk, &self.dir, self.first_index)?;
            self.durable_first = self.first_index;
            self.remove_segments_before(self.first_index)?;
        }
        if !self.pending.is_empty() {
            let pending = std::mem::take(&mut self.pending);
            self.write_records(&pending)?;
        }
        Ok(())
    }

    /// Removes disk entries `>= from`, durably, and lowers the watermark below them: records
    /// written later must not vouch for entries that are gone.
    fn truncate_disk(&mut self, from: u64) -> Result<(), Error> {
        self.cut_disk(from)?;
        self.durable_last = self.durable_last.min(from.saturating_sub(1));
        Ok(())
    }

    fn cut_disk(&mut self, from: u64) -> Result<(), Error> {
        while let Some(last) = self.segments.last().filter(|s| s.first_index >= from) {
            self.disk.remove(&last.path)?;
            // One at a time, so a crash can only leave a contiguous prefix of segments.
            self.disk.sync_dir(&self.dir)?;
            self.segments.pop();
            self.tail = None;
        }
        let Some(last) = self.segments.last() else {
            return Ok(());
        };
        if last.next_index() <= from {
            return Ok(());
        }
        let keep = (from - last.first_index) as usize;
        let len = last.offsets[keep];
        self.with_tail(|disk, file, path| {
            file.set_len(len)
                .map_err(|e| Error::io("ftruncate", path, e))?;
            // Durable before anything is written over the cut, so old records cannot reappear.
            disk.sync_data(file, path)
        })?;
        if let Some((_, file_len)) = &mut self.tail {
            *file_len = len;
        }
        if let Some(last) = self.segments.last_mut() {
            last.offsets.truncate(keep);
            last.terms.truncate(keep);
            last.len = len;
        }
        Ok(())
    }

    /// Removes segments that hold only entries before `first`.
    fn remove_segments_before(&mut self, first: u64) -> Result<(), Error> {
        let stale = self
            .segments
            .iter()
            .take_while(|s| s.next_index() <= first)
            .count();
        if stale == 0 {
            return Ok(());
        }
        if stale == self.segments.len() {
            self.tail = None;
        }
        for s in self.segments.drain(..stale) {
            self.disk.remove(&s.path)?;
        }
        // The meta file already says these entries are gone; this only frees the space.
        self.disk.sync_dir(&self.dir)
    }

    /// Writes `entries` (checked at append) to the tail, rolling over segments as needed; each
    /// record carries the watermark as of its write.
    fn write_records(&mut self, entries: &[Entry]) -> Result<(), Error> {
        let mut buf = Vec::new();
        let mut buf_at = self.segments.last().map_or(0, |s| s.len);
        let mut created = false;
        let mut watermark = self.durable_last;
        for entry in entries {
            let size = record::encoded_len(entry.data.len());
            let roll = match self.segments.last() {
                None => true,
                Some(tail) => {
                    assert_eq!(tail.next_index(), entry.index, "records stay contiguous");
                    // A segment holds one record layout: an old-format tail is not extended.
                    tail.format != Format::V2
                        || (!tail.offsets.is_empty()
                            && tail.len.saturating_add(size) > self.options.segment_bytes)
                }
            };
            if roll {
                self.flush(&buf, buf_at)?;
                match self.segments.last() {
                    // Only an old-format tail rolls while empty: the new segment, of the same
                    // name, replaces it.
                    Some(tail) if tail.offsets.is_empty() => {
                        self.segments.pop();
                        self.tail = None;
                    }
                    Some(tail) => {
                        let sealed_last = tail.next_index() - 1;
                        // Seal the full segment before its successor can exist on disk, so a
                        // torn write can only ever be in the last segment.
                        self.sync_tail()?;
                        // Its records are durable now: the next segment's records may say so.
                        watermark = watermark.max(sealed_last);
                    }
                    None => {}
                }
                if created {
                    // The segment created earlier in this sync must not lose its name while
                    // its successor keeps one: that would be a gap.
                    self.disk.sync_dir(&self.dir)?;
                }
                self.start_segment(entry.index)?;
                created = true;
                buf.clear();
                buf.extend_from_slice(&segment::encode_header(entry.index));
                buf_at = 0;
            }
            let Some(tail) = self.segments.last_mut() else {
                unreachable!("a segment was just ensured");
            };
            tail.offsets.push(tail.len);
            tail.terms.push(entry.term);
            tail.len += size;
            tail.watermark = tail.watermark.max(watermark);
            record::encode(entry, watermark, &mut buf);
        }
        self.flush(&buf, buf_at)?;
        self.preallocate()?;
        self.sync_tail()?;
        if created {
            self.disk.sync_dir(&self.dir)?;
        }
        if let Some(last) = entries.last() {
            self.durable_last = last.index;
        }
        Ok(())
    }

    /// Creates an empty segment file starting at `first_index` and makes it the tail.
    fn start_segment(&mut self, first_index: u64) -> Result<(), Error> {
        let path = self.dir.join(segment::file_name(first_index));
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)
            .map_err(|e| Error::io("create", &path, e))?;
        self.segments.push(SegmentIndex::new(first_index, path));
        self.tail = Some((file, 0));
        Ok(())
    }

    /// Writes `buf` into the tail at byte `at`.
    fn flush(&mut self, buf: &[u8], at: u64) -> Result<(), Error> {
        if buf.is_empty() {
            return Ok(());
        }
        let end = at + buf.len() as u64;
        self.with_tail(|disk, file, path| disk.write_at(file, path, buf, at))?;
        if let Some((_, file_len)) = &mut self.tail {
            *file_len = (*file_len).max(end);
        }
        Ok(())
    }

    /// Once the tail's records reach the end of its file, writes zeros after them, up to
    /// `preallocate_bytes` past the records and no further than `segment_bytes`. The sync that
    /// follows makes the new size durable (it had to write a size anyway: the records grew the
    /// file); the group commits after it overwrite those zeros, and their fdatasyncs find no
    /// size to update.
    fn preallocate(&mut self) -> Result<(), Error> {
        let Some(records_end) = self.segments.last().map(|s| s.len) else {
            return Ok(());
        };
        let file_len = self.tail_file_len()?;
        let target = records_end
            .saturating_add(self.options.preallocate_bytes)
            .min(self.options.segment_bytes);
        if records_end < file_len || target <= file_len {
            return Ok(());
        }
        let zeros = vec![0; usize::try_from(target - file_len).unwrap_or(0)];
        self.with_tail(|disk, file, path| disk.write_at(file, path, &zeros, file_len))?;
        if let Some((_, len)) = &mut self.tail {
            *len = target;
        }
        Ok(())
    }

    fn sync_tail(&mut self) -> Result<(), Error> {
        self.with_tail(|disk, file, path| disk.sync_data(file, path))
    }

    /// Path of the last segment; only called once one exists.
    fn tail_path(&self) -> PathBuf {
        match self.segments.last() {
            Some(s) => s.path.clone(),
            None => unreachable!("tail used with no segment"),
        }
    }

    /// Opens the write handle of the last segment on first use, noting the file's length.
    fn open_tail(&mut self) -> Result<(), Error> {
        if self.tail.is_some() {
            return Ok(());
        }
        let path = self.tail_path();
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .map_err(|e| Error::io("open", &path, e))?;
        let len = file
            .metadata()
            .map_err(|e| Error::io("stat", &path, e))?
            .len();
        self.tail = Some((file, len));
        Ok(())
    }

    /// Length of the last segment's file: its records, then any preallocated zeros.
    fn tail_file_len(&mut self) -> Result<u64, Error> {
        self.open_tail()?;
        match &self.tail {
            Some((_, len)) => Ok(*len),
            None => unreachable!("tail opened above"),
        }
    }

    /// Runs `f` on the open write handle of the last segment, opening it on first use.
    fn with_tail<R>(
        &mut self,
        f: impl FnOnce(&Disk, &File, &Path) -> Result<R, Error>,
    ) -> Result<R, Error> {
        self.open_tail()?;
        let path = self.tail_path();
        match &self.tail {
            Some((file, _)) => f(&self.disk, file, &path),
            None => unreachable!("tail opened above"),
        }
    }

    /// One past the last disk entry still in the view, or 0 when there is none on disk.
    fn disk_end(&self) -> u64 {
        let end = self.segments.last().map_or(0, SegmentIndex::next_index);
        match self.cut {
            Some(cut) => end.min(cut),
            None => end,
        }
    }

    /// The segment holding `index`, if any.
    fn segment_of(&self, index: u64) -> Option<&SegmentIndex> {
        let after = self.segments.partition_point(|s| s.first_index <= index);
        let s = self.segments.get(after.checked_sub(1)?)?;
        (index < s.next_index()).then_some(s)
    }

    fn check_poisoned(&self) -> Result<(), Error> {
        match &self.poisoned {
            Some(cause) => Err(Error::Poisoned(Arc::clone(cause))),
            None => Ok(()),
        }
    }
}

/// Reads records `[lo, hi)` of one segment, checking each against the index.
fn read_segment(s: &SegmentIndex, lo: u64, hi: u64, out: &mut Vec<Entry>) -> Result<(), Error> {
    let (start, end) = s.byte_range(lo, hi);
    let file = File::open(&s.path).map_err(|e| Error::io("open", &s.path, e))?;
    let mut buf = vec![0; (end - start) as usize];
    file.read_exact_at(&mut buf, start)
        .map_err(|e| Error::io("read", &s.path, e))?;
    let buf = Bytes::from(buf);
    let mut pos = 0;
    for index in lo..hi {
        let offset = start + pos as u64;
        let corrupt = |problem| Error::Corrupt {
            path: s.path.clone(),
            offset,
            problem,
        };
        let record::Decoded { entry, len, .. } =
            record::decode(&buf, pos, s.format).map_err(corrupt)?;
        if entry.index != index {
            return Err(corrupt(Problem::IndexMismatch {
                expected: index,
                found: entry.index,
            }));
        }
        let term = s.term(index).unwrap_or(entry.term);
        if entry.term != term {
            return Err(corrupt(Problem::TermMismatch {
                expected: term,
                found: entry.term,
            }));
        }
        out.push(entry);
        pos += len;
    }
    Ok(())
}

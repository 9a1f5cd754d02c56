//! Opening a log directory: check every segment, cut a torn tail, refuse real corruption, and
//! make everything kept durable before the log is reported as recovered.
//!
//! The policy (also in the crate doc): a header or record that fails its check is a torn write
//! only if it lies in the last segment, no intact record with a plausible index follows it
//! anywhere in that segment, and its index is above the durable watermark; the segment is then
//! cut there (or removed, if its header is torn). Any other failure, a gap between segments, a
//! term that goes down, or a log that would end below the watermark is corruption: opening fails
//! with an error naming the file, the byte offset and what was wrong, and changes nothing.

use std::fs::OpenOptions;
use std::path::{Path, PathBuf};

use bytes::Bytes;

use crate::disk::{self, Disk};
use crate::error::{Error, Problem};
use crate::meta;
use crate::segment::{self, Damage, SEGMENT_HEADER_BYTES, SegmentIndex};

/// What [`crate::Log::open`] found and repaired.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecoveryReport {
    /// First index of the recovered log.
    pub first_index: u64,
    /// Last index of the recovered log (`first_index - 1` when empty).
    pub last_index: u64,
    /// Segment files kept.
    pub segments: usize,
    /// The torn write cut from the tail, if any.
    pub torn_tail: Option<TornTail>,
    /// Segment files deleted: wholly before the first index (left by an interrupted discard),
    /// or a last segment whose header was torn.
    pub removed: Vec<PathBuf>,
    /// The durable watermark recovery checked against: the highest watermark carried by an
    /// intact record, or the caller's floor if higher. Nothing at or below it was cut.
    pub watermark: u64,
    /// Bytes of the last segment above the watermark written back before the open-time fsync,
    /// so that pages a failed fsync of a crashed process left clean reach the disk too.
    pub resynced_bytes: u64,
}

/// A half-written tail that recovery cut off.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TornTail {
    /// The last segment.
    pub segment: PathBuf,
    /// Where the torn record (or header) started; the file now ends here.
    pub offset: u64,
    /// How many bytes were dropped.
    pub bytes_dropped: u64,
    /// What was wrong with the torn bytes.
    pub problem: Problem,
}

/// The state a log opens with.
pub(crate) struct Recovered {
    pub(crate) first_index: u64,
    pub(crate) segments: Vec<SegmentIndex>,
    pub(crate) report: RecoveryReport,
}

/// The last segment file as scanned: its bytes (for the write-back) and its damage, if any.
struct LastFile {
    bytes: Bytes,
    damage: Option<Damage>,
}

/// Scans `dir`, checks it against the durable watermark (at least `floor`), repairs a torn
/// tail and fsyncs what it keeps; see the module doc for the policy.
pub(crate) fn recover(disk: &Disk, dir: &Path, floor: u64) -> Result<Recovered, Error> {
    // A fresh log starts at index 1, as Raft logs do.
    let meta = meta::load(dir)?;
    let first_index = meta.unwrap_or(1);
    let (mut segments, last_file) = scan_all(dir)?;
    let watermark = segments.iter().map(|s| s.watermark).fold(floor, u64::max);

    // Decide everything first, so that a refusal leaves the directory as it was.
    let mut torn_tail = None;
    let mut cut_to = None;
    let mut removed = Vec::new();
    // Whether the last file scanned is still the last segment once the decisions are made.
    let mut tail_scanned_last = last_file.is_some();
    if let Some(LastFile {
        bytes,
        damage: Some(damage),
    }) = &last_file
    {
        let Some(tail) = segments.last() else {
            unreachable!("a scanned last file has a segment");
        };
        let index = tail.next_index();
        if index >= first_index && index <= watermark {
            return Err(Error::Corrupt {
                path: tail.path.clone(),
                offset: damage.offset,
                problem: Problem::DamagedBelowWatermark {
                    index,
                    watermark,
                    cause: Box::new(damage.problem.clone()),
                },
            });
        }
        torn_tail = Some(TornTail {
            segment: tail.path.clone(),
            offset: damage.offset,
            bytes_dropped: bytes.len() as u64 - damage.offset,
            problem: damage.problem.clone(),
        });
        if tail.len == 0 {
            // The header itself is torn: the segment never held a durable record.
            removed.extend(segments.pop().map(|s| s.path));
            tail_scanned_last = false;
        } else {
            cut_to = Some(tail.len);
        }
    }
    // Segments wholly before the first index are leftovers of a discard cut short by a crash.
    let below = segments
        .iter()
        .take_while(|s| s.next_index() <= first_index)
        .count();
    tail_scanned_last &= below < segments.len();
    removed.extend(segments.drain(..below).map(|s| s.path));
    check_contiguous(&segments, first_index)?;
    let last_index = match segments.last() {
        Some(tail) => tail.next_index() - 1,
        None => first_index - 1,
    };
    if last_index < watermark {
        let (path, offset) = match segments.last() {
            Some(tail) => (tail.path.clone(), tail.len),
            None => (
                removed.last().cloned().unwrap_or_else(|| dir.to_path_buf()),
                0,
            ),
        };
        return Err(Error::Corrupt {
            path,
            offset,
            problem: Problem::EndsBelowWatermark {
                last_index,
                watermark,
            },
        });
    }

    // Now repair, and make durable everything the log will use.
    for path in &removed {
        disk.remove(path)?;
    }
    let mut resynced_bytes = 0;
    let count = segments.len();
    for (position, s) in segments.iter_mut().enumerate() {
        match &last_file {
            // The scanned last file is still the last segment: cut it and write back its
            // records above the watermark (see `settle_tail`).
            Some(last) if position + 1 == count && tail_scanned_last => {
                resynced_bytes = settle_tail(disk, s, &last.bytes, cut_to, watermark)?;
            }
            _ => disk.sync_path(&s.path)?,
        }
        s.len = s.len.max(SEGMENT_HEADER_BYTES as u64);
    }
    if meta.is_some() {
        disk.sync_path(&dir.join(meta::META_FILE))?;
    }
    if !segments.is_empty() || !removed.is_empty() || meta.is_some() {
        // The names of the files kept, and the removals, are durable only with their directory.
        disk.sync_dir(dir)?;
    }

    let report = RecoveryReport {
        first_index,
        last_index,
        segments: segments.len(),
        torn_tail,
        removed,
        watermark,
        resynced_bytes,
    };
    Ok(Recovered {
        first_index,
        segments,
        report,
    })
}

/// Reads and checks every segment in `dir`, oldest first. Damage is refused at once unless it
/// can be a torn tail (in the last segment, nothing intact after it); the last file's bytes and
/// damage are handed back for the caller to judge against the watermark.
fn scan_all(dir: &Path) -> Result<(Vec<SegmentIndex>, Option<LastFile>), Error> {
    let mut files: Vec<(u64, PathBuf)> = disk::list_names(dir)?
        .into_iter()
        .filter_map(|(name, path)| segment::parse_file_name(&name).map(|first| (first, path)))
        .collect();
    files.sort();
    let mut segments = Vec::with_capacity(files.len());
    let mut last_file = None;
    let mut prev_term = None;
    let count = files.len();
    for (position, (first, path)) in files.into_iter().enumerate() {
        let bytes = disk::read_optional(&path)?.unwrap_or_default();
        let scan = segment::scan(&bytes, SegmentIndex::new(first, path.clone()), prev_term);
        let is_last = position + 1 == count;
        if let Some(damage) = &scan.damage
            && (!is_last || damage.beyond_tail)
        {
            return Err(Error::Corrupt {
                path,
                offset: damage.offset,
                problem: damage.problem.clone(),
            });
        }
        prev_term = scan.index.terms.last().copied().or(prev_term);
        if is_last {
            last_file = Some(LastFile {
                bytes,
                damage: scan.damage,
            });
        }
        segments.push(scan.index);
    }
    Ok((segments, last_file))
}

/// Cuts the last segment to `cut_to` (a torn tail), writes back its bytes holding records above
/// `watermark`, and fdatasyncs it; returns the bytes written back.
///
/// Why write back: after a failed fsync Linux may mark the unwritten pages clean, so a crashed
/// process's newest records can be readable from the page cache yet absent from the disk, and
/// an fsync now would not write them. Records at or below the watermark were fsynced with
/// success before a later record said so; only those above it need this. Writing the same
/// bytes in place is safe: a crash during it leaves each byte old-on-disk or as read.
fn settle_tail(
    disk: &Disk,
    tail: &SegmentIndex,
    bytes: &Bytes,
    cut_to: Option<u64>,
    watermark: u64,
) -> Result<u64, Error> {
    let path = &tail.path;
    let file = OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(|e| Error::io("open", path, e))?;
    if let Some(len) = cut_to {
        file.set_len(len)
            .map_err(|e| Error::io("ftruncate", path, e))?;
    }
    // The header too when no record of the segment is vouched for: it may be as unwritten.
    let from = match watermark.checked_add(1) {
        Some(next) if next > tail.first_index => tail.offset_of(next),
        _ => 0,
    };
    let end = tail.len.min(bytes.len() as u64);
    let written = end.saturating_sub(from);
    if written > 0 {
        disk.write_at(&file, path, &bytes[from as usize..end as usize], from)?;
    }
    disk.sync_data(&file, path)?;
    Ok(written)
}

/// Every segment must start where the previous one ended, and the first must hold the first
/// index: a gap means lost entries or a leftover of an interrupted truncation, never to be
/// read as part of the log.
fn check_contiguous(segments: &[SegmentIndex], first_index: u64) -> Result<(), Error> {
    let mut expected = None;
    for s in segments {
        let bad = match expected {
            None => s.first_index > first_index,
            Some(next) => s.first_index != next,
        };
        if bad {
            return Err(Error::Corrupt {
                path: s.path.clone(),
                offset: 0,
                problem: Problem::Gap {
                    expected: expected.unwrap_or(first_index),
                    found: s.first_index,
                },
            });
        }
        expected = Some(s.next_index());
    }
    Ok(())
}

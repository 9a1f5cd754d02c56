//! Opening a log directory: check every segment, cut a torn tail, refuse real corruption.
//!
//! The policy (also in the crate doc): a header or record that fails its check is a torn write
//! only if it lies in the last segment and no intact record with a plausible index follows it
//! anywhere in that segment; the segment is then cut there (or removed, if its header is torn).
//! Any other failure, a gap between segments or a term that goes down is corruption: opening
//! fails with an error naming the file, the byte offset and what was wrong.

use std::fs::OpenOptions;
use std::path::{Path, PathBuf};

use crate::disk::{self, Disk};
use crate::error::{Error, Problem};
use crate::meta;
use crate::segment::{self, SegmentIndex};

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

/// Scans `dir` and repairs a torn tail; see the module doc for the policy.
pub(crate) fn recover(disk: &Disk, dir: &Path) -> Result<Recovered, Error> {
    // A fresh log starts at index 1, as Raft logs do.
    let first_index = meta::load(dir)?.unwrap_or(1);
    let mut files: Vec<(u64, PathBuf)> = disk::list_names(dir)?
        .into_iter()
        .filter_map(|(name, path)| segment::parse_file_name(&name).map(|first| (first, path)))
        .collect();
    files.sort();

    let mut segments = Vec::with_capacity(files.len());
    let mut torn_tail = None;
    let mut removed = Vec::new();
    let mut prev_term = None;
    let count = files.len();
    for (position, (first, path)) in files.into_iter().enumerate() {
        let bytes = disk::read_optional(&path)?.unwrap_or_default();
        let scan = segment::scan(&bytes, SegmentIndex::new(first, path.clone()), prev_term);
        let mut index = scan.index;
        if let Some(damage) = scan.damage {
            let is_last = position + 1 == count;
            if !is_last || damage.beyond_tail {
                return Err(Error::Corrupt {
                    path,
                    offset: damage.offset,
                    problem: damage.problem,
                });
            }
            torn_tail = Some(TornTail {
                segment: path.clone(),
                offset: damage.offset,
                bytes_dropped: bytes.len() as u64 - damage.offset,
                problem: damage.problem,
            });
            if index.len == 0 {
                // The header itself is torn: the segment never held a durable record.
                disk.remove(&path)?;
                removed.push(path);
                continue;
            }
            cut(disk, &path, index.len)?;
        }
        prev_term = index.terms.last().copied().or(prev_term);
        index.len = index.len.max(segment::SEGMENT_HEADER_BYTES as u64);
        segments.push(index);
    }

    // Segments wholly before the first index are leftovers of a discard cut short by a crash.
    let below = segments
        .iter()
        .take_while(|s| s.next_index() <= first_index)
        .count();
    for stale in segments.drain(..below) {
        disk.remove(&stale.path)?;
        removed.push(stale.path);
    }
    check_contiguous(&segments, first_index)?;
    if !removed.is_empty() {
        disk.sync_dir(dir)?;
    }

    let last_index = match segments.last() {
        Some(tail) => tail.next_index() - 1,
        None => first_index - 1,
    };
    let report = RecoveryReport {
        first_index,
        last_index,
        segments: segments.len(),
        torn_tail,
        removed,
    };
    Ok(Recovered {
        first_index,
        segments,
        report,
    })
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

/// Cuts a torn tail off the last segment, durably.
fn cut(disk: &Disk, path: &Path, len: u64) -> Result<(), Error> {
    let file = OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(|e| Error::io("open", path, e))?;
    file.set_len(len)
        .map_err(|e| Error::io("ftruncate", path, e))?;
    disk.sync_data(&file, path)
}

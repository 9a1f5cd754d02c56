//! Snapshot files: the state machine image and the membership it was taken under.
//!
//! One sealed file per snapshot, named by its index; only the newest is kept. Payload: index
//! (u64 LE) | term (u64 LE) | config length (u64 LE) | config | data (the rest). The CRC covers
//! everything.

use std::path::{Path, PathBuf};

use bytes::Bytes;

use crate::disk::{self, Disk};
use crate::error::{Error, Problem};
use crate::options::Options;
use crate::record;
use crate::sealed;

/// Identifies a snapshot file.
const SNAPSHOT_MAGIC: [u8; 8] = *b"raftsnap";

/// Extension of snapshot files; temp files end in `.snap.tmp` and are never read.
const SNAPSHOT_SUFFIX: &str = ".snap";

/// Digits of the zero-padded index in a snapshot name, so names sort in index order.
const INDEX_DIGITS: usize = 20;

/// Bytes of the fixed part of the payload: index, term, config length.
const SNAPSHOT_FIXED_BYTES: usize = 24;

/// Largest membership config accepted on load. A config lists a handful of members; 1 MiB is
/// generous and keeps a corrupt length from being believed.
pub const SNAPSHOT_CONFIG_BYTES_MAX: usize = 1 << 20;

/// What a snapshot covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotMeta {
    /// Index of the last entry the snapshot includes.
    pub index: u64,
    /// Term of that entry.
    pub term: u64,
    /// The Raft membership as of `index`, encoded by the caller; opaque here.
    pub config: Bytes,
}

fn file_name(index: u64) -> String {
    format!("{index:0width$}{SNAPSHOT_SUFFIX}", width = INDEX_DIGITS)
}

fn parse_file_name(name: &str) -> Option<u64> {
    let digits = name.strip_suffix(SNAPSHOT_SUFFIX)?;
    if digits.len() != INDEX_DIGITS || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// Saves a snapshot in `dir` atomically, then deletes older snapshots and stale temp files.
///
/// When this returns `Ok`, the new snapshot is durable; the older ones are removed only after
/// that, so a crash at any point leaves at least one intact snapshot (if there was one).
pub fn save_snapshot(dir: &Path, meta: &SnapshotMeta, data: &[u8]) -> Result<(), Error> {
    save_snapshot_with(&Disk::default(), dir, meta, data)
}

/// [`save_snapshot`] through a given disk (counters, fault hook).
pub(crate) fn save_snapshot_with(
    disk: &Disk,
    dir: &Path,
    meta: &SnapshotMeta,
    data: &[u8],
) -> Result<(), Error> {
    if meta.config.len() > SNAPSHOT_CONFIG_BYTES_MAX {
        return Err(Error::ConfigTooLarge {
            bytes: meta.config.len(),
            max: SNAPSHOT_CONFIG_BYTES_MAX,
        });
    }
    disk::create_dir(disk, dir)?;
    let fixed = fixed_part(meta);
    let name = file_name(meta.index);
    sealed::write(
        disk,
        dir,
        &name,
        &SNAPSHOT_MAGIC,
        &[&fixed, &meta.config, data],
    )?;

    remove_older(disk, dir, meta.index, true)
}

/// The fixed part of a snapshot's payload: index, term, config length.
fn fixed_part(meta: &SnapshotMeta) -> [u8; SNAPSHOT_FIXED_BYTES] {
    let mut fixed = [0; SNAPSHOT_FIXED_BYTES];
    fixed[0..8].copy_from_slice(&meta.index.to_le_bytes());
    fixed[8..16].copy_from_slice(&meta.term.to_le_bytes());
    fixed[16..24].copy_from_slice(&(meta.config.len() as u64).to_le_bytes());
    fixed
}

/// A whole snapshot file in memory, byte for byte what [`save_snapshot`] writes for the same
/// `meta` and `data` (a backup streamed to a client, or exported from a data directory).
pub fn encode_snapshot(meta: &SnapshotMeta, data: &[u8]) -> Result<Vec<u8>, Error> {
    if meta.config.len() > SNAPSHOT_CONFIG_BYTES_MAX {
        return Err(Error::ConfigTooLarge {
            bytes: meta.config.len(),
            max: SNAPSHOT_CONFIG_BYTES_MAX,
        });
    }
    let fixed = fixed_part(meta);
    Ok(sealed::seal(&SNAPSHOT_MAGIC, &[&fixed, &meta.config, data]))
}

/// Checks the bytes of a snapshot file held in memory (checksum first, then layout) and
/// returns what it covers and the state machine image; `path` only names it in errors.
pub fn decode_snapshot(path: &Path, bytes: &Bytes) -> Result<(SnapshotMeta, Bytes), Error> {
    parse(path, bytes, None)
}

/// The CRC32C a snapshot file's bytes end with (what a backup's header announces), unchecked;
/// `None` if the bytes are too short to hold one.
pub fn snapshot_checksum(bytes: &[u8]) -> Option<u32> {
    sealed::stored_checksum(bytes)
}

/// Writes verified snapshot file bytes to `path` atomically (temp file beside it, fdatasync,
/// rename, directory fsync): a backup is either whole at `path` or not there at all.
pub fn write_snapshot_file(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    let name = path.file_name().and_then(|n| n.to_str()).ok_or_else(|| {
        Error::io(
            "name",
            path.to_path_buf(),
            std::io::ErrorKind::InvalidInput.into(),
        )
    })?;
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    Disk::default().write_atomic(&dir, name, &[bytes])
}

/// Removes the snapshots in `dir` older than `index` (and, with `temps`, snapshot temp files),
/// then fsyncs the directory if anything went. Called only once the snapshot at `index` is
/// durable, so a crash at any point leaves at least one intact snapshot. Temp files are left
/// alone where another save may be writing one.
fn remove_older(disk: &Disk, dir: &Path, index: u64, temps: bool) -> Result<(), Error> {
    let mut removed = false;
    for (other, path) in disk::list_names(dir)? {
        let older = parse_file_name(&other).is_some_and(|i| i < index);
        let stale_temp =
            temps && other.ends_with(&format!("{SNAPSHOT_SUFFIX}{}", disk::TEMP_SUFFIX));
        if older || stale_temp {
            disk.remove(&path)?;
            removed = true;
        }
    }
    if removed {
        disk.sync_dir(dir)?;
    }
    Ok(())
}

/// Keeps only the newest snapshot in `dir` (and no temp files): what a crash between a
/// snapshot's rename and the removal of the older ones left behind. Call it after the newest
/// has been loaded and verified.
pub fn prune_snapshots(dir: &Path) -> Result<(), Error> {
    if !dir.exists() {
        return Ok(());
    }
    let newest = disk::list_names(dir)?
        .into_iter()
        .filter_map(|(name, _)| parse_file_name(&name))
        .max();
    match newest {
        Some(index) => remove_older(&Disk::default(), dir, index, true),
        None => Ok(()),
    }
}

/// Loads the newest snapshot in `dir`, or `None` if there is none (or no directory).
///
/// Durable: the snapshot file is fdatasynced and `dir` fsynced before it is returned, since a
/// crashed process's save may sit only in the page cache; a failed fsync is an error.
pub fn load_latest_snapshot(dir: &Path) -> Result<Option<(SnapshotMeta, Bytes)>, Error> {
    load_latest_with_disk(&Disk::default(), dir)
}

/// [`load_latest_snapshot`] with the fault hook of `options`.
pub fn load_latest_snapshot_with(
    dir: &Path,
    options: &Options,
) -> Result<Option<(SnapshotMeta, Bytes)>, Error> {
    load_latest_with_disk(&Disk::new(options.fault_hook.clone()), dir)
}

fn load_latest_with_disk(disk: &Disk, dir: &Path) -> Result<Option<(SnapshotMeta, Bytes)>, Error> {
    if !dir.exists() {
        return Ok(None);
    }
    let newest = disk::list_names(dir)?
        .into_iter()
        .filter_map(|(name, path)| parse_file_name(&name).map(|index| (index, path)))
        .max_by_key(|(index, _)| *index);
    let Some((index, path)) = newest else {
        return Ok(None);
    };
    let Some(bytes) = disk.read_durable(&path)? else {
        return Ok(None);
    };
    // Its name came from a rename, durable only once the directory is.
    disk.sync_dir(dir)?;
    parse(&path, &bytes, Some(index)).map(Some)
}

/// The path of the snapshot file at `index` in `dir`.
pub fn snapshot_path(dir: &Path, index: u64) -> PathBuf {
    dir.join(file_name(index))
}

/// Loads and verifies one snapshot file wherever it lies (a staged copy received from a
/// leader, say): checksum, layout, and the index and term it records.
pub fn load_snapshot_file(path: &Path) -> Result<(SnapshotMeta, Bytes), Error> {
    let bytes = Disk::default().read_durable(path)?.ok_or_else(|| {
        Error::io(
            "read",
            path.to_path_buf(),
            std::io::ErrorKind::NotFound.into(),
        )
    })?;
    parse(path, &bytes, None)
}

/// Makes the verified snapshot file `staged` the snapshot at `index` in `dir`: renamed into
/// place and the directory fsynced (so it is durable when this returns), then older snapshots
/// removed. `staged` must already be durable itself (fsynced by whoever wrote it).
pub fn install_staged_snapshot(dir: &Path, staged: &Path, index: u64) -> Result<(), Error> {
    let disk = Disk::default();
    let target = snapshot_path(dir, index);
    std::fs::rename(staged, &target).map_err(|e| Error::io("rename", staged.to_path_buf(), e))?;
    disk.sync_dir(dir)?;
    // A save of this node's own (older) snapshot may be writing its temp file right now.
    remove_older(&disk, dir, index, false)
}

/// Checks a snapshot file's bytes: seal, layout, and (if given) the index its name promises.
fn parse(
    path: &Path,
    bytes: &Bytes,
    expected: Option<u64>,
) -> Result<(SnapshotMeta, Bytes), Error> {
    let payload = sealed::open(path, bytes, &SNAPSHOT_MAGIC)?;
    let corrupt = |offset: usize, problem| Error::Corrupt {
        path: path.to_path_buf(),
        offset: offset as u64,
        problem,
    };
    // Payload offsets are 12 bytes into the file (after magic and version).
    if payload.len() < SNAPSHOT_FIXED_BYTES {
        return Err(corrupt(
            12,
            Problem::Truncated {
                needed: SNAPSHOT_FIXED_BYTES as u64,
                available: payload.len() as u64,
            },
        ));
    }
    let index = record::read_u64(&payload, 0);
    if let Some(expected) = expected
        && index != expected
    {
        return Err(corrupt(
            12,
            Problem::IndexMismatch {
                expected,
                found: index,
            },
        ));
    }
    let config_len = record::read_u64(&payload, 16);
    let available = (payload.len() - SNAPSHOT_FIXED_BYTES) as u64;
    if config_len > SNAPSHOT_CONFIG_BYTES_MAX as u64 || config_len > available {
        return Err(corrupt(
            28,
            Problem::LengthTooLarge {
                length: config_len,
                max: available.min(SNAPSHOT_CONFIG_BYTES_MAX as u64),
            },
        ));
    }
    let config_end = SNAPSHOT_FIXED_BYTES + config_len as usize;
    let meta = SnapshotMeta {
        index,
        term: record::read_u64(&payload, 8),
        config: payload.slice(SNAPSHOT_FIXED_BYTES..config_end),
    };
    Ok((meta, payload.slice(config_end..)))
}

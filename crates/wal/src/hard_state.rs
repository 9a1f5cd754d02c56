//! The Raft hard state (term, vote, commit), saved atomically in its own file.

use std::path::Path;

use crate::disk::Disk;
use crate::error::Error;
use crate::options::Options;
use crate::record;
use crate::sealed;

/// Name of the hard-state file inside its directory.
pub const HARD_STATE_FILE: &str = "hard_state";

/// Identifies the hard-state file.
const HARD_STATE_MAGIC: [u8; 8] = *b"rafths\0\0";

/// Payload: term, vote, commit, each u64 LE.
const HARD_STATE_PAYLOAD_BYTES: usize = 24;

/// What Raft must never forget across a restart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct HardState {
    /// The latest term this node has seen.
    pub term: u64,
    /// The node voted for in `term`; 0 means none.
    pub vote: u64,
    /// The highest index known to be committed.
    pub commit: u64,
}

/// Saves `state` in `dir` atomically: temp file with a CRC, fsync, rename, directory fsync.
pub fn save(dir: &Path, state: &HardState) -> Result<(), Error> {
    save_with(&Disk::default(), dir, state)
}

/// [`save`] through a given disk (for the writer's counters and fault hook).
pub(crate) fn save_with(disk: &Disk, dir: &Path, state: &HardState) -> Result<(), Error> {
    let mut payload = [0; HARD_STATE_PAYLOAD_BYTES];
    payload[0..8].copy_from_slice(&state.term.to_le_bytes());
    payload[8..16].copy_from_slice(&state.vote.to_le_bytes());
    payload[16..24].copy_from_slice(&state.commit.to_le_bytes());
    sealed::write(disk, dir, HARD_STATE_FILE, &HARD_STATE_MAGIC, &[&payload])
}

/// Loads the hard state saved in `dir`: `Ok(None)` if none was ever saved, an error naming the
/// file if it fails its checks. A torn temp file from a crash during [`save`] is ignored.
///
/// Durable: the file is fdatasynced and `dir` fsynced before the state is returned, since a
/// crashed process's save may sit only in the page cache; a failed fsync is an error.
pub fn load(dir: &Path) -> Result<Option<HardState>, Error> {
    load_with_disk(&Disk::default(), dir)
}

/// [`load`] with the fault hook of `options` (the options the log in `dir` uses).
pub fn load_with(dir: &Path, options: &Options) -> Result<Option<HardState>, Error> {
    load_with_disk(&Disk::new(options.fault_hook.clone()), dir)
}

fn load_with_disk(disk: &Disk, dir: &Path) -> Result<Option<HardState>, Error> {
    let path = dir.join(HARD_STATE_FILE);
    let Some(bytes) = disk.read_durable(&path)? else {
        return Ok(None);
    };
    // Its name came from a rename, durable only once the directory is.
    disk.sync_dir(dir)?;
    let payload = sealed::open(&path, &bytes, &HARD_STATE_MAGIC)?;
    sealed::expect_len(&path, &payload, HARD_STATE_PAYLOAD_BYTES)?;
    Ok(Some(HardState {
        term: record::read_u64(&payload, 0),
        vote: record::read_u64(&payload, 8),
        commit: record::read_u64(&payload, 16),
    }))
}

//! Backups: snapshot files outside a data directory, and seeding a new cluster from one.
//!
//! A backup is a snapshot file exactly as a member keeps in `DATA_DIR/snapshots/` (the WAL
//! crate's sealed format: magic, version, index, term, configuration, store image, CRC32C over
//! everything), so one format and one checksum serve the node's own snapshots, the ones it
//! sends followers and backups (docs/backup.md). It comes from one of two places:
//! - online, the leader's answer to the `snapshot` admin command (after a read barrier);
//! - offline, [`export`] from a stopped member's data directory: its newest snapshot with every
//!   entry of its log applied on top.
//!
//! [`restore`] verifies a backup (checksum, layout, store image) and seeds a new, empty data
//! directory with it under a new configuration: the snapshot at the backup's index and term
//! holding the given members, and a hard state of that term. Every member seeded from the same
//! file starts with the same store and log position; they elect a leader as any cluster does.

use std::path::{Path, PathBuf};

use bytes::Bytes;
use fs::Store;
use raft::{Entry, LogIndex, Membership, Payload, Term};

use crate::config::Member;
use crate::node::snapshots::SNAPSHOT_DIR;
use crate::node::storage::{Storage, StorageError};

/// Why a backup cannot be made, read or restored.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    /// The file is not a whole, intact snapshot file (bad checksum, truncated, not a
    /// snapshot): it must not be used.
    #[error(
        "backup {path} is corrupt (it fails its checksum or layout check; do not use it): \
         {source}"
    )]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What the check found.
        source: wal::Error,
    },
    /// The checksum is right but the store image inside does not load.
    #[error("backup {path} holds a store image that does not load: {source}")]
    Image {
        /// The file.
        path: PathBuf,
        /// Why.
        source: fs::store::SnapshotError,
    },
    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
    /// Writing a file through the WAL crate failed.
    #[error(transparent)]
    Wal(#[from] wal::Error),
    /// The data directory to export from cannot be recovered.
    #[error("cannot recover data directory {path}: {source}")]
    Recover {
        /// The directory.
        path: PathBuf,
        /// Why.
        source: Box<StorageError>,
    },
    /// The data directory to export from holds nothing (no snapshot, no log entry).
    #[error("data directory {0} holds no snapshot and no log entries: nothing to export")]
    Empty(PathBuf),
    /// A restore's target is not empty: restoring never overwrites a member's data.
    #[error("data directory {0} is not empty: restore seeds new members only")]
    NotEmpty(PathBuf),
    /// The configuration to restore under is not a valid one.
    #[error("invalid configuration for the restored cluster: {0}")]
    Membership(#[from] raft::MembershipError),
}

/// A verified backup: what it covers and the store it holds.
#[derive(Debug, Clone)]
pub struct Backup {
    /// The last log index it covers.
    pub index: u64,
    /// The term of that entry.
    pub term: u64,
    /// The CRC32C the file ends with.
    pub crc32c: u32,
    /// The whole file.
    pub file: Bytes,
    /// The store it holds.
    pub store: Store,
    /// The configuration it was taken under (`None` if it holds none).
    pub membership: Option<Membership>,
}

impl Backup {
    /// Checks snapshot file bytes (`path` names them in errors): checksum and layout first,
    /// then the store image and the configuration.
    pub fn verify(path: &Path, file: Bytes) -> Result<Backup, BackupError> {
        let (meta, image) =
            wal::decode_snapshot(path, &file).map_err(|source| BackupError::Corrupt {
                path: path.to_owned(),
                source,
            })?;
        let store = Store::restore(&image).map_err(|source| BackupError::Image {
            path: path.to_owned(),
            source,
        })?;
        let membership = if meta.config.is_empty() {
            None
        } else {
            Some(
                Membership::decode(&meta.config).map_err(|err| BackupError::Io {
                    path: path.to_owned(),
                    source: std::io::Error::other(format!("bad configuration: {err}")),
                })?,
            )
        };
        Ok(Backup {
            index: meta.index,
            term: meta.term,
            crc32c: wal::snapshot_checksum(&file).unwrap_or(0),
            file,
            store,
            membership,
        })
    }

    /// Reads and verifies the backup at `path`.
    pub fn read(path: &Path) -> Result<Backup, BackupError> {
        let file = std::fs::read(path).map_err(|source| BackupError::Io {
            path: path.to_owned(),
            source,
        })?;
        Backup::verify(path, Bytes::from(file))
    }

    /// Writes the backup to `path` atomically (temp file beside it, fdatasync, rename,
    /// directory fsync): a crash leaves the whole file or none.
    pub fn write(&self, path: &Path) -> Result<(), BackupError> {
        wal::write_snapshot_file(path, &self.file)?;
        Ok(())
    }

    /// One line about the backup, for operators: index, term, checksum, files, digest.
    pub fn summary(&self) -> String {
        format!(
            "index {} term {} bytes {} crc32c {:08x} files {} store_digest {:016x}",
            self.index,
            self.term,
            self.file.len(),
            self.crc32c,
            self.store.file_count(),
            self.store.digest()
        )
    }
}

/// What an offline export found in the data directory besides the backup: how far its log
/// reached and what it knew committed, to choose the most up-to-date survivor by.
#[derive(Debug, Clone)]
pub struct Exported {
    /// The backup: the newest snapshot with every log entry applied.
    pub backup: Backup,
    /// The commit index the member last saved (the entries after it may or may not have
    /// committed: the export keeps them, see docs/backup.md).
    pub commit: u64,
}

/// Exports the state of a stopped member's data directory as a backup: its newest snapshot
/// with every entry of its log applied on top, the last entry's index and term as the backup's.
/// The directory is recovered exactly as a restart would (a torn tail is cut, a log the
/// snapshot replaced is dropped); the member must not be running.
pub fn export(data_dir: &Path) -> Result<Exported, BackupError> {
    let recover = |source| BackupError::Recover {
        path: data_dir.to_owned(),
        source: Box::new(source),
    };
    if !data_dir.join(SNAPSHOT_DIR).exists() && !data_dir.join("log").exists() {
        return Err(BackupError::Empty(data_dir.to_owned()));
    }
    // Completions of the writer are never asked for: nothing is written through it.
    let (events, _ignored) = tokio::sync::mpsc::unbounded_channel();
    let (storage, restored) = Storage::open(data_dir, events).map_err(recover)?;
    storage.shutdown();
    let mut store = restored.store;
    let mut membership = restored.recovered.membership;
    let (mut index, mut term) = restored
        .snapshot
        .map_or((LogIndex(0), Term(0)), |s| (s.index, s.term));
    for entry in restored.recovered.entries {
        apply(&mut store, &mut membership, &entry).map_err(|message| {
            recover(StorageError::Undecodable {
                index: entry.index.0,
                message,
            })
        })?;
        (index, term) = (entry.index, entry.term);
    }
    if index.0 == 0 {
        return Err(BackupError::Empty(data_dir.to_owned()));
    }
    let meta = wal::SnapshotMeta {
        index: index.0,
        term: term.0,
        config: membership
            .as_ref()
            .map_or_else(Bytes::new, |m| Bytes::from(m.encode())),
    };
    let file = wal::encode_snapshot(&meta, &store.snapshot())?;
    let backup = Backup::verify(data_dir, Bytes::from(file))?;
    Ok(Exported {
        backup,
        commit: restored.recovered.hard_state.commit.0,
    })
}

/// One log entry applied as a replica applies it; a configuration entry becomes the one in
/// force (an offline export has no quorum to wait for).
fn apply(
    store: &mut Store,
    membership: &mut Option<Membership>,
    entry: &Entry,
) -> Result<(), String> {
    match &entry.payload {
        Payload::Noop => {}
        Payload::Membership(m) => *membership = Some(m.clone()),
        Payload::Command(bytes) => {
            let stamped = fs::StampedCommand::decode(bytes).map_err(|err| err.to_string())?;
            stamped.apply_to(store);
        }
    }
    Ok(())
}

/// Seeds the empty (or absent) data directory `data_dir` from `backup` as a member of a new
/// cluster whose voters are `members`: the backup becomes the directory's snapshot under that
/// configuration, with a hard state of its term and commit index (no vote), so the member
/// starts where the backup ends. Refuses a directory that holds anything.
pub fn restore(backup: &Backup, data_dir: &Path, members: &[Member]) -> Result<(), BackupError> {
    let io = |path: &Path, source| BackupError::Io {
        path: path.to_owned(),
        source,
    };
    match std::fs::read_dir(data_dir) {
        Ok(mut entries) => {
            if entries.next().is_some() {
                return Err(BackupError::NotEmpty(data_dir.to_owned()));
            }
        }
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
        Err(err) => return Err(io(data_dir, err)),
    }
    let membership = crate::config::membership_of(members)?;
    let meta = wal::SnapshotMeta {
        index: backup.index,
        term: backup.term,
        config: Bytes::from(membership.encode()),
    };
    // The store image is the backup's, re-sealed with the new configuration.
    let image = backup.store.snapshot();
    wal::save_snapshot(&data_dir.join(SNAPSHOT_DIR), &meta, &image)?;
    // A hard state at the snapshot's term: a member's term is never below its last entry's.
    let log_dir = data_dir.join("log");
    std::fs::create_dir_all(&log_dir).map_err(|err| io(&log_dir, err))?;
    wal::hard_state::save(
        &log_dir,
        &wal::HardState {
            term: backup.term,
            vote: 0,
            commit: backup.index,
        },
    )?;
    Ok(())
}

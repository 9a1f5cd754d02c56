//! The node's snapshot files: saving its own snapshots away from the node task, reading chunks
//! of them for followers, staging a snapshot received from the leader, and installing it.
//!
//! Files live in `DATA_DIR/snapshots/`, in the WAL crate's sealed snapshot format (checksummed,
//! written through a temp file, fsync, rename and directory fsync): `<index>.snap` for the
//! node's snapshot (only the newest is kept), `staging.part` for one being received. A chunk
//! read for a follower goes through a file handle opened when its transfer began, so a newer
//! snapshot replacing the file does not cut the transfer short.

use std::collections::HashMap;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use fs::Store;
use raft::{LogIndex, Membership, NodeId, Term};
use replica::{Offer, SnapshotInfo};
use tokio::sync::mpsc;

use super::NodeEvent;

/// The snapshot directory inside a data directory.
pub const SNAPSHOT_DIR: &str = "snapshots";

/// The staging file's name inside the snapshot directory.
const STAGING_FILE: &str = "staging.part";

/// Why a snapshot file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    /// The WAL crate refused the file (I/O error, bad checksum, bad layout).
    #[error(transparent)]
    Wal(#[from] wal::Error),
    /// The file's checksum is right but its store image is not.
    #[error("snapshot {path}: the store image does not load: {source}")]
    Image {
        /// The file.
        path: PathBuf,
        /// Why.
        source: fs::store::SnapshotError,
    },
    /// Reading or writing a snapshot file failed.
    #[error("snapshot file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
}

/// A snapshot loaded at start.
pub struct Loaded {
    /// What it covers.
    pub info: SnapshotInfo,
    /// The store it holds.
    pub store: Store,
    /// The configuration in force at its index (`None` in a snapshot written before
    /// configurations were kept in snapshots).
    pub membership: Option<Membership>,
}

/// The configuration a snapshot file's `config` field holds: none if empty (older files).
fn decode_membership(path: &Path, config: &[u8]) -> Result<Option<Membership>, SnapshotError> {
    if config.is_empty() {
        return Ok(None);
    }
    Membership::decode(config)
        .map(Some)
        .map_err(|err| SnapshotError::Io {
            path: path.to_owned(),
            source: std::io::Error::other(format!("bad configuration: {err}")),
        })
}

/// Loads the newest snapshot in `dir`, verified (checksum, layout, store image); `None` if
/// there is none. A corrupt newest snapshot is an error: it is never skipped silently. Older
/// snapshots a crash left behind are removed once the newest has loaded.
pub fn load_latest(dir: &Path) -> Result<Option<Loaded>, SnapshotError> {
    let Some((meta, data)) = wal::load_latest_snapshot(dir)? else {
        return Ok(None);
    };
    let path = wal::snapshot_path(dir, meta.index);
    let store = Store::restore(&data).map_err(|source| SnapshotError::Image {
        path: path.clone(),
        source,
    })?;
    let membership = decode_membership(&path, &meta.config)?;
    wal::prune_snapshots(dir)?;
    let file_bytes = std::fs::metadata(&path)
        .map_err(|source| SnapshotError::Io { path, source })?
        .len();
    Ok(Some(Loaded {
        info: SnapshotInfo {
            index: LogIndex(meta.index),
            term: Term(meta.term),
            file_bytes,
        },
        store,
        membership,
    }))
}

/// Chunk reads queued for one follower's reader before more are dropped (the transfer
/// resends): a window's worth.
const READS_QUEUED_MAX: usize = 64;

/// A chunk to read and send.
struct ChunkRead {
    offer: Offer,
    offset: u64,
    len: u64,
    total: u64,
}

/// One follower's transfer: the open snapshot file and the task reading chunks from it one at
/// a time, so they reach the follower in the order the transfer sends them.
struct Reader {
    index: LogIndex,
    reads: mpsc::Sender<ChunkRead>,
}

/// The snapshot side of the node's disk.
pub struct Snapshots {
    dir: PathBuf,
    events: mpsc::UnboundedSender<NodeEvent>,
    /// Per follower, the snapshot file its transfer reads from and the reader that sends its
    /// chunks, in order.
    sending: HashMap<NodeId, Reader>,
    /// The snapshot being received, and its open staging file.
    staging: Option<(Offer, File)>,
}

impl Snapshots {
    /// The snapshots of data directory `data_dir`; removes a staging file a crash left.
    pub fn new(
        data_dir: &Path,
        events: mpsc::UnboundedSender<NodeEvent>,
    ) -> Result<Snapshots, SnapshotError> {
        let dir = data_dir.join(SNAPSHOT_DIR);
        std::fs::create_dir_all(&dir).map_err(|source| SnapshotError::Io {
            path: dir.clone(),
            source,
        })?;
        let staging = dir.join(STAGING_FILE);
        if staging.exists() {
            std::fs::remove_file(&staging).map_err(|source| SnapshotError::Io {
                path: staging,
                source,
            })?;
        }
        Ok(Snapshots {
            dir,
            events,
            sending: HashMap::new(),
            staging: None,
        })
    }

    /// Serialises `store` and writes it as the snapshot at `index` on a blocking thread, so
    /// the node task goes on serving; `SnapshotSaved` (or `Failed`) follows.
    pub fn save(&self, index: LogIndex, term: Term, store: Store, membership: Membership) {
        let dir = self.dir.clone();
        let events = self.events.clone();
        tokio::task::spawn_blocking(move || {
            let (meta, image) = serialise(index, term, &store, &membership);
            let event = match wal::save_snapshot(&dir, &meta, &image) {
                Ok(()) => {
                    let path = wal::snapshot_path(&dir, index.0);
                    match std::fs::metadata(&path) {
                        Ok(m) => NodeEvent::SnapshotSaved(SnapshotInfo {
                            index,
                            term,
                            file_bytes: m.len(),
                        }),
                        Err(source) => {
                            NodeEvent::SnapshotFailed(SnapshotError::Io { path, source }.into())
                        }
                    }
                }
                Err(err) => NodeEvent::SnapshotFailed(SnapshotError::from(err).into()),
            };
            let _ = events.send(event);
        });
    }

    /// Answers a backup request with the snapshot file of `store` (at `index`, `term`), made
    /// exactly as [`Snapshots::save`] makes the node's own but in memory, on a blocking thread
    /// so the node task goes on serving; nothing comes back to the node. A file too large to
    /// encode is answered `ERR_INTERNAL`.
    pub fn backup(
        &self,
        token: crate::mailbox::ReplyTo,
        index: LogIndex,
        term: Term,
        store: Store,
        membership: Membership,
    ) {
        tokio::task::spawn_blocking(move || {
            // The image is dropped once sealed into the file: one copy of the store is held
            // while the reply waits to be sent, not two.
            let file = {
                let (meta, image) = serialise(index, term, &store, &membership);
                wal::encode_snapshot(&meta, &image)
            };
            let reply = match file {
                Ok(file) => fs::Reply::Snapshot {
                    index: index.0,
                    term: term.0,
                    crc32c: wal::snapshot_checksum(&file).unwrap_or(0),
                    file: Bytes::from(file),
                },
                Err(err) => {
                    tracing::error!(%err, "cannot encode a backup");
                    fs::Reply::Internal
                }
            };
            // The client may have gone meanwhile; nothing to do then.
            token.send(reply);
        });
    }

    /// Reads `len` bytes at `offset` of the snapshot at `offer.index` for follower `to`, off
    /// the node task and in order with the follower's earlier chunks; `ChunkRead` (or
    /// `ChunkUnavailable`) follows.
    pub fn read_chunk(&mut self, to: NodeId, offer: Offer, offset: u64, len: u64, total: u64) {
        if self.sending.get(&to).is_none_or(|r| r.index != offer.index) {
            // A new transfer: open its file now, so a newer snapshot replacing it later does
            // not cut the transfer short.
            let Ok(file) = File::open(wal::snapshot_path(&self.dir, offer.index.0)) else {
                let _ = self.events.send(NodeEvent::ChunkUnavailable(to));
                return;
            };
            let (reads, queue) = mpsc::channel(READS_QUEUED_MAX);
            tokio::spawn(read_chunks(to, Arc::new(file), queue, self.events.clone()));
            let index = offer.index;
            self.sending.insert(to, Reader { index, reads });
        }
        if let Some(reader) = self.sending.get(&to) {
            let read = ChunkRead {
                offer,
                offset,
                len,
                total,
            };
            // A full queue drops the chunk: the transfer resends what is not acknowledged.
            let _ = reader.reads.try_send(read);
        }
    }

    /// Writes a chunk of the snapshot being received (offset 0 starts a new staging file).
    /// Small sequential writes into the page cache: done here, in order; the fsync comes with
    /// [`Snapshots::finish_staging`], off the node task.
    pub fn stage(&mut self, offer: Offer, offset: u64, data: &[u8]) -> Result<(), SnapshotError> {
        let path = self.dir.join(STAGING_FILE);
        let io = |source| SnapshotError::Io {
            path: path.clone(),
            source,
        };
        if offset == 0 {
            let file = File::create(&path).map_err(io)?;
            self.staging = Some((offer.clone(), file));
        }
        match &self.staging {
            Some((staged, file)) if *staged == offer => file.write_all_at(data, offset).map_err(io),
            // A chunk of a transfer whose start we never staged: the replica only continues
            // what it began, so this cannot happen; refuse it without harm.
            _ => Ok(()),
        }
    }

    /// Makes the staging file durable and verifies it on a blocking thread; `Staged` follows
    /// with the restored store, or without one if it does not verify.
    pub fn finish_staging(&mut self, offer: Offer) {
        let Some((staged, file)) = self.staging.take() else {
            return;
        };
        let path = self.dir.join(STAGING_FILE);
        let events = self.events.clone();
        tokio::task::spawn_blocking(move || {
            let store = verify_staged(&file, &path, &staged).ok();
            let _ = events.send(NodeEvent::Staged {
                index: offer.index,
                store,
            });
        });
    }

    /// Makes the verified staging file the node's snapshot at `index` (rename and directory
    /// fsync, then older snapshots go). Blocks briefly: it must be durable before the log fix
    /// queued right after it, and no later storage operation may overtake that fix.
    pub fn install(&mut self, index: LogIndex) -> Result<(), SnapshotError> {
        wal::install_staged_snapshot(&self.dir, &self.dir.join(STAGING_FILE), index.0)?;
        Ok(())
    }
}

/// A snapshot's metadata and store image: the one serialisation behind the node's own
/// snapshots, the ones it sends followers and backups.
fn serialise(
    index: LogIndex,
    term: Term,
    store: &Store,
    membership: &Membership,
) -> (wal::SnapshotMeta, Vec<u8>) {
    let meta = wal::SnapshotMeta {
        index: index.0,
        term: term.0,
        config: Bytes::from(membership.encode()),
    };
    (meta, store.snapshot())
}

/// Reads and hands over one follower's chunks in order, until its transfer is replaced.
async fn read_chunks(
    to: NodeId,
    file: Arc<File>,
    mut queue: mpsc::Receiver<ChunkRead>,
    events: mpsc::UnboundedSender<NodeEvent>,
) {
    while let Some(read) = queue.recv().await {
        let file = file.clone();
        let ChunkRead {
            offer,
            offset,
            len,
            total,
        } = read;
        let data = tokio::task::spawn_blocking(move || {
            let mut data = vec![0u8; len as usize];
            file.read_exact_at(&mut data, offset).map(|()| data)
        })
        .await;
        let event = match data {
            Ok(Ok(data)) => NodeEvent::ChunkRead {
                to,
                chunk: replica::Chunk {
                    offer,
                    total_bytes: total,
                    offset,
                    data: Bytes::from(data),
                },
            },
            _ => NodeEvent::ChunkUnavailable(to),
        };
        if events.send(event).is_err() {
            return;
        }
    }
}

/// fsyncs the staging file and checks that it is a whole, valid snapshot of what `offer` names.
fn verify_staged(file: &File, path: &Path, offer: &Offer) -> Result<Store, SnapshotError> {
    file.sync_all().map_err(|source| SnapshotError::Io {
        path: path.to_owned(),
        source,
    })?;
    let (meta, data) = wal::load_snapshot_file(path)?;
    if meta.index != offer.index.0 || meta.term != offer.snapshot_term.0 {
        return Err(SnapshotError::Io {
            path: path.to_owned(),
            source: std::io::Error::other(format!(
                "staged snapshot covers i{}/t{}, the leader offered i{}/t{}",
                meta.index, meta.term, offer.index.0, offer.snapshot_term.0
            )),
        });
    }
    if decode_membership(path, &meta.config)?.as_ref() != Some(&offer.membership) {
        return Err(SnapshotError::Io {
            path: path.to_owned(),
            source: std::io::Error::other("staged snapshot's configuration differs from the offer"),
        });
    }
    Store::restore(&data).map_err(|source| SnapshotError::Image {
        path: path.to_owned(),
        source,
    })
}

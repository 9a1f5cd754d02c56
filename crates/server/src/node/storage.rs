//! The node's disk: recovery at start, then the WAL writer thread carrying out the core's
//! `LogTruncate`, `LogStore` and `SaveState` in order, sharing one fsync among everything queued
//! (group commit) and reporting completions back to the node task as events.
//!
//! The node task never waits for the writer: operations go to its queue with `try_submit`, and
//! when that queue is full they wait, in order, in a backlog here. While the backlog holds
//! anything the node takes no new client requests or peer messages (back-pressure through its
//! inputs); every completion gives the backlog another try.
//!
//! A follower writes inline instead, while its disk is fast: what one pass of the node loop
//! asked for is committed on the node's own thread (`run_pending`, once the loop has let the
//! transport send what that pass produced), which saves the two thread wake-ups of each
//! hand-off to the writer thread and back. A leader never does: it appends in parallel with
//! its followers, and its clients' work must not wait behind its disk. One slow inline batch
//! (`INLINE_SLOW`: a disk that stalls) sends everything to the thread for `INLINE_BACKOFF`, so
//! that a sick disk holds up the node loop once, not on every write.

use std::collections::VecDeque;
use std::path::Path;
use std::time::{Duration, Instant};

use raft::{Entry, HardState, LogIndex, NodeId, Recovered, Term};
use replica::SnapshotInfo;
use tokio::sync::mpsc;

use super::NodeEvent;

/// Log segment size: small enough that compaction behind snapshots frees disk space soon
/// (whole segments are removed), large enough that rolling over is rare (one per ~30,000
/// small writes).
const SEGMENT_BYTES: u64 = 8 << 20;

/// An inline batch that takes longer than this marks the disk as slow. Not lower: on a busy
/// machine the run queue alone holds a thread 20-30 ms now and then, and at 20 ms every
/// follower went back to the thread every few seconds on a healthy disk (docs/perf-log.md,
/// step 13); a healthy disk's fdatasync takes a few ms. Twice the default heartbeat interval.
const INLINE_SLOW: Duration = Duration::from_millis(100);

/// How long after a slow inline batch every write goes to the writer thread.
const INLINE_BACKOFF: Duration = Duration::from_secs(10);

/// What a node starts from: the core's recovered state, the store restored from the newest
/// snapshot (or empty), and that snapshot.
pub struct Restored {
    /// For `raft::Node::new`.
    pub recovered: Recovered,
    /// The store as of the snapshot.
    pub store: fs::Store,
    /// The snapshot, if any.
    pub snapshot: Option<SnapshotInfo>,
}

/// What the writer thread reports back.
#[derive(Debug)]
pub enum StorageEvent {
    /// Entries up to `index` (the entry there has `term`) are durable.
    LogStored {
        /// Last durable index.
        index: LogIndex,
        /// Its term.
        term: Term,
    },
    /// The hard state is durable.
    StateSaved(HardState),
    /// An operation the core needs no report of (a truncation) is done.
    Progress,
    /// The log fix of a snapshot install is durable.
    Installed {
        /// The snapshot's index.
        index: LogIndex,
        /// Its term.
        term: Term,
    },
    /// A write or fsync failed: the node must stop (fail-stop).
    Failed(wal::Error),
}

/// Why the data directory cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// The WAL refused (I/O error, corruption).
    #[error(transparent)]
    Wal(#[from] wal::Error),
    /// The log and the snapshot do not fit together.
    #[error(transparent)]
    Reconcile(#[from] replica::RecoveryError),
    /// The newest snapshot cannot be used.
    #[error(transparent)]
    Snapshot(#[from] super::snapshots::SnapshotError),
    /// A log record passed its checksum but does not hold a Raft entry.
    #[error("log entry {index} does not decode: {message}")]
    Undecodable {
        /// The entry's index.
        index: u64,
        /// What was wrong.
        message: String,
    },
}

/// The node's handle on its log, hard state and snapshot files.
pub struct Storage {
    writer: wal::Writer,
    events: mpsc::UnboundedSender<NodeEvent>,
    /// Operations the writer's full queue could not take yet, in submission order.
    backlog: VecDeque<(wal::Op, wal::Completion)>,
    /// Operations to commit inline at the next `run_pending`, in submission order.
    pending: Vec<(wal::Op, wal::Completion)>,
    /// Whether this member writes inline (a follower); see the module doc.
    inline: bool,
    /// Until when writes go to the thread after a slow inline batch.
    backoff_until: Option<Instant>,
    /// Inline batches slower than `INLINE_SLOW` so far: each sent the writes to the thread.
    slow_batches: u64,
}

impl Storage {
    /// Recovers what the data directory holds (the newest snapshot, the hard state, the log
    /// after the snapshot, reconciled by `replica::reconcile`) and starts the writer thread.
    /// Completions are sent on `events`; the channel is unbounded because the writer's own
    /// queue bounds how many operations can be outstanding.
    pub fn open(
        dir: &Path,
        events: mpsc::UnboundedSender<NodeEvent>,
    ) -> Result<(Storage, Restored), StorageError> {
        let snapshot = super::snapshots::load_latest(&dir.join(super::snapshots::SNAPSHOT_DIR))?;
        let options = wal::Options {
            segment_bytes: SEGMENT_BYTES,
            ..wal::Options::default()
        };
        let log_dir = dir.join("log");
        let hard_state = wal::hard_state::load(&log_dir)?.map(|hs| HardState {
            term: Term(hs.term),
            vote: (hs.vote != 0).then_some(NodeId(hs.vote)),
            commit: LogIndex(hs.commit),
        });
        // The saved commit index is durable on this disk (the core never saves one beyond what
        // it knows durable): recovery must never cut the log below it, unless a snapshot covers
        // it.
        let covered = snapshot.as_ref().map_or(0, |s| s.info.index.0);
        let commit = hard_state.map_or(0, |hs| hs.commit.0);
        let floor = if commit > covered { commit } else { 0 };
        let (mut log, report) = wal::Log::open_with_floor(&log_dir, options, floor)?;
        if let Some(torn) = &report.torn_tail {
            tracing::warn!(?torn, "dropped a torn tail from the log");
        }
        // The entry at the snapshot's own index is read too: reconcile checks its term. The log
        // may end before the snapshot (killed after installing a received snapshot, before
        // dropping the log it replaced): then there is nothing to read, and reconcile discards
        // the whole log.
        let lo = log.first_index().max(covered);
        let hi = log.last_index() + 1;
        let mut entries = Vec::new();
        let records = if lo < hi {
            log.read(lo, hi)?
        } else {
            Vec::new()
        };
        for record in records {
            let index = LogIndex(record.index);
            let entry = Entry::from_stored(index, Term(record.term), record.kind, &record.data)
                .map_err(|err| StorageError::Undecodable {
                    index: record.index,
                    message: err.to_string(),
                })?;
            entries.push(entry);
        }
        let reconciled = replica::reconcile(
            hard_state.unwrap_or_default(),
            snapshot.as_ref().map(|s| (s.info.index, s.info.term)),
            LogIndex(log.first_index()),
            entries,
        )?;
        if let Some(from) = reconciled.truncate_from {
            tracing::warn!(from = from.0, "dropping log entries the snapshot replaced");
            log.truncate_suffix(from.0)?;
        }
        if let Some(upto) = reconciled.discard_upto {
            log.discard_prefix(upto.0)?;
        }
        // Opening synced everything it kept; only the fixes above still need it.
        if reconciled.truncate_from.is_some() || reconciled.discard_upto.is_some() {
            log.sync()?;
        }
        let writer = wal::Writer::spawn(log)?;
        let storage = Storage {
            writer,
            events,
            backlog: VecDeque::new(),
            pending: Vec::new(),
            inline: false,
            backoff_until: None,
            slow_batches: 0,
        };
        let (store, info, membership) = match snapshot {
            Some(s) => (s.store, Some(s.info), s.membership),
            None => (fs::Store::new(), None, None),
        };
        let mut recovered = reconciled.recovered;
        recovered.membership = membership;
        let restored = Restored {
            recovered,
            store,
            snapshot: info,
        };
        Ok((storage, restored))
    }

    /// Drops the log up to `upto` (a durable snapshot covers it); reports nothing.
    pub fn discard(&mut self, upto: LogIndex) -> anyhow::Result<()> {
        self.submit(wal::Op::DiscardPrefix(upto.0), Some(StorageEvent::Progress))
    }

    /// After the staged snapshot at `index` became the node's snapshot: drops the log up to
    /// `index` and, unless `keep_log`, everything after it; `Installed` follows once durable.
    pub fn install(&mut self, index: LogIndex, term: Term, keep_log: bool) -> anyhow::Result<()> {
        if keep_log {
            self.submit(
                wal::Op::DiscardPrefix(index.0),
                Some(StorageEvent::Installed { index, term }),
            )
        } else {
            // After the discard the log is empty and starts at index + 1, so the truncation
            // from there drops whatever followed.
            self.submit(
                wal::Op::DiscardPrefix(index.0),
                Some(StorageEvent::Progress),
            )?;
            self.submit(
                wal::Op::TruncateSuffix(index.0 + 1),
                Some(StorageEvent::Installed { index, term }),
            )
        }
    }

    /// Appends entries; `LogStored` follows once they are durable.
    pub fn append(&mut self, entries: Vec<Entry>) -> anyhow::Result<()> {
        let Some(last) = entries.last() else {
            return Ok(());
        };
        let stored = StorageEvent::LogStored {
            index: last.index,
            term: last.term,
        };
        let records = entries.iter().map(record_of).collect();
        self.submit(wal::Op::Append(records), Some(stored))
    }

    /// Drops entries from `from` on. Its completion tells the core nothing (the writer applies
    /// operations in order, so the next `LogStored` covers it) but still wakes the backlog.
    pub fn truncate(&mut self, from: LogIndex) -> anyhow::Result<()> {
        self.submit(
            wal::Op::TruncateSuffix(from.0),
            Some(StorageEvent::Progress),
        )
    }

    /// Saves the hard state; `StateSaved` follows once it is durable.
    pub fn save_state(&mut self, state: HardState) -> anyhow::Result<()> {
        let record = wal::HardState {
            term: state.term.0,
            vote: state.vote.map_or(0, |v| v.0),
            commit: state.commit.0,
        };
        self.submit(
            wal::Op::SaveHardState(record),
            Some(StorageEvent::StateSaved(state)),
        )
    }

    /// Queues `op` for the writer without blocking; once it is durable the node gets `done`,
    /// and if it fails the node gets `Failed` instead.
    fn submit(&mut self, op: wal::Op, done: Option<StorageEvent>) -> anyhow::Result<()> {
        let events = self.events.clone();
        let completion: wal::Completion = Box::new(move |result| {
            let event = match result {
                Ok(_) => done,
                Err(err) => Some(StorageEvent::Failed(err)),
            };
            if let Some(event) = event {
                let _ = events.send(NodeEvent::Storage(event));
            }
        });
        if self.inline && self.backlog.is_empty() {
            self.pending.push((op, completion));
            return Ok(());
        }
        // Whatever waits to go inline was submitted first.
        self.backlog.extend(self.pending.drain(..));
        self.backlog.push_back((op, completion));
        self.flush_backlog()
    }

    /// Whether writes go inline from now on: the node's role allows it (`follower`) and no
    /// slow batch sent them to the thread lately. Operations already waiting keep their order.
    pub fn set_inline(&mut self, follower: bool) -> anyhow::Result<()> {
        if let Some(until) = self.backoff_until
            && Instant::now() >= until
        {
            self.backoff_until = None;
        }
        self.inline = follower && self.backoff_until.is_none();
        if !self.inline && !self.pending.is_empty() {
            self.backlog.extend(self.pending.drain(..));
            self.flush_backlog()?;
        }
        Ok(())
    }

    /// Whether this member's log writes are committed inline now (a follower whose disk has
    /// not been slow lately).
    pub fn is_inline(&self) -> bool {
        self.inline
    }

    /// Inline batches so far that took longer than `INLINE_SLOW`, each sending the writes to
    /// the thread for `INLINE_BACKOFF`.
    pub fn slow_batches(&self) -> u64 {
        self.slow_batches
    }

    /// True when operations wait for `run_pending`.
    pub fn has_pending(&self) -> bool {
        !self.pending.is_empty()
    }

    /// Commits what waits inline, with one sync; its completions reach the node as events,
    /// as the thread's do. If the thread still has work (queued before a switch to inline),
    /// the batch goes to the thread behind it instead.
    pub fn run_pending(&mut self) -> anyhow::Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let batch = std::mem::take(&mut self.pending);
        let started = Instant::now();
        match self.writer.run_inline(batch) {
            Ok(()) => {
                let took = started.elapsed();
                if took > INLINE_SLOW {
                    tracing::warn!(
                        took_ms = took.as_millis() as u64,
                        "a log write took long; writing on the log thread for a while"
                    );
                    self.slow_batches += 1;
                    self.backoff_until = Some(Instant::now() + INLINE_BACKOFF);
                    self.inline = false;
                }
                Ok(())
            }
            Err(batch) => {
                self.backlog.extend(batch);
                self.flush_backlog()
            }
        }
    }

    /// Hands the writer as much of the backlog as its queue takes, in order.
    pub fn flush_backlog(&mut self) -> anyhow::Result<()> {
        while let Some((op, done)) = self.backlog.pop_front() {
            match self.writer.try_submit(op, done) {
                Ok(()) => {}
                Err(wal::Rejected {
                    error: wal::Error::QueueFull,
                    op,
                    done,
                }) => {
                    self.backlog.push_front((op, done));
                    break;
                }
                Err(rejected) => return Err(rejected.error.into()),
            }
        }
        Ok(())
    }

    /// True while operations wait for room in the writer's queue.
    pub fn is_backlogged(&self) -> bool {
        !self.backlog.is_empty()
    }

    /// fsyncs performed so far.
    pub fn fsyncs(&self) -> u64 {
        self.writer.fsyncs()
    }

    /// How long the log's fsyncs have taken so far.
    pub fn sync_latency(&self) -> wal::SyncLatency {
        self.writer.sync_latency()
    }

    /// Bytes of the log's segment files, as of the writer's last batch.
    pub fn log_bytes(&self) -> u64 {
        self.writer.log_bytes()
    }

    /// The log's counters, for readers on other threads.
    pub fn log_counters(&self) -> std::sync::Arc<wal::Counters> {
        self.writer.counters()
    }

    /// Flushes what is queued and stops the writer thread.
    pub fn shutdown(mut self) {
        // Stopping: waiting for room in the queue is fine now, and nothing may be dropped.
        self.backlog.extend(self.pending.drain(..));
        for (op, done) in self.backlog.drain(..) {
            if let Err(err) = self.writer.submit(op, done) {
                tracing::error!(%err, "log writer gone while stopping");
            }
        }
        if let Err(err) = self.writer.shutdown() {
            tracing::error!(%err, "log writer failed while stopping");
        }
    }
}

/// The WAL record of `entry`: its payload tag as the kind, its command's own buffer as the data.
fn record_of(entry: &Entry) -> wal::Entry {
    let (kind, data) = entry.stored();
    wal::Entry::of_kind(entry.index.0, entry.term.0, kind, data)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)] // Tests fail loudly on purpose.

    use super::*;

    /// A member killed after a received snapshot became its snapshot, before the log behind it
    /// was dropped, holds a log that ends before the snapshot: it starts from the snapshot,
    /// with the log emptied up to it (the chaos of `snapshots::a_member_killed_in_the_middle_of_
    /// installs...` found this).
    #[tokio::test]
    async fn a_log_that_ends_before_the_snapshot_is_discarded() {
        let dir = tempfile::tempdir().unwrap();
        let (events_tx, mut events) = mpsc::unbounded_channel();
        let snapshots =
            super::super::snapshots::Snapshots::new(dir.path(), events_tx.clone()).unwrap();
        let members = raft::Membership::new(
            [(
                NodeId(1),
                raft::Member {
                    voter: true,
                    addresses: raft::Addresses {
                        peer: "127.0.0.1:1".into(),
                        client: "127.0.0.1:2".into(),
                        http: None,
                    },
                },
            )]
            .into_iter()
            .collect(),
        )
        .unwrap();
        snapshots.save(LogIndex(2864), Term(3), fs::Store::new(), members);
        match events.recv().await {
            Some(NodeEvent::SnapshotSaved(_)) => {}
            _ => panic!("the snapshot was not saved"),
        }
        let noop = Entry {
            index: LogIndex(1),
            term: Term(1),
            payload: raft::Payload::Noop,
        };
        let (mut log, _) =
            wal::Log::open(&dir.path().join("log"), wal::Options::default()).unwrap();
        log.append(&[record_of(&noop)]).unwrap();
        log.sync().unwrap();
        drop(log);

        let (_storage, restored) = Storage::open(dir.path(), events_tx).unwrap();
        assert!(restored.recovered.entries.is_empty());
        assert_eq!(restored.snapshot.map(|s| s.index), Some(LogIndex(2864)));
    }
}

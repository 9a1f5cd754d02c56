//! Snapshots in the driver: deciding when to take one, compacting the log behind it, sending
//! it to followers that need it, and installing one received from the leader.
//!
//! The store is serialised by the runtime from an immutable copy (`Output::SaveSnapshot`
//! carries a clone: the files' contents are shared buffers, so the copy costs pointers, not
//! bytes), so client traffic does not wait for a snapshot to be written.

use fs::Store;
use raft::{Event, LogIndex, Message, NodeId, Term};

use crate::Replica;
use crate::output::{Now, Output};
use crate::transfer::{ReceiveStep, SendStep};
use crate::wire::{Chunk, ChunkAck, Offer, PeerMessage};

/// When to snapshot, and how much log to keep behind a snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SnapshotPolicy {
    /// Snapshot once this many entries were applied since the last snapshot.
    pub entries: u64,
    /// ... or once their commands add up to this many bytes.
    pub bytes: u64,
    /// Entries kept in the log behind a snapshot, so a follower slightly behind catches up
    /// from the log rather than by snapshot.
    pub trailing_entries: u64,
}

/// Default `snapshot_entries`: a restart replays at most this many entries (milliseconds).
pub const SNAPSHOT_ENTRIES_DEFAULT: u64 = 10_000;
/// Default `snapshot_bytes` (64 MiB): bounds the log's disk and memory between snapshots.
pub const SNAPSHOT_BYTES_DEFAULT: u64 = 64 << 20;
/// Default `snapshot_trailing_entries`: a follower a second or so behind under load still
/// catches up from the log.
pub const SNAPSHOT_TRAILING_ENTRIES_DEFAULT: u64 = 1_000;

impl Default for SnapshotPolicy {
    fn default() -> SnapshotPolicy {
        SnapshotPolicy {
            entries: SNAPSHOT_ENTRIES_DEFAULT,
            bytes: SNAPSHOT_BYTES_DEFAULT,
            trailing_entries: SNAPSHOT_TRAILING_ENTRIES_DEFAULT,
        }
    }
}

/// A durable snapshot of this node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SnapshotInfo {
    /// Last index it covers.
    pub index: LogIndex,
    /// Term of the entry at `index`.
    pub term: Term,
    /// Length of its file, as sent to followers.
    pub file_bytes: u64,
}

/// Snapshot counts since start, for status and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SnapshotCounts {
    /// Snapshots this node made of its own store.
    pub made: u64,
    /// Snapshots delivered to followers.
    pub sent: u64,
    /// Snapshots received from a leader and installed.
    pub installed: u64,
}

/// The driver's book of snapshots.
#[derive(Debug)]
pub(crate) struct Snapshots {
    latest: Option<SnapshotInfo>,
    /// A snapshot the runtime is writing, by index.
    saving: Option<LogIndex>,
    /// Entries applied since the last snapshot (taken or started).
    entries_since: u64,
    /// Their command bytes.
    bytes_since: u64,
    counts: SnapshotCounts,
}

impl Snapshots {
    pub(crate) fn new(latest: Option<SnapshotInfo>) -> Snapshots {
        Snapshots {
            latest,
            saving: None,
            entries_since: 0,
            bytes_since: 0,
            counts: SnapshotCounts::default(),
        }
    }

    pub(crate) fn latest(&self) -> Option<SnapshotInfo> {
        self.latest
    }

    pub(crate) fn counts(&self) -> SnapshotCounts {
        self.counts
    }

    /// An entry of `bytes` command bytes was applied.
    pub(crate) fn applied(&mut self, bytes: u64) {
        self.entries_since += 1;
        self.bytes_since = self.bytes_since.saturating_add(bytes);
    }

    fn due(&self, policy: &SnapshotPolicy) -> bool {
        self.saving.is_none()
            && (self.entries_since >= policy.entries.max(1) || self.bytes_since >= policy.bytes)
    }

    fn started(&mut self, index: LogIndex) {
        self.saving = Some(index);
        self.entries_since = 0;
        self.bytes_since = 0;
    }

    /// Records a durable snapshot of our own; false if it is not newer than the latest.
    fn saved(&mut self, info: SnapshotInfo) -> bool {
        if self.saving == Some(info.index) {
            self.saving = None;
        }
        if self.latest.is_some_and(|l| l.index >= info.index) {
            return false;
        }
        self.latest = Some(info);
        self.counts.made += 1;
        true
    }

    fn installed(&mut self, info: SnapshotInfo) {
        self.latest = Some(info);
        self.entries_since = 0;
        self.bytes_since = 0;
        self.counts.installed += 1;
    }
}

impl<T> Replica<T> {
    /// The runtime made the snapshot of an `Output::SaveSnapshot` durable: the core records it
    /// and compacts its log, and the disk's log prefix behind it goes too.
    pub fn snapshot_saved(&mut self, now: Now, info: SnapshotInfo, out: &mut Vec<Output<T>>) {
        let found = self.snapshots.saved(info) && self.compact(now, info, out);
        self.settle(now, found, out);
    }

    /// Tells the core of the durable snapshot `info`, so it compacts its log behind it (keeping
    /// the trailing entries), and drops the same prefix from the disk; true if the step found a
    /// leader.
    fn compact(&mut self, now: Now, info: SnapshotInfo, out: &mut Vec<Output<T>>) -> bool {
        let first_before = self.core.first_index();
        let keep_from =
            LogIndex((info.index.0 + 1).saturating_sub(self.config.snapshot.trailing_entries))
                .max(first_before);
        let event = Event::SnapshotSaved {
            index: info.index,
            term: info.term,
            keep_from,
        };
        let found = self.step(now, event, out);
        let first_after = self.core.first_index();
        if first_after > first_before {
            out.push(Output::LogDiscard {
                upto: first_after.prev(),
            });
        }
        found
    }

    /// The snapshot the transfer to `to` needs can no longer be read (a newer one replaced
    /// it): the transfer ends, and the core asks again with the newest if still needed.
    pub fn chunk_unavailable(&mut self, now: Now, to: NodeId, out: &mut Vec<Output<T>>) {
        let mut steps = Vec::new();
        self.senders.abort(to, &mut steps);
        let found = self.send_steps(now, steps, out);
        self.settle(now, found, out);
    }

    /// The runtime made the staging file of `index` durable and verified it: `store` is what
    /// it restored from it (`None` if it did not verify, and the leader is asked to start
    /// over). The core then decides whether to install it.
    pub fn snapshot_staged(
        &mut self,
        now: Now,
        index: LogIndex,
        store: Option<Store>,
        out: &mut Vec<Output<T>>,
    ) {
        let term = self.core.term();
        let mut steps = Vec::new();
        let ok = store.is_some();
        let offer = self.receiver.staged(index, ok, term, &mut steps);
        self.receive_steps(steps, out);
        let mut found = false;
        if let (Some(offer), Some(store)) = (offer, store) {
            let total = self.receiver.total_bytes();
            self.staged_store = Some((index, store, total));
            let leader = offer.leader;
            found = self.step(
                now,
                Event::Message {
                    from: leader,
                    msg: Message::InstallSnapshot(offer),
                },
                out,
            );
            if self.staged_store.take().is_some() {
                // The core did not take it (not newer than its commit, or a stale leader):
                // the transfer is over all the same.
                let mut steps = Vec::new();
                self.receiver.done(index, self.core.term(), &mut steps);
                self.receive_steps(steps, out);
            }
        }
        self.settle(now, found, out);
    }

    /// The install of an `Output::InstallSnapshot` is durable.
    pub fn snapshot_installed(
        &mut self,
        now: Now,
        index: LogIndex,
        term: Term,
        out: &mut Vec<Output<T>>,
    ) {
        let found = self.step(now, Event::SnapshotInstalled { index, term }, out);
        let mut steps = Vec::new();
        self.receiver.done(index, self.core.term(), &mut steps);
        self.receive_steps(steps, out);
        self.settle(now, found, out);
    }

    /// Starts a snapshot if enough was applied since the last one.
    pub(crate) fn maybe_snapshot(&mut self, out: &mut Vec<Output<T>>) {
        let newer = self.snapshots.latest.is_none_or(|l| self.applied > l.index);
        if !newer || !self.snapshots.due(&self.config.snapshot) || self.staged_store.is_some() {
            return;
        }
        let Some(membership) = self.core.membership_at(self.applied).cloned() else {
            // The core keeps its log's base at or below every index applied since the last
            // snapshot; nothing to snapshot otherwise.
            return;
        };
        self.snapshots.started(self.applied);
        out.push(Output::SaveSnapshot {
            index: self.applied,
            term: self.applied_term,
            store: self.store.clone(),
            membership,
        });
    }

    /// `Action::SendSnapshot`: start streaming our latest snapshot to `to`.
    pub(crate) fn send_snapshot(
        &mut self,
        now: Now,
        to: NodeId,
        request: Offer,
        out: &mut Vec<Output<T>>,
    ) {
        let mut steps = Vec::new();
        match self.snapshots.latest {
            Some(latest) if latest.index == request.index => {
                let config = self.config.transfer;
                self.senders.start(
                    to,
                    request,
                    latest.file_bytes,
                    now.mono,
                    &config,
                    &mut steps,
                );
            }
            // The core names a snapshot this driver never told it of: nothing to send; the
            // core hears so and asks again.
            _ => steps.push(SendStep::Report {
                to,
                index: request.index,
                installed: false,
            }),
        }
        self.send_steps(now, steps, out);
    }

    /// `Action::InstallSnapshot`: switch to the staged store and have the runtime make the
    /// install durable.
    pub(crate) fn install_snapshot(
        &mut self,
        index: LogIndex,
        term: Term,
        keep_log: bool,
        out: &mut Vec<Output<T>>,
    ) {
        let staged = self.staged_store.take();
        let Some((staged_index, store, file_bytes)) = staged else {
            panic!("the core installs snapshot {index} that the driver did not stage");
        };
        assert_eq!(staged_index, index, "the core installs the staged snapshot");
        self.store = store;
        self.applied = index;
        self.applied_term = term;
        self.snapshots.installed(SnapshotInfo {
            index,
            term,
            file_bytes,
        });
        out.push(Output::InstallSnapshot {
            index,
            term,
            keep_log,
        });
    }

    /// A chunk from `from`.
    pub(crate) fn on_chunk(
        &mut self,
        now: Now,
        from: NodeId,
        chunk: Chunk,
        out: &mut Vec<Output<T>>,
    ) {
        let mut steps = Vec::new();
        self.receiver
            .on_chunk(from, chunk, self.applied, self.core.term(), &mut steps);
        self.receive_steps(steps, out);
        self.settle(now, false, out);
    }

    /// A chunk ack from `from`.
    pub(crate) fn on_chunk_ack(
        &mut self,
        now: Now,
        from: NodeId,
        ack: ChunkAck,
        out: &mut Vec<Output<T>>,
    ) {
        let mut steps = Vec::new();
        let config = self.config.transfer;
        self.senders
            .on_ack(from, ack, now.mono, &config, &mut steps);
        let found = self.send_steps(now, steps, out);
        self.settle(now, found, out);
    }

    /// Retries stalled transfers; true if a step found a leader.
    pub(crate) fn tick_transfers(&mut self, now: Now, out: &mut Vec<Output<T>>) -> bool {
        let mut steps = Vec::new();
        let config = self.config.transfer;
        self.senders.tick(now.mono, &config, &mut steps);
        self.send_steps(now, steps, out)
    }

    /// Carries out the leader side's steps; true if a step of the core found a leader.
    fn send_steps(&mut self, now: Now, steps: Vec<SendStep>, out: &mut Vec<Output<T>>) -> bool {
        let mut found = false;
        for step in steps {
            match step {
                SendStep::Chunk {
                    to,
                    offer,
                    offset,
                    len,
                    total_bytes,
                } => out.push(Output::SendChunk {
                    to,
                    offer,
                    offset,
                    len,
                    total_bytes,
                }),
                SendStep::Report {
                    to,
                    index,
                    installed,
                } => {
                    if installed {
                        self.snapshots.counts.sent += 1;
                    }
                    let event = Event::SnapshotReport {
                        to,
                        index,
                        installed,
                    };
                    found |= self.step(now, event, out);
                }
            }
        }
        found
    }

    /// Carries out the follower side's steps.
    fn receive_steps(&mut self, steps: Vec<ReceiveStep>, out: &mut Vec<Output<T>>) {
        for step in steps {
            match step {
                ReceiveStep::Stage {
                    offer,
                    offset,
                    data,
                } => out.push(Output::StageChunk {
                    offer,
                    offset,
                    data,
                }),
                ReceiveStep::Finish { offer } => out.push(Output::StageFinish { offer }),
                ReceiveStep::Ack { to, ack } => out.push(Output::Send {
                    to,
                    msg: PeerMessage::ChunkAck(ack),
                }),
            }
        }
    }
}

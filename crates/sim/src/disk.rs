//! A node's simulated disk: what is durable, kept apart from what is only written.
//!
//! Storage operations (the hard state, log truncations and appends, snapshots saved or
//! installed, log prefixes discarded) queue up and become durable in the order they were
//! submitted, each after a random latency (the fsync), several often at the same instant (group
//! commit, reported with one acknowledgement). A crash throws away every operation not yet
//! durable, except that a random prefix of them, counted in records (a hard state, a
//! truncation, one entry, a snapshot), may survive: the OS may have flushed some before the
//! power went. The core must be safe either way. This is the redb `crash_consistency` idea:
//! written and durable bytes are kept apart.
//!
//! The log is held from its first index on (a discarded prefix is gone, as on a real disk);
//! its [`Chain`] of prefix fingerprints always covers the whole prefix from index 1, the part
//! below the first index standing for what the snapshot holds, so the checks compare whole
//! histories whatever was compacted.

use std::collections::VecDeque;

use bytes::Bytes;
use raft::{Entry, HardState, LogIndex, Term};
use replica::SnapshotInfo;

use crate::chain::Chain;
use crate::clock::SimTime;

/// A snapshot file: what it covers and its bytes (see [`crate::snapfile`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotFile {
    /// What it covers.
    pub info: SnapshotInfo,
    /// The file.
    pub bytes: Bytes,
}

/// One storage operation, as the driver asked for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DiskOp {
    /// `Output::SaveState`.
    SaveState(HardState),
    /// `Output::LogTruncate`: drop entries at this index and after.
    Truncate(LogIndex),
    /// `Output::LogStore`: append these entries.
    Store(Vec<Entry>),
    /// `Output::SaveSnapshot`: the node's own snapshot, written atomically.
    SaveSnapshot(SnapshotFile),
    /// `Output::LogDiscard`: drop the log up to this index.
    Discard(LogIndex),
    /// `Output::StageFinish`: fsync a received snapshot's staging file (nothing of it survives
    /// a restart: staging files are removed at start).
    SyncStaging {
        /// The snapshot's index.
        index: LogIndex,
        /// The staged file.
        file: Bytes,
    },
    /// `Output::InstallSnapshot`: the staged file becomes the snapshot (atomically), then the
    /// log up to its index goes, and unless `keep_log` everything after it too. `chain` is the
    /// committed history up to the snapshot's index, which the disk's chain becomes when the
    /// log is not kept.
    Install {
        /// The snapshot.
        file: SnapshotFile,
        /// Whether the log after the snapshot stays.
        keep_log: bool,
        /// The committed prefix up to the snapshot's index.
        chain: Chain,
    },
}

impl DiskOp {
    /// Records the operation counts as when a crash cuts through it (one per entry).
    fn records(&self) -> usize {
        match self {
            DiskOp::Store(entries) => entries.len(),
            _ => 1,
        }
    }
}

/// What may survive a crash of the operations in flight.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CrashOrder {
    /// A prefix of them, in submission order, counted in records (the simulator brief's
    /// model, and what the `raft` crate documentation asks of a driver).
    #[default]
    Prefix,
    /// What the production WAL writer (`wal::Writer`) does: of the batch being synced, the last
    /// hard state is made durable first (its own fsync), then a prefix of the batch's log
    /// records may reach the disk; later batches are lost whole.
    WalBatch,
}

/// What the runtime reports to the driver once operations are durable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Completion {
    /// Report `state_saved`.
    StateSaved(HardState),
    /// Report `log_stored` (the last entry of the last write covered).
    LogStored {
        /// Last index written.
        index: LogIndex,
        /// Its term.
        term: Term,
    },
    /// Report `snapshot_saved`.
    SnapshotSaved(SnapshotInfo),
    /// The staging file is durable: verify it and report `snapshot_staged`.
    Staged {
        /// The snapshot's index.
        index: LogIndex,
        /// The staged file.
        file: Bytes,
    },
    /// Report `snapshot_installed`.
    Installed {
        /// The snapshot's index.
        index: LogIndex,
        /// Its term.
        term: Term,
    },
}

/// What a restarting node reads back.
#[derive(Debug, Clone)]
pub struct DiskImage {
    /// The durable hard state.
    pub hard_state: HardState,
    /// The newest durable snapshot.
    pub snapshot: Option<SnapshotFile>,
    /// The log's first index.
    pub first: LogIndex,
    /// The durable log from `first` on.
    pub entries: Vec<Entry>,
}

/// An operation waiting for its fsync.
#[derive(Debug, Clone)]
struct Pending {
    op: DiskOp,
    done_at: SimTime,
}

/// What a crash did to the operations in flight.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CrashLoss {
    /// Records that reached the disk although never acknowledged.
    pub survived: usize,
    /// Records lost.
    pub lost: usize,
}

/// One node's disk. See the module documentation.
#[derive(Debug, Clone, Default)]
pub struct Disk {
    /// The durable hard state.
    hard_state: HardState,
    /// The durable log's first index (1 until a prefix is discarded).
    first: u64,
    /// The durable log, index `i` at position `i - first`.
    log: Vec<Entry>,
    /// Prefix fingerprints of the whole history: the snapshot's part, then `log`.
    chain: Chain,
    /// The newest durable snapshot.
    snapshot: Option<SnapshotFile>,
    /// Operations submitted and not yet durable, in submission order, `done_at` non-decreasing.
    pending: VecDeque<Pending>,
    /// Until then, no operation completes (a stalled disk).
    stall_until: SimTime,
    /// Sabotage: acknowledge operations when submitted instead of when durable (a disk that lies
    /// about fsync). Only the tests that prove the checks bite turn this on.
    lying: bool,
    /// What a crash may keep of the operations in flight.
    order: CrashOrder,
}

impl Disk {
    /// An empty disk; `lying` makes it acknowledge writes before they are durable.
    pub fn new(lying: bool) -> Disk {
        Disk {
            lying,
            first: 1,
            ..Disk::default()
        }
    }

    /// The same disk, with what a crash may keep decided by `order`.
    pub fn with_crash_order(self, order: CrashOrder) -> Disk {
        Disk { order, ..self }
    }

    /// Queues `op` to become durable `latency_us` from `now` (never before the operations
    /// queued before it, nor during a stall). Returns when it completes and, for a lying disk,
    /// the acknowledgement to give at once.
    pub fn submit(
        &mut self,
        op: DiskOp,
        now: SimTime,
        latency_us: u64,
    ) -> (SimTime, Option<Completion>) {
        let tail = self.pending.back().map_or(now, |p| p.done_at);
        let done_at = now.plus_us(latency_us).max(tail).max(self.stall_until);
        let early_ack = if self.lying { completion_of(&op) } else { None };
        self.pending.push_back(Pending { op, done_at });
        (done_at, early_ack)
    }

    /// Makes every operation due by `now` durable, appending the acknowledgements to `out` in
    /// order; consecutive log writes share one `LogStored` (group commit).
    pub fn complete_due(&mut self, now: SimTime, out: &mut Vec<Completion>) {
        let mut stored: Option<Completion> = None;
        while let Some(p) = self.pending.front() {
            if p.done_at > now {
                break;
            }
            let Some(Pending { op, .. }) = self.pending.pop_front() else {
                break;
            };
            let ack = completion_of(&op);
            let records = op.records();
            self.make_durable(op, records);
            if self.lying {
                continue;
            }
            match ack {
                Some(c @ Completion::LogStored { .. }) => stored = Some(c),
                Some(c) => {
                    out.extend(stored.take());
                    out.push(c);
                }
                None => {}
            }
        }
        out.extend(stored);
    }

    /// When the next queued operation completes, if any.
    pub fn next_due(&self) -> Option<SimTime> {
        self.pending.front().map(|p| p.done_at)
    }

    /// Stalls the disk until `until`: nothing queued, or queued before then, completes earlier.
    pub fn stall(&mut self, until: SimTime) {
        self.stall_until = self.stall_until.max(until);
        for p in &mut self.pending {
            p.done_at = p.done_at.max(until);
        }
    }

    /// Ends a stall early (the simulation heals every fault at the end): what waited for it
    /// completes now.
    pub fn end_stall(&mut self, now: SimTime) {
        if self.stall_until <= now {
            return;
        }
        self.stall_until = now;
        for p in &mut self.pending {
            p.done_at = p.done_at.min(now);
        }
    }

    /// Records a crash now could keep: every record in flight for [`CrashOrder::Prefix`]; the
    /// log records of the batch being synced, plus one for its hard state, for
    /// [`CrashOrder::WalBatch`].
    pub fn records_in_flight(&self) -> usize {
        match self.order {
            CrashOrder::Prefix => self.pending.iter().map(|p| p.op.records()).sum(),
            CrashOrder::WalBatch => {
                let batch = self.first_batch();
                let log: usize = batch
                    .iter()
                    .filter(|op| !matches!(op, DiskOp::SaveState(_)))
                    .map(|op| op.records())
                    .sum();
                let state = usize::from(batch.iter().any(|op| matches!(op, DiskOp::SaveState(_))));
                log + state
            }
        }
    }

    /// The operations of the batch being synced now: those due first, at the same instant.
    fn first_batch(&self) -> Vec<&DiskOp> {
        let Some(first) = self.pending.front().map(|p| p.done_at) else {
            return Vec::new();
        };
        self.pending
            .iter()
            .take_while(|p| p.done_at == first)
            .map(|p| &p.op)
            .collect()
    }

    /// The machine crashed: the first `survive` of the records [`Disk::records_in_flight`]
    /// counts reach the disk (in the crash order's sense), the rest are lost. The stall ends
    /// with the machine.
    pub fn crash(&mut self, survive: usize) -> CrashLoss {
        let total: usize = self.pending.iter().map(|p| p.op.records()).sum();
        let mut left = survive.min(self.records_in_flight());
        let pending: Vec<Pending> = std::mem::take(&mut self.pending).into();
        let mut kept = 0;
        match self.order {
            CrashOrder::Prefix => {
                for Pending { op, .. } in pending {
                    if left == 0 {
                        break;
                    }
                    let take = op.records().min(left);
                    left -= take;
                    kept += take;
                    self.make_durable(op, take);
                }
            }
            CrashOrder::WalBatch => {
                let first = pending.first().map(|p| p.done_at);
                let batch: Vec<DiskOp> = pending
                    .into_iter()
                    .take_while(|p| Some(p.done_at) == first)
                    .map(|p| p.op)
                    .collect();
                // The writer saves the batch's last hard state (its own fsync) before any of
                // the batch's log records can reach the disk.
                let state = batch.iter().rev().find_map(|op| match op {
                    DiskOp::SaveState(hs) => Some(*hs),
                    _ => None,
                });
                // A cut before the hard state (left == 0) keeps nothing of the batch.
                if let Some(hs) = state
                    && left > 0
                {
                    left -= 1;
                    kept += 1;
                    self.hard_state = hs;
                }
                for op in batch {
                    if matches!(op, DiskOp::SaveState(_)) {
                        continue;
                    }
                    let records = op.records();
                    let take = records.min(left);
                    left -= take;
                    kept += take;
                    if take > 0 {
                        self.make_durable(op, take);
                    }
                }
            }
        }
        self.stall_until = SimTime(0);
        CrashLoss {
            survived: kept,
            lost: total.saturating_sub(kept),
        }
    }

    /// What a restarting node reads back.
    pub fn image(&self) -> DiskImage {
        DiskImage {
            hard_state: self.hard_state,
            snapshot: self.snapshot.clone(),
            first: LogIndex(self.first),
            entries: self.log.clone(),
        }
    }

    /// The fixes of `replica::reconcile`, made durable at once (the runtime syncs them before
    /// the node starts).
    pub fn fix(&mut self, truncate_from: Option<LogIndex>, discard_upto: Option<LogIndex>) {
        if let Some(from) = truncate_from {
            self.make_durable(DiskOp::Truncate(from), 1);
        }
        if let Some(upto) = discard_upto {
            self.make_durable(DiskOp::Discard(upto), 1);
        }
    }

    /// The newest durable snapshot.
    pub fn snapshot(&self) -> Option<&SnapshotFile> {
        self.snapshot.as_ref()
    }

    /// The durable hard state.
    pub fn hard_state(&self) -> HardState {
        self.hard_state
    }

    /// Prefix fingerprints of the durable log.
    pub fn chain(&self) -> &Chain {
        &self.chain
    }

    /// Applies the first `records` records of `op` to the durable state.
    fn make_durable(&mut self, op: DiskOp, records: usize) {
        match op {
            DiskOp::SaveState(hs) => self.hard_state = hs,
            DiskOp::Truncate(from) => {
                self.log
                    .truncate(from.0.saturating_sub(self.first) as usize);
                self.chain.truncate(from.0.max(self.first));
            }
            DiskOp::Store(entries) => {
                for entry in entries.into_iter().take(records) {
                    // A write that does not follow the log overwrites from its index, as an
                    // append-at-offset would; the simulator's log-contract check reports the
                    // core's mistake before it gets here.
                    let Some(at) = entry.index.0.checked_sub(self.first) else {
                        break;
                    };
                    let at = at as usize;
                    if at > self.log.len() {
                        break;
                    }
                    self.log.truncate(at);
                    self.chain.truncate(entry.index.0);
                    self.chain.push(&entry);
                    self.log.push(entry);
                }
            }
            DiskOp::SaveSnapshot(file) => {
                if self
                    .snapshot
                    .as_ref()
                    .is_none_or(|s| s.info.index < file.info.index)
                {
                    self.snapshot = Some(file);
                }
            }
            DiskOp::Discard(upto) => self.discard(upto.0),
            DiskOp::SyncStaging { .. } => {}
            DiskOp::Install {
                file,
                keep_log,
                chain,
            } => {
                let index = file.info.index.0;
                self.snapshot = Some(file);
                self.discard(index);
                if !keep_log {
                    self.log.clear();
                    self.chain = chain;
                }
            }
        }
    }

    /// Drops the log up to `upto`; the log then starts at `upto + 1` (empty if it ended before).
    fn discard(&mut self, upto: u64) {
        let first = upto + 1;
        if first <= self.first {
            return;
        }
        let drop = ((first - self.first) as usize).min(self.log.len());
        self.log.drain(..drop);
        self.first = first;
    }
}

/// The acknowledgement an operation earns once durable (a truncation or a discard earns none
/// of its own).
fn completion_of(op: &DiskOp) -> Option<Completion> {
    match op {
        DiskOp::SaveState(hs) => Some(Completion::StateSaved(*hs)),
        DiskOp::Truncate(_) | DiskOp::Discard(_) => None,
        DiskOp::Store(entries) => entries.last().map(|e| Completion::LogStored {
            index: e.index,
            term: e.term,
        }),
        DiskOp::SaveSnapshot(file) => Some(Completion::SnapshotSaved(file.info)),
        DiskOp::SyncStaging { index, file } => Some(Completion::Staged {
            index: *index,
            file: file.clone(),
        }),
        DiskOp::Install { file, .. } => Some(Completion::Installed {
            index: file.info.index,
            term: file.info.term,
        }),
    }
}

//! Snapshot transfer: the leader streams a snapshot file to a follower in bounded chunks, a
//! window at a time, beside (never inside) Raft's messages; the follower stages them in order
//! and hands the core the leader's `InstallSnapshot` request once every byte is durable.
//!
//! Both halves are pure state machines; the runtime reads chunks from its snapshot file and
//! writes them to a staging file. Chunks may be lost, duplicated or reordered:
//! - the follower takes only the chunk that continues what it has (`offset == received`) and
//!   answers every chunk with how far it is, so the leader resumes from there (go-back-N);
//! - the leader resends from the last acknowledged offset when no ack has made progress for
//!   `retry_ms`, and gives up after `retries_max` rounds without progress (the core is told,
//!   and asks again later if the follower still needs it);
//! - a transfer survives a dropped connection (both sides keep their place); a follower that
//!   restarts starts from zero, and tells the leader so by acknowledging 0;
//! - a snapshot not newer than what the follower has applied is refused at once (`Done`), so a
//!   snapshot never rolls a node back.

use std::collections::BTreeMap;

use bytes::Bytes;
use raft::{LogIndex, Millis, NodeId, Term};

use crate::wire::{AckStatus, Chunk, ChunkAck, Offer};

/// Largest snapshot file a follower accepts to stage (16 GiB): far above any store this
/// project means to hold, and a bound on the disk a hostile or broken leader can fill.
pub const SNAPSHOT_FILE_BYTES_MAX: u64 = 16 << 30;

/// Settings of snapshot transfer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TransferConfig {
    /// Most bytes in one chunk.
    pub chunk_bytes: u64,
    /// Chunks in flight to one follower before the leader waits for an ack.
    pub window_chunks: u64,
    /// The leader resends from the last acknowledged offset after this long without progress.
    pub retry_ms: u64,
    /// Rounds without progress after which the leader gives the transfer up.
    pub retries_max: u32,
}

impl TransferConfig {
    /// Defaults for an election timeout: 256 KiB chunks (a heartbeat on another connection is
    /// never behind more than one), 4 in flight, a retry after an election timeout.
    pub fn for_election_timeout(election_timeout_ms: u64) -> TransferConfig {
        TransferConfig {
            chunk_bytes: 256 * 1024,
            window_chunks: 4,
            retry_ms: election_timeout_ms,
            retries_max: 5,
        }
    }
}

/// What the leader's side asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum SendStep {
    /// Read `len` bytes at `offset` of the snapshot file at `offer.index` and send them to `to`.
    Chunk {
        to: NodeId,
        offer: Offer,
        offset: u64,
        len: u64,
        total_bytes: u64,
    },
    /// The transfer to `to` ended; tell the core.
    Report {
        to: NodeId,
        index: LogIndex,
        installed: bool,
    },
}

/// One transfer in progress, at the leader.
#[derive(Debug, Clone)]
struct Outgoing {
    offer: Offer,
    total: u64,
    /// Bytes the follower confirmed, in order from the start.
    acked: u64,
    /// Bytes sent so far in this round.
    sent: u64,
    /// When the transfer last made progress (or was started or retried).
    progress_at: Millis,
    /// Rounds without progress.
    retries: u32,
}

/// The leader's transfers, one per follower at most.
#[derive(Debug, Default)]
pub(crate) struct Senders {
    transfers: BTreeMap<NodeId, Outgoing>,
}

impl Senders {
    /// Starts (or keeps, if the same snapshot is already on its way) a transfer to `to`.
    pub(crate) fn start(
        &mut self,
        to: NodeId,
        offer: Offer,
        total: u64,
        now: Millis,
        config: &TransferConfig,
        out: &mut Vec<SendStep>,
    ) {
        if let Some(t) = self.transfers.get(&to)
            && t.offer == offer
        {
            return;
        }
        self.transfers.insert(
            to,
            Outgoing {
                offer,
                total,
                acked: 0,
                sent: 0,
                progress_at: now,
                retries: 0,
            },
        );
        self.fill_window(to, config, out);
    }

    /// A follower's ack.
    pub(crate) fn on_ack(
        &mut self,
        from: NodeId,
        ack: ChunkAck,
        now: Millis,
        config: &TransferConfig,
        out: &mut Vec<SendStep>,
    ) {
        let Some(t) = self.transfers.get_mut(&from) else {
            return;
        };
        if ack.index != t.offer.index || ack.received > t.total {
            return;
        }
        match ack.status {
            AckStatus::Done => {
                self.finish(from, true, out);
                return;
            }
            AckStatus::Restart => {
                t.acked = 0;
                t.sent = 0;
                t.progress_at = now;
            }
            AckStatus::Receiving => {
                if ack.received > t.acked {
                    t.acked = ack.received;
                    t.progress_at = now;
                    t.retries = 0;
                } else if ack.received == 0 && t.acked > 0 {
                    // The follower lost its staging (it restarted): from the start. Any other
                    // ack below what we know is merely late, and changes nothing.
                    t.acked = 0;
                    t.sent = 0;
                    t.progress_at = now;
                }
                t.sent = t.sent.max(t.acked);
            }
        }
        self.fill_window(from, config, out);
    }

    /// Resends what made no progress for `retry_ms`; gives up after `retries_max` rounds.
    pub(crate) fn tick(&mut self, now: Millis, config: &TransferConfig, out: &mut Vec<SendStep>) {
        let due: Vec<NodeId> = self
            .transfers
            .iter()
            .filter(|(_, t)| now.since(t.progress_at) >= config.retry_ms)
            .map(|(&to, _)| to)
            .collect();
        for to in due {
            let Some(t) = self.transfers.get_mut(&to) else {
                continue;
            };
            t.retries += 1;
            if t.retries > config.retries_max {
                self.finish(to, false, out);
                continue;
            }
            t.sent = t.acked;
            t.progress_at = now;
            self.fill_window(to, config, out);
        }
    }

    /// The runtime could not read the snapshot for `to` (replaced by a newer one): give up.
    pub(crate) fn abort(&mut self, to: NodeId, out: &mut Vec<SendStep>) {
        self.finish(to, false, out);
    }

    /// Drops every transfer without a word (this node no longer leads; the core forgot them).
    pub(crate) fn clear(&mut self) {
        self.transfers.clear();
    }

    /// When the next retry falls due.
    pub(crate) fn next_deadline(&self, config: &TransferConfig) -> Option<Millis> {
        self.transfers
            .values()
            .map(|t| t.progress_at.after(config.retry_ms))
            .min()
    }

    fn finish(&mut self, to: NodeId, installed: bool, out: &mut Vec<SendStep>) {
        if let Some(t) = self.transfers.remove(&to) {
            out.push(SendStep::Report {
                to,
                index: t.offer.index,
                installed,
            });
        }
    }

    /// Sends chunks until the window (counted from the last ack) is full or the file ends.
    fn fill_window(&mut self, to: NodeId, config: &TransferConfig, out: &mut Vec<SendStep>) {
        let Some(t) = self.transfers.get_mut(&to) else {
            return;
        };
        let chunk = config.chunk_bytes.max(1);
        let limit = t
            .acked
            .saturating_add(chunk.saturating_mul(config.window_chunks.max(1)))
            .min(t.total);
        // An empty file still needs one (empty) chunk to tell the follower it is complete.
        if t.total == 0 && t.sent == 0 && t.acked == 0 {
            out.push(SendStep::Chunk {
                to,
                offer: t.offer.clone(),
                offset: 0,
                len: 0,
                total_bytes: 0,
            });
            return;
        }
        while t.sent < limit {
            let len = chunk.min(limit - t.sent);
            out.push(SendStep::Chunk {
                to,
                offer: t.offer.clone(),
                offset: t.sent,
                len,
                total_bytes: t.total,
            });
            t.sent += len;
        }
    }
}

/// What the follower's side asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ReceiveStep {
    /// Write `data` at `offset` of the staging file for `offer` (offset 0: start it afresh).
    Stage {
        offer: Offer,
        offset: u64,
        data: Bytes,
    },
    /// Every byte is staged: make the staging file durable, verify it, and report.
    Finish { offer: Offer },
    /// Send this ack to the leader `to`.
    Ack { to: NodeId, ack: ChunkAck },
}

/// The one transfer a follower stages at a time.
#[derive(Debug, Clone)]
struct Incoming {
    offer: Offer,
    from: NodeId,
    total: u64,
    received: u64,
    /// `Finish` was asked for (or the core is installing): nothing more to stage.
    complete: bool,
}

/// The follower's side.
#[derive(Debug, Default)]
pub(crate) struct Receiver {
    staging: Option<Incoming>,
}

impl Receiver {
    /// A chunk arrives from `from`. `applied` is what the store reflects and `term` the core's
    /// term (chunks of older terms come from deposed leaders and are dropped).
    pub(crate) fn on_chunk(
        &mut self,
        from: NodeId,
        chunk: Chunk,
        applied: LogIndex,
        term: Term,
        out: &mut Vec<ReceiveStep>,
    ) {
        let Chunk {
            offer,
            total_bytes,
            offset,
            data,
        } = chunk;
        let len = data.len() as u64;
        let well_formed = offer.leader == from
            && total_bytes <= SNAPSHOT_FILE_BYTES_MAX
            && offset
                .checked_add(len)
                .is_some_and(|end| end <= total_bytes);
        if !well_formed || offer.term < term {
            return;
        }
        let (ack_term, ack_index) = (term.max(offer.term), offer.index);
        let ack = |received, status| ReceiveStep::Ack {
            to: from,
            ack: ChunkAck {
                term: ack_term,
                index: ack_index,
                received,
                status,
            },
        };
        if offer.index <= applied {
            // Not newer than what we have: never roll back; the leader may stop.
            out.push(ack(total_bytes, AckStatus::Done));
            return;
        }
        let same = self
            .staging
            .as_ref()
            .is_some_and(|s| s.offer == offer && s.total == total_bytes);
        if !same {
            if self.staging.as_ref().is_some_and(|s| s.complete) {
                // An install is under way; the leader retries later.
                return;
            }
            if offset != 0 {
                out.push(ack(0, AckStatus::Receiving));
                return;
            }
            self.staging = Some(Incoming {
                offer: offer.clone(),
                from,
                total: total_bytes,
                received: 0,
                complete: false,
            });
        }
        let Some(s) = self.staging.as_mut() else {
            return;
        };
        if s.complete || offset != s.received {
            out.push(ack(s.received, AckStatus::Receiving));
            return;
        }
        s.received += len;
        s.from = from;
        out.push(ReceiveStep::Stage {
            offer: offer.clone(),
            offset,
            data,
        });
        if s.received == s.total {
            s.complete = true;
            out.push(ReceiveStep::Finish { offer });
        }
        out.push(ack(s.received, AckStatus::Receiving));
    }

    /// The runtime made the staging file durable and checked it: the offer to hand the core,
    /// or `None` (and the leader is told to restart) if it did not verify.
    pub(crate) fn staged(
        &mut self,
        index: LogIndex,
        ok: bool,
        term: Term,
        out: &mut Vec<ReceiveStep>,
    ) -> Option<Offer> {
        let s = self.staging.as_ref().filter(|s| s.offer.index == index)?;
        if ok {
            return Some(s.offer.clone());
        }
        let (to, index) = (s.from, s.offer.index);
        self.staging = None;
        out.push(ReceiveStep::Ack {
            to,
            ack: ChunkAck {
                term,
                index,
                received: 0,
                status: AckStatus::Restart,
            },
        });
        None
    }

    /// The transfer at `index` is over (installed, or refused by the core as not newer): tell
    /// the leader it may stop.
    pub(crate) fn done(&mut self, index: LogIndex, term: Term, out: &mut Vec<ReceiveStep>) {
        let Some(s) = self.staging.take_if(|s| s.offer.index == index) else {
            return;
        };
        out.push(ReceiveStep::Ack {
            to: s.from,
            ack: ChunkAck {
                term,
                index,
                received: s.total,
                status: AckStatus::Done,
            },
        });
    }

    /// Length of the snapshot being staged (0 if none).
    pub(crate) fn total_bytes(&self) -> u64 {
        self.staging.as_ref().map_or(0, |s| s.total)
    }
}

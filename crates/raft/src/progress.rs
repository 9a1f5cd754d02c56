//! What a leader knows about one follower's log, and how it replicates to it (etcd's tracker).
//!
//! - **Probe**: the leader does not know where the follower's log matches; it sends one
//!   AppendEntries at a time and waits for the answer (or a heartbeat answer) before the next.
//! - **Replicate**: the follower is known to match up to `matched`; the leader streams entries
//!   optimistically, advancing `next` as it sends, up to a window of messages in flight.
//! - **Snapshot**: the entries the follower needs are compacted away; the driver is sending it a
//!   snapshot. No entries go to it until the driver reports the transfer's end (heartbeats still
//!   do), or until it answers that it holds the snapshot.

use crate::ids::LogIndex;
use crate::inflights::Inflights;

/// The replication mode towards one follower.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// Find the match point, one message at a time.
    Probe,
    /// Stream entries, pipelined.
    Replicate,
    /// Waiting for a snapshot up to this index.
    Snapshot(LogIndex),
}

/// A leader's view of one follower.
#[derive(Debug, Clone)]
pub(crate) struct Progress {
    /// Highest index known to match the leader's log and be durable on the follower.
    pub(crate) matched: LogIndex,
    /// Next index to send. Invariant: `matched < next`.
    pub(crate) next: LogIndex,
    /// Replication mode.
    pub(crate) mode: Mode,
    /// In probe mode: a probe is outstanding, send no other until an answer arrives.
    pub(crate) probe_sent: bool,
    /// In replicate mode: the messages in flight.
    pub(crate) inflights: Inflights,
    /// Heard from since the last check-quorum round.
    pub(crate) recent_active: bool,
    /// Highest ReadIndex round the follower has answered in this term.
    pub(crate) read_round: u64,
}

impl Progress {
    /// A fresh view on election: nothing known, probe from the leader's next index.
    pub(crate) fn new(next: LogIndex, max_inflight: usize) -> Progress {
        Progress {
            matched: LogIndex(0),
            next,
            mode: Mode::Probe,
            probe_sent: false,
            inflights: Inflights::new(max_inflight),
            recent_active: false,
            read_round: 0,
        }
    }

    /// Back to probing just after the known match.
    pub(crate) fn become_probe(&mut self) {
        // Coming back from a snapshot, the follower holds at least the snapshot.
        let floor = match self.mode {
            Mode::Snapshot(index) => index.max(self.matched),
            _ => self.matched,
        };
        self.mode = Mode::Probe;
        self.next = LogIndex(floor.0 + 1);
        self.probe_sent = false;
        self.inflights.reset();
    }

    /// Start streaming after the probe that was answered (never at or below the known match).
    ///
    /// A follower acknowledges only what is durable, so its answer to a probe may name less than
    /// the probe carried: it holds those entries but has not written them yet. Streaming from
    /// the probe's point, not from the durable match, sends nothing twice, and above all does
    /// not ask for entries compacted since (a snapshot sent over and over to a follower whose
    /// only lag is its disk). Were the answer stale and the logs did not match there, the
    /// follower rejects and probing resumes from the match.
    pub(crate) fn become_replicate(&mut self) {
        self.mode = Mode::Replicate;
        self.next = self.next.max(LogIndex(self.matched.0 + 1));
        self.probe_sent = false;
        self.inflights.reset();
    }

    /// Stop sending entries: the follower needs a snapshot up to `index`.
    pub(crate) fn become_snapshot(&mut self, index: LogIndex) {
        self.mode = Mode::Snapshot(index);
        self.probe_sent = false;
        self.inflights.reset();
    }

    /// The driver's transfer of the snapshot at `index` ended. Returns false, changing nothing,
    /// unless the follower was waiting for exactly that snapshot (a stale report). Then it goes
    /// back to probing, paused until the follower answers (etcd): after `index` if the snapshot
    /// was delivered (the follower acknowledges it once installed), else after its last known
    /// match (the next heartbeat answer lets that probe go; it finds again that a snapshot is
    /// needed, so a failed transfer is retried at the heartbeat's pace, not in a tight loop).
    pub(crate) fn on_snapshot_report(&mut self, index: LogIndex, installed: bool) -> bool {
        if self.mode != Mode::Snapshot(index) {
            return false;
        }
        if !installed {
            // Leaving snapshot mode first makes `become_probe` start from the match.
            self.mode = Mode::Probe;
        }
        self.become_probe();
        self.probe_sent = true;
        true
    }

    /// True if no AppendEntries carrying entries may be sent now.
    pub(crate) fn is_paused(&self) -> bool {
        match self.mode {
            Mode::Probe => self.probe_sent,
            Mode::Replicate => self.inflights.is_full(),
            Mode::Snapshot(_) => true,
        }
    }

    /// Records that a message carrying entries up to `last` (or none, if `last < next`) was sent.
    pub(crate) fn sent(&mut self, last: LogIndex) {
        match self.mode {
            Mode::Replicate => {
                if last >= self.next {
                    self.next = LogIndex(last.0 + 1);
                    self.inflights.add(last);
                }
            }
            Mode::Probe => self.probe_sent = true,
            Mode::Snapshot(_) => {}
        }
    }

    /// A success answer: the follower matches and holds durably up to `index`. Returns true if
    /// it tells something new (a higher match, or the first answer to a probe); a stale answer
    /// changes nothing that matters, and never moves `matched` or `next` backwards.
    pub(crate) fn on_success(&mut self, index: LogIndex) -> bool {
        let fresh = index > self.matched || (self.mode == Mode::Probe && index == self.matched);
        self.matched = self.matched.max(index);
        if fresh {
            self.probe_sent = false;
        }
        if self.next <= index {
            self.next = LogIndex(index.0 + 1);
        }
        self.inflights.free_le(index);
        fresh
    }

    /// A rejection of the AppendEntries whose `prev_log_index` was `rejected`; `probe_at` is where
    /// the leader's and the follower's hints say the logs may match. Returns false if the
    /// rejection is stale (answers an older message), in which case nothing changes.
    pub(crate) fn on_reject(&mut self, rejected: LogIndex, probe_at: LogIndex) -> bool {
        match self.mode {
            Mode::Replicate => {
                // Anything at or below the match was accepted once: a rejection of it is old.
                if rejected <= self.matched {
                    return false;
                }
                // Start over from the match point; probing finds the rest.
                self.become_probe();
                true
            }
            Mode::Probe => {
                // Only the answer to the outstanding probe counts.
                if rejected.0.checked_add(1) != Some(self.next.0) {
                    return false;
                }
                let next = rejected.min(LogIndex(probe_at.0.saturating_add(1)));
                self.next = next.max(LogIndex(self.matched.0 + 1));
                self.probe_sent = false;
                true
            }
            Mode::Snapshot(_) => false,
        }
    }

    /// Any message from the follower, for check-quorum.
    pub(crate) fn heard_from(&mut self) {
        self.recent_active = true;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn progress(matched: u64, next: u64, mode: Mode) -> Progress {
        let mut pr = Progress::new(LogIndex(next), 4);
        pr.matched = LogIndex(matched);
        pr.mode = mode;
        pr
    }

    #[test]
    fn stale_success_never_moves_match_back() {
        let mut pr = progress(5, 6, Mode::Replicate);
        assert!(!pr.on_success(LogIndex(3)));
        assert_eq!(pr.matched, LogIndex(5));
        assert_eq!(pr.next, LogIndex(6));
        assert!(pr.on_success(LogIndex(8)));
        assert_eq!((pr.matched, pr.next), (LogIndex(8), LogIndex(9)));
    }

    #[test]
    fn replicate_mode_ignores_rejections_at_or_below_match() {
        let mut pr = progress(5, 10, Mode::Replicate);
        assert!(!pr.on_reject(LogIndex(5), LogIndex(0)));
        assert_eq!(pr.next, LogIndex(10));
        assert!(pr.on_reject(LogIndex(7), LogIndex(0)));
        assert_eq!(pr.mode, Mode::Probe);
        assert_eq!(pr.next, LogIndex(6));
    }

    #[test]
    fn probe_mode_only_accepts_the_answer_to_the_outstanding_probe() {
        let mut pr = progress(0, 10, Mode::Probe);
        pr.probe_sent = true;
        assert!(!pr.on_reject(LogIndex(5), LogIndex(2)));
        assert!(pr.probe_sent);
        assert!(pr.on_reject(LogIndex(9), LogIndex(2)));
        assert_eq!(pr.next, LogIndex(3));
        assert!(!pr.probe_sent);
    }

    #[test]
    fn probe_never_goes_at_or_below_match() {
        let mut pr = progress(4, 10, Mode::Probe);
        assert!(pr.on_reject(LogIndex(9), LogIndex(1)));
        assert_eq!(pr.next, LogIndex(5));
    }

    #[test]
    fn snapshot_report_probes_after_the_snapshot_or_the_match() {
        // (report index, installed) -> (changed, next)
        let table = [
            ((10, true), (true, 11)),
            ((10, false), (true, 4)),
            ((9, true), (false, 7)),
            ((11, false), (false, 7)),
        ];
        for ((index, installed), (changed, next)) in table {
            let mut pr = progress(3, 7, Mode::Snapshot(LogIndex(10)));
            assert_eq!(pr.on_snapshot_report(LogIndex(index), installed), changed);
            assert_eq!(pr.next, LogIndex(next), "{index} {installed}");
            assert!(pr.is_paused(), "waits for an answer either way");
            assert_eq!(pr.mode == Mode::Probe, changed);
        }
    }

    #[test]
    fn replicate_window_pauses_when_full() {
        let mut pr = progress(0, 1, Mode::Replicate);
        for last in [2, 4, 6, 8] {
            assert!(!pr.is_paused());
            pr.sent(LogIndex(last));
        }
        assert!(pr.is_paused());
        assert_eq!(pr.next, LogIndex(9));
        pr.on_success(LogIndex(4));
        assert!(!pr.is_paused());
    }
}

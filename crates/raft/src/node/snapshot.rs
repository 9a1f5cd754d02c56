//! Snapshots (Raft section 7, thesis chapter 5) without their bytes: the driver takes, stores,
//! streams and restores them; the node decides when one is needed and keeps its log, commit
//! index and durability consistent with them.
//!
//! - Compaction: `Event::SnapshotSaved` raises the log's base (keeping some trailing entries).
//! - Leader: a follower that needs a compacted entry gets one `Action::SendSnapshot` and waits
//!   in snapshot mode until `Event::SnapshotReport` (or its answer) says the transfer ended.
//! - Follower: `Message::InstallSnapshot` (fed once the bytes are staged) is either not newer
//!   than the commit index, and changes nothing, or replaces the log up to its index (figure 13)
//!   and asks the driver to install it; its entries count as durable only at
//!   `Event::SnapshotInstalled`, so nothing is acknowledged that a crash could lose.

use super::{Node, RECOVERED_INDEX_MAX};
use crate::action::Action;
use crate::ids::{LogIndex, NodeId, Term};
use crate::message::InstallSnapshotRequest;
use crate::role::Role;

impl Node {
    /// `Event::SnapshotSaved`: the driver holds a durable snapshot through `index`.
    pub(super) fn on_snapshot_saved(&mut self, index: LogIndex, term: Term, keep_from: LogIndex) {
        if self.snapshot.is_some_and(|(latest, _)| index <= latest) {
            return;
        }
        // The base is at or below the latest snapshot, so a newer one is still in the log.
        let known = index <= self.commit && self.log.term(index) == Some(term);
        debug_assert!(
            known,
            "driver bug: snapshot ({index}, {term}) is not a committed entry of the log"
        );
        if !known {
            return;
        }
        self.snapshot = Some((index, term));
        let keep_from = keep_from.min(LogIndex(index.0.saturating_add(1)));
        let base = keep_from.prev();
        if base > self.log.base_index() {
            self.log.compact(base);
        }
        // The snapshot holds the entries up to `index` durably, whatever the WAL still writes.
        // (The stall clock stays: a snapshot says nothing about a stalled WAL.)
        if index > self.durable {
            self.durable = index;
            self.on_durable_raised();
        }
    }

    /// Leader: `to` needs entries at or below the log's base; only the snapshot can help. The
    /// caller has checked that `to` is not already waiting for one.
    pub(super) fn send_snapshot(&mut self, to: NodeId) {
        let Some((index, snapshot_term)) = self.snapshot else {
            debug_assert!(false, "a compacted log has a snapshot");
            return;
        };
        let Some(membership) = self.log.membership_at(index).map(|(_, m)| m.clone()) else {
            debug_assert!(false, "the snapshot is at or above the log's base");
            return;
        };
        let Some(progress) = self.progress.get_mut(&to) else {
            return;
        };
        progress.become_snapshot(index);
        let request = InstallSnapshotRequest {
            term: self.term,
            leader: self.config.id,
            index,
            snapshot_term,
            membership,
        };
        self.send_gated(Action::SendSnapshot { to, request });
    }

    /// `Event::SnapshotReport`: the transfer to `to` of the snapshot at `index` ended.
    pub(super) fn on_snapshot_report(&mut self, to: NodeId, index: LogIndex, installed: bool) {
        if self.role != Role::Leader {
            return;
        }
        if let Some(progress) = self.progress.get_mut(&to) {
            // Either way the follower's next answer (or heartbeat answer) restarts replication.
            progress.on_snapshot_report(index, installed);
        }
    }

    /// Follower: the leader's snapshot is staged here (figure 13, with the term rules of
    /// `step_message` already applied).
    pub(super) fn handle_install_snapshot(&mut self, req: InstallSnapshotRequest) {
        // A leader's snapshot holds no entry of a later term; an index beyond any real log
        // would bring index arithmetic near overflow.
        if req.snapshot_term > req.term
            || req.index.0 > RECOVERED_INDEX_MAX
            || req.membership.validate().is_err()
        {
            return;
        }
        if req.index <= self.commit {
            // Not newer than what is known committed: a snapshot never rolls a node back
            // (this is also a duplicate of an install in progress). Committed entries match the
            // leader's log, so say how far we match, counting only what is durable.
            self.leader_match = self.leader_match.max(req.index);
            self.acknowledge(true);
            return;
        }
        let kept = self.log.matches(req.index, req.snapshot_term);
        if kept {
            // Figure 13, step 6: the log agrees at the snapshot's end; keep what follows.
            self.log.compact(req.index);
            self.log.set_base_membership(req.membership);
        } else {
            // Only committed entries are known to agree with the leader: the durable rest may
            // be about to be truncated by the install.
            self.durable = self.durable.min(self.commit);
            self.log.reset(req.index, req.snapshot_term, req.membership);
        }
        self.snapshot = Some((req.index, req.snapshot_term));
        // The state machine jumps to the snapshot: nothing at or below it is reported.
        self.commit = req.index;
        self.reported = req.index;
        self.refresh_membership();
        self.leader_match = self.leader_match.max(req.index);
        // A write acknowledged during an earlier install stays pending: it counts only if the
        // log still holds what it wrote once this install is durable too.
        self.installing = Some((req.index, req.snapshot_term));
        // The hard state goes first: the install depends on the term that accepted it.
        self.emit_save_state();
        if self.write_pending_since.is_none() {
            self.write_pending_since = Some(self.now);
        }
        self.out.push(Action::InstallSnapshot {
            index: req.index,
            term: req.snapshot_term,
            kept_entries_after: kept,
        });
    }

    /// `Event::SnapshotInstalled`: the latest install is durable; so are the log writes
    /// acknowledged meanwhile, if the log still holds what they wrote.
    pub(super) fn on_snapshot_installed(&mut self, index: LogIndex, term: Term) {
        if self.installing != Some((index, term)) {
            return;
        }
        self.installing = None;
        let mut durable = self.durable.max(index);
        if let Some((stored, stored_term)) = self.stored_while_installing.take()
            && self.log.matches(stored, stored_term)
        {
            durable = durable.max(stored);
        }
        self.durable = durable;
        self.restart_stall_clock();
        self.on_durable_raised();
    }
}

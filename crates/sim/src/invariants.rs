//! The safety checks, run after every step: an omniscient observer that watches every node's
//! log writes, commits and roles and keeps the little global state the Raft safety properties
//! (Raft paper figure 3) need, so each check is incremental and O(1) or O(entries written).
//!
//! - Election safety: at most one leader per term, over the whole run.
//! - One vote per term: a node never grants its vote to two candidates in a term, even across
//!   restarts.
//! - Log matching: two logs holding an entry with the same index and term hold the same entry
//!   and the same prefix (compared through [`crate::chain`] links).
//! - Leader completeness: a new leader of term T holds every entry committed in a term before T.
//! - State-machine safety: no two nodes commit or apply different entries at one index.
//! - A live node's commit index never decreases.
//! - Nothing committed is lost: the committed prefix stays durable on a majority of disks at
//!   all times (across crashes), and no node truncates a committed entry on behalf of a leader
//!   of the entry's commit term or later.
//!
//! # White-box and black-box checks
//! The last two look inside a node: at what its disk holds and at the truncations it asks of
//! its disk, which no client and no Raft property sees. They run only in white-box mode
//! ([`Invariants::new`]; `RunOptions::check_durability`). Black-box mode keeps the rest: Raft's
//! published safety properties (election safety, log matching, leader completeness and
//! state-machine safety, Raft paper figure 3), one vote per term (judged from the votes on the
//! wire), and the commit index never decreasing (a consequence of state-machine safety: what a
//! node applied stays applied), plus the driver contract the harness needs to run at all.

use std::collections::{BTreeMap, BTreeSet};

use raft::{Entry, LogIndex, NodeId, Role, Term};

use crate::chain::{self, Chain};
use crate::failure::{Check, Violation};

/// What the observer knows of one node.
#[derive(Debug, Clone, Default)]
struct NodeView {
    /// The node's log as its writes describe it (durable or not): what its core holds.
    log: Chain,
    /// Its commit index at the last step (since its last restart).
    commit: LogIndex,
    /// The last index it applied (since its last restart).
    applied: LogIndex,
    /// The term in which it was last seen leading (leader completeness is checked once per term).
    led: Option<Term>,
}

/// The observer. See the module documentation.
#[derive(Debug, Clone)]
pub struct Invariants {
    majority: usize,
    /// Whether the checks that look inside a node (disks, truncations) run.
    white_box: bool,
    nodes: Vec<NodeView>,
    /// The leader of each term seen.
    leaders: BTreeMap<Term, NodeId>,
    /// Terms in which some node was seen a candidate (after a step).
    candidacies: BTreeSet<Term>,
    /// Votes granted: (voter, term) -> candidate.
    votes: BTreeMap<(NodeId, Term), NodeId>,
    /// Every (term, link) seen at each index in any log (position `i - 1`).
    seen: Vec<Vec<(Term, u64)>>,
    /// The committed prefix, as known so far.
    committed: Chain,
    /// Per committed index, the term of the leader that committed it (for an index first seen
    /// committed on a follower: the follower's term, an upper bound, which only weakens the
    /// leader-completeness check, never makes it cry wolf).
    commit_term: Vec<Term>,
}

impl Invariants {
    /// An observer of `nodes` nodes (node `k` has id `k + 1`), all starting empty, running
    /// every check.
    pub fn new(nodes: usize) -> Invariants {
        Invariants::with_white_box(nodes, true)
    }

    /// An observer of `nodes` nodes, with the white-box checks (see the module documentation)
    /// on or off.
    pub fn with_white_box(nodes: usize, white_box: bool) -> Invariants {
        Invariants {
            majority: nodes / 2 + 1,
            white_box,
            nodes: vec![NodeView::default(); nodes],
            leaders: BTreeMap::new(),
            candidacies: BTreeSet::new(),
            votes: BTreeMap::new(),
            seen: Vec::new(),
            committed: Chain::new(),
            commit_term: Vec::new(),
        }
    }

    /// Length of the committed prefix known so far.
    pub fn committed_len(&self) -> u64 {
        self.committed.len()
    }

    /// Leaders seen, one per term.
    pub fn leaders_seen(&self) -> usize {
        self.leaders.len()
    }

    /// Terms in which a candidate stood but no leader was seen: split or lost votes (each one
    /// costs the cluster another election timeout).
    pub fn leaderless_elections(&self) -> usize {
        self.candidacies
            .iter()
            .filter(|term| !self.leaders.contains_key(term))
            .count()
    }

    /// Node `k` restarted with `durable` as its history (snapshot and log), its store
    /// restored from a snapshot up to `applied`.
    pub fn restart(&mut self, k: usize, durable: &Chain, applied: LogIndex) {
        if let Some(view) = self.nodes.get_mut(k) {
            *view = NodeView {
                log: durable.clone(),
                applied,
                ..NodeView::default()
            };
        }
    }

    /// The committed history up to `index`, as a chain (what a snapshot at `index` holds).
    pub fn committed_prefix(&self, index: LogIndex) -> Chain {
        let mut chain = self.committed.clone();
        chain.truncate(index.0 + 1);
        chain
    }

    /// Node `k` installs a snapshot of the history up to `index` (whose entry has `term`),
    /// keeping its log after it if `keep_log`. A snapshot holds committed entries only, and
    /// the log kept must continue that same history.
    pub fn on_install(
        &mut self,
        k: usize,
        index: LogIndex,
        term: Term,
        keep_log: bool,
    ) -> Result<(), Violation> {
        let i = index.0;
        if i > self.committed.len() || self.committed.term_at(i) != Some(term) {
            return Err(Violation::new(
                Check::StateMachineSafety,
                format!(
                    "n{} installs a snapshot up to i{i}/t{} which is not the committed entry there \
                     (committed prefix ends at i{})",
                    k + 1,
                    term.0,
                    self.committed.len()
                ),
            ));
        }
        let prefix = self.committed_prefix(index);
        let Some(view) = self.nodes.get_mut(k) else {
            return Ok(());
        };
        if index <= view.applied {
            return Err(Violation::new(
                Check::SnapshotRollback,
                format!(
                    "n{} installs a snapshot at i{i} after applying i{}: a snapshot never rolls a \
                     node back",
                    k + 1,
                    view.applied.0
                ),
            ));
        }
        if keep_log {
            if view.log.link_at(i) != prefix.link_at(i) {
                return Err(Violation::new(
                    Check::StateMachineSafety,
                    format!(
                        "n{} keeps its log after a snapshot at i{i}, but its log differs from the \
                         committed history there",
                        k + 1
                    ),
                ));
            }
        } else {
            view.log = prefix;
        }
        view.applied = index;
        Ok(())
    }

    /// Node `k`, now in `term`, asked to drop its log from `from`.
    ///
    /// White-box only. Dropping a committed entry is legal only for a node that hears from a leader of a term
    /// older than the one the entry was committed in (a stale leader's entries can conflict with
    /// it); a leader of the commit term or later holds the entry (leader completeness), so a
    /// truncation on its behalf means a delayed or reordered message erased it.
    pub fn on_truncate(&mut self, k: usize, from: LogIndex, term: Term) -> Result<(), Violation> {
        let Some(view) = self.nodes.get_mut(k) else {
            return Ok(());
        };
        // Links chain the whole prefix: if the entry at `from` is not the committed one, none
        // after it is either; so checking `from` alone suffices.
        let at = from.0;
        let committed_here = self.white_box
            && at >= 1
            && at <= self.committed.len()
            && view.log.link_at(at).is_some()
            && view.log.link_at(at) == self.committed.link_at(at);
        if committed_here {
            let commit_term = self
                .commit_term
                .get((at - 1) as usize)
                .copied()
                .unwrap_or(Term(u64::MAX));
            if commit_term <= term {
                return Err(Violation::new(
                    Check::CommittedLost,
                    format!(
                        "n{} in {term} truncates its log from i{at}, but the entry there (term {}) \
                         was committed in {commit_term}",
                        k + 1,
                        view.log.term_at(at).map_or(0, |t| t.0),
                    ),
                ));
            }
        }
        view.log.truncate(at);
        Ok(())
    }

    /// Node `k` asked to append `entries`; returns their links (for its disk).
    pub fn on_store(&mut self, k: usize, entries: &[Entry]) -> Result<Vec<u64>, Violation> {
        let Some(view) = self.nodes.get_mut(k) else {
            return Ok(Vec::new());
        };
        let mut links = Vec::with_capacity(entries.len());
        for entry in entries {
            let expected = view.log.len() + 1;
            let Some(link) = view.log.push(entry) else {
                return Err(Violation::new(
                    Check::CoreContract,
                    format!(
                        "n{} LogStore starts at i{} but its log ends at i{}: writes must follow \
                         the log",
                        k + 1,
                        entry.index.0,
                        expected - 1
                    ),
                ));
            };
            links.push(link);
            let slot = (entry.index.0 - 1) as usize;
            if self.seen.len() <= slot {
                self.seen.resize_with(slot + 1, Vec::new);
            }
            let known = &mut self.seen[slot];
            match known.iter().find(|(t, _)| *t == entry.term) {
                Some(&(_, l)) if l != link => {
                    return Err(Violation::new(
                        Check::LogMatching,
                        format!(
                            "n{} writes i{}/t{} whose entry or prefix differs from another \
                             log's entry at the same index and term",
                            k + 1,
                            entry.index.0,
                            entry.term.0
                        ),
                    ));
                }
                Some(_) => {}
                None => known.push((entry.term, link)),
            }
        }
        Ok(links)
    }

    /// Node `k` reported `entry` committed (and applies it).
    pub fn on_commit(&mut self, k: usize, entry: &Entry, term_now: Term) -> Result<(), Violation> {
        let node = k + 1;
        let Some(view) = self.nodes.get_mut(k) else {
            return Ok(());
        };
        let i = entry.index.0;
        if i != view.applied.0 + 1 {
            return Err(Violation::new(
                Check::CoreContract,
                format!(
                    "n{node} commits i{i} after applying i{}: commits must come in order, each once",
                    view.applied.0
                ),
            ));
        }
        let prev = view.log.link_at(i - 1).unwrap_or(chain::GENESIS);
        let link = chain::link(prev, entry);
        if view.log.link_at(i) != Some(link) {
            return Err(Violation::new(
                Check::CoreContract,
                format!(
                    "n{node} commits i{i}/t{} which is not the entry its log holds there",
                    entry.term.0
                ),
            ));
        }
        view.applied = entry.index;
        if i <= self.committed.len() {
            if self.committed.link_at(i) != Some(link) {
                return Err(Violation::new(
                    Check::StateMachineSafety,
                    format!(
                        "n{node} applies i{i}/t{} but another node applied a different entry \
                         (term {}) at i{i}",
                        entry.term.0,
                        self.committed.term_at(i).map_or(0, |t| t.0)
                    ),
                ));
            }
        } else {
            self.committed.push_link(entry.term, link);
            self.commit_term.push(term_now);
        }
        Ok(())
    }

    /// Node `k` (id `node`) granted its vote in `term` to `candidate`.
    pub fn on_vote(
        &mut self,
        node: NodeId,
        term: Term,
        candidate: NodeId,
    ) -> Result<(), Violation> {
        match self.votes.insert((node, term), candidate) {
            Some(earlier) if earlier != candidate => Err(Violation::new(
                Check::VoteSafety,
                format!("{node} voted for {earlier} and then for {candidate} in {term}"),
            )),
            _ => Ok(()),
        }
    }

    /// The state node `k` is in after a step: role, term and commit index.
    pub fn after_step(
        &mut self,
        k: usize,
        role: Role,
        term: Term,
        commit: LogIndex,
    ) -> Result<(), Violation> {
        let node = NodeId(k as u64 + 1);
        if role == Role::Candidate {
            self.candidacies.insert(term);
        }
        if role == Role::Leader {
            match self.leaders.get(&term) {
                Some(&other) if other != node => {
                    return Err(Violation::new(
                        Check::ElectionSafety,
                        format!("{node} and {other} both lead {term}"),
                    ));
                }
                Some(_) => {}
                None => {
                    self.leaders.insert(term, node);
                }
            }
            if self.nodes.get(k).is_some_and(|v| v.led != Some(term)) {
                self.check_leader_complete(k, term)?;
            }
        }
        let committed_len = self.committed.len();
        let Some(view) = self.nodes.get_mut(k) else {
            return Ok(());
        };
        if role == Role::Leader {
            view.led = Some(term);
        }
        if commit < view.commit {
            return Err(Violation::new(
                Check::CommitMonotonic,
                format!(
                    "{node}'s commit index went from {} down to {commit}",
                    view.commit
                ),
            ));
        }
        if commit > view.commit {
            let c = commit.0;
            if view.log.len() < c {
                return Err(Violation::new(
                    Check::CoreContract,
                    format!(
                        "{node}'s commit index {commit} is beyond its log (last i{})",
                        view.log.len()
                    ),
                ));
            }
            let upto = c.min(committed_len);
            if view.log.link_at(upto) != self.committed.link_at(upto) {
                return Err(Violation::new(
                    Check::StateMachineSafety,
                    format!(
                        "{node} considers i{c} committed, but its log up to i{upto} differs from \
                         the committed prefix"
                    ),
                ));
            }
            for i in committed_len + 1..=c {
                if let (Some(t), Some(l)) = (view.log.term_at(i), view.log.link_at(i)) {
                    self.committed.push_link(t, l);
                    self.commit_term.push(term);
                }
            }
            view.commit = commit;
        }
        Ok(())
    }

    /// Leader completeness for node `k`, which leads `term`: it must hold every entry committed
    /// in an earlier term. Its log matching the committed prefix at the last such index is
    /// enough (links chain the prefix).
    fn check_leader_complete(&self, k: usize, term: Term) -> Result<(), Violation> {
        let Some(view) = self.nodes.get(k) else {
            return Ok(());
        };
        let Some(pos) = self.commit_term.iter().rposition(|&t| t < term) else {
            return Ok(());
        };
        let i = pos as u64 + 1;
        if view.log.link_at(i) != self.committed.link_at(i) {
            return Err(Violation::new(
                Check::LeaderCompleteness,
                format!(
                    "n{} leads {term} but its log (last i{}) lacks i{i}/t{}, committed in {}",
                    k + 1,
                    view.log.len(),
                    self.committed.term_at(i).map_or(0, |t| t.0),
                    self.commit_term.get(pos).map_or(0, |t| t.0),
                ),
            ));
        }
        Ok(())
    }

    /// Nothing committed is lost: the committed prefix is durable on a majority of `disks`
    /// (white-box only: passes in black-box mode).
    pub fn check_durable<'a>(
        &self,
        disks: impl Iterator<Item = &'a Chain>,
    ) -> Result<(), Violation> {
        let last = self.committed.len();
        if last == 0 || !self.white_box {
            return Ok(());
        }
        let want = self.committed.link_at(last);
        let holders = disks.filter(|d| d.link_at(last) == want).count();
        if holders < self.majority {
            return Err(Violation::new(
                Check::CommittedLost,
                format!(
                    "the committed prefix up to i{last} is durable on only {holders} disks, \
                     fewer than a majority ({})",
                    self.majority
                ),
            ));
        }
        Ok(())
    }
}

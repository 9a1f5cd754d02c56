//! The in-memory Raft log: the entries above a base (the snapshot's index and term).
//!
//! Everything at or below the base is committed and gone from memory; the base's term is kept so
//! that the entry right after it can still be matched. The log does not know what is durable or
//! committed: the node tracks that.
//!
//! It also keeps the configuration history: the membership in force at the base and every
//! membership entry above it, so the configuration at any index it holds is known (see
//! [`crate::membership`] for when one takes effect).

use crate::entry::{Entry, Payload};
use crate::ids::{LogIndex, Term};
use crate::membership::Membership;

/// Contiguous entries `base + 1 ..= last_index()`.
#[derive(Debug, Clone)]
pub(crate) struct Log {
    /// Index of the last entry folded into the snapshot (0 without a snapshot).
    base_index: LogIndex,
    /// Term of that entry (0 without a snapshot).
    base_term: Term,
    /// `entries[k]` has index `base_index + 1 + k`.
    entries: Vec<Entry>,
    /// The configuration in force at the base.
    base_membership: Membership,
    /// True if `base_membership` came from the log or a snapshot, not from bootstrap.
    base_logged: bool,
    /// Index of every membership entry above the base, in index order.
    changes: Vec<LogIndex>,
}

impl Log {
    /// An empty log above the given base, whose configuration is `membership` (`logged`:
    /// taken from a snapshot, not from bootstrap).
    pub(crate) fn new(
        base_index: LogIndex,
        base_term: Term,
        membership: Membership,
        logged: bool,
    ) -> Log {
        Log {
            base_index,
            base_term,
            entries: Vec::new(),
            base_membership: membership,
            base_logged: logged,
            changes: Vec::new(),
        }
    }

    /// True if a configuration is written down (in the log or under its base), false while
    /// the only one known is the bootstrap configuration.
    pub(crate) fn membership_logged(&self) -> bool {
        self.base_logged || !self.changes.is_empty()
    }

    /// The configuration in force at `index` (the latest membership entry at or below it, else
    /// the base's); `None` below the base.
    pub(crate) fn membership_at(&self, index: LogIndex) -> Option<(LogIndex, &Membership)> {
        if index < self.base_index {
            return None;
        }
        let at = self.changes.partition_point(|&i| i <= index);
        match at.checked_sub(1).map(|k| self.changes[k]) {
            Some(change) => match self.entry(change).map(|e| &e.payload) {
                Some(Payload::Membership(m)) => Some((change, m)),
                _ => {
                    debug_assert!(false, "membership entry {change} is not one");
                    None
                }
            },
            None => Some((self.base_index, &self.base_membership)),
        }
    }

    /// The newest membership entry above the base, if any.
    pub(crate) fn last_change(&self) -> Option<LogIndex> {
        self.changes.last().copied()
    }

    /// The first membership entry after `index`, if any (a change not yet in force there).
    pub(crate) fn change_after(&self, index: LogIndex) -> Option<LogIndex> {
        self.changes.iter().copied().find(|&i| i > index)
    }

    /// Notes the membership entries among `entries`, just appended.
    fn note_changes(&mut self, entries: &[Entry]) {
        for entry in entries {
            if matches!(entry.payload, Payload::Membership(_)) {
                self.changes.push(entry.index);
            }
        }
    }

    /// Index of the snapshot base (entries at or below it are not in memory).
    pub(crate) fn base_index(&self) -> LogIndex {
        self.base_index
    }

    /// Index of the last entry, or the base if there are none.
    pub(crate) fn last_index(&self) -> LogIndex {
        LogIndex(self.base_index.0 + self.entries.len() as u64)
    }

    /// Term of the last entry, or the base's term if there are none.
    pub(crate) fn last_term(&self) -> Term {
        self.entries.last().map_or(self.base_term, |e| e.term)
    }

    /// The term at `index`: known for the base and every entry, `None` elsewhere.
    pub(crate) fn term(&self, index: LogIndex) -> Option<Term> {
        if index == self.base_index {
            return Some(self.base_term);
        }
        self.entry(index).map(|e| e.term)
    }

    /// The entry at `index`, if held in memory.
    pub(crate) fn entry(&self, index: LogIndex) -> Option<&Entry> {
        let offset = index.0.checked_sub(self.base_index.0 + 1)?;
        self.entries.get(usize::try_from(offset).ok()?)
    }

    /// True if the log holds `term` at `index` (the base counts).
    pub(crate) fn matches(&self, index: LogIndex, term: Term) -> bool {
        self.term(index) == Some(term)
    }

    /// Raft's up-to-date check (5.4.1): is a log ending at (`last_index`, `last_term`) at least
    /// as up to date as this one?
    pub(crate) fn is_up_to_date(&self, last_index: LogIndex, last_term: Term) -> bool {
        (last_term, last_index) >= (self.last_term(), self.last_index())
    }

    /// Appends entries that must continue the log exactly (the node checks before calling).
    pub(crate) fn append(&mut self, entries: &[Entry]) {
        debug_assert!(
            entries
                .iter()
                .zip(self.last_index().0 + 1..)
                .all(|(e, i)| e.index == LogIndex(i)),
            "appended entries must continue the log"
        );
        debug_assert!(
            entries.first().is_none_or(|e| e.term >= self.last_term()),
            "terms never decrease along the log"
        );
        self.entries.extend_from_slice(entries);
        self.note_changes(entries);
    }

    /// Appends one entry at the end.
    #[cfg(test)]
    pub(crate) fn push(&mut self, entry: Entry) {
        debug_assert_eq!(entry.index, LogIndex(self.last_index().0 + 1));
        debug_assert!(entry.term >= self.last_term());
        self.note_changes(std::slice::from_ref(&entry));
        self.entries.push(entry);
    }

    /// Drops every entry with index `>= from`; `from` must be above the base.
    pub(crate) fn truncate(&mut self, from: LogIndex) {
        debug_assert!(
            from > self.base_index,
            "the snapshot base is never truncated"
        );
        let keep = from.0.saturating_sub(self.base_index.0 + 1);
        self.entries
            .truncate(usize::try_from(keep).unwrap_or(usize::MAX));
        self.changes.retain(|&i| i < from);
    }

    /// Folds every entry up to `index` into the base (the snapshot covers them); `index` must be
    /// in the log (the base itself changes nothing).
    pub(crate) fn compact(&mut self, index: LogIndex) {
        let Some(term) = self.term(index) else {
            debug_assert!(false, "compaction to {index}, outside the log");
            return;
        };
        if let Some((at, membership)) = self.membership_at(index) {
            let membership = membership.clone();
            self.base_logged |= at > self.base_index;
            self.base_membership = membership;
        }
        self.changes.retain(|&i| i > index);
        let drop = usize::try_from(index.0 - self.base_index.0).unwrap_or(usize::MAX);
        self.entries.drain(..drop.min(self.entries.len()));
        self.base_index = index;
        self.base_term = term;
    }

    /// Replaces the whole log by an empty one above a new base (a snapshot that does not match
    /// it was installed), whose configuration is `membership`.
    pub(crate) fn reset(&mut self, base_index: LogIndex, base_term: Term, membership: Membership) {
        *self = Log::new(base_index, base_term, membership, true);
    }

    /// Sets the configuration in force at the base (an installed snapshot's, whose end the log
    /// already matched).
    pub(crate) fn set_base_membership(&mut self, membership: Membership) {
        self.base_membership = membership;
        self.base_logged = true;
    }

    /// The entries in `lo ..= hi` that are held in memory.
    pub(crate) fn slice(&self, lo: LogIndex, hi: LogIndex) -> &[Entry] {
        let first = self.base_index.0 + 1;
        let lo = lo.0.max(first);
        let hi = hi.0.min(self.last_index().0);
        if lo > hi {
            return &[];
        }
        // Both offsets are within `entries`, whose length fits a usize.
        let start = (lo - first) as usize;
        let end = (hi - first + 1) as usize;
        &self.entries[start..end]
    }

    /// Entries from `lo` on, at most `max_count` of them and, past the first, at most
    /// `max_bytes` in total by [`Entry::size_hint`]: the content of one AppendEntries.
    pub(crate) fn batch_from(&self, lo: LogIndex, max_count: usize, max_bytes: usize) -> &[Entry] {
        let tail = self.slice(lo, self.last_index());
        let mut bytes = 0usize;
        let mut count = 0usize;
        for entry in tail.iter().take(max_count) {
            bytes = bytes.saturating_add(entry.size_hint());
            if count > 0 && bytes > max_bytes {
                break;
            }
            count += 1;
        }
        &tail[..count]
    }

    /// etcd's findConflictByTerm: the last index at or before `index` (clamped to the log) whose
    /// term is at most `term`, with that term. Used by both sides of fast backtracking: no index
    /// above the result can hold an entry of term `<= term` here, so a log whose entry at `index`
    /// has term `term` cannot match this one above it.
    pub(crate) fn find_conflict_by_term(&self, index: LogIndex, term: Term) -> (LogIndex, Term) {
        let mut i = index.min(self.last_index());
        while i > self.base_index {
            let t = self.term(i).unwrap_or(self.base_term);
            if t <= term {
                return (i, t);
            }
            i = i.prev();
        }
        (self.base_index, self.base_term)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entry::Payload;

    fn log_with_terms(terms: &[u64]) -> Log {
        let mut log = Log::new(LogIndex(0), Term(0), Membership::default(), false);
        for (k, &t) in terms.iter().enumerate() {
            log.push(Entry {
                index: LogIndex(k as u64 + 1),
                term: Term(t),
                payload: Payload::Noop,
            });
        }
        log
    }

    #[test]
    fn term_is_known_for_base_and_entries_only() {
        let log = log_with_terms(&[1, 1, 2]);
        assert_eq!(log.term(LogIndex(0)), Some(Term(0)));
        assert_eq!(log.term(LogIndex(3)), Some(Term(2)));
        assert_eq!(log.term(LogIndex(4)), None);
        assert_eq!(log.term(LogIndex(u64::MAX)), None);
    }

    #[test]
    fn truncate_and_slice() {
        let mut log = log_with_terms(&[1, 1, 2, 2, 3]);
        assert_eq!(log.slice(LogIndex(2), LogIndex(3)).len(), 2);
        assert_eq!(log.slice(LogIndex(4), LogIndex(100)).len(), 2);
        assert!(log.slice(LogIndex(6), LogIndex(9)).is_empty());
        log.truncate(LogIndex(3));
        assert_eq!(log.last_index(), LogIndex(2));
        assert_eq!(log.last_term(), Term(1));
    }

    #[test]
    fn compact_folds_a_prefix_into_the_base() {
        let mut log = log_with_terms(&[1, 1, 2, 2, 3]);
        log.compact(LogIndex(3));
        assert_eq!(
            (log.base_index(), log.term(LogIndex(3))),
            (LogIndex(3), Some(Term(2)))
        );
        assert_eq!(log.term(LogIndex(2)), None);
        assert_eq!(log.last_index(), LogIndex(5));
        assert_eq!(log.slice(LogIndex(1), LogIndex(9)).len(), 2);
        log.compact(LogIndex(3));
        assert_eq!(log.last_index(), LogIndex(5));
        log.compact(LogIndex(5));
        assert_eq!((log.base_index(), log.last_term()), (LogIndex(5), Term(3)));
        assert!(log.slice(LogIndex(1), LogIndex(9)).is_empty());
        log.reset(LogIndex(9), Term(4), Membership::default());
        assert_eq!((log.last_index(), log.last_term()), (LogIndex(9), Term(4)));
    }

    #[test]
    fn up_to_date_compares_last_term_then_index() {
        let log = log_with_terms(&[1, 2, 2]);
        assert!(log.is_up_to_date(LogIndex(3), Term(2)));
        assert!(log.is_up_to_date(LogIndex(1), Term(3)));
        assert!(!log.is_up_to_date(LogIndex(2), Term(2)));
        assert!(!log.is_up_to_date(LogIndex(9), Term(1)));
    }

    #[test]
    fn find_conflict_by_term_walks_back_to_a_term_not_above() {
        let log = log_with_terms(&[1, 1, 3, 3, 5, 5]);
        assert_eq!(
            log.find_conflict_by_term(LogIndex(6), Term(4)),
            (LogIndex(4), Term(3))
        );
        assert_eq!(
            log.find_conflict_by_term(LogIndex(6), Term(5)),
            (LogIndex(6), Term(5))
        );
        assert_eq!(
            log.find_conflict_by_term(LogIndex(9), Term(2)),
            (LogIndex(2), Term(1))
        );
        assert_eq!(
            log.find_conflict_by_term(LogIndex(6), Term(0)),
            (LogIndex(0), Term(0))
        );
    }

    #[test]
    fn batch_respects_count_and_bytes_but_sends_one_large_entry() {
        let mut log = Log::new(LogIndex(0), Term(0), Membership::default(), false);
        for i in 1..=4u64 {
            log.push(Entry {
                index: LogIndex(i),
                term: Term(1),
                payload: Payload::Command(vec![0u8; 100].into()),
            });
        }
        assert_eq!(log.batch_from(LogIndex(1), 3, usize::MAX).len(), 3);
        assert_eq!(log.batch_from(LogIndex(1), 10, 300).len(), 2);
        assert_eq!(log.batch_from(LogIndex(1), 10, 1).len(), 1);
        assert!(log.batch_from(LogIndex(5), 10, 1000).is_empty());
    }
}

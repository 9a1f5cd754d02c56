//! The search for a linearization of one file's operations: Wing & Gong's depth-first search
//! with Lowe's memoisation of visited configurations, in the form Porcupine uses.
//!
//! Invocations and completions sit in one time-ordered, doubly-linked event list. The operations
//! that may be linearized next are the invocations before the first completion still in the list
//! (an operation that completed before another was invoked must come first). Linearizing an
//! operation unlinks its two events; backtracking links them back (dancing links), so each step
//! costs the width of that window, not the length of the history. A configuration is the set of
//! linearized operations, the model state and the [`Guard`]; one seen before is never explored
//! again, which turns the exponential search into one bounded by the distinct configurations.
//!
//! Operations of unknown outcome have no completion event: they never force anything to wait,
//! are linearized only when that helps (see [`Guard`]), and need not be linearized at all. The
//! search tries definite operations before unknown ones, since most histories need few of them.

use super::model::{ContentId, Effect, FileModel, Guard, Taken};
use super::partition::PartOp;
use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hash, Hasher};

/// What the search concluded about one partition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum SearchResult {
    /// An order exists that explains every definite reply.
    Linearizable {
        /// Configurations explored.
        states: usize,
    },
    /// No order explains every definite reply.
    NotLinearizable {
        /// Configurations explored.
        states: usize,
        /// The longest sequence of operations the search could linearize, as (index into the
        /// searched operations, state after it).
        longest: Vec<(usize, FileModel)>,
    },
    /// The budget of configurations ran out first.
    Inconclusive {
        /// Configurations explored.
        states: usize,
    },
}

/// Whether a failed search reports the longest linearization it found; keeping it current
/// copies the stack each time the search gets deeper, which the plain check need not pay for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Detail {
    /// Only the verdict (`longest` stays empty).
    Verdict,
    /// The verdict and, on failure, the longest linearization.
    Longest,
}

/// Searches for a linearization of `ops`, exploring at most `states_max` configurations;
/// `taken` are the versions a mutation of unknown outcome cannot have got.
pub(crate) fn search(
    ops: &[PartOp],
    taken: &Taken<'_>,
    states_max: usize,
    detail: Detail,
) -> SearchResult {
    let mut search = Search::new(ops, taken, detail);
    let mut cursor = search.list.start(Pass::Definite);
    loop {
        if search.unresolved == 0 {
            return SearchResult::Linearizable {
                states: search.memo.len(),
            };
        }
        let Some(node) = search.list.next_candidate(cursor) else {
            if cursor.pass == Pass::Definite {
                cursor = search.list.start(Pass::Unknown);
                continue;
            }
            // Every candidate failed from here: record how far we got, then backtrack.
            match search.backtrack() {
                Some(resumed) => cursor = resumed,
                None => {
                    return SearchResult::NotLinearizable {
                        states: search.memo.len(),
                        longest: search.longest,
                    };
                }
            }
            continue;
        };
        if !search.try_linearize(node, cursor) {
            cursor.node = search.list.nodes[node].next;
            continue;
        }
        if search.memo.len() > states_max {
            return SearchResult::Inconclusive {
                states: search.memo.len(),
            };
        }
        cursor = search.list.start(Pass::Definite);
    }
}

/// The search's working state.
struct Search<'a> {
    ops: &'a [PartOp],
    taken: &'a Taken<'a>,
    list: EventList,
    linearized: Bitset,
    memo: Memo,
    /// Definite operations not linearized yet; the search succeeds when none is left.
    unresolved: usize,
    state: FileModel,
    guard: Guard,
    frames: Vec<Frame>,
    detail: Detail,
    longest: Vec<(usize, FileModel)>,
}

impl<'a> Search<'a> {
    fn new(ops: &'a [PartOp], taken: &'a Taken<'a>, detail: Detail) -> Search<'a> {
        let linearized = Bitset::new(ops.len());
        Search {
            ops,
            taken,
            list: EventList::new(ops),
            memo: Memo::new(linearized.words.len()),
            linearized,
            unresolved: ops.iter().filter(|op| op.is_definite()).count(),
            state: FileModel::INITIAL,
            guard: Guard::Free,
            frames: Vec::new(),
            detail,
            longest: Vec::new(),
        }
    }

    /// Linearizes the operation invoked at `node` if the model allows it, the configuration is
    /// new and (for an unknown outcome) something can make use of it.
    fn try_linearize(&mut self, node: usize, cursor: Cursor) -> bool {
        let index = self.list.nodes[node].op;
        let op = &self.ops[index];
        let definite = op.is_definite();
        if !self.guard.allows(&op.effect, definite) {
            return false;
        }
        let Some(next_state) = op.effect.apply(self.state, self.taken) else {
            return false;
        };
        let next_guard = if definite {
            Guard::Free
        } else {
            Guard::after_unknown(&op.effect, self.state)
        };
        // An unknown outcome must be observed by the very next operation (see `Guard`): when
        // nothing in the window can, this configuration is a dead end not worth remembering.
        if !definite
            && !self.list.has_successor(
                (self.ops, self.taken),
                (next_state, next_guard),
                &mut vec![index],
                LOOKAHEAD_CHAIN_MAX,
            )
        {
            return false;
        }
        self.linearized.set(index);
        if !self
            .memo
            .insert(&self.linearized.words, next_state, next_guard)
        {
            self.linearized.clear(index);
            return false;
        }
        self.frames.push(Frame {
            op: index,
            node,
            pass: cursor.pass,
            state: self.state,
            guard: self.guard,
        });
        self.list.lift(index);
        self.state = next_state;
        self.guard = next_guard;
        self.unresolved -= usize::from(definite);
        true
    }

    /// Undoes the last linearization, noting first how far the search got; returns where the
    /// scan resumes, or `None` when there is nothing left to undo.
    fn backtrack(&mut self) -> Option<Cursor> {
        if self.detail == Detail::Longest && self.frames.len() > self.longest.len() {
            self.longest = trace(&self.frames, self.state);
        }
        let frame = self.frames.pop()?;
        self.list.unlift(frame.op);
        self.linearized.clear(frame.op);
        self.state = frame.state;
        self.guard = frame.guard;
        self.unresolved += usize::from(self.ops[frame.op].is_definite());
        let mut resumed = self.list.start(frame.pass);
        resumed.node = self.list.nodes[frame.node].next;
        Some(resumed)
    }
}

/// The linearized operations with the state after each.
fn trace(frames: &[Frame], current: FileModel) -> Vec<(usize, FileModel)> {
    frames
        .iter()
        .enumerate()
        .map(|(i, frame)| {
            let after = frames.get(i + 1).map_or(current, |next| next.state);
            (frame.op, after)
        })
        .collect()
}

/// One linearized operation, with what is needed to undo it and resume the scan after it.
struct Frame {
    /// Index of the operation.
    op: usize,
    /// Its invocation node, from which the scan resumes after backtracking.
    node: usize,
    /// The pass it was found in.
    pass: Pass,
    /// The state before it.
    state: FileModel,
    /// The guard before it.
    guard: Guard,
}

/// Which operations a scan of the window considers: definite ones first, then unknown ones.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Pass {
    Definite,
    Unknown,
}

/// Where the scan of the window stands.
#[derive(Clone, Copy)]
struct Cursor {
    node: usize,
    pass: Pass,
    /// The time of the first completion left: operations invoked later must wait for it.
    window_end: u64,
    /// The first unknown write whose content no read saw, the only one of them worth trying.
    first_unseen: usize,
}

/// Longest chain of unknown operations the look-ahead follows before assuming it could end in a
/// definite one: chains of unknown cas are rare, and each step of the look-ahead scans the
/// window again.
const LOOKAHEAD_CHAIN_MAX: usize = 3;

/// End of a list.
const NIL: usize = usize::MAX;

/// Head of the list of definite operations' invocations and completions.
const DEFINITE_HEAD: usize = 0;

/// Head of the list of unknown-outcome operations' invocations (they have no completion).
const UNKNOWN_HEAD: usize = 1;

/// An invocation or completion event.
struct Node {
    op: usize,
    is_call: bool,
    time: u64,
    prev: usize,
    next: usize,
}

/// The time-ordered events of the operations not linearized yet, in two lists: definite
/// operations' invocations and completions, and unknown operations' invocations. Keeping the
/// latter apart spares the definite pass from stepping over every unknown operation still open.
struct EventList {
    nodes: Vec<Node>,
    call_of: Vec<usize>,
    return_of: Vec<usize>,
    /// Per operation: whether it is a write of unknown outcome whose content no definite read
    /// returned. Such writes differ only in content nobody observes and in when they were
    /// invoked, so wherever one of them is used, the earliest invoked one still unused can
    /// stand in for it (and it for the earliest one, later): the search tries only that one.
    unseen_write: Vec<bool>,
}

impl EventList {
    fn new(ops: &[PartOp]) -> EventList {
        // At equal times invocations come first, so that equal times count as concurrent.
        let mut events: Vec<(u64, bool, usize)> = Vec::with_capacity(ops.len() * 2);
        for (index, op) in ops.iter().enumerate() {
            events.push((op.invoke, false, index));
            if let Some(complete) = op.complete {
                events.push((complete, true, index));
            }
        }
        events.sort_unstable();
        let seen: HashSet<ContentId> = ops
            .iter()
            .filter_map(|op| match op.effect {
                Effect::ReadFound { content, .. } => Some(content),
                _ => None,
            })
            .collect();
        let unseen_write = ops
            .iter()
            .map(|op| match op.effect {
                Effect::Write { content, .. } => !op.is_definite() && !seen.contains(&content),
                _ => false,
            })
            .collect();
        let mut list = EventList {
            nodes: Vec::with_capacity(events.len() + 2),
            call_of: vec![NIL; ops.len()],
            return_of: vec![NIL; ops.len()],
            unseen_write,
        };
        let mut tails = [DEFINITE_HEAD, UNKNOWN_HEAD];
        for _ in tails {
            list.push(NIL, false, 0, NIL);
        }
        for (time, is_return, op) in events {
            let which = usize::from(!ops[op].is_definite());
            let node = list.push(op, !is_return, time, tails[which]);
            list.nodes[tails[which]].next = node;
            tails[which] = node;
            if is_return {
                list.return_of[op] = node;
            } else {
                list.call_of[op] = node;
            }
        }
        list
    }

    fn push(&mut self, op: usize, is_call: bool, time: u64, prev: usize) -> usize {
        self.nodes.push(Node {
            op,
            is_call,
            time,
            prev,
            next: NIL,
        });
        self.nodes.len() - 1
    }

    /// A scan of the window from its start.
    fn start(&self, pass: Pass) -> Cursor {
        let (head, window_end) = match pass {
            Pass::Definite => (DEFINITE_HEAD, 0),
            Pass::Unknown => (UNKNOWN_HEAD, self.window_end()),
        };
        let mut first_unseen = NIL;
        if pass == Pass::Unknown {
            first_unseen = self.nodes[head].next;
            while first_unseen != NIL && !self.unseen_write[self.nodes[first_unseen].op] {
                first_unseen = self.nodes[first_unseen].next;
            }
        }
        Cursor {
            node: self.nodes[head].next,
            pass,
            window_end,
            first_unseen,
        }
    }

    /// The time of the first completion still in the list.
    fn window_end(&self) -> u64 {
        let mut node = self.nodes[DEFINITE_HEAD].next;
        while node != NIL && self.nodes[node].is_call {
            node = self.nodes[node].next;
        }
        if node == NIL {
            u64::MAX
        } else {
            self.nodes[node].time
        }
    }

    /// The first invocation at or after `cursor` that may be linearized now.
    fn next_candidate(&self, cursor: Cursor) -> Option<usize> {
        let mut node = cursor.node;
        while node != NIL {
            let event = &self.nodes[node];
            match cursor.pass {
                Pass::Definite => return event.is_call.then_some(node),
                Pass::Unknown if event.time > cursor.window_end => return None,
                // Unknown writes whose content nobody read are interchangeable: trying the
                // earliest invoked one covers them all.
                Pass::Unknown if self.unseen_write[event.op] && node != cursor.first_unseen => {
                    node = event.next;
                }
                Pass::Unknown => return Some(node),
            }
        }
        None
    }

    /// Whether the operations in the window can make use of an unknown operation's effect: a
    /// definite one may come next, or a chain of at most `depth` unknown ones (none of them in
    /// `chain`, the unknown operations linearized just before) and then a definite one. Past
    /// `depth` it answers yes: this is only pruning, and must never prune a linearization.
    fn has_successor(
        &self,
        (ops, taken): (&[PartOp], &Taken<'_>),
        (state, guard): (FileModel, Guard),
        chain: &mut Vec<usize>,
        depth: usize,
    ) -> bool {
        let mut cursor = self.start(Pass::Definite);
        while let Some(node) = self.next_candidate(cursor) {
            let effect = &ops[self.nodes[node].op].effect;
            if guard.allows(effect, true) && effect.apply(state, taken).is_some() {
                return true;
            }
            cursor.node = self.nodes[node].next;
        }
        let mut cursor = self.start(Pass::Unknown);
        while let Some(node) = self.next_candidate(cursor) {
            cursor.node = self.nodes[node].next;
            let op = self.nodes[node].op;
            let effect = &ops[op].effect;
            if chain.contains(&op) || !guard.allows(effect, false) {
                continue;
            }
            let Some(next_state) = effect.apply(state, taken) else {
                continue;
            };
            if depth == 0 {
                return true;
            }
            chain.push(op);
            let next = (next_state, Guard::after_unknown(effect, state));
            let found = self.has_successor((ops, taken), next, chain, depth - 1);
            chain.pop();
            if found {
                return true;
            }
        }
        false
    }

    fn lift(&mut self, op: usize) {
        self.unlink(self.call_of[op]);
        if self.return_of[op] != NIL {
            self.unlink(self.return_of[op]);
        }
    }

    /// Undoes [`EventList::lift`]; lifts and unlifts must nest.
    fn unlift(&mut self, op: usize) {
        if self.return_of[op] != NIL {
            self.relink(self.return_of[op]);
        }
        self.relink(self.call_of[op]);
    }

    fn unlink(&mut self, node: usize) {
        let (prev, next) = (self.nodes[node].prev, self.nodes[node].next);
        self.nodes[prev].next = next;
        if next != NIL {
            self.nodes[next].prev = prev;
        }
    }

    fn relink(&mut self, node: usize) {
        let (prev, next) = (self.nodes[node].prev, self.nodes[node].next);
        self.nodes[prev].next = node;
        if next != NIL {
            self.nodes[next].prev = node;
        }
    }
}

/// The set of linearized operations.
struct Bitset {
    words: Vec<u64>,
}

impl Bitset {
    fn new(len: usize) -> Bitset {
        Bitset {
            words: vec![0; len.div_ceil(64)],
        }
    }

    fn set(&mut self, index: usize) {
        self.words[index / 64] |= 1 << (index % 64);
    }

    fn clear(&mut self, index: usize) {
        self.words[index / 64] &= !(1 << (index % 64));
    }
}

/// The configurations seen so far, stored flat (one allocation for all of them) and found by
/// hash; full keys are compared, so a hash collision can never hide a configuration.
struct Memo {
    width: usize,
    words: Vec<u64>,
    tails: Vec<(FileModel, Guard)>,
    /// For each entry, the previous entry with the same hash, or [`NIL`].
    chain: Vec<usize>,
    heads: HashMap<u64, usize, BuildHasherDefault<PrehashedHasher>>,
}

impl Memo {
    fn new(width: usize) -> Memo {
        Memo {
            width,
            words: Vec::new(),
            tails: Vec::new(),
            chain: Vec::new(),
            heads: HashMap::default(),
        }
    }

    fn len(&self) -> usize {
        self.tails.len()
    }

    /// Records a configuration; `false` if it was already there.
    fn insert(&mut self, bits: &[u64], state: FileModel, guard: Guard) -> bool {
        let mut hasher = WordHasher::default();
        bits.iter().for_each(|word| hasher.write_u64(*word));
        (state, guard).hash(&mut hasher);
        let hash = hasher.finish();
        let head = self.heads.get(&hash).copied().unwrap_or(NIL);
        let mut entry = head;
        while entry != NIL {
            if self.tails[entry] == (state, guard)
                && self.words[entry * self.width..(entry + 1) * self.width] == *bits
            {
                return false;
            }
            entry = self.chain[entry];
        }
        let index = self.tails.len();
        self.words.extend_from_slice(bits);
        self.tails.push((state, guard));
        self.chain.push(head);
        self.heads.insert(hash, index);
        true
    }
}

/// A small multiply-rotate hasher for configurations (the std SipHash is several times slower
/// and resists attacks nobody mounts on a test).
#[derive(Default)]
struct WordHasher(u64);

impl Hasher for WordHasher {
    fn write(&mut self, bytes: &[u8]) {
        bytes
            .iter()
            .for_each(|&byte| self.write_u64(u64::from(byte)));
    }

    fn write_u64(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(26) ^ word).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }

    fn write_u32(&mut self, word: u32) {
        self.write_u64(u64::from(word));
    }

    fn write_usize(&mut self, word: usize) {
        self.write_u64(word as u64);
    }

    fn finish(&self) -> u64 {
        // Fold the well-mixed high bits into the low ones, which pick the hash table's bucket.
        self.0 ^ (self.0 >> 31)
    }
}

/// Passes on a key that is already a hash.
#[derive(Default)]
struct PrehashedHasher(u64);

impl Hasher for PrehashedHasher {
    fn write(&mut self, bytes: &[u8]) {
        bytes
            .iter()
            .for_each(|&byte| self.0 = self.0.rotate_left(8) ^ u64::from(byte));
    }

    fn write_u64(&mut self, word: u64) {
        self.0 = word;
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

//! The search for a linearization of one file's operations: Wing & Gong's depth-first search
//! with Lowe's memoisation of visited configurations, in the form Porcupine uses.
//!
//! Invocations and completions sit in time-ordered, doubly-linked event lists. The operations
//! that may be linearized next are those invoked before the first completion still listed (an
//! operation that completed before another was invoked must come first). Linearizing an
//! operation unlinks its events; backtracking links them back (dancing links), so each step
//! costs the width of that window, not the length of the history. A configuration is the set of
//! linearized operations, the model state and the [`Guard`]; one seen before is never explored
//! again, which bounds the otherwise exponential search by the distinct configurations.
//!
//! Operations of unknown outcome have no completion event: they never make anything wait, need
//! not be linearized at all, and are linearized only right before an operation that observes
//! their effect (see [`Guard`] and the look-ahead in `has_successor`); among interchangeable
//! ones only the earliest is tried (see [`Lane`]). The search tries definite operations first,
//! since most histories need few unknown outcomes to have taken effect.
//!
//! An optional operation (one whose reply an explanation set aside) keeps its completion but
//! may be linearized either with its effect or without any.

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
    taken: &Taken,
    states_max: usize,
    detail: Detail,
) -> SearchResult {
    let mut search = Search::new(ops, taken, detail);
    let mut cursor = search.list.start(Lane::Definite);
    loop {
        if search.unresolved == 0 {
            return SearchResult::Linearizable {
                states: search.memo.len(),
            };
        }
        let Some(node) = search.list.next_candidate(cursor) else {
            if let Some(lane) = cursor.lane.next() {
                cursor = search.list.start(lane);
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
            cursor.skip_only = false;
            continue;
        }
        if search.memo.len() > states_max {
            return SearchResult::Inconclusive {
                states: search.memo.len(),
            };
        }
        cursor = search.list.start(Lane::Definite);
    }
}

/// The search's working state.
struct Search<'a> {
    ops: &'a [PartOp],
    taken: &'a Taken,
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
    fn new(ops: &'a [PartOp], taken: &'a Taken, detail: Detail) -> Search<'a> {
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

    /// Linearizes the operation invoked at `node`, applying it or (if optional) skipping it,
    /// unless `cursor` says only the skip is left to try.
    fn try_linearize(&mut self, node: usize, cursor: Cursor) -> bool {
        let optional = self.ops[self.list.nodes[node].op].optional;
        (!cursor.skip_only && self.try_step(node, cursor.lane, Step::Apply))
            || (optional && self.try_step(node, cursor.lane, Step::Skip))
    }

    /// Takes `step` for the operation invoked at `node` if the model allows it, the
    /// configuration is new and (for an effect of unknown outcome) something can make use of it.
    fn try_step(&mut self, node: usize, lane: Lane, step: Step) -> bool {
        let index = self.list.nodes[node].op;
        let op = &self.ops[index];
        let (next_state, next_guard) = match step {
            // Skipping changes nothing, not even what the next effect must be.
            Step::Skip => (self.state, self.guard),
            Step::Apply => {
                let certain = op.must_take_effect();
                if !self.guard.allows(&op.effect, certain) {
                    return false;
                }
                let Some(next_state) = op.effect.apply(self.state, self.taken) else {
                    return false;
                };
                if certain {
                    (next_state, Guard::Free)
                } else {
                    let next_guard = Guard::after_unknown(&op.effect, self.state);
                    // The effect must be observed by the next one (see `Guard`): when nothing
                    // in the window can, this configuration is a dead end not worth keeping.
                    if !op.optional
                        && !self.list.has_successor(
                            (self.ops, self.taken),
                            (next_state, next_guard),
                            &mut vec![index],
                            LOOKAHEAD_CHAIN_MAX,
                        )
                    {
                        return false;
                    }
                    (next_state, next_guard)
                }
            }
        };
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
            lane,
            step,
            state: self.state,
            guard: self.guard,
        });
        self.list.lift(index);
        self.state = next_state;
        self.guard = next_guard;
        self.unresolved -= usize::from(op.is_definite());
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
        let op = &self.ops[frame.op];
        self.unresolved += usize::from(op.is_definite());
        let mut resumed = self.list.start(frame.lane);
        if op.optional && frame.step == Step::Apply {
            // Applying it led nowhere; skipping it is still to be tried.
            resumed.node = frame.node;
            resumed.skip_only = true;
        } else {
            resumed.node = self.list.nodes[frame.node].next;
        }
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
    /// The lane it was found in.
    lane: Lane,
    /// Whether it was applied or skipped.
    step: Step,
    /// The state before it.
    state: FileModel,
    /// The guard before it.
    guard: Guard,
}

/// What linearizing an operation did to the model.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Step {
    /// Its effect was applied.
    Apply,
    /// It was an optional operation, left without effect.
    Skip,
}

/// The event lists, scanned in this order for candidates: definite operations first, since most
/// histories need few unknown outcomes to take effect.
///
/// Unknown writes without an EXPTIME whose content no definite read returned, and unknown
/// deletes, each form a class of interchangeable operations: they differ only in content nobody
/// observes and in when they were invoked. Wherever one of them takes effect, the earliest
/// invoked one still unused could have taken effect instead (it was invoked earlier, so it is
/// available there) and the one displaced can take the earlier one's place later, if any. So
/// only the first operation of such a lane is ever a candidate. A write with an EXPTIME is not
/// interchangeable: when it may be found expired depends on when it was invoked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Lane {
    /// Definite operations' invocations and completions.
    Definite = 0,
    /// Invocations of unknown operations not in the other lanes (cas, writes someone read,
    /// writes with an EXPTIME).
    Unknown = 1,
    /// Invocations of unknown writes without an EXPTIME whose content no definite read returned.
    UnseenWrite = 2,
    /// Invocations of unknown deletes.
    Delete = 3,
}

impl Lane {
    /// The lane scanned after this one, if any.
    fn next(self) -> Option<Lane> {
        match self {
            Lane::Definite => Some(Lane::Unknown),
            Lane::Unknown => Some(Lane::UnseenWrite),
            Lane::UnseenWrite => Some(Lane::Delete),
            Lane::Delete => None,
        }
    }

    /// The lane of `op`, given the contents definite reads returned.
    fn of(op: &PartOp, seen: &HashSet<ContentId>) -> Lane {
        match op.effect {
            _ if op.is_definite() => Lane::Definite,
            Effect::Write {
                content,
                expiry: None,
                ..
            } if !seen.contains(&content) => Lane::UnseenWrite,
            Effect::Delete => Lane::Delete,
            _ => Lane::Unknown,
        }
    }

    /// The head node of the lane's list.
    fn head(self) -> usize {
        self as usize
    }
}

/// Where the scan of the window stands.
#[derive(Clone, Copy)]
struct Cursor {
    node: usize,
    lane: Lane,
    /// The time of the first completion left: operations invoked later must wait for it.
    window_end: u64,
    /// Whether the operation at `node` was applied already and may only be skipped now.
    skip_only: bool,
}

/// Longest chain of unknown operations the look-ahead follows before assuming it could end in a
/// definite one: chains of unknown cas are rare, and each step of the look-ahead scans the
/// window again.
const LOOKAHEAD_CHAIN_MAX: usize = 1;

/// End of a list.
const NIL: usize = usize::MAX;

/// An invocation or completion event.
struct Node {
    op: usize,
    is_call: bool,
    time: u64,
    prev: usize,
    next: usize,
}

/// The time-ordered events of the operations not linearized yet, one list per [`Lane`]; nodes 0
/// to 3 are the lanes' heads. Keeping unknown operations apart spares the definite scan from
/// stepping over every unknown operation still open, and lets interchangeable ones be skipped
/// without a scan.
struct EventList {
    nodes: Vec<Node>,
    call_of: Vec<usize>,
    return_of: Vec<usize>,
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
        let mut list = EventList {
            nodes: Vec::with_capacity(events.len() + 4),
            call_of: vec![NIL; ops.len()],
            return_of: vec![NIL; ops.len()],
        };
        let mut tails = [0, 1, 2, 3];
        for _ in tails {
            list.push(NIL, false, 0, NIL);
        }
        for (time, is_return, op) in events {
            let lane = Lane::of(&ops[op], &seen).head();
            let node = list.push(op, !is_return, time, tails[lane]);
            list.nodes[tails[lane]].next = node;
            tails[lane] = node;
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
    fn start(&self, lane: Lane) -> Cursor {
        let window_end = match lane {
            Lane::Definite => 0,
            _ => self.window_end(),
        };
        Cursor {
            node: self.nodes[lane.head()].next,
            lane,
            window_end,
            skip_only: false,
        }
    }

    /// The time of the first completion still in the list.
    fn window_end(&self) -> u64 {
        let mut node = self.nodes[Lane::Definite.head()].next;
        while node != NIL && self.nodes[node].is_call {
            node = self.nodes[node].next;
        }
        if node == NIL {
            u64::MAX
        } else {
            self.nodes[node].time
        }
    }

    /// The invocation at `cursor`, if it may be linearized now.
    fn next_candidate(&self, cursor: Cursor) -> Option<usize> {
        let node = cursor.node;
        if node == NIL {
            return None;
        }
        let event = &self.nodes[node];
        let candidate = match cursor.lane {
            Lane::Definite => event.is_call,
            Lane::Unknown => event.time <= cursor.window_end,
            // Interchangeable: only the first counts.
            Lane::UnseenWrite | Lane::Delete => {
                event.time <= cursor.window_end && event.prev == cursor.lane.head()
            }
        };
        candidate.then_some(node)
    }

    /// Whether the operations in the window can make use of an unknown operation's effect: a
    /// definite one may come next, or a chain of at most `depth` unknown ones (none of them in
    /// `chain`, the unknown operations linearized just before) and then a definite one. Past
    /// `depth` it answers yes: this is only pruning, and must never prune a linearization.
    fn has_successor(
        &self,
        (ops, taken): (&[PartOp], &Taken),
        (state, guard): (FileModel, Guard),
        chain: &mut Vec<usize>,
        depth: usize,
    ) -> bool {
        let mut cursor = self.start(Lane::Definite);
        while let Some(node) = self.next_candidate(cursor) {
            let op = &ops[self.nodes[node].op];
            // Skipping an optional operation widens the window in ways not followed here.
            if op.optional
                || (guard.allows(&op.effect, true) && op.effect.apply(state, taken).is_some())
            {
                return true;
            }
            cursor.node = self.nodes[node].next;
        }
        // After an unknown effect only an unknown cas may come next (see `Guard`), and those
        // are all in one lane.
        let mut cursor = self.start(Lane::Unknown);
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

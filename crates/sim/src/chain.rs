//! Prefix fingerprints of a log: `link(i) = mix(link(i - 1), term(i), payload(i))`.
//!
//! Two logs with the same link at index `i` hold the same entries `1..=i` (up to a 64-bit hash
//! collision), so the safety checks compare whole prefixes in O(1): log matching, leader
//! completeness and "nothing committed is lost" all become one comparison per node.

use raft::{Entry, Payload};

/// The link before the first entry (index 0).
pub const GENESIS: u64 = 0x5241_4654_4653_494d; // "RAFTFSIM"

/// FNV-1a offset basis.
const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
/// FNV-1a prime.
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// A 64-bit hash of an entry's payload (FNV-1a; a no-op hashes differently from every command).
pub fn payload_hash(payload: &Payload) -> u64 {
    match payload {
        Payload::Noop => FNV_OFFSET ^ 0xff,
        Payload::Membership(m) => m.encode().iter().fold(FNV_OFFSET ^ 0xfe, |h, &b| {
            (h ^ u64::from(b)).wrapping_mul(FNV_PRIME)
        }),
        Payload::Command(bytes) => bytes.iter().fold(FNV_OFFSET, |h, &b| {
            (h ^ u64::from(b)).wrapping_mul(FNV_PRIME)
        }),
    }
}

/// Mixes one value into a running hash (splitmix64's finaliser over the xor).
fn mix(h: u64, v: u64) -> u64 {
    let mut z = (h ^ v).wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The link of `entry` placed after a prefix whose link is `prev`.
pub fn link(prev: u64, entry: &Entry) -> u64 {
    let h = mix(prev, entry.index.0);
    let h = mix(h, entry.term.0);
    mix(h, payload_hash(&entry.payload))
}

/// A log as the checks see it: per index, the entry's term and the link of the prefix ending
/// there. Index `i` is at position `i - 1`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Chain {
    links: Vec<(raft::Term, u64)>,
}

impl Chain {
    /// An empty log.
    pub fn new() -> Chain {
        Chain::default()
    }

    /// Index of the last entry (0 when empty).
    pub fn len(&self) -> u64 {
        self.links.len() as u64
    }

    /// Whether the log is empty.
    pub fn is_empty(&self) -> bool {
        self.links.is_empty()
    }

    /// The link at `index` (GENESIS at 0), `None` beyond the end.
    pub fn link_at(&self, index: u64) -> Option<u64> {
        match index {
            0 => Some(GENESIS),
            i => self.links.get((i - 1) as usize).map(|&(_, l)| l),
        }
    }

    /// The term at `index`, `None` at 0 or beyond the end.
    pub fn term_at(&self, index: u64) -> Option<raft::Term> {
        match index {
            0 => None,
            i => self.links.get((i - 1) as usize).map(|&(t, _)| t),
        }
    }

    /// Drops every entry at `from` and after.
    pub fn truncate(&mut self, from: u64) {
        self.links.truncate(from.saturating_sub(1) as usize);
    }

    /// Appends `entry`, which must be the next index; returns its link, or `None` (appending
    /// nothing) if it is not contiguous.
    pub fn push(&mut self, entry: &Entry) -> Option<u64> {
        if entry.index.0 != self.len() + 1 {
            return None;
        }
        let prev = self.link_at(self.len()).unwrap_or(GENESIS);
        let l = link(prev, entry);
        self.links.push((entry.term, l));
        Some(l)
    }

    /// Appends an already computed link for the next index.
    pub fn push_link(&mut self, term: raft::Term, link: u64) {
        self.links.push((term, link));
    }
}

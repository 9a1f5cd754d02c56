//! Newtypes for the numbers Raft passes around, so a term can never be used as an index by mistake.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Declares a `u64` newtype with the derives every identifier here shares.
macro_rules! id_newtype {
    ($(#[$meta:meta])* $name:ident, $prefix:literal) => {
        $(#[$meta])*
        #[derive(
            Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
        )]
        pub struct $name(pub u64);

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!($prefix, "{}"), self.0)
            }
        }
    };
}

id_newtype!(
    /// The identity of a cluster member, unique within the cluster.
    NodeId,
    "n"
);
id_newtype!(
    /// A Raft term: a logical clock that only grows; at most one leader is elected per term.
    Term,
    "t"
);
id_newtype!(
    /// A position in the replicated log; the first entry has index 1, so 0 means "before the log".
    LogIndex,
    "i"
);
id_newtype!(
    /// The driver's name for one client command, echoed back in `Appended` or `CommitError`.
    ProposalId,
    "p"
);
id_newtype!(
    /// The driver's name for one linearizable read, echoed back in `ReadReady` or `ReadError`.
    ReadId,
    "r"
);

impl Term {
    /// The next term, or `None` at `u64::MAX`: a node never campaigns past the last term, since
    /// wrapping (or saturating) would reuse a term in which it may already have voted.
    pub fn next(self) -> Option<Term> {
        self.0.checked_add(1).map(Term)
    }
}

impl LogIndex {
    /// The index after this one, or `None` at `u64::MAX` (reachable only through a peer's garbage).
    pub fn next(self) -> Option<LogIndex> {
        self.0.checked_add(1).map(LogIndex)
    }

    /// The index before this one; index 0 stays 0 (there is nothing before the log).
    pub fn prev(self) -> LogIndex {
        LogIndex(self.0.saturating_sub(1))
    }

    /// This index moved `n` positions forward, or `None` on overflow.
    pub fn checked_add(self, n: u64) -> Option<LogIndex> {
        self.0.checked_add(n).map(LogIndex)
    }
}

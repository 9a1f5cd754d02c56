//! The four roles a node moves between.

use std::fmt;

/// The role a node plays in its current term.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// Follows the leader of its term (if it knows one), waiting for its election timeout.
    Follower,
    /// Polling peers at `term + 1` without changing its term (thesis 9.6, prevote).
    PreCandidate,
    /// Asking for votes in its own term.
    Candidate,
    /// Leader of its term: accepts proposals and reads, replicates the log.
    Leader,
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            Role::Follower => "follower",
            Role::PreCandidate => "pre-candidate",
            Role::Candidate => "candidate",
            Role::Leader => "leader",
        };
        f.write_str(name)
    }
}

//! The messages nodes exchange, and their wire encoding (postcard).
//!
//! Each request names its sender (`leader`, `candidate`); a node ignores a message whose named
//! sender differs from the transport's `from`. Every message carries the sender's term.
//! New variants are only ever appended at the end, so older encodings keep decoding.

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::entry::Entry;
use crate::ids::{LogIndex, NodeId, Term};
use crate::membership::Membership;

/// A message between two nodes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Message {
    /// Leader to follower: entries to append (possibly none).
    AppendEntriesRequest(AppendEntriesRequest),
    /// Follower to leader: the answer to an AppendEntries.
    AppendEntriesResponse(AppendEntriesResponse),
    /// (Pre-)candidate to voter: a request for a (pre-)vote.
    VoteRequest(VoteRequest),
    /// Voter to (pre-)candidate: the answer.
    VoteResponse(VoteResponse),
    /// Leader to follower: "I am still the leader"; also carries the commit index and the
    /// ReadIndex round being confirmed.
    Heartbeat(Heartbeat),
    /// Follower to leader: the answer to a heartbeat.
    HeartbeatResponse(HeartbeatResponse),
    /// Leader to follower: install the snapshot the driver streamed beside this message. The
    /// core never sends it through `Action::Send`: it travels with the chunks
    /// (`Action::SendSnapshot`), and the receiving driver feeds it once the snapshot is staged.
    /// Answered by an [`AppendEntriesResponse`].
    InstallSnapshot(InstallSnapshotRequest),
    /// Leader to a caught-up voter: campaign now, past leader stickiness (leadership transfer,
    /// thesis 3.10).
    TimeoutNow(TimeoutNow),
    /// Follower to leader: a read index for a read the follower will serve (thesis 6.4).
    ReadIndexRequest(ReadIndexRequest),
    /// Leader to follower: the read index, once leadership is confirmed.
    ReadIndexResponse(ReadIndexResponse),
}

/// A follower asks the leader for a read index.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReadIndexRequest {
    /// The follower's term.
    pub term: Term,
    /// The follower's number for the read, echoed in the response.
    pub id: u64,
}

/// The leader's answer to a [`ReadIndexRequest`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReadIndexResponse {
    /// The leader's term.
    pub term: Term,
    /// The request's number.
    pub id: u64,
    /// The commit index the read must observe; `None` if the sender cannot serve it (it does
    /// not lead).
    pub index: Option<LogIndex>,
}

/// A leader hands over leadership: the receiver campaigns at once, and its vote requests say
/// so, so that voters still in the old leader's lease grant them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimeoutNow {
    /// The leader's term.
    pub term: Term,
    /// The leader (must equal the sender).
    pub leader: NodeId,
}

/// Raft's AppendEntries RPC (figure 2).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppendEntriesRequest {
    /// The leader's term.
    pub term: Term,
    /// The leader (must equal the sender).
    pub leader: NodeId,
    /// Index of the entry just before `entries`.
    pub prev_log_index: LogIndex,
    /// Term of that entry.
    pub prev_log_term: Term,
    /// Entries to append, contiguous from `prev_log_index + 1`; empty to probe or to carry the
    /// commit index.
    pub entries: Vec<Entry>,
    /// The leader's commit index.
    pub leader_commit: LogIndex,
}

/// The answer to an [`AppendEntriesRequest`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppendEntriesResponse {
    /// The follower's term.
    pub term: Term,
    /// Whether the entries were accepted, with what the leader needs either way.
    pub outcome: AppendOutcome,
}

/// The result of an AppendEntries at the follower.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum AppendOutcome {
    /// The follower's log matches the leader's up to `match_index`, and is durable up to there.
    /// Sent only once the entries are durable, so it may cover several requests at once.
    Success {
        /// Highest index known durable and equal to the leader's log.
        match_index: LogIndex,
    },
    /// The follower does not hold `prev_log_term` at `rejected` (the request's `prev_log_index`).
    Reject {
        /// The `prev_log_index` of the rejected request, so the leader can ignore stale answers.
        rejected: LogIndex,
        /// Fast backtracking hint (etcd's findConflictByTerm): the follower's last index at or
        /// before `min(rejected, its last index)` whose term is at most the request's
        /// `prev_log_term`. Its log cannot match the leader's above this index.
        hint_index: LogIndex,
        /// The follower's term at `hint_index`.
        hint_term: Term,
    },
}

/// Raft's RequestVote RPC (figure 2), also used for pre-votes (thesis 9.6).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VoteRequest {
    /// The candidate's term; for a pre-vote, the term it would campaign in (its term + 1).
    pub term: Term,
    /// The candidate (must equal the sender).
    pub candidate: NodeId,
    /// Index of the candidate's last log entry.
    pub last_log_index: LogIndex,
    /// Term of the candidate's last log entry.
    pub last_log_term: Term,
    /// True for a pre-vote: the voter neither changes its term nor records a vote.
    pub prevote: bool,
    /// True if the leader asked for this election (`TimeoutNow`): voters grant it even while
    /// they still hear from that leader.
    pub transfer: bool,
}

/// The answer to a [`VoteRequest`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VoteResponse {
    /// The request's term if granted, else the voter's term.
    pub term: Term,
    /// Whether the (pre-)vote is granted.
    pub granted: bool,
    /// Echoes the request's `prevote`.
    pub prevote: bool,
}

/// A leader's heartbeat (its own pair, as in etcd, so it never disturbs replication state).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Heartbeat {
    /// The leader's term.
    pub term: Term,
    /// The leader (must equal the sender).
    pub leader: NodeId,
    /// The leader's commit index capped at what this follower is known to hold, so the follower
    /// may commit up to it without any log check.
    pub commit: LogIndex,
    /// The ReadIndex round this heartbeat confirms; echoed in the response.
    pub read_round: u64,
}

/// The answer to a [`Heartbeat`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeartbeatResponse {
    /// The follower's term.
    pub term: Term,
    /// Echoes the heartbeat's `read_round`.
    pub read_round: u64,
}

/// Raft's InstallSnapshot RPC (figure 13), metadata only: the snapshot's bytes travel in chunks on
/// the driver's own path (etcd #9000), so the core never holds them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstallSnapshotRequest {
    /// The leader's term.
    pub term: Term,
    /// The leader (must equal the sender).
    pub leader: NodeId,
    /// The snapshot covers the log up to and including this index (figure 13's
    /// `lastIncludedIndex`).
    pub index: LogIndex,
    /// Term of the entry at `index` (figure 13's `lastIncludedTerm`).
    pub snapshot_term: Term,
    /// The configuration in force at `index`.
    pub membership: Membership,
}

/// Why bytes could not be decoded into a message or an entry.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum WireError {
    /// The bytes are not a valid encoding.
    #[error("malformed encoding: {0}")]
    Malformed(String),
    /// A valid encoding was followed by extra bytes.
    #[error("{count} unexpected trailing bytes")]
    TrailingBytes {
        /// How many bytes were left over.
        count: usize,
    },
    /// A stored entry payload starts with an unknown tag.
    #[error("unknown entry payload tag {0}")]
    UnknownPayloadTag(u8),
}

impl Message {
    /// The sender's term.
    pub fn term(&self) -> Term {
        match self {
            Message::AppendEntriesRequest(m) => m.term,
            Message::AppendEntriesResponse(m) => m.term,
            Message::VoteRequest(m) => m.term,
            Message::VoteResponse(m) => m.term,
            Message::Heartbeat(m) => m.term,
            Message::HeartbeatResponse(m) => m.term,
            Message::InstallSnapshot(m) => m.term,
            Message::TimeoutNow(m) => m.term,
            Message::ReadIndexRequest(m) => m.term,
            Message::ReadIndexResponse(m) => m.term,
        }
    }

    /// Encodes the message with postcard.
    #[allow(
        clippy::expect_used,
        reason = "serialising these plain types into a Vec cannot fail: postcard only errors on \
                  types it cannot represent (none here) or on a full fixed buffer (a Vec grows); \
                  the wire tests round-trip every variant"
    )]
    pub fn encode(&self) -> Vec<u8> {
        postcard::to_allocvec(self).expect("postcard encodes every Message")
    }

    /// Decodes a message; never panics, whatever the bytes.
    pub fn decode(bytes: &[u8]) -> Result<Message, WireError> {
        let (msg, rest) = postcard::take_from_bytes::<Message>(bytes)
            .map_err(|e| WireError::Malformed(e.to_string()))?;
        if !rest.is_empty() {
            return Err(WireError::TrailingBytes { count: rest.len() });
        }
        Ok(msg)
    }
}

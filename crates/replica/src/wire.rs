//! What members send each other: Raft's messages, and beside them the chunks of a snapshot
//! and their acknowledgements (the bytes travel on a path of their own, never inside a Raft
//! message, so one slow install cannot delay heartbeats; etcd #9000).
//!
//! Encoded with postcard. New variants are only ever appended at the end.

use bytes::Bytes;
use raft::{LogIndex, Message, Term, WireError};
use serde::{Deserialize, Serialize};

/// Which snapshot a transfer carries: the leader's `InstallSnapshot` request, handed to the
/// follower's core once every byte is staged.
pub type Offer = raft::InstallSnapshotRequest;

/// One peer message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum PeerMessage {
    /// A Raft message.
    Raft(Message),
    /// Leader to follower: bytes `offset .. offset + data.len()` of the snapshot file `offer`
    /// names, whose whole length is `total_bytes`.
    Chunk(Chunk),
    /// Follower to leader: how far staging of a transfer has come.
    ChunkAck(ChunkAck),
}

/// A piece of a snapshot file in transfer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Chunk {
    /// The snapshot (and the leader's term) this chunk belongs to.
    pub offer: Offer,
    /// Length of the whole snapshot file.
    pub total_bytes: u64,
    /// Where `data` starts in the file.
    pub offset: u64,
    /// The bytes.
    pub data: Bytes,
}

/// The follower's word on a transfer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkAck {
    /// The follower's term (a leader of an older term learns it is stale).
    pub term: Term,
    /// The snapshot index of the transfer acknowledged.
    pub index: LogIndex,
    /// Bytes received in order from the start; the leader resumes from here.
    pub received: u64,
    /// Where the transfer stands.
    pub status: AckStatus,
}

/// Where a transfer stands at the follower.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum AckStatus {
    /// Still receiving: send from `received` on.
    Receiving,
    /// Installed, or not needed (the follower already applied that far): the transfer is over.
    Done,
    /// The staged file did not verify: start again from zero.
    Restart,
}

impl PeerMessage {
    /// Encodes the message with postcard.
    #[allow(
        clippy::expect_used,
        reason = "serialising these plain types into a Vec cannot fail: postcard only errors on \
                  types it cannot represent (none here) or on a full fixed buffer (a Vec grows)"
    )]
    pub fn encode(&self) -> Vec<u8> {
        // Sized up front: growing from empty would reallocate and copy a batch of entries
        // several times over.
        let out = Vec::with_capacity(self.size_hint());
        postcard::to_extend(self, out).expect("postcard encodes every PeerMessage")
    }

    /// About the encoded length: enough for the usual message, so encoding rarely regrows.
    fn size_hint(&self) -> usize {
        const FIXED_BYTES: usize = 64;
        match self {
            PeerMessage::Raft(Message::AppendEntriesRequest(request)) => request
                .entries
                .iter()
                .fold(FIXED_BYTES, |n, e| n.saturating_add(e.size_hint())),
            PeerMessage::Chunk(chunk) => FIXED_BYTES.saturating_add(chunk.data.len()),
            _ => FIXED_BYTES,
        }
    }

    /// Decodes the message a frame holds; never panics, whatever the bytes. Its commands are
    /// slices of `frame` rather than copies ([`raft::entry::slicing_commands`]).
    pub fn decode(frame: &Bytes) -> Result<PeerMessage, WireError> {
        let (msg, rest) = raft::entry::slicing_commands(frame, || {
            postcard::take_from_bytes::<PeerMessage>(frame)
        })
        .map_err(|e| WireError::Malformed(e.to_string()))?;
        if !rest.is_empty() {
            return Err(WireError::TrailingBytes { count: rest.len() });
        }
        Ok(msg)
    }
}

//! Log entries, and the bytes the driver stores for each one.
//!
//! # Stored payload format
//! The WAL stores `(index, term, data)` per entry; `data` is [`Entry::encode_payload`]:
//!
//! | first byte | rest                      | payload             |
//! |------------|---------------------------|---------------------|
//! | `0`        | nothing                   | [`Payload::Noop`]   |
//! | `1`        | the command bytes, as is  | [`Payload::Command`]|
//! | `2`        | [`Membership::encode`]    | [`Payload::Membership`]|
//!
//! Tags 3 and up are reserved. A reader refuses any other tag, a no-op with trailing bytes and
//! an invalid configuration, so a damaged record is reported rather than misread.

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::ids::{LogIndex, Term};
use crate::membership::Membership;
use crate::message::WireError;

/// Stored tag of [`Payload::Noop`].
const TAG_NOOP: u8 = 0;
/// Stored tag of [`Payload::Command`].
const TAG_COMMAND: u8 = 1;
/// Stored tag of [`Payload::Membership`].
const TAG_MEMBERSHIP: u8 = 2;

/// Bytes a membership entry counts for, per member, against message and snapshot budgets.
const MEMBER_SIZE_HINT: usize = 64;

/// Bytes counted for an entry on top of its command when filling a message up to
/// `max_bytes_per_msg`: index and term as varints (up to 10 bytes each) plus tag and length.
pub const ENTRY_OVERHEAD_BYTES: usize = 24;

/// One slot of the replicated log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// Position in the log.
    pub index: LogIndex,
    /// Term of the leader that created the entry.
    pub term: Term,
    /// What the state machine applies.
    pub payload: Payload,
}

/// What an entry carries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Payload {
    /// The empty entry a new leader appends to commit the entries of earlier terms (thesis 3.6.2);
    /// the state machine skips it but it is still reported by `Commit`.
    Noop,
    /// An opaque client command for the state machine.
    Command(Bytes),
    /// A new configuration (see [`crate::membership`]); in force once committed. The state
    /// machine skips it like a no-op; the driver may track it (addresses, status).
    Membership(Membership),
}

impl Payload {
    /// Bytes of the command, 0 for a no-op, an estimate for a configuration.
    pub fn len(&self) -> usize {
        match self {
            Payload::Noop => 0,
            Payload::Command(data) => data.len(),
            Payload::Membership(m) => m.members().len() * MEMBER_SIZE_HINT,
        }
    }

    /// True if the payload carries no command bytes.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Entry {
    /// The bytes to store as this entry's data in the WAL (see the module doc for the format).
    pub fn encode_payload(&self) -> Vec<u8> {
        match &self.payload {
            Payload::Noop => vec![TAG_NOOP],
            Payload::Command(data) => {
                let mut out = Vec::with_capacity(1 + data.len());
                out.push(TAG_COMMAND);
                out.extend_from_slice(data);
                out
            }
            Payload::Membership(m) => {
                let mut out = vec![TAG_MEMBERSHIP];
                out.extend_from_slice(&m.encode());
                out
            }
        }
    }

    /// Rebuilds an entry from what the WAL stored; refuses damaged data instead of guessing.
    pub fn decode_payload(index: LogIndex, term: Term, data: &[u8]) -> Result<Entry, WireError> {
        let payload = match data.split_first() {
            None => return Err(WireError::EmptyPayload),
            Some((&TAG_NOOP, [])) => Payload::Noop,
            Some((&TAG_NOOP, rest)) => {
                return Err(WireError::TrailingBytes { count: rest.len() });
            }
            Some((&TAG_COMMAND, rest)) => Payload::Command(Bytes::copy_from_slice(rest)),
            Some((&TAG_MEMBERSHIP, rest)) => Payload::Membership(Membership::decode(rest)?),
            Some((&tag, _)) => return Err(WireError::UnknownPayloadTag(tag)),
        };
        Ok(Entry {
            index,
            term,
            payload,
        })
    }

    /// The size this entry counts for against `max_bytes_per_msg`.
    pub fn size_hint(&self) -> usize {
        self.payload.len().saturating_add(ENTRY_OVERHEAD_BYTES)
    }
}

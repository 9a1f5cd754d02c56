//! Log entries, and the bytes the driver stores for each one.
//!
//! # Stored payload format
//! The WAL stores `(index, term, kind, data)` per entry; the kind is the payload's tag and the
//! data its bytes, both from [`Entry::stored`]. On disk the kind is the byte before the data.
//!
//! | tag (kind) | data                      | payload             |
//! |------------|---------------------------|---------------------|
//! | `0`        | nothing                   | [`Payload::Noop`]   |
//! | `1`        | the command bytes, as is  | [`Payload::Command`]|
//! | `2`        | [`Membership::encode`]    | [`Payload::Membership`]|
//!
//! Tags 3 and up are reserved. A reader refuses any other tag, a no-op with data and an invalid
//! configuration, so a damaged record is reported rather than misread. A command is stored as
//! the very buffer the entry holds (no copy with the tag in front).
//!
//! # Commands sliced from a frame
//! A message decoded inside [`slicing_commands`] gives each command as a slice of the received
//! frame, sharing its buffer, rather than a copy of its own: a follower takes a batch of entries
//! with no allocation per entry. The price is that a kept command keeps the whole frame alive,
//! so whoever keeps only part of a message's entries gives those their own buffers
//! ([`Entry::detach`]); a frame then stays alive only as long as all of its entries do.

use std::cell::RefCell;

use bytes::Bytes;
use serde::{Deserialize, Deserializer, Serialize};

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
    Command(#[serde(deserialize_with = "command_bytes")] Bytes),
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
    /// What the WAL stores for this entry: the payload's tag, as the record's kind, and its
    /// data (see the module doc). A command's data is its own buffer, shared, not copied.
    pub fn stored(&self) -> (u8, Bytes) {
        match &self.payload {
            Payload::Noop => (TAG_NOOP, Bytes::new()),
            Payload::Command(data) => (TAG_COMMAND, data.clone()),
            Payload::Membership(m) => (TAG_MEMBERSHIP, Bytes::from(m.encode())),
        }
    }

    /// Rebuilds an entry from what the WAL stored (the kind `tag` and `data`); refuses damaged
    /// data instead of guessing. A command gets a copy of `data`: a slice would keep alive the
    /// whole segment it was read from.
    pub fn from_stored(
        index: LogIndex,
        term: Term,
        tag: u8,
        data: &[u8],
    ) -> Result<Entry, WireError> {
        let payload = match tag {
            TAG_NOOP if data.is_empty() => Payload::Noop,
            TAG_NOOP => return Err(WireError::TrailingBytes { count: data.len() }),
            TAG_COMMAND => Payload::Command(Bytes::copy_from_slice(data)),
            TAG_MEMBERSHIP => Payload::Membership(Membership::decode(data)?),
            tag => return Err(WireError::UnknownPayloadTag(tag)),
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

    /// Gives the command a buffer of its own, so that it no longer keeps alive the frame it
    /// was sliced from (see the module doc).
    pub fn detach(&mut self) {
        if let Payload::Command(data) = &mut self.payload {
            *data = Bytes::copy_from_slice(data);
        }
    }
}

thread_local! {
    /// The frame [`slicing_commands`] is decoding on this thread, if any.
    static FRAME: RefCell<Option<Bytes>> = const { RefCell::new(None) };
}

/// Runs `decode`, which deserialises a message from the bytes of `frame`, so that every
/// command it decodes is a slice of `frame` instead of a copy (see the module doc). Commands
/// decoded from anything else are copied as usual.
pub fn slicing_commands<T>(frame: &Bytes, decode: impl FnOnce() -> T) -> T {
    /// Puts back the frame of an enclosing call, also if `decode` panics.
    struct Restore(Option<Bytes>);
    impl Drop for Restore {
        fn drop(&mut self) {
            FRAME.set(self.0.take());
        }
    }
    let _restore = Restore(FRAME.replace(Some(frame.clone())));
    decode()
}

/// Deserialises a command: a slice of the frame being decoded when the bytes lie inside it
/// (postcard lends them straight from its input), a copy otherwise.
fn command_bytes<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Bytes, D::Error> {
    struct Visitor;
    impl<'de> serde::de::Visitor<'de> for Visitor {
        type Value = Bytes;

        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("command bytes")
        }

        fn visit_borrowed_bytes<E>(self, v: &'de [u8]) -> Result<Bytes, E> {
            Ok(FRAME.with_borrow(|frame| match frame {
                Some(frame) if lies_within(v, frame) => frame.slice_ref(v),
                _ => Bytes::copy_from_slice(v),
            }))
        }

        fn visit_bytes<E>(self, v: &[u8]) -> Result<Bytes, E> {
            Ok(Bytes::copy_from_slice(v))
        }

        fn visit_byte_buf<E>(self, v: Vec<u8>) -> Result<Bytes, E> {
            Ok(Bytes::from(v))
        }

        fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Bytes, A::Error> {
            // Self-describing formats without a bytes type (JSON) write a sequence of numbers.
            let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(4096));
            while let Some(byte) = seq.next_element::<u8>()? {
                out.push(byte);
            }
            Ok(Bytes::from(out))
        }
    }
    deserializer.deserialize_bytes(Visitor)
}

/// True if `part` is a non-empty stretch of `whole`'s memory (what [`Bytes::slice_ref`] needs).
fn lies_within(part: &[u8], whole: &[u8]) -> bool {
    let (part, whole) = (part.as_ptr_range(), whole.as_ptr_range());
    !part.is_empty() && whole.start <= part.start && part.end <= whole.end
}

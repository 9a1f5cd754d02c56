//! The form a command takes in the Raft log: the command plus the leader's clock reading, so
//! every replica judges expiry against the same instant.
//!
//! # FORMAT (one log entry's payload)
//! All integers little-endian, no padding. The log entry that carries these bytes delimits them,
//! so there is no overall length.
//!
//! ```text
//! size  field
//! 1     tag: 1 = read, 2 = write, 3 = cas, 4 = delete, 5 = clock (no command)
//! 8     clock_ms: u64, the leader's clock when it accepted the command
//! then, for clock: nothing; for the others:
//! 1     name length: u8, 1..=250
//! n     name: printable ASCII without spaces
//! then, for write:  8 exptime_s: u64 | 8 content length: u64 | m content
//!       for cas:    8 version: u64 | 8 exptime_s: u64 | 8 content length: u64 | m content
//!       for read and delete: nothing
//! ```
//!
//! The tag doubles as the format version: a future layout takes new tag values, so entries
//! already in a log stay readable. Decoding refuses unknown tags, truncation, trailing bytes and
//! invalid names, and never panics.

use crate::binary::{self, NameFieldError, Reader, Truncated};
use crate::command::{Command, NameError};
use bytes::{BufMut, Bytes, BytesMut};

/// Tag of a logged `read` (reads go through the log when ReadIndex is not available).
const TAG_READ: u8 = 1;
/// Tag of a logged `write`.
const TAG_WRITE: u8 = 2;
/// Tag of a logged `cas`.
const TAG_CAS: u8 = 3;
/// Tag of a logged `delete`.
const TAG_DELETE: u8 = 4;
/// Tag of a clock entry: the leader's clock alone, so that expiry advances while no command does.
const TAG_CLOCK: u8 = 5;

/// Bytes of the fields every entry has besides its name: tag and clock.
const FIXED_BYTES: usize = 1 + 8;

/// A command as logged: the command and the leader's clock reading when it accepted it.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct StampedCommand {
    /// The leader's clock, in milliseconds, when the command entered the log.
    pub clock_ms: u64,
    /// The command; `None` for a clock entry, which only moves the replicated clock.
    pub command: Option<Command>,
}

/// Why [`StampedCommand::decode`] refused its input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The input is empty or ends inside a field.
    #[error("logged command is truncated")]
    Truncated,
    /// The first byte names no known command.
    #[error("logged command has unknown tag {0}")]
    UnknownTag(u8),
    /// The name breaks the naming rule.
    #[error("logged command holds an invalid file name: {0}")]
    BadName(NameError),
    /// Bytes follow the last field.
    #[error("logged command has {0} trailing bytes")]
    TrailingBytes(usize),
}

impl From<Truncated> for DecodeError {
    fn from(_: Truncated) -> Self {
        DecodeError::Truncated
    }
}

impl From<NameFieldError> for DecodeError {
    fn from(e: NameFieldError) -> Self {
        match e {
            NameFieldError::Truncated => DecodeError::Truncated,
            NameFieldError::Invalid(e) => DecodeError::BadName(e),
        }
    }
}

impl StampedCommand {
    /// Stamps `command` with the clock reading `clock_ms`.
    pub fn new(clock_ms: u64, command: Command) -> StampedCommand {
        StampedCommand {
            clock_ms,
            command: Some(command),
        }
    }

    /// A clock entry: the clock reading `clock_ms` and no command.
    pub fn clock(clock_ms: u64) -> StampedCommand {
        StampedCommand {
            clock_ms,
            command: None,
        }
    }

    /// Applies the command to `store` at its clock stamp (a clock entry only moves the store's
    /// clock): what every replica does with a committed entry, and what an offline export of a
    /// data directory does with its log. The command's reply, if it had one.
    pub fn apply_to(&self, store: &mut crate::Store) -> Option<crate::Reply> {
        match &self.command {
            Some(command) => Some(store.apply(command, self.clock_ms)),
            None => {
                store.tick(self.clock_ms);
                None
            }
        }
    }

    /// The binary form described in the module's FORMAT section.
    pub fn encode(&self) -> Bytes {
        let Some(command) = &self.command else {
            let mut out = BytesMut::with_capacity(FIXED_BYTES);
            out.put_u8(TAG_CLOCK);
            out.put_u64_le(self.clock_ms);
            return out.freeze();
        };
        let name = command.name();
        let body = match command {
            Command::Read { .. } | Command::Delete { .. } => 0,
            Command::Write { content, .. } => 8 + binary::content_len(content),
            Command::Cas { content, .. } => 16 + binary::content_len(content),
        };
        let mut out = BytesMut::with_capacity(FIXED_BYTES + binary::name_len(name) + body);
        let tag = match command {
            Command::Read { .. } => TAG_READ,
            Command::Write { .. } => TAG_WRITE,
            Command::Cas { .. } => TAG_CAS,
            Command::Delete { .. } => TAG_DELETE,
        };
        out.put_u8(tag);
        out.put_u64_le(self.clock_ms);
        binary::put_name(&mut out, name);
        match command {
            Command::Read { .. } | Command::Delete { .. } => {}
            Command::Write {
                content, exptime_s, ..
            } => {
                out.put_u64_le(*exptime_s);
                binary::put_content(&mut out, content);
            }
            Command::Cas {
                version,
                content,
                exptime_s,
                ..
            } => {
                out.put_u64_le(*version);
                out.put_u64_le(*exptime_s);
                binary::put_content(&mut out, content);
            }
        }
        out.freeze()
    }

    /// Parses the binary form, checking every field; never panics on any input. The name and
    /// content are slices of `bytes`, not copies: a command applied is dropped, and the store
    /// copies what it keeps.
    pub fn decode(bytes: &Bytes) -> Result<StampedCommand, DecodeError> {
        let mut input = Reader::sharing(bytes);
        let tag = input.u8()?;
        if !(TAG_READ..=TAG_CLOCK).contains(&tag) {
            return Err(DecodeError::UnknownTag(tag));
        }
        let clock_ms = input.u64()?;
        if tag == TAG_CLOCK {
            return match input.remaining() {
                0 => Ok(StampedCommand::clock(clock_ms)),
                n => Err(DecodeError::TrailingBytes(n)),
            };
        }
        let name = input.name()?;
        let command = match tag {
            TAG_READ => Command::Read { name },
            TAG_DELETE => Command::Delete { name },
            TAG_WRITE => {
                let exptime_s = input.u64()?;
                let content = input.content()?;
                Command::Write {
                    name,
                    content,
                    exptime_s,
                }
            }
            TAG_CAS => {
                let version = input.u64()?;
                let exptime_s = input.u64()?;
                let content = input.content()?;
                Command::Cas {
                    name,
                    version,
                    content,
                    exptime_s,
                }
            }
            _ => return Err(DecodeError::UnknownTag(tag)),
        };
        match input.remaining() {
            0 => Ok(StampedCommand::new(clock_ms, command)),
            n => Err(DecodeError::TrailingBytes(n)),
        }
    }
}

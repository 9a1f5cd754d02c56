//! The client commands of docs/protocol.md as typed values.

use bytes::{BufMut, Bytes, BytesMut};
use std::fmt;

/// Longest file name accepted, in bytes (docs/protocol.md: 1 to 250 bytes).
pub const NAME_BYTES_MAX: usize = 250;

/// A validated file name: 1 to [`NAME_BYTES_MAX`] bytes of printable ASCII without spaces.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Name(Bytes);

/// Why a byte string is not a valid [`Name`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    /// The name has no bytes.
    #[error("file name is empty")]
    Empty,
    /// The name is longer than [`NAME_BYTES_MAX`].
    #[error("file name is longer than {NAME_BYTES_MAX} bytes")]
    TooLong,
    /// The name holds a byte that is not printable ASCII, or a space.
    #[error("file name holds a byte that is not printable ASCII (0x{0:02x})")]
    BadByte(u8),
}

impl Name {
    /// Checks `bytes` against the naming rule and wraps them.
    pub fn new(bytes: impl Into<Bytes>) -> Result<Name, NameError> {
        let bytes = bytes.into();
        if bytes.is_empty() {
            return Err(NameError::Empty);
        }
        if bytes.len() > NAME_BYTES_MAX {
            return Err(NameError::TooLong);
        }
        // Printable ASCII is 0x21..=0x7e once space (0x20) is excluded.
        if let Some(&bad) = bytes.iter().find(|b| !(0x21..=0x7e).contains(*b)) {
            return Err(NameError::BadByte(bad));
        }
        Ok(Name(bytes))
    }

    /// The same name in a buffer of its own, so that keeping it keeps nothing else alive (a
    /// name decoded from a logged command shares the command's buffer).
    pub fn detached(&self) -> Name {
        Name(Bytes::copy_from_slice(&self.0))
    }

    /// The name's bytes (always printable ASCII).
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The name as text; it is ASCII by construction.
    pub fn as_str(&self) -> &str {
        // Every byte is in 0x21..=0x7e, so this never fails; fall back rather than panic.
        std::str::from_utf8(&self.0).unwrap_or("")
    }
}

impl fmt::Debug for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.as_str())
    }
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One client command. Wire forms (docs/protocol.md):
///
/// ```text
/// read NAME\r\n
/// write NAME NUMBYTES [EXPTIME]\r\n<content>\r\n
/// cas NAME VERSION NUMBYTES [EXPTIME]\r\n<content>\r\n
/// delete NAME\r\n
/// ```
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum Command {
    /// Read a file's content, version and remaining lifetime.
    Read {
        /// The file to read.
        name: Name,
    },
    /// Create or replace a file; it gets a new version.
    Write {
        /// The file to write.
        name: Name,
        /// The new content (binary, any bytes).
        content: Bytes,
        /// Lifetime in seconds from the command's clock stamp; 0 means never expires.
        exptime_s: u64,
    },
    /// Replace a file only if its current version is `version`.
    Cas {
        /// The file to replace.
        name: Name,
        /// The version the caller expects the file to have now.
        version: u64,
        /// The new content.
        content: Bytes,
        /// Lifetime in seconds from the command's clock stamp; 0 means never expires.
        exptime_s: u64,
    },
    /// Remove a file.
    Delete {
        /// The file to remove.
        name: Name,
    },
}

impl Command {
    /// The file the command is about.
    pub fn name(&self) -> &Name {
        match self {
            Command::Read { name }
            | Command::Write { name, .. }
            | Command::Cas { name, .. }
            | Command::Delete { name } => name,
        }
    }

    /// Whether the command changes the store (and so must go through the log).
    pub fn is_mutation(&self) -> bool {
        !matches!(self, Command::Read { .. })
    }

    /// Appends the command's wire form (see the type's documentation) to `dst`, as a client
    /// sends it. EXPTIME is written only when it is not 0, which means the same.
    pub fn encode(&self, dst: &mut BytesMut) {
        // Header lines are short: a verb, a name of at most NAME_BYTES_MAX and three numbers.
        dst.reserve(NAME_BYTES_MAX + 80);
        let (line, content) = match self {
            Command::Read { name } => (format!("read {name}"), None),
            Command::Delete { name } => (format!("delete {name}"), None),
            Command::Write {
                name,
                content,
                exptime_s,
            } => (
                format!(
                    "write {name} {}{}",
                    content.len(),
                    exptime_suffix(*exptime_s)
                ),
                Some(content),
            ),
            Command::Cas {
                name,
                version,
                content,
                exptime_s,
            } => (
                format!(
                    "cas {name} {version} {}{}",
                    content.len(),
                    exptime_suffix(*exptime_s)
                ),
                Some(content),
            ),
        };
        dst.put_slice(line.as_bytes());
        dst.put_slice(b"\r\n");
        if let Some(content) = content {
            dst.reserve(content.len() + 2);
            dst.put_slice(content);
            dst.put_slice(b"\r\n");
        }
    }

    /// The command's wire form as a fresh buffer.
    pub fn to_bytes(&self) -> Bytes {
        let mut buf = BytesMut::new();
        self.encode(&mut buf);
        buf.freeze()
    }
}

/// The optional EXPTIME field of a write or cas line: omitted when 0 (never expires).
fn exptime_suffix(exptime_s: u64) -> String {
    match exptime_s {
        0 => String::new(),
        s => format!(" {s}"),
    }
}

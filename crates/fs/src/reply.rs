//! Replies to client commands and their wire form.

use bytes::{BufMut, Bytes, BytesMut};

/// What a command answers. Every reply line ends with `\r\n`.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum Reply {
    /// `CONTENTS VERSION NUMBYTES EXPTIME\r\n<content>\r\n`: a successful read.
    Contents {
        /// The file's version.
        version: u64,
        /// Seconds until expiry, rounded up; 0 if the file never expires.
        exptime_s: u64,
        /// The file's content.
        content: Bytes,
    },
    /// `OK VERSION`: a successful write or cas, with the file's new version.
    Written {
        /// The version the write or cas gave the file.
        version: u64,
    },
    /// `OK`: a successful delete.
    Deleted,
    /// `ERR_FILE_NOT_FOUND`: no such file (or it has expired).
    FileNotFound,
    /// `ERR_VERSION CURRENT`: a cas named a version other than the file's current one.
    VersionMismatch {
        /// The file's current version.
        current: u64,
    },
    /// `ERR_CMD_ERR`: the command was malformed.
    CmdErr,
    /// `ERR_INTERNAL`: the server could not complete the command; a mutation's outcome is unknown.
    Internal,
    /// `ERR_REDIRECT HOST:PORT`: this server is not the leader; the leader's client address.
    Redirect(String),
    /// `OK N`: an administrative command succeeded; N is the log index of a committed
    /// membership change, or the new leader's id after a transfer. (A client reads it back as
    /// [`Reply::Written`]: the wire form is the same.)
    Done(u64),
    /// `MEMBERS N` and N `MEMBER` lines: the configuration in force (see [`crate::admin`]).
    Members(Vec<crate::admin::MemberInfo>),
    /// `ERR_MEMBER REASON`: an administrative command was refused; the reason is one line.
    MemberError(String),
    /// `SNAPSHOT INDEX TERM NUMBYTES CRC32C\r\n<file>\r\n`: a backup (see [`crate::admin`]).
    Snapshot {
        /// The last log index the backup covers.
        index: u64,
        /// The term of that entry.
        term: u64,
        /// The CRC32C the file ends with (the file checks itself; this lets a reader say
        /// which backup it holds without parsing it).
        crc32c: u32,
        /// The whole snapshot file.
        file: Bytes,
    },
}

impl Reply {
    /// Appends the reply's wire form to `dst`.
    pub fn encode(&self, dst: &mut BytesMut) {
        match self {
            Reply::Contents {
                version,
                exptime_s,
                content,
            } => {
                dst.reserve(content.len() + 80);
                // The numbers of the hot replies go through itoa, not `write!`: the formatting
                // machinery was a tenth of a read's instructions.
                dst.put_slice(b"CONTENTS ");
                put_u64(dst, *version);
                dst.put_u8(b' ');
                put_u64(dst, content.len() as u64);
                dst.put_u8(b' ');
                put_u64(dst, *exptime_s);
                dst.put_slice(b"\r\n");
                dst.put_slice(content);
                dst.put_slice(b"\r\n");
            }
            Reply::Written { version } => {
                dst.put_slice(b"OK ");
                put_u64(dst, *version);
                dst.put_slice(b"\r\n");
            }
            Reply::Done(n) => dst.put_slice(format!("OK {n}\r\n").as_bytes()),
            Reply::Members(members) => {
                dst.put_slice(format!("MEMBERS {}\r\n", members.len()).as_bytes());
                for member in members {
                    dst.put_slice(member.line().as_bytes());
                    dst.put_slice(b"\r\n");
                }
            }
            Reply::MemberError(reason) => {
                // One line, whatever the reason says.
                let reason: String = reason
                    .chars()
                    .map(|c| if c.is_control() { ' ' } else { c })
                    .collect();
                dst.put_slice(format!("ERR_MEMBER {reason}\r\n").as_bytes());
            }
            Reply::Snapshot {
                index,
                term,
                crc32c,
                file,
            } => {
                dst.reserve(file.len() + 80);
                let header = format!("SNAPSHOT {index} {term} {} {crc32c}\r\n", file.len());
                dst.put_slice(header.as_bytes());
                dst.put_slice(file);
                dst.put_slice(b"\r\n");
            }
            Reply::Deleted => dst.put_slice(b"OK\r\n"),
            Reply::FileNotFound => dst.put_slice(b"ERR_FILE_NOT_FOUND\r\n"),
            Reply::VersionMismatch { current } => {
                dst.put_slice(format!("ERR_VERSION {current}\r\n").as_bytes())
            }
            Reply::CmdErr => dst.put_slice(b"ERR_CMD_ERR\r\n"),
            Reply::Internal => dst.put_slice(b"ERR_INTERNAL\r\n"),
            Reply::Redirect(addr) => dst.put_slice(format!("ERR_REDIRECT {addr}\r\n").as_bytes()),
        }
    }

    /// The reply's wire form as a fresh buffer.
    pub fn to_bytes(&self) -> Bytes {
        let mut buf = BytesMut::new();
        self.encode(&mut buf);
        buf.freeze()
    }
}

/// Appends `n` in decimal.
fn put_u64(dst: &mut BytesMut, n: u64) {
    dst.put_slice(itoa::Buffer::new().format(n).as_bytes());
}

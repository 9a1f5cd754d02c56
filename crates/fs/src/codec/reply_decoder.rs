//! Client side: server bytes to replies.
//!
//! ```text
//! CONTENTS VERSION NUMBYTES EXPTIME\r\n<NUMBYTES bytes>\r\n
//! OK VERSION\r\n    OK\r\n    ERR_VERSION CURRENT\r\n    ERR_FILE_NOT_FOUND\r\n
//! ERR_CMD_ERR\r\n   ERR_INTERNAL\r\n   ERR_REDIRECT HOST:PORT\r\n
//! MEMBERS N\r\n + N MEMBER lines    ERR_MEMBER REASON\r\n   (see crate::admin)
//! SNAPSHOT INDEX TERM NUMBYTES CRC32C\r\n<NUMBYTES bytes>\r\n   (a backup, crate::admin)
//! ```
//!
//! Strict, because its peer is our own server and the tests and simulator use it to check that
//! server: lines end with `\r\n` only, fields are separated by exactly one space. Any error means
//! the stream can no longer be trusted; the decoder then returns that error on every call.

use super::{Fields, LINE_BYTES_MAX, Limits, LineScan, parse_u64, scan_line};
use crate::reply::Reply;
use bytes::{Buf, BytesMut};

/// Why a server's reply stream could not be parsed. Every one is fatal for the connection.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReplyError {
    /// A reply line was longer than [`LINE_BYTES_MAX`] bytes.
    #[error("reply line longer than {LINE_BYTES_MAX} bytes")]
    LineTooLong,
    /// A reply line ended with a bare `\n`.
    #[error("reply line not ended by \\r\\n")]
    BareNewline,
    /// A reply line is none of the known replies, or has a bad field.
    #[error("unrecognised reply line")]
    Unrecognised,
    /// A `CONTENTS` reply announced more content than the limit.
    #[error("reply content of {numbytes} bytes exceeds the limit of {max} bytes")]
    ContentTooLarge {
        /// The announced content length.
        numbytes: u64,
        /// The configured limit.
        max: u64,
    },
    /// A `CONTENTS` reply's content was not followed by `\r\n`.
    #[error("reply content not followed by \\r\\n")]
    ContentNotTerminated,
}

/// Where the decoder is in the byte stream.
#[derive(Debug)]
enum State {
    /// At the start of a reply line.
    Line,
    /// After a `CONTENTS` line: waiting for `numbytes` bytes and `\r\n`.
    Content {
        version: u64,
        exptime_s: u64,
        numbytes: usize,
    },
    /// After a `SNAPSHOT` line: waiting for the file's `numbytes` bytes and `\r\n`.
    Snapshot {
        index: u64,
        term: u64,
        crc32c: u32,
        numbytes: usize,
    },
    /// After a `MEMBERS N` line: the member lines read so far, and how many are left.
    Members {
        members: Vec<crate::admin::MemberInfo>,
        remaining: usize,
    },
    /// The stream was malformed; this error is returned from now on.
    Failed(ReplyError),
}

/// What a reply line says.
enum Line {
    /// A complete reply.
    Reply(Reply),
    /// A `MEMBERS N` header; N member lines follow.
    Members(usize),
    /// A `CONTENTS` header; the content follows.
    Contents {
        version: u64,
        numbytes: u64,
        exptime_s: u64,
    },
    /// A `SNAPSHOT` header; the file follows.
    Snapshot {
        index: u64,
        term: u64,
        numbytes: u64,
        crc32c: u32,
    },
}

/// The client's incremental reply parser.
#[derive(Debug)]
pub struct ReplyDecoder {
    limits: Limits,
    state: State,
}

impl Default for ReplyDecoder {
    /// A decoder with the default [`Limits`].
    fn default() -> Self {
        ReplyDecoder::new(Limits::default())
    }
}

impl ReplyDecoder {
    /// A decoder at the start of a connection; `limits.file_bytes_max` bounds `CONTENTS`.
    pub fn new(limits: Limits) -> ReplyDecoder {
        ReplyDecoder {
            limits,
            state: State::Line,
        }
    }

    /// Consumes what it can use from the front of `src` and returns the next reply, `Ok(None)`
    /// when it needs more bytes, or the error that made the stream unusable (then again on every
    /// later call). The result does not depend on how the stream was split into calls.
    pub fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Reply>, ReplyError> {
        loop {
            match &self.state {
                State::Failed(e) => return Err(e.clone()),
                State::Line => match self.line(src) {
                    Ok(None) => return Ok(None),
                    Ok(Some(Line::Reply(reply))) => return Ok(Some(reply)),
                    Ok(Some(Line::Contents {
                        version,
                        numbytes,
                        exptime_s,
                    })) => self.start_content(version, numbytes, exptime_s)?,
                    Ok(Some(Line::Snapshot {
                        index,
                        term,
                        numbytes,
                        crc32c,
                    })) => self.start_snapshot(index, term, numbytes, crc32c)?,
                    Ok(Some(Line::Members(0))) => return Ok(Some(Reply::Members(Vec::new()))),
                    Ok(Some(Line::Members(n))) => {
                        self.state = State::Members {
                            members: Vec::new(),
                            remaining: n,
                        }
                    }
                    Err(e) => return Err(self.fail(e)),
                },
                State::Members { .. } => return self.member_line(src),
                &State::Snapshot {
                    index,
                    term,
                    crc32c,
                    numbytes,
                } => {
                    let Some(file) = self.body(src, numbytes)? else {
                        return Ok(None);
                    };
                    return Ok(Some(Reply::Snapshot {
                        index,
                        term,
                        crc32c,
                        file,
                    }));
                }
                &State::Content {
                    version,
                    exptime_s,
                    numbytes,
                } => return self.content(src, version, exptime_s, numbytes),
            }
        }
    }

    fn fail(&mut self, e: ReplyError) -> ReplyError {
        self.state = State::Failed(e.clone());
        e
    }

    fn line(&mut self, src: &mut BytesMut) -> Result<Option<Line>, ReplyError> {
        let end = match scan_line(src) {
            LineScan::NeedMore => return Ok(None),
            LineScan::TooLong => return Err(ReplyError::LineTooLong),
            LineScan::Found(end) => end,
        };
        let Some(line) = src[..end].strip_suffix(b"\r") else {
            return Err(ReplyError::BareNewline);
        };
        if line.len() > LINE_BYTES_MAX {
            return Err(ReplyError::LineTooLong);
        }
        let parsed = parse_line(line)?;
        src.advance(end + 1);
        Ok(Some(parsed))
    }

    /// One `MEMBER` line of a `MEMBERS` reply; the whole reply once the last one is in.
    fn member_line(&mut self, src: &mut BytesMut) -> Result<Option<Reply>, ReplyError> {
        loop {
            let end = match scan_line(src) {
                LineScan::NeedMore => return Ok(None),
                LineScan::TooLong => return Err(self.fail(ReplyError::LineTooLong)),
                LineScan::Found(end) => end,
            };
            let Some(line) = src[..end].strip_suffix(b"\r") else {
                return Err(self.fail(ReplyError::BareNewline));
            };
            let fields: Vec<&[u8]> = line.split(|&b| b == b' ').collect();
            let Some(member) = crate::admin::MemberInfo::parse(&fields) else {
                return Err(self.fail(ReplyError::Unrecognised));
            };
            src.advance(end + 1);
            let State::Members { members, remaining } = &mut self.state else {
                return Err(self.fail(ReplyError::Unrecognised));
            };
            members.push(member);
            *remaining -= 1;
            if *remaining == 0 {
                let members = std::mem::take(members);
                self.state = State::Line;
                return Ok(Some(Reply::Members(members)));
            }
        }
    }

    fn start_content(
        &mut self,
        version: u64,
        announced: u64,
        exptime_s: u64,
    ) -> Result<(), ReplyError> {
        // The content and its terminator must be indexable in memory.
        let fits = usize::try_from(announced)
            .ok()
            .filter(|n| n.checked_add(2).is_some());
        match fits {
            Some(numbytes) if announced <= self.limits.file_bytes_max => {
                self.state = State::Content {
                    version,
                    exptime_s,
                    numbytes,
                };
                Ok(())
            }
            _ => Err(self.fail(ReplyError::ContentTooLarge {
                numbytes: announced,
                max: self.limits.file_bytes_max,
            })),
        }
    }

    /// After a `SNAPSHOT` line: a backup is not a file, so the file size limit does not bound
    /// it; [`crate::admin::SNAPSHOT_REPLY_BYTES_MAX`] does.
    fn start_snapshot(
        &mut self,
        index: u64,
        term: u64,
        announced: u64,
        crc32c: u32,
    ) -> Result<(), ReplyError> {
        let max = crate::admin::SNAPSHOT_REPLY_BYTES_MAX;
        let fits = usize::try_from(announced)
            .ok()
            .filter(|n| n.checked_add(2).is_some());
        match fits {
            Some(numbytes) if announced <= max => {
                self.state = State::Snapshot {
                    index,
                    term,
                    crc32c,
                    numbytes,
                };
                Ok(())
            }
            _ => Err(self.fail(ReplyError::ContentTooLarge {
                numbytes: announced,
                max,
            })),
        }
    }

    fn content(
        &mut self,
        src: &mut BytesMut,
        version: u64,
        exptime_s: u64,
        numbytes: usize,
    ) -> Result<Option<Reply>, ReplyError> {
        let Some(content) = self.body(src, numbytes)? else {
            return Ok(None);
        };
        Ok(Some(Reply::Contents {
            version,
            exptime_s,
            content,
        }))
    }

    /// The `numbytes` bytes after a header line and their `\r\n`, once all are in; the
    /// decoder is then at a line again.
    fn body(
        &mut self,
        src: &mut BytesMut,
        numbytes: usize,
    ) -> Result<Option<bytes::Bytes>, ReplyError> {
        let Some(terminator) = src.get(numbytes..numbytes + 2) else {
            return Ok(None);
        };
        if terminator != b"\r\n" {
            return Err(self.fail(ReplyError::ContentNotTerminated));
        }
        let body = src.split_to(numbytes).freeze();
        src.advance(2);
        self.state = State::Line;
        Ok(Some(body))
    }
}

fn parse_line(line: &[u8]) -> Result<Line, ReplyError> {
    // The address is the rest of the line, so it is matched before splitting on spaces.
    if let Some(addr) = line.strip_prefix(b"ERR_REDIRECT ") {
        return parse_addr(addr).map(|addr| Line::Reply(Reply::Redirect(addr)));
    }
    if let Some(reason) = line.strip_prefix(b"ERR_MEMBER ") {
        let reason = std::str::from_utf8(reason).map_err(|_| ReplyError::Unrecognised)?;
        // The server blanks control characters out of a reason (`Reply::encode`), so one here
        // means a damaged stream, not a reason to hand on.
        if reason.chars().any(char::is_control) {
            return Err(ReplyError::Unrecognised);
        }
        return Ok(Line::Reply(Reply::MemberError(reason.to_owned())));
    }
    let fields = Fields::collect(line.split(|&b| b == b' '));
    let number = |field: &[u8]| parse_u64(field).ok_or(ReplyError::Unrecognised);
    let reply = match fields.as_slice() {
        Some(&[b"CONTENTS", version, numbytes, exptime]) => {
            return Ok(Line::Contents {
                version: number(version)?,
                numbytes: number(numbytes)?,
                exptime_s: number(exptime)?,
            });
        }
        Some(&[b"SNAPSHOT", index, term, numbytes, crc]) => {
            return Ok(Line::Snapshot {
                index: number(index)?,
                term: number(term)?,
                numbytes: number(numbytes)?,
                crc32c: u32::try_from(number(crc)?).map_err(|_| ReplyError::Unrecognised)?,
            });
        }
        Some(&[b"MEMBERS", count]) => {
            let count = number(count)?;
            // A configuration holds at most 64 members; refuse absurd counts up front.
            if count > 1024 {
                return Err(ReplyError::Unrecognised);
            }
            return Ok(Line::Members(count as usize));
        }
        Some(&[b"OK"]) => Reply::Deleted,
        Some(&[b"OK", version]) => Reply::Written {
            version: number(version)?,
        },
        Some(&[b"ERR_VERSION", current]) => Reply::VersionMismatch {
            current: number(current)?,
        },
        Some(&[b"ERR_FILE_NOT_FOUND"]) => Reply::FileNotFound,
        Some(&[b"ERR_CMD_ERR"]) => Reply::CmdErr,
        Some(&[b"ERR_INTERNAL"]) => Reply::Internal,
        _ => return Err(ReplyError::Unrecognised),
    };
    Ok(Line::Reply(reply))
}

/// A redirect address: non-empty printable ASCII without spaces (`HOST:PORT`).
fn parse_addr(addr: &[u8]) -> Result<String, ReplyError> {
    if addr.is_empty() || !addr.iter().all(|b| (0x21..=0x7e).contains(b)) {
        return Err(ReplyError::Unrecognised);
    }
    String::from_utf8(addr.to_vec()).map_err(|_| ReplyError::Unrecognised)
}

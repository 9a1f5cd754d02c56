//! Server side: client bytes to commands.
//!
//! ```text
//! read NAME\r\n
//! write NAME NUMBYTES [EXPTIME]\r\n<NUMBYTES bytes>\r\n
//! cas NAME VERSION NUMBYTES [EXPTIME]\r\n<NUMBYTES bytes>\r\n
//! delete NAME\r\n
//! ```
//!
//! A line ends with `\r\n` or a bare `\n`; fields are separated by one or more spaces. Once a
//! `write` or `cas` line has the right field count and a NUMBYTES within the limit, framing is
//! known, so the content is consumed even when another field is bad. What happens on each error:
//!
//! | error | input consumed | connection |
//! |---|---|---|
//! | bad line (empty, unknown verb, wrong field count, bad NUMBYTES, bad name or number in `read`/`delete`) | the line | kept |
//! | line over [`LINE_BYTES_MAX`] | everything through the next `\n`, discarded as it arrives | kept |
//! | bad name, VERSION or EXPTIME in `write`/`cas` | the line and the content with its terminator | kept |
//! | NUMBYTES over the limit | the line, then exactly NUMBYTES bytes as they arrive, then an optional terminator | kept |
//! | content not followed by `\r\n` or `\n` | everything, now and after | closed |

use super::{Fields, LINE_BYTES_MAX, Limits, LineScan, parse_u64, scan_line};
use crate::command::{Command, Name, NameError};
use crate::reply::Reply;
use bytes::{Buf, Bytes, BytesMut};
use std::fmt;

/// What [`Decoder::decode`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decoded {
    /// A well-formed command.
    Command(Command),
    /// A well-formed administrative command (see [`crate::admin`]).
    Admin(crate::admin::Admin),
    /// A malformed command; answer it `ERR_CMD_ERR` (see [`ParseError::reply`]).
    Error(ParseError),
}

/// The four command verbs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verb {
    /// `read`
    Read,
    /// `write`
    Write,
    /// `cas`
    Cas,
    /// `delete`
    Delete,
}

impl Verb {
    /// The verb named by a line's first field, which must match exactly (lowercase).
    fn parse(field: &[u8]) -> Option<Verb> {
        match field {
            b"read" => Some(Verb::Read),
            b"write" => Some(Verb::Write),
            b"cas" => Some(Verb::Cas),
            b"delete" => Some(Verb::Delete),
            _ => None,
        }
    }

    /// The field counts (verb included) a line with this verb may have, for messages.
    fn field_counts(self) -> &'static str {
        match self {
            Verb::Read | Verb::Delete => "2",
            Verb::Write => "3 or 4",
            Verb::Cas => "4 or 5",
        }
    }
}

impl fmt::Display for Verb {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Verb::Read => "read",
            Verb::Write => "write",
            Verb::Cas => "cas",
            Verb::Delete => "delete",
        })
    }
}

/// The numeric fields of a command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NumberField {
    /// A `write`'s or `cas`'s content length.
    Numbytes,
    /// A `cas`'s expected version.
    Version,
    /// A `write`'s or `cas`'s lifetime in seconds.
    Exptime,
}

impl fmt::Display for NumberField {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            NumberField::Numbytes => "NUMBYTES",
            NumberField::Version => "VERSION",
            NumberField::Exptime => "EXPTIME",
        })
    }
}

/// Why a command was malformed. Every one is answered `ERR_CMD_ERR`; the variant is for logs.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// The line was empty or held only spaces.
    #[error("empty command line")]
    EmptyLine,
    /// The line was longer than [`LINE_BYTES_MAX`] bytes.
    #[error("command line longer than {LINE_BYTES_MAX} bytes")]
    LineTooLong,
    /// The first field is not `read`, `write`, `cas`, `delete` or an administrative verb.
    #[error("unknown command verb")]
    UnknownVerb,
    /// An administrative command has the wrong fields (see [`crate::admin`]).
    #[error("malformed administrative command")]
    BadAdminField,
    /// The line has the wrong number of fields for its verb.
    #[error("{verb} takes {} fields, got {found}", verb.field_counts())]
    WrongFieldCount {
        /// The line's verb.
        verb: Verb,
        /// How many fields the line had, verb included.
        found: usize,
    },
    /// A numeric field is not a plain decimal that fits in 64 bits.
    #[error("{0} is not an unsigned 64-bit decimal number")]
    BadNumber(NumberField),
    /// The file name breaks the naming rule.
    #[error("bad file name: {0}")]
    BadName(NameError),
    /// NUMBYTES exceeds [`Limits::file_bytes_max`]; the content is skipped unbuffered.
    #[error("NUMBYTES {numbytes} exceeds the limit of {max} bytes")]
    FileTooLarge {
        /// The announced content length.
        numbytes: u64,
        /// The configured limit.
        max: u64,
    },
    /// The content was not followed by `\r\n` or `\n`, so the next command cannot be found.
    #[error("content not followed by a line terminator: framing lost")]
    ContentNotTerminated,
}

impl ParseError {
    /// Whether framing is lost: the server answers `ERR_CMD_ERR` and then closes the connection.
    pub fn closes_connection(&self) -> bool {
        matches!(self, ParseError::ContentNotTerminated)
    }

    /// The reply owed to the client: always `ERR_CMD_ERR`.
    pub fn reply(&self) -> Reply {
        Reply::CmdErr
    }
}

/// A parsed `write` or `cas` line, waiting for its content.
#[derive(Debug)]
enum Header {
    Write {
        name: Name,
        exptime_s: u64,
    },
    Cas {
        name: Name,
        version: u64,
        exptime_s: u64,
    },
}

impl Header {
    fn into_command(self, content: Bytes) -> Command {
        match self {
            Header::Write { name, exptime_s } => Command::Write {
                name,
                content,
                exptime_s,
            },
            Header::Cas {
                name,
                version,
                exptime_s,
            } => Command::Cas {
                name,
                version,
                content,
                exptime_s,
            },
        }
    }
}

/// Where the decoder is in the byte stream.
#[derive(Debug)]
enum State {
    /// At the start of a command line.
    Line,
    /// Inside a line known to be too long: discarding through the next `\n`.
    DiscardLine,
    /// After a `write`/`cas` line: waiting for `numbytes` bytes and a terminator. `header` is
    /// the error to report instead if a field other than NUMBYTES was bad.
    Content {
        numbytes: usize,
        header: Result<Header, ParseError>,
    },
    /// Skipping `remaining` bytes of content announced over the limit.
    Skip { remaining: u64 },
    /// After skipped content: dropping one optional terminator.
    SkipTerminator,
    /// Framing was lost: discarding everything.
    Closed,
}

/// What one step of the state machine produced.
enum Step {
    Emit(Decoded),
    NeedMore,
    Continue,
}

/// The server's incremental command parser. See the module documentation for the rules.
#[derive(Debug)]
pub struct Decoder {
    limits: Limits,
    state: State,
}

impl Default for Decoder {
    /// A decoder with the default [`Limits`].
    fn default() -> Self {
        Decoder::new(Limits::default())
    }
}

impl Decoder {
    /// A decoder at the start of a connection.
    pub fn new(limits: Limits) -> Decoder {
        Decoder {
            limits,
            state: State::Line,
        }
    }

    /// Consumes what it can use from the front of `src` and returns the next command or error,
    /// or `None` when it needs more bytes. Call it again until it returns `None`.
    ///
    /// It may consume bytes while returning `None` (discarding an over-long line or over-large
    /// content). After an error that [closes the connection](ParseError::closes_connection) it
    /// discards all input and returns `None`. The result does not depend on how the stream was
    /// split into calls.
    ///
    /// Content is a zero-copy slice of `src`'s buffer, so it keeps that buffer alive: whatever
    /// holds content for long should copy it (the store does).
    pub fn decode(&mut self, src: &mut BytesMut) -> Option<Decoded> {
        loop {
            let step = match std::mem::replace(&mut self.state, State::Line) {
                State::Line => self.line(src),
                State::DiscardLine => {
                    if self.discard_line(src) {
                        Step::Continue
                    } else {
                        Step::NeedMore
                    }
                }
                State::Content { numbytes, header } => self.content(src, numbytes, header),
                State::Skip { remaining } => self.skip(src, remaining),
                State::SkipTerminator => self.skip_terminator(src),
                State::Closed => {
                    src.clear();
                    self.state = State::Closed;
                    Step::NeedMore
                }
            };
            match step {
                Step::Emit(decoded) => return Some(decoded),
                Step::NeedMore => return None,
                Step::Continue => {}
            }
        }
    }

    /// Whether framing was lost and the connection should be closed.
    pub fn is_closed(&self) -> bool {
        matches!(self.state, State::Closed)
    }

    /// Whether the decoder is at the start of a command line, not inside content, skipped
    /// content or an over-long line. With an empty buffer too, the connection is between
    /// commands: the point where a server shutting down may stop reading it.
    pub fn at_command_boundary(&self) -> bool {
        matches!(self.state, State::Line)
    }

    /// The limits this decoder enforces.
    pub fn limits(&self) -> Limits {
        self.limits
    }

    fn line(&mut self, src: &mut BytesMut) -> Step {
        let end = match scan_line(src) {
            LineScan::NeedMore => return Step::NeedMore,
            LineScan::TooLong => {
                self.discard_line(src);
                return Step::Emit(Decoded::Error(ParseError::LineTooLong));
            }
            LineScan::Found(end) => end,
        };
        // The line leaves the buffer as its own `Bytes`, so that a name is a slice of it, as a
        // file's content is of the buffer: the command is what keeps it, and copies it where
        // it is kept for long (the log's entry; the store copies what it keeps).
        let line = src.split_to(end + 1).freeze();
        let text = &line[..end];
        let text = text.strip_suffix(b"\r").unwrap_or(text);
        if text.len() > LINE_BYTES_MAX {
            Step::Emit(Decoded::Error(ParseError::LineTooLong))
        } else {
            self.parse_line(&line, text)
        }
    }

    /// Drops input through the next `\n`; returns whether it was found (else all was dropped).
    fn discard_line(&mut self, src: &mut BytesMut) -> bool {
        match src.iter().position(|&b| b == b'\n') {
            Some(end) => {
                src.advance(end + 1);
                self.state = State::Line;
                true
            }
            None => {
                src.clear();
                self.state = State::DiscardLine;
                false
            }
        }
    }

    /// Parses `text`, the part of `line` before its terminator.
    fn parse_line(&mut self, line: &Bytes, text: &[u8]) -> Step {
        let name = |field: &[u8]| parse_name(line, field);
        let fields = Fields::collect(text.split(|&b| b == b' ').filter(|f| !f.is_empty()));
        if fields.count == 0 {
            return Step::Emit(Decoded::Error(ParseError::EmptyLine));
        }
        let Some(verb) = Verb::parse(fields.first[0]) else {
            if crate::admin::is_admin_verb(fields.first[0]) {
                let all: Vec<&[u8]> = text
                    .split(|&b| b == b' ')
                    .filter(|f| !f.is_empty())
                    .collect();
                return Step::Emit(match crate::admin::parse(&all) {
                    Ok(admin) => Decoded::Admin(admin),
                    Err(e) => Decoded::Error(e),
                });
            }
            return Step::Emit(Decoded::Error(ParseError::UnknownVerb));
        };
        let wrong_count = ParseError::WrongFieldCount {
            verb,
            found: fields.count,
        };
        let result = match (verb, fields.as_slice()) {
            (Verb::Read, Some(&[_, field])) => name(field).map(|name| Command::Read { name }),
            (Verb::Delete, Some(&[_, field])) => name(field).map(|name| Command::Delete { name }),
            (Verb::Write, Some(&[_, field, numbytes])) => {
                return self.start_content(numbytes, write_header(name(field), b"0"));
            }
            (Verb::Write, Some(&[_, field, numbytes, exptime])) => {
                return self.start_content(numbytes, write_header(name(field), exptime));
            }
            (Verb::Cas, Some(&[_, field, version, numbytes])) => {
                return self.start_content(numbytes, cas_header(name(field), version, b"0"));
            }
            (Verb::Cas, Some(&[_, field, version, numbytes, exptime])) => {
                return self.start_content(numbytes, cas_header(name(field), version, exptime));
            }
            _ => Err(wrong_count),
        };
        Step::Emit(match result {
            Ok(command) => Decoded::Command(command),
            Err(e) => Decoded::Error(e),
        })
    }

    /// Checks NUMBYTES, which decides the framing, then waits for content or skips it.
    fn start_content(&mut self, numbytes: &[u8], header: Result<Header, ParseError>) -> Step {
        let Some(announced) = parse_u64(numbytes) else {
            return Step::Emit(Decoded::Error(ParseError::BadNumber(NumberField::Numbytes)));
        };
        // The content and a two-byte terminator must be indexable in memory.
        let fits = usize::try_from(announced)
            .ok()
            .filter(|n| n.checked_add(2).is_some());
        match fits {
            Some(numbytes) if announced <= self.limits.file_bytes_max => {
                self.state = State::Content { numbytes, header };
                Step::Continue
            }
            _ => {
                self.state = State::Skip {
                    remaining: announced,
                };
                Step::Emit(Decoded::Error(ParseError::FileTooLarge {
                    numbytes: announced,
                    max: self.limits.file_bytes_max,
                }))
            }
        }
    }

    fn content(
        &mut self,
        src: &mut BytesMut,
        numbytes: usize,
        header: Result<Header, ParseError>,
    ) -> Step {
        let terminator = match (src.get(numbytes), src.get(numbytes + 1)) {
            (Some(b'\n'), _) => Some(1),
            (Some(b'\r'), Some(b'\n')) => Some(2),
            (None, _) | (Some(b'\r'), None) => {
                self.state = State::Content { numbytes, header };
                return Step::NeedMore;
            }
            _ => None,
        };
        let Some(terminator) = terminator else {
            src.clear();
            self.state = State::Closed;
            return Step::Emit(Decoded::Error(ParseError::ContentNotTerminated));
        };
        let content = src.split_to(numbytes).freeze();
        src.advance(terminator);
        Step::Emit(match header {
            Ok(header) => Decoded::Command(header.into_command(content)),
            Err(e) => Decoded::Error(e),
        })
    }

    fn skip(&mut self, src: &mut BytesMut, remaining: u64) -> Step {
        let available = u64::try_from(src.len()).unwrap_or(u64::MAX);
        let taken = remaining.min(available);
        // `taken` is at most `src.len()`, so it fits in usize.
        src.advance(taken as usize);
        match remaining - taken {
            0 => {
                self.state = State::SkipTerminator;
                Step::Continue
            }
            remaining => {
                self.state = State::Skip { remaining };
                Step::NeedMore
            }
        }
    }

    fn skip_terminator(&mut self, src: &mut BytesMut) -> Step {
        match (src.first(), src.get(1)) {
            (None, _) | (Some(b'\r'), None) => {
                self.state = State::SkipTerminator;
                return Step::NeedMore;
            }
            (Some(b'\n'), _) => src.advance(1),
            (Some(b'\r'), Some(b'\n')) => src.advance(2),
            // No terminator: whatever follows is the next command line.
            _ => {}
        }
        Step::Continue
    }
}

/// The name in `field`, a part of `line`, as a slice of `line`.
fn parse_name(line: &Bytes, field: &[u8]) -> Result<Name, ParseError> {
    Name::new(line.slice_ref(field)).map_err(ParseError::BadName)
}

fn parse_number(field: &[u8], which: NumberField) -> Result<u64, ParseError> {
    parse_u64(field).ok_or(ParseError::BadNumber(which))
}

fn write_header(name: Result<Name, ParseError>, exptime: &[u8]) -> Result<Header, ParseError> {
    Ok(Header::Write {
        name: name?,
        exptime_s: parse_number(exptime, NumberField::Exptime)?,
    })
}

fn cas_header(
    name: Result<Name, ParseError>,
    version: &[u8],
    exptime: &[u8],
) -> Result<Header, ParseError> {
    Ok(Header::Cas {
        name: name?,
        version: parse_number(version, NumberField::Version)?,
        exptime_s: parse_number(exptime, NumberField::Exptime)?,
    })
}

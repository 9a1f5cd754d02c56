//! The client protocol's wire codec: incremental, bounded and sans-IO.
//!
//! The caller owns the bytes: it appends what it read from a socket to a `BytesMut` and calls
//! `decode` until that returns "need more"; the decoders consume exactly what they use. Both
//! directions are here:
//! - [`Decoder`] (server side) turns client bytes into [`Command`](crate::Command)s or
//!   [`ParseError`]s (each answered `ERR_CMD_ERR`).
//! - [`ReplyDecoder`] (client side: client library, tests, simulator) turns server bytes into
//!   [`Reply`](crate::Reply)s.
//!
//! The encoders are [`Command::encode`](crate::Command::encode) and
//! [`Reply::encode`](crate::Reply::encode).
//!
//! Memory is bounded: a decoder never needs more than one line ([`LINE_BYTES_MAX`] and its
//! terminator) plus one file's content ([`Limits::file_bytes_max`]) buffered to make progress;
//! over-long lines and over-large content are discarded as they arrive, never buffered.

mod command_decoder;
mod reply_decoder;

pub use command_decoder::{Decoded, Decoder, NumberField, ParseError, Verb};
pub use reply_decoder::{ReplyDecoder, ReplyError};

/// Longest command or reply line, in bytes, not counting its terminator (docs/protocol.md: a longer line is
/// malformed). The longest valid command line, `cas` with a 250-byte name and three 20-digit
/// numbers, is about 320 bytes; 1024 leaves room for padding spaces while bounding what a client
/// can make the server buffer.
pub const LINE_BYTES_MAX: usize = 1024;

/// Default for [`Limits::file_bytes_max`]: 1 MiB, docs/protocol.md's default `--max-file-size`.
pub const FILE_BYTES_MAX_DEFAULT: u64 = 1 << 20;

/// Fields in the longest valid line (`cas NAME VERSION NUMBYTES EXPTIME`, `CONTENTS V N E`).
const FIELDS_MAX: usize = 5;

/// Bytes a line may occupy with its terminator: the line, then `\r`, then `\n`.
const LINE_WINDOW_BYTES: usize = LINE_BYTES_MAX + 2;

/// Configurable bounds of a decoder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest file content accepted, in bytes (`--max-file-size`).
    pub file_bytes_max: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            file_bytes_max: FILE_BYTES_MAX_DEFAULT,
        }
    }
}

/// What the start of a buffer holds, line-wise.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LineScan {
    /// A `\n` at this index ends the first line.
    Found(usize),
    /// No `\n` yet, and the line may still turn out short enough.
    NeedMore,
    /// No `\n` yet, and the line is already longer than [`LINE_BYTES_MAX`].
    TooLong,
}

/// Looks for the end of the first line of `buf`.
///
/// Only the first [`LINE_WINDOW_BYTES`] are searched, so a call costs at most that much however
/// much is buffered. The verdict depends only on the bytes, never on how they were chunked, and a
/// line is known too long as soon as its length (not counting `\r\n`) provably exceeds the limit.
fn scan_line(buf: &[u8]) -> LineScan {
    let window = &buf[..buf.len().min(LINE_WINDOW_BYTES)];
    if let Some(end) = window.iter().position(|&b| b == b'\n') {
        return LineScan::Found(end);
    }
    match window.len() {
        LINE_WINDOW_BYTES => LineScan::TooLong,
        // LINE_BYTES_MAX + 1 bytes fit only if the last of them is the `\r` of a terminator.
        n if n == LINE_BYTES_MAX + 1 && window[LINE_BYTES_MAX] != b'\r' => LineScan::TooLong,
        _ => LineScan::NeedMore,
    }
}

/// Parses a decimal `u64`: ASCII digits only, no sign, no spaces, no overflow.
pub(crate) fn parse_u64(field: &[u8]) -> Option<u64> {
    if field.is_empty() {
        return None;
    }
    field.iter().try_fold(0u64, |acc, &b| {
        let digit = b.checked_sub(b'0').filter(|d| *d <= 9)?;
        acc.checked_mul(10)?.checked_add(u64::from(digit))
    })
}

/// Up to [`FIELDS_MAX`] fields of a line, and how many there were in all.
struct Fields<'a> {
    /// The first fields; entries at and after `count` are empty.
    first: [&'a [u8]; FIELDS_MAX],
    /// How many fields the line had (may exceed [`FIELDS_MAX`]).
    count: usize,
}

impl<'a> Fields<'a> {
    /// Collects fields without allocating.
    fn collect(fields: impl Iterator<Item = &'a [u8]>) -> Fields<'a> {
        let mut out = Fields {
            first: [&[]; FIELDS_MAX],
            count: 0,
        };
        for field in fields {
            if let Some(slot) = out.first.get_mut(out.count) {
                *slot = field;
            }
            out.count += 1;
        }
        out
    }

    /// The fields as a slice, or `None` when there were more than [`FIELDS_MAX`].
    fn as_slice(&self) -> Option<&[&'a [u8]]> {
        self.first.get(..self.count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_u64_accepts_only_plain_decimal() {
        assert_eq!(parse_u64(b"0"), Some(0));
        assert_eq!(parse_u64(b"007"), Some(7));
        assert_eq!(parse_u64(b"18446744073709551615"), Some(u64::MAX));
        for bad in [
            &b""[..],
            b"18446744073709551616",
            b"-1",
            b"+1",
            b"0x10",
            b"1.0",
            b"1e3",
            b" 1",
            b"\x001",
        ] {
            assert_eq!(parse_u64(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn scan_line_knows_too_long_as_soon_as_it_can() {
        let mut buf = vec![b'a'; LINE_BYTES_MAX];
        assert_eq!(scan_line(&buf), LineScan::NeedMore);
        buf.push(b'\r');
        assert_eq!(scan_line(&buf), LineScan::NeedMore);
        buf.push(b'\n');
        assert_eq!(scan_line(&buf), LineScan::Found(LINE_BYTES_MAX + 1));
        buf[LINE_BYTES_MAX] = b'a';
        assert_eq!(scan_line(&buf[..LINE_BYTES_MAX + 1]), LineScan::TooLong);
        buf[LINE_BYTES_MAX + 1] = b'\r';
        assert_eq!(scan_line(&buf), LineScan::TooLong);
    }

    #[test]
    fn fields_counts_past_the_array() {
        let line = b"a b c d e f g";
        let fields = Fields::collect(line.split(|&b| b == b' '));
        assert_eq!(fields.count, 7);
        assert!(fields.as_slice().is_none());
        let fields = Fields::collect(b"a b".split(|&b| b == b' '));
        assert_eq!(fields.as_slice(), Some(&[&b"a"[..], &b"b"[..]][..]));
    }
}

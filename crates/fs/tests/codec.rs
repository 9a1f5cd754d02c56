//! Guards the server-side command parser against docs/protocol.md: every command form parses, every kind
//! of malformed input is answered ERR_CMD_ERR with the connection kept exactly when framing
//! allows, and over-long lines and over-large content are never buffered.

// Test helpers unwrap like tests do: a failure there is a test failure.
#![allow(clippy::unwrap_used)]

use bytes::{Bytes, BytesMut};
use fs::codec::{FILE_BYTES_MAX_DEFAULT, LINE_BYTES_MAX, NumberField, Verb};
use fs::{Command, Decoded, Decoder, Limits, Name, NameError, ParseError, Reply};

/// A small limit so over-large content is cheap to test.
const TEST_LIMITS: Limits = Limits { file_bytes_max: 64 };

fn name(s: &str) -> Name {
    Name::new(s.as_bytes().to_vec()).unwrap()
}

/// Feeds `input` in one piece and collects everything decoded.
fn decode_all(limits: Limits, input: &[u8]) -> (Vec<Decoded>, Decoder, BytesMut) {
    let mut decoder = Decoder::new(limits);
    let mut src = BytesMut::from(input);
    let mut out = Vec::new();
    while let Some(decoded) = decoder.decode(&mut src) {
        out.push(decoded);
    }
    (out, decoder, src)
}

/// Feeds `input` in pieces of `chunk` bytes and collects everything decoded.
fn decode_pieces(limits: Limits, input: &[u8], chunk: usize) -> Vec<Decoded> {
    let mut decoder = Decoder::new(limits);
    let mut src = BytesMut::new();
    let mut out = Vec::new();
    for piece in input.chunks(chunk.min(input.len()).max(1)) {
        src.extend_from_slice(piece);
        while let Some(decoded) = decoder.decode(&mut src) {
            out.push(decoded);
        }
    }
    out
}

fn read_cmd(n: &str) -> Decoded {
    Decoded::Command(Command::Read { name: name(n) })
}

fn write_cmd(n: &str, content: &[u8], exptime_s: u64) -> Decoded {
    Decoded::Command(Command::Write {
        name: name(n),
        content: Bytes::copy_from_slice(content),
        exptime_s,
    })
}

fn cas_cmd(n: &str, version: u64, content: &[u8], exptime_s: u64) -> Decoded {
    Decoded::Command(Command::Cas {
        name: name(n),
        version,
        content: Bytes::copy_from_slice(content),
        exptime_s,
    })
}

fn delete_cmd(n: &str) -> Decoded {
    Decoded::Command(Command::Delete { name: name(n) })
}

// ---- The docs/protocol.md command table: each form parses ----

#[test]
fn every_command_form_parses() {
    let cases: Vec<(&[u8], Decoded)> = vec![
        (b"read foo\r\n", read_cmd("foo")),
        (b"write foo 6\r\nabcdef\r\n", write_cmd("foo", b"abcdef", 0)),
        (
            b"write foo 6 10\r\nabcdef\r\n",
            write_cmd("foo", b"abcdef", 10),
        ),
        (
            b"cas foo 1 7\r\nghijklm\r\n",
            cas_cmd("foo", 1, b"ghijklm", 0),
        ),
        (
            b"cas foo 1 7 0\r\nghijklm\r\n",
            cas_cmd("foo", 1, b"ghijklm", 0),
        ),
        (b"cas foo 2 1 30\r\nx\r\n", cas_cmd("foo", 2, b"x", 30)),
        (b"delete foo\r\n", delete_cmd("foo")),
    ];
    for (input, expected) in cases {
        let (out, decoder, src) = decode_all(TEST_LIMITS, input);
        assert_eq!(out, vec![expected], "{}", input.escape_ascii());
        assert!(src.is_empty() && !decoder.is_closed());
    }
}

#[test]
fn bare_newline_terminates_lines_and_content() {
    let (out, _, src) = decode_all(
        TEST_LIMITS,
        b"read a\nwrite b 2\nhi\ncas c 1 2 5\nyo\r\ndelete d\n",
    );
    assert_eq!(
        out,
        vec![
            read_cmd("a"),
            write_cmd("b", b"hi", 0),
            cas_cmd("c", 1, b"yo", 5),
            delete_cmd("d")
        ]
    );
    assert!(src.is_empty());
}

#[test]
fn repeated_leading_and_trailing_spaces_are_tolerated() {
    let (out, _, _) = decode_all(
        TEST_LIMITS,
        b"  read   foo  \r\nwrite  foo   3    7 \r\nabc\r\n cas foo 1 3 \nxyz\n",
    );
    assert_eq!(
        out,
        vec![
            read_cmd("foo"),
            write_cmd("foo", b"abc", 7),
            cas_cmd("foo", 1, b"xyz", 0)
        ]
    );
}

#[test]
fn seed_telnet_session_parses() {
    let session = b"read foo\r\nwrite foo 6\r\nabcdef\r\nread foo\r\ncas foo 1 7 0\r\nghijklm\r\nread foo\r\n";
    let (out, _, src) = decode_all(Limits::default(), session);
    assert_eq!(
        out,
        vec![
            read_cmd("foo"),
            write_cmd("foo", b"abcdef", 0),
            read_cmd("foo"),
            cas_cmd("foo", 1, b"ghijklm", 0),
            read_cmd("foo"),
        ]
    );
    assert!(src.is_empty());
}

#[test]
fn content_is_binary_and_delimited_only_by_numbytes() {
    let content: Vec<u8> = (0..=255u8).collect();
    let mut input = format!("write bin {}\r\n", content.len()).into_bytes();
    input.extend_from_slice(&content);
    input.extend_from_slice(b"\r\nwrite crlf 4\r\n\r\n\r\n\r\nwrite nul 1\n\0\n");
    let (out, _, _) = decode_all(Limits::default(), &input);
    assert_eq!(
        out,
        vec![
            write_cmd("bin", &content, 0),
            write_cmd("crlf", b"\r\n\r\n", 0),
            write_cmd("nul", b"\0", 0)
        ]
    );
}

#[test]
fn empty_content_and_content_at_the_limit_are_accepted() {
    let mut input = b"write e 0\r\n\r\n".to_vec();
    input.extend_from_slice(b"write full 64\r\n");
    input.extend_from_slice(&[b'z'; 64]);
    input.extend_from_slice(b"\r\n");
    let (out, _, _) = decode_all(TEST_LIMITS, &input);
    assert_eq!(
        out,
        vec![write_cmd("e", b"", 0), write_cmd("full", &[b'z'; 64], 0)]
    );
}

#[test]
fn names_of_every_printable_byte_and_full_length_parse() {
    let printable: String = (0x21..=0x7eu8).map(char::from).collect();
    let long = "n".repeat(250);
    let input = format!("read {printable}\r\nread {long}\r\n");
    let (out, _, _) = decode_all(TEST_LIMITS, input.as_bytes());
    assert_eq!(out, vec![read_cmd(&printable), read_cmd(&long)]);
}

#[test]
fn numbers_up_to_u64_max_and_with_leading_zeros_parse() {
    let (out, _, _) = decode_all(
        TEST_LIMITS,
        b"cas f 18446744073709551615 0003 18446744073709551615\r\nabc\r\n",
    );
    assert_eq!(out, vec![cas_cmd("f", u64::MAX, b"abc", u64::MAX)]);
}

#[test]
fn line_of_exactly_the_limit_parses_and_one_more_byte_does_not() {
    for terminator in [&b"\r\n"[..], b"\n"] {
        let mut line = b"read".to_vec();
        line.resize(LINE_BYTES_MAX - 4, b' ');
        line.extend_from_slice(b"abcd");
        assert_eq!(line.len(), LINE_BYTES_MAX);
        let fits = [&line[..], terminator, b"read next\r\n"].concat();
        line.insert(4, b' ');
        let over = [&line[..], terminator, b"read next\r\n"].concat();
        // Whole and byte by byte: the `\r` of a terminator must not count against the line.
        for chunk in [usize::MAX, 1] {
            assert_eq!(
                decode_pieces(TEST_LIMITS, &fits, chunk),
                vec![read_cmd("abcd"), read_cmd("next")]
            );
            assert_eq!(
                decode_pieces(TEST_LIMITS, &over, chunk),
                vec![Decoded::Error(ParseError::LineTooLong), read_cmd("next")]
            );
        }
    }
}

#[test]
fn parse_errors_are_answered_err_cmd_err() {
    let errors = [
        ParseError::EmptyLine,
        ParseError::LineTooLong,
        ParseError::UnknownVerb,
        ParseError::WrongFieldCount {
            verb: Verb::Cas,
            found: 2,
        },
        ParseError::BadNumber(NumberField::Version),
        ParseError::BadName(NameError::Empty),
        ParseError::FileTooLarge {
            numbytes: 2,
            max: 1,
        },
        ParseError::ContentNotTerminated,
    ];
    for e in errors {
        assert_eq!(e.reply(), Reply::CmdErr);
        assert!(!e.to_string().is_empty());
    }
    assert_eq!(Reply::CmdErr.to_bytes(), &b"ERR_CMD_ERR\r\n"[..]);
}

// ---- Malformed input ----

/// What must follow a malformed input.
#[derive(Clone, Copy, Debug, PartialEq)]
enum After {
    /// The connection survives and the next command parses.
    NextParses,
    /// Framing is lost: the server closes the connection.
    Closes,
    /// The connection survives, but the announced content swallows all that follows.
    Swallowed,
}

/// One malformed input: what it is, its bytes, the error it must give and what follows it.
struct Case {
    what: &'static str,
    input: Vec<u8>,
    error: ParseError,
    after: After,
}

fn case(what: &'static str, input: impl AsRef<[u8]>, error: ParseError, after: After) -> Case {
    let input = input.as_ref().to_vec();
    Case {
        what,
        input,
        error,
        after,
    }
}

/// `head`, then `n` copies of `fill`, then `tail`.
fn padded(head: &str, fill: u8, n: usize, tail: &[u8]) -> Vec<u8> {
    [head.as_bytes(), &vec![fill; n], tail].concat()
}

#[rustfmt::skip] // One row per case reads as a table.
fn malformed_cases() -> Vec<Case> {
    use After::*;
    use NumberField::{Exptime, Numbytes, Version};
    use ParseError::*;
    let wrong = |verb, found| WrongFieldCount { verb, found };
    let too_large = |numbytes| FileTooLarge { numbytes, max: TEST_LIMITS.file_bytes_max };
    let long_name = "n".repeat(251);
    vec![
        case("empty line", b"\r\n", EmptyLine, NextParses),
        case("empty bare line", b"\n", EmptyLine, NextParses),
        case("only spaces", b"    \r\n", EmptyLine, NextParses),
        case("unknown verb", b"get foo\r\n", UnknownVerb, NextParses),
        case("uppercase verb", b"READ foo\r\n", UnknownVerb, NextParses),
        case("capitalised verb", b"Write foo 1\r\n", UnknownVerb, NextParses),
        case("number first", b"3 write foo\r\n", UnknownVerb, NextParses),
        case("tab separator", b"read\tfoo\r\n", UnknownVerb, NextParses),
        case("NUL line", b"\0\r\n", UnknownVerb, NextParses),
        case("read without name", b"read\r\n", wrong(Verb::Read, 1), NextParses),
        case("read two names", b"read a b\r\n", wrong(Verb::Read, 3), NextParses),
        case("delete without name", b"delete\r\n", wrong(Verb::Delete, 1), NextParses),
        case("delete two names", b"delete a b\r\n", wrong(Verb::Delete, 3), NextParses),
        case("write without numbytes", b"write foo\r\n", wrong(Verb::Write, 2), NextParses),
        case("write extra field", b"write foo 3 0 9\r\n", wrong(Verb::Write, 5), NextParses),
        case("cas without numbytes", b"cas foo 1\r\n", wrong(Verb::Cas, 3), NextParses),
        case("cas extra field", b"cas foo 1 3 0 9\r\n", wrong(Verb::Cas, 6), NextParses),
        case("lone CR joins two lines", b"read foo\rread bar\r\n", wrong(Verb::Read, 3), NextParses),
        case("word numbytes", b"write foo abc\r\n", BadNumber(Numbytes), NextParses),
        case("negative numbytes", b"write foo -3\r\n", BadNumber(Numbytes), NextParses),
        case("signed numbytes", b"write foo +3\r\n", BadNumber(Numbytes), NextParses),
        case("hex numbytes", b"write foo 0x3\r\n", BadNumber(Numbytes), NextParses),
        case("decimal point numbytes", b"write foo 3.0\r\n", BadNumber(Numbytes), NextParses),
        case("overflowing numbytes", b"write foo 18446744073709551616\r\n", BadNumber(Numbytes), NextParses),
        case("cas word numbytes", b"cas foo 1 x\r\n", BadNumber(Numbytes), NextParses),
        case("word exptime", b"write foo 3 abc\r\nabc\r\n", BadNumber(Exptime), NextParses),
        case("negative exptime", b"write foo 3 -1\r\nabc\r\n", BadNumber(Exptime), NextParses),
        case("overflowing exptime", b"write foo 3 99999999999999999999\r\nabc\r\n", BadNumber(Exptime), NextParses),
        case("cas word exptime", b"cas foo 1 3 soon\nabc\n", BadNumber(Exptime), NextParses),
        case("word version", b"cas foo x 3\r\nabc\r\n", BadNumber(Version), NextParses),
        case("overflowing version", b"cas foo 18446744073709551616 3 0\r\nabc\r\n", BadNumber(Version), NextParses),
        case("control byte in name", b"read fo\x01o\r\n", BadName(NameError::BadByte(1)), NextParses),
        case("non-ASCII name", b"read caf\xc3\xa9\r\n", BadName(NameError::BadByte(0xc3)), NextParses),
        case("DEL in name", b"delete a\x7f\r\n", BadName(NameError::BadByte(0x7f)), NextParses),
        case("CR CR LF ending", b"read foo\r\r\n", BadName(NameError::BadByte(b'\r')), NextParses),
        case("name too long", format!("read {long_name}\r\n"), BadName(NameError::TooLong), NextParses),
        case("bad write name: content consumed", b"write f\x7f 3\r\na\nc\r\n", BadName(NameError::BadByte(0x7f)), NextParses),
        case("long cas name: content consumed", format!("cas {long_name} 1 3\r\nabc\r\n"), BadName(NameError::TooLong), NextParses),
        case("line over the limit", padded("read ", b'a', LINE_BYTES_MAX - 4, b"\r\n"), LineTooLong, NextParses),
        case("very long line", padded("", b'x', 5 * LINE_BYTES_MAX, b"\n"), LineTooLong, NextParses),
        case("padded write line too long", padded("write", b' ', LINE_BYTES_MAX, b"a 2\r\n"), LineTooLong, NextParses),
        case("content over the limit", padded("write foo 70\r\n", b'x', 70, b"\r\n"), too_large(70), NextParses),
        case("over the limit, no terminator", padded("write foo 70 5\r\n", b'\n', 70, b""), too_large(70), NextParses),
        case("over the limit, bare LF", padded("cas foo 1 65\r\n", b'\r', 65, b"\n"), too_large(65), NextParses),
        case("over the limit and endless", b"cas foo 1 18446744073709551615\r\n", too_large(u64::MAX), Swallowed),
        case("content then junk", b"write foo 3\r\nabcX", ContentNotTerminated, Closes),
        case("content then CR junk", b"write foo 3\r\nabc\rX", ContentNotTerminated, Closes),
        case("content then CR CR LF", b"write foo 3\r\nabc\r\r\n", ContentNotTerminated, Closes),
        case("content longer than announced", b"cas foo 1 3\r\nabcd\r\n", ContentNotTerminated, Closes),
        case("bad name and unterminated content", b"write f\x01 1\r\nab", ContentNotTerminated, Closes),
    ]
}

#[test]
fn malformed_inputs_answer_err_cmd_err_and_keep_the_connection_when_framing_allows() {
    let cases = malformed_cases();
    assert!(cases.len() >= 25);
    let next = b"read next\r\n";
    for Case {
        what,
        input,
        error: expected,
        after,
    } in cases
    {
        let mut stream = input;
        stream.extend_from_slice(next);
        // Whole, and one byte at a time: the same verdict either way.
        for chunk in [stream.len(), 1] {
            let mut decoder = Decoder::new(TEST_LIMITS);
            let mut src = BytesMut::new();
            let mut out = Vec::new();
            for piece in stream.chunks(chunk) {
                src.extend_from_slice(piece);
                while let Some(decoded) = decoder.decode(&mut src) {
                    out.push(decoded);
                }
            }
            let error = Decoded::Error(expected.clone());
            match after {
                After::NextParses => {
                    assert_eq!(out, vec![error, read_cmd("next")], "{what}");
                    assert!(!expected.closes_connection(), "{what}");
                }
                After::Closes | After::Swallowed => {
                    assert_eq!(out, vec![error], "{what}");
                    assert_eq!(
                        expected.closes_connection(),
                        after == After::Closes,
                        "{what}"
                    );
                    assert_eq!(decoder.is_closed(), after == After::Closes, "{what}");
                }
            }
            assert!(src.is_empty(), "{what}: input left over");
        }
    }
}

#[test]
fn after_framing_is_lost_everything_is_discarded() {
    let (out, mut decoder, mut src) = decode_all(TEST_LIMITS, b"write a 1\r\nxy\r\nread b\r\n");
    assert_eq!(out, vec![Decoded::Error(ParseError::ContentNotTerminated)]);
    assert!(decoder.is_closed() && src.is_empty());
    src.extend_from_slice(b"read c\r\n");
    assert_eq!(decoder.decode(&mut src), None);
    assert!(src.is_empty());
}

// ---- Bounded memory ----

#[test]
fn over_long_line_is_reported_early_and_never_buffered() {
    let mut decoder = Decoder::new(TEST_LIMITS);
    let mut src = BytesMut::new();
    let mut out = Vec::new();
    for _ in 0..100 {
        src.extend_from_slice(&[b'y'; 100]);
        while let Some(decoded) = decoder.decode(&mut src) {
            out.push(decoded);
        }
        assert!(src.len() <= LINE_BYTES_MAX + 1, "buffered {}", src.len());
        if out.is_empty() {
            continue;
        }
        // Reported as soon as more than the limit is buffered without a newline.
        assert_eq!(out, vec![Decoded::Error(ParseError::LineTooLong)]);
    }
    assert_eq!(out.len(), 1, "one error per line");
    src.extend_from_slice(b"tail\nread ok\n");
    assert_eq!(decoder.decode(&mut src), Some(read_cmd("ok")));
}

#[test]
fn over_large_content_is_refused_at_once_and_skipped_unbuffered() {
    let numbytes = FILE_BYTES_MAX_DEFAULT + 1;
    let mut decoder = Decoder::new(Limits::default());
    let mut src = BytesMut::from(format!("write big {numbytes}\r\n").as_bytes());
    assert_eq!(
        decoder.decode(&mut src),
        Some(Decoded::Error(ParseError::FileTooLarge {
            numbytes,
            max: FILE_BYTES_MAX_DEFAULT
        }))
    );
    let chunk = vec![b'\n'; 64 * 1024];
    let mut sent = 0u64;
    while sent < numbytes {
        let n = chunk.len().min((numbytes - sent) as usize);
        src.extend_from_slice(&chunk[..n]);
        sent += n as u64;
        assert_eq!(decoder.decode(&mut src), None);
        assert!(src.is_empty(), "skipped content must not be buffered");
    }
    src.extend_from_slice(b"\r\nwrite ok 2\r\nhi\r\n");
    assert_eq!(decoder.decode(&mut src), Some(write_cmd("ok", b"hi", 0)));
}

#[test]
fn content_at_the_default_limit_is_accepted() {
    let content = vec![7u8; FILE_BYTES_MAX_DEFAULT as usize];
    let mut input = format!("write max {}\r\n", content.len()).into_bytes();
    input.extend_from_slice(&content);
    input.extend_from_slice(b"\r\n");
    let (out, _, _) = decode_all(Limits::default(), &input);
    assert_eq!(out, vec![write_cmd("max", &content, 0)]);
}

#[test]
fn partial_input_is_kept_until_complete() {
    let mut decoder = Decoder::new(TEST_LIMITS);
    assert!(decoder.at_command_boundary());
    let mut src = BytesMut::from(&b"write foo 5\r\nab"[..]);
    assert_eq!(decoder.decode(&mut src), None);
    assert!(!decoder.at_command_boundary(), "inside content");
    src.extend_from_slice(b"cde\r");
    assert_eq!(decoder.decode(&mut src), None);
    src.extend_from_slice(b"\nread");
    let written = write_cmd("foo", b"abcde", 0);
    assert_eq!(decoder.decode(&mut src), Some(written));
    assert!(decoder.at_command_boundary());
    assert_eq!(decoder.decode(&mut src), None);
    assert_eq!(&src[..], b"read");
}

#[test]
fn skipping_and_discarding_are_not_command_boundaries() {
    let mut decoder = Decoder::new(TEST_LIMITS);
    let mut src = BytesMut::from(&b"write big 100\r\nxx"[..]);
    assert!(matches!(decoder.decode(&mut src), Some(Decoded::Error(_))));
    assert_eq!(decoder.decode(&mut src), None);
    assert!(!decoder.at_command_boundary());
    let mut decoder = Decoder::default();
    let mut src = BytesMut::from(&[b'x'; LINE_BYTES_MAX + 2][..]);
    assert!(matches!(decoder.decode(&mut src), Some(Decoded::Error(_))));
    assert!(!decoder.at_command_boundary());
    src.extend_from_slice(b"\n");
    assert_eq!(decoder.decode(&mut src), None);
    assert!(decoder.at_command_boundary());
}

/// Whether `part` lies within `whole`'s memory.
fn lies_within(part: &[u8], whole: std::ops::Range<*const u8>) -> bool {
    let range = part.as_ptr_range();
    whole.start <= range.start && range.end <= whole.end
}

#[test]
fn names_and_contents_are_slices_of_the_input_not_copies() {
    // The command carries them to the node, which copies what it keeps; a copy per parse
    // would be an allocation per command for nothing.
    let mut decoder = Decoder::new(TEST_LIMITS);
    let mut src =
        BytesMut::from(&b"read alpha\r\nwrite beta 2\r\nhi\r\ncas gamma 1 1\r\nx\r\n"[..]);
    let input = src.as_ptr_range();
    let mut names = Vec::new();
    while let Some(decoded) = decoder.decode(&mut src) {
        match decoded {
            Decoded::Command(Command::Read { name }) => names.push(name),
            Decoded::Command(Command::Write { name, content, .. })
            | Decoded::Command(Command::Cas { name, content, .. }) => {
                assert!(lies_within(&content, input.clone()));
                names.push(name);
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(names, [name("alpha"), name("beta"), name("gamma")]);
    for name in &names {
        assert!(
            lies_within(name.as_bytes(), input.clone()),
            "{name} was copied"
        );
    }
}

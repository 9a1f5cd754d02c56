//! Guards the codec's incremental parsing against dependence on how TCP splits the stream, and
//! both wire forms against encode/decode mismatch: commands and replies round-trip, any chunking
//! of any stream decodes identically, and the reply decoder refuses garbage without panicking.

// Test helpers unwrap like tests do: a failure there is a test failure.
#![allow(clippy::unwrap_used)]

use bytes::{Bytes, BytesMut};
use fs::codec::LINE_BYTES_MAX;
use fs::{Command, Decoded, Decoder, Limits, Name, Reply, ReplyDecoder, ReplyError};
use proptest::prelude::*;

/// Small enough that generated content is sometimes over it.
const SMALL_LIMITS: Limits = Limits { file_bytes_max: 48 };

// ---- Helpers ----

/// Feeds `stream` in pieces of the given sizes (cycled), collecting every result.
fn decode_chunked(limits: Limits, stream: &[u8], sizes: &[usize]) -> (Vec<Decoded>, bool) {
    let mut decoder = Decoder::new(limits);
    let mut src = BytesMut::new();
    let mut out = Vec::new();
    let mut rest = stream;
    for size in sizes.iter().cycle() {
        if rest.is_empty() {
            break;
        }
        let (piece, tail) = rest.split_at((*size).clamp(1, rest.len()));
        rest = tail;
        src.extend_from_slice(piece);
        while let Some(decoded) = decoder.decode(&mut src) {
            out.push(decoded);
        }
    }
    (out, decoder.is_closed())
}

fn decode_replies_chunked(stream: &[u8], sizes: &[usize]) -> Result<Vec<Reply>, ReplyError> {
    let mut decoder = ReplyDecoder::new(SMALL_LIMITS);
    let mut src = BytesMut::new();
    let mut out = Vec::new();
    let mut rest = stream;
    for size in sizes.iter().cycle() {
        if rest.is_empty() {
            break;
        }
        let (piece, tail) = rest.split_at((*size).clamp(1, rest.len()));
        rest = tail;
        src.extend_from_slice(piece);
        while let Some(reply) = decoder.decode(&mut src)? {
            out.push(reply);
        }
    }
    Ok(out)
}

fn encode_all(commands: &[Command]) -> Vec<u8> {
    let mut buf = BytesMut::new();
    for command in commands {
        command.encode(&mut buf);
    }
    buf.to_vec()
}

// ---- Strategies ----

fn name_strategy() -> impl Strategy<Value = Name> {
    prop_oneof![
        4 => proptest::collection::vec(0x21..=0x7eu8, 1..8),
        1 => proptest::collection::vec(0x21..=0x7eu8, 240..=250),
    ]
    .prop_map(|bytes| Name::new(bytes).unwrap())
}

/// Binary content: any bytes, with line terminators and NUL made common.
fn content_strategy(max: usize) -> impl Strategy<Value = Bytes> {
    let byte = prop_oneof![3 => any::<u8>(), 1 => Just(b'\r'), 1 => Just(b'\n'), 1 => Just(0u8)];
    proptest::collection::vec(byte, 0..=max).prop_map(Bytes::from)
}

fn number() -> impl Strategy<Value = u64> {
    prop_oneof![Just(0u64), 1..100u64, any::<u64>()]
}

fn command_strategy(content_max: usize) -> impl Strategy<Value = Command> {
    prop_oneof![
        name_strategy().prop_map(|name| Command::Read { name }),
        (name_strategy(), content_strategy(content_max), number()).prop_map(
            |(name, content, exptime_s)| Command::Write {
                name,
                content,
                exptime_s,
            }
        ),
        (
            name_strategy(),
            number(),
            content_strategy(content_max),
            number()
        )
            .prop_map(|(name, version, content, exptime_s)| Command::Cas {
                name,
                version,
                content,
                exptime_s,
            }),
        name_strategy().prop_map(|name| Command::Delete { name }),
    ]
}

/// Pieces of a hostile stream: valid commands, malformed lines, over-long lines, raw bytes.
fn piece_strategy() -> impl Strategy<Value = Vec<u8>> {
    let fragments = prop_oneof![
        Just(&b"read "[..]),
        Just(&b"write "[..]),
        Just(&b"cas "[..]),
        Just(&b"delete "[..]),
        Just(&b"foo "[..]),
        Just(&b"3 "[..]),
        Just(&b"60 "[..]),
        Just(&b"x"[..]),
        Just(&b"\r"[..]),
        Just(&b"\n"[..]),
        Just(&b"\r\n"[..]),
        Just(&b" "[..]),
    ];
    prop_oneof![
        4 => command_strategy(64).prop_map(|c| c.to_bytes().to_vec()),
        3 => proptest::collection::vec(fragments, 1..8).prop_map(|f| f.concat()),
        1 => proptest::collection::vec(any::<u8>(), 0..16),
        1 => (LINE_BYTES_MAX - 2..LINE_BYTES_MAX + 3, any::<bool>()).prop_map(|(n, crlf)| {
            let mut line = vec![b'a'; n];
            line.extend_from_slice(if crlf { b"\r\n" } else { b"\n" });
            line
        }),
    ]
}

fn sizes_strategy() -> impl Strategy<Value = Vec<usize>> {
    proptest::collection::vec(
        prop_oneof![3 => 1..4usize, 2 => 1..64usize, 1 => 64..2048usize],
        1..16,
    )
}

fn reply_strategy() -> impl Strategy<Value = Reply> {
    let addr =
        proptest::collection::vec(0x21..=0x7eu8, 1..40).prop_map(|b| String::from_utf8(b).unwrap());
    prop_oneof![
        (number(), number(), content_strategy(48)).prop_map(|(version, exptime_s, content)| {
            Reply::Contents {
                version,
                exptime_s,
                content,
            }
        }),
        number().prop_map(|version| Reply::Written { version }),
        Just(Reply::Deleted),
        Just(Reply::FileNotFound),
        number().prop_map(|current| Reply::VersionMismatch { current }),
        Just(Reply::CmdErr),
        Just(Reply::Internal),
        addr.prop_map(Reply::Redirect),
    ]
}

// ---- Properties ----

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn encoded_command_decodes_to_itself(command in command_strategy(300)) {
        let mut decoder = Decoder::new(Limits::default());
        let mut src = BytesMut::new();
        command.encode(&mut src);
        prop_assert_eq!(decoder.decode(&mut src), Some(Decoded::Command(command)));
        prop_assert!(src.is_empty());
    }

    #[test]
    fn any_chunking_of_a_valid_pipeline_yields_the_same_commands(
        commands in proptest::collection::vec(command_strategy(200), 1..12),
        sizes in sizes_strategy(),
    ) {
        let stream = encode_all(&commands);
        let expected: Vec<Decoded> = commands.into_iter().map(Decoded::Command).collect();
        prop_assert_eq!(decode_chunked(Limits::default(), &stream, &sizes), (expected.clone(), false));
        prop_assert_eq!(decode_chunked(Limits::default(), &stream, &[1]), (expected, false));
    }

    #[test]
    fn any_chunking_of_any_stream_decodes_as_the_whole_stream(
        pieces in proptest::collection::vec(piece_strategy(), 1..16),
        sizes in sizes_strategy(),
    ) {
        let stream = pieces.concat();
        let whole = decode_chunked(SMALL_LIMITS, &stream, &[stream.len()]);
        prop_assert_eq!(&decode_chunked(SMALL_LIMITS, &stream, &sizes), &whole);
        prop_assert_eq!(&decode_chunked(SMALL_LIMITS, &stream, &[1]), &whole);
    }

    #[test]
    fn encoded_replies_decode_to_themselves_in_any_chunking(
        replies in proptest::collection::vec(reply_strategy(), 1..12),
        sizes in sizes_strategy(),
    ) {
        let mut stream = BytesMut::new();
        for reply in &replies {
            reply.encode(&mut stream);
        }
        prop_assert_eq!(&decode_replies_chunked(&stream, &[stream.len()]), &Ok(replies.clone()));
        prop_assert_eq!(&decode_replies_chunked(&stream, &sizes), &Ok(replies.clone()));
        prop_assert_eq!(&decode_replies_chunked(&stream, &[1]), &Ok(replies));
    }

    #[test]
    fn reply_decoder_never_panics_and_errors_stick(
        bytes in proptest::collection::vec(prop_oneof![
            any::<u8>(), Just(b'\r'), Just(b'\n'), Just(b' '), Just(b'O'), Just(b'K'), Just(b'1')
        ], 0..200),
        sizes in sizes_strategy(),
    ) {
        let whole = decode_replies_chunked(&bytes, &[bytes.len()]);
        prop_assert_eq!(&decode_replies_chunked(&bytes, &sizes), &whole);
        if let Err(e) = whole {
            let mut decoder = ReplyDecoder::new(SMALL_LIMITS);
            let mut src = BytesMut::from(&bytes[..]);
            while decoder.decode(&mut src).is_ok_and(|r| r.is_some()) {}
            src.extend_from_slice(b"OK\r\n");
            prop_assert_eq!(decoder.decode(&mut src), Err(e));
        }
    }
}

// ---- Examples ----

#[test]
fn one_byte_at_a_time_with_every_byte_value_in_content() {
    let every_byte: Bytes = (0..=255u8).chain(*b"\r\n\r\n\0").collect();
    let commands = vec![
        Command::Write {
            name: Name::new(&b"all"[..]).unwrap(),
            content: every_byte.clone(),
            exptime_s: 9,
        },
        Command::Read {
            name: Name::new(&b"all"[..]).unwrap(),
        },
        Command::Cas {
            name: Name::new(&b"all"[..]).unwrap(),
            version: 1,
            content: every_byte,
            exptime_s: 0,
        },
        Command::Delete {
            name: Name::new(&b"all"[..]).unwrap(),
        },
    ];
    let stream = encode_all(&commands);
    let expected: Vec<Decoded> = commands.into_iter().map(Decoded::Command).collect();
    assert_eq!(
        decode_chunked(Limits::default(), &stream, &[1]),
        (expected, false)
    );
}

#[test]
fn command_wire_forms_match_the_spec() {
    let name = Name::new(&b"foo"[..]).unwrap();
    let cases = [
        (Command::Read { name: name.clone() }, &b"read foo\r\n"[..]),
        (
            Command::Write {
                name: name.clone(),
                content: Bytes::from_static(b"abc"),
                exptime_s: 0,
            },
            b"write foo 3\r\nabc\r\n",
        ),
        (
            Command::Write {
                name: name.clone(),
                content: Bytes::from_static(b"abc"),
                exptime_s: 10,
            },
            b"write foo 3 10\r\nabc\r\n",
        ),
        (
            Command::Cas {
                name: name.clone(),
                version: 4,
                content: Bytes::from_static(b"x"),
                exptime_s: 5,
            },
            b"cas foo 4 1 5\r\nx\r\n",
        ),
        (Command::Delete { name }, b"delete foo\r\n"),
    ];
    for (command, wire) in cases {
        assert_eq!(command.to_bytes(), wire);
    }
}

#[test]
fn reply_wire_forms_match_the_spec_and_decode() {
    let cases = [
        (
            Reply::Contents {
                version: 2,
                exptime_s: 0,
                content: Bytes::from_static(b"ghijklm"),
            },
            &b"CONTENTS 2 7 0\r\nghijklm\r\n"[..],
        ),
        (Reply::Written { version: 1 }, b"OK 1\r\n"),
        (Reply::Deleted, b"OK\r\n"),
        (Reply::FileNotFound, b"ERR_FILE_NOT_FOUND\r\n"),
        (Reply::VersionMismatch { current: 7 }, b"ERR_VERSION 7\r\n"),
        (Reply::CmdErr, b"ERR_CMD_ERR\r\n"),
        (Reply::Internal, b"ERR_INTERNAL\r\n"),
        (
            Reply::Redirect("127.0.0.1:8081".into()),
            b"ERR_REDIRECT 127.0.0.1:8081\r\n",
        ),
    ];
    for (reply, wire) in cases {
        assert_eq!(reply.to_bytes(), wire);
        let mut decoder = ReplyDecoder::new(Limits::default());
        let mut src = BytesMut::from(wire);
        assert_eq!(decoder.decode(&mut src), Ok(Some(reply)));
        assert!(src.is_empty());
    }
}

#[test]
fn reply_decoder_refuses_malformed_replies() {
    let long = [vec![b'O'; LINE_BYTES_MAX + 1], b"\r\n".to_vec()].concat();
    let cases: Vec<(&[u8], ReplyError)> = vec![
        (b"OK 1\n", ReplyError::BareNewline),
        (b"\n", ReplyError::BareNewline),
        (b"\r\n", ReplyError::Unrecognised),
        (b"ok\r\n", ReplyError::Unrecognised),
        (b"OK  1\r\n", ReplyError::Unrecognised),
        (b"OK x\r\n", ReplyError::Unrecognised),
        (b"OK 1 2\r\n", ReplyError::Unrecognised),
        (b" OK\r\n", ReplyError::Unrecognised),
        (b"ERR_VERSION\r\n", ReplyError::Unrecognised),
        (b"ERR_VERSION -1\r\n", ReplyError::Unrecognised),
        (b"ERR_FILE_NOT_FOUND 1\r\n", ReplyError::Unrecognised),
        (b"ERR_REDIRECT \r\n", ReplyError::Unrecognised),
        (b"ERR_REDIRECT a b\r\n", ReplyError::Unrecognised),
        (b"ERR_REDIRECT\r\n", ReplyError::Unrecognised),
        (b"CONTENTS 1 2\r\nab\r\n", ReplyError::Unrecognised),
        (
            b"CONTENTS 1 18446744073709551616 0\r\n",
            ReplyError::Unrecognised,
        ),
        (
            b"CONTENTS 1 2 0\r\nabc\r\n",
            ReplyError::ContentNotTerminated,
        ),
        (
            b"CONTENTS 1 2 0\r\nab\n\n",
            ReplyError::ContentNotTerminated,
        ),
        (
            b"CONTENTS 1 49 0\r\n",
            ReplyError::ContentTooLarge {
                numbytes: 49,
                max: 48,
            },
        ),
        (&long, ReplyError::LineTooLong),
        (&long[..LINE_BYTES_MAX + 1], ReplyError::LineTooLong),
    ];
    for (input, expected) in cases {
        assert_eq!(
            decode_replies_chunked(input, &[input.len()]),
            Err(expected.clone()),
            "{}",
            input.escape_ascii()
        );
        assert_eq!(
            decode_replies_chunked(input, &[1]),
            Err(expected),
            "{}",
            input.escape_ascii()
        );
    }
}

#[test]
fn reply_decoder_waits_for_partial_content() {
    let mut decoder = ReplyDecoder::new(Limits::default());
    let mut src = BytesMut::from(&b"OK 3\r\nCONTENTS 3 4 5\r\nab"[..]);
    assert_eq!(
        decoder.decode(&mut src),
        Ok(Some(Reply::Written { version: 3 }))
    );
    assert_eq!(decoder.decode(&mut src), Ok(None));
    src.extend_from_slice(b"\r\n\r");
    assert_eq!(decoder.decode(&mut src), Ok(None));
    src.extend_from_slice(b"\nOK");
    assert_eq!(
        decoder.decode(&mut src),
        Ok(Some(Reply::Contents {
            version: 3,
            exptime_s: 5,
            content: Bytes::from_static(b"ab\r\n"),
        }))
    );
    assert_eq!(decoder.decode(&mut src), Ok(None));
    assert_eq!(&src[..], b"OK");
}

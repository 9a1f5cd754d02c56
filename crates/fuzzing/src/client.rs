//! The client protocol's two stream decoders: commands (server side) and replies (client side).

use bytes::BytesMut;
use fs::codec::LINE_BYTES_MAX;
use fs::command::NAME_BYTES_MAX;
use fs::{Command, Decoded, Decoder, Limits, ParseError, Reply, ReplyDecoder, ReplyError};

use crate::chunks;

/// The limits every input is decoded under: the default, and one small enough that short
/// inputs reach the over-limit paths (content skipped unbuffered, `ContentTooLarge`).
const LIMITS: [Limits; 2] = [
    Limits {
        file_bytes_max: fs::codec::FILE_BYTES_MAX_DEFAULT,
    },
    Limits { file_bytes_max: 8 },
];

/// Most bytes a decoder may leave buffered while it waits for more: one line (with its `\r`)
/// or one file's content (with its `\r`), whichever is larger. A decoder that asks for more
/// input with more than this in hand would let a client grow the server's memory.
fn budget(limits: Limits) -> usize {
    let content = usize::try_from(limits.file_bytes_max).unwrap_or(usize::MAX);
    LINE_BYTES_MAX.max(content).saturating_add(1)
}

/// Client bytes through the server's command decoder ([`fs::Decoder`], admin commands
/// included), under two limits and three chunkings.
///
/// Asserts: no panic; the decoder never emits without consuming input; what is left buffered
/// while it waits stays within one line or one file's content; the results and the closed state
/// do not depend on how the bytes were split; every command is within the name and content
/// limits and survives encode and decode unchanged; every error is answered `ERR_CMD_ERR`.
pub fn client_command(data: &[u8]) {
    for limits in LIMITS {
        let mut first: Option<(Vec<Decoded>, bool)> = None;
        for plan in chunks::plans(data) {
            let run = decode_commands(limits, &plan);
            match &first {
                None => first = Some(run),
                Some(first) => assert_eq!(
                    *first, run,
                    "the command decoder's results depend on the chunking"
                ),
            }
        }
    }
}

fn decode_commands(limits: Limits, plan: &[&[u8]]) -> (Vec<Decoded>, bool) {
    let total: usize = plan.iter().map(|c| c.len()).sum();
    let mut decoder = Decoder::new(limits);
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    for chunk in plan {
        buf.extend_from_slice(chunk);
        while let Some(decoded) = decoder.decode(&mut buf) {
            check_decoded(limits, &decoded);
            out.push(decoded);
            // Every result consumes at least one byte (a line's `\n` at the least).
            assert!(out.len() <= total, "the decoder emits without consuming");
        }
        assert!(
            buf.len() <= budget(limits),
            "{} bytes left buffered, over the budget of {}",
            buf.len(),
            budget(limits)
        );
        if decoder.is_closed() {
            assert!(buf.is_empty(), "a closed decoder keeps input");
        }
    }
    (out, decoder.is_closed())
}

fn check_decoded(limits: Limits, decoded: &Decoded) {
    match decoded {
        Decoded::Command(command) => {
            assert!(command.name().as_bytes().len() <= NAME_BYTES_MAX);
            if let Command::Write { content, .. } | Command::Cas { content, .. } = command {
                assert!(content.len() as u64 <= limits.file_bytes_max);
            }
            let mut wire = BytesMut::new();
            command.encode(&mut wire);
            assert_eq!(
                decode_one(limits, wire),
                Decoded::Command(command.clone()),
                "a decoded command does not survive encode and decode"
            );
        }
        Decoded::Admin(admin) => {
            let wire = BytesMut::from(admin.encode().as_bytes());
            assert_eq!(
                decode_one(limits, wire),
                Decoded::Admin(admin.clone()),
                "a decoded admin command does not survive encode and decode"
            );
        }
        Decoded::Error(e) => {
            assert_eq!(e.reply(), Reply::CmdErr);
            assert!(!e.to_string().is_empty());
            if let ParseError::FileTooLarge { numbytes, max } = e {
                assert!(numbytes > max || usize::try_from(*numbytes).is_err());
            }
        }
    }
}

/// The one result of decoding a whole encoding; panics unless it is exactly one.
fn decode_one(limits: Limits, mut wire: BytesMut) -> Decoded {
    let mut decoder = Decoder::new(limits);
    let decoded = decoder.decode(&mut wire).expect("an encoding decodes");
    assert!(
        decoder.decode(&mut wire).is_none(),
        "an encoding decodes to more than one result"
    );
    assert!(wire.is_empty(), "an encoding leaves bytes behind");
    decoded
}

/// Server bytes through the client's reply decoder ([`fs::ReplyDecoder`]), under two limits
/// and three chunkings.
///
/// Asserts: no panic; what is left buffered while it waits stays within one line or one file's
/// content; the results do not depend on the chunking; an error is sticky (returned again on
/// the next call); every reply survives encode and decode unchanged.
pub fn client_reply(data: &[u8]) {
    for limits in LIMITS {
        let mut first: Option<Vec<Result<Reply, ReplyError>>> = None;
        for plan in chunks::plans(data) {
            let run = decode_replies(limits, &plan);
            match &first {
                None => first = Some(run),
                Some(first) => assert_eq!(
                    *first, run,
                    "the reply decoder's results depend on the chunking"
                ),
            }
        }
    }
}

fn decode_replies(limits: Limits, plan: &[&[u8]]) -> Vec<Result<Reply, ReplyError>> {
    let total: usize = plan.iter().map(|c| c.len()).sum();
    let mut decoder = ReplyDecoder::new(limits);
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    for chunk in plan {
        buf.extend_from_slice(chunk);
        loop {
            match decoder.decode(&mut buf) {
                Ok(Some(reply)) => {
                    check_reply(limits, &reply);
                    out.push(Ok(reply));
                    assert!(out.len() <= total, "the decoder emits without consuming");
                }
                Ok(None) => break,
                Err(e) => {
                    assert_eq!(
                        decoder.decode(&mut buf),
                        Err(e.clone()),
                        "a reply stream error is not sticky"
                    );
                    out.push(Err(e));
                    return out;
                }
            }
        }
        assert!(
            buf.len() <= budget(limits),
            "{} bytes left buffered, over the budget of {}",
            buf.len(),
            budget(limits)
        );
    }
    out
}

fn check_reply(limits: Limits, reply: &Reply) {
    if let Reply::Contents { content, .. } = reply {
        assert!(content.len() as u64 <= limits.file_bytes_max);
    }
    let mut wire = BytesMut::new();
    reply.encode(&mut wire);
    let mut decoder = ReplyDecoder::new(limits);
    assert_eq!(
        decoder.decode(&mut wire),
        Ok(Some(reply.clone())),
        "a decoded reply does not survive encode and decode"
    );
    assert_eq!(decoder.decode(&mut wire), Ok(None));
    assert!(wire.is_empty(), "an encoded reply leaves bytes behind");
}

//! Guards the logged command form: every command survives encode/decode exactly, the layout
//! stays as documented, and `decode` refuses (never panics on) corrupt log entries.

// Test helpers unwrap like tests do: a failure there is a test failure.
#![allow(clippy::unwrap_used)]

use bytes::Bytes;
use fs::stamped::DecodeError;
use fs::{Command, Name, NameError, StampedCommand};
use proptest::prelude::*;

fn name(s: &str) -> Name {
    Name::new(s.as_bytes().to_vec()).unwrap()
}

fn samples() -> Vec<StampedCommand> {
    vec![
        StampedCommand::new(1, Command::Read { name: name("r") }),
        StampedCommand::new(
            2,
            Command::Write {
                name: name("w"),
                content: Bytes::from_static(b"a\r\n\0"),
                exptime_s: 7,
            },
        ),
        StampedCommand::new(
            u64::MAX,
            Command::Cas {
                name: name("c"),
                version: 9,
                content: Bytes::new(),
                exptime_s: 0,
            },
        ),
        StampedCommand::new(0, Command::Delete { name: name("d") }),
        StampedCommand::clock(7),
    ]
}

#[test]
fn layout_matches_the_documented_format() {
    let write = &samples()[1];
    let mut expected = vec![2u8];
    expected.extend_from_slice(&2u64.to_le_bytes());
    expected.extend_from_slice(&[1, b'w']);
    expected.extend_from_slice(&7u64.to_le_bytes());
    expected.extend_from_slice(&4u64.to_le_bytes());
    expected.extend_from_slice(b"a\r\n\0");
    assert_eq!(write.encode(), expected);

    let mut expected = vec![4u8];
    expected.extend_from_slice(&0u64.to_le_bytes());
    expected.extend_from_slice(&[1, b'd']);
    assert_eq!(samples()[3].encode(), expected);

    let mut expected = vec![5u8];
    expected.extend_from_slice(&7u64.to_le_bytes());
    assert_eq!(samples()[4].encode(), expected);
}

#[test]
fn all_four_commands_and_the_clock_entry_round_trip() {
    for stamped in samples() {
        assert_eq!(StampedCommand::decode(&stamped.encode()), Ok(stamped));
    }
}

#[test]
fn decode_refuses_every_truncation() {
    for stamped in samples() {
        let bytes = stamped.encode();
        for len in 0..bytes.len() {
            assert_eq!(
                StampedCommand::decode(&bytes.slice(..len)),
                Err(DecodeError::Truncated),
                "{stamped:?} cut to {len}"
            );
        }
    }
}

#[test]
fn decode_refuses_trailing_bytes() {
    for stamped in samples() {
        let mut bytes = stamped.encode().to_vec();
        bytes.extend_from_slice(b"xy");
        assert_eq!(
            StampedCommand::decode(&Bytes::copy_from_slice(&bytes)),
            Err(DecodeError::TrailingBytes(2))
        );
    }
}

#[test]
fn decode_refuses_unknown_tags() {
    for tag in [0u8, 6, 0x80, 0xff] {
        let mut bytes = samples()[0].encode().to_vec();
        bytes[0] = tag;
        assert_eq!(
            StampedCommand::decode(&Bytes::copy_from_slice(&bytes)),
            Err(DecodeError::UnknownTag(tag))
        );
    }
}

#[test]
fn decode_refuses_invalid_names() {
    for (bad, why) in [
        (&b""[..], NameError::Empty),
        (b"a\x00", NameError::BadByte(0)),
        (b"a b", NameError::BadByte(b' ')),
        (&[b'n'; 251][..], NameError::TooLong),
    ] {
        let mut bytes = vec![4u8];
        bytes.extend_from_slice(&0u64.to_le_bytes());
        bytes.push(bad.len() as u8);
        bytes.extend_from_slice(bad);
        assert_eq!(
            StampedCommand::decode(&Bytes::copy_from_slice(&bytes)),
            Err(DecodeError::BadName(why))
        );
    }
}

#[test]
fn decode_refuses_a_content_length_beyond_the_input() {
    let mut bytes = samples()[1].encode().to_vec();
    let at = 1 + 8 + 2 + 8;
    bytes[at..at + 8].copy_from_slice(&u64::MAX.to_le_bytes());
    assert_eq!(
        StampedCommand::decode(&Bytes::copy_from_slice(&bytes)),
        Err(DecodeError::Truncated)
    );
}

fn name_strategy() -> impl Strategy<Value = Name> {
    proptest::collection::vec(0x21..=0x7eu8, 1..=250).prop_map(|b| Name::new(b).unwrap())
}

fn stamped_strategy() -> impl Strategy<Value = StampedCommand> {
    let content = proptest::collection::vec(any::<u8>(), 0..300).prop_map(Bytes::from);
    let command = prop_oneof![
        name_strategy().prop_map(|name| Command::Read { name }),
        (name_strategy(), content.clone(), any::<u64>()).prop_map(|(name, content, exptime_s)| {
            Command::Write {
                name,
                content,
                exptime_s,
            }
        }),
        (name_strategy(), any::<u64>(), content, any::<u64>()).prop_map(
            |(name, version, content, exptime_s)| Command::Cas {
                name,
                version,
                content,
                exptime_s,
            }
        ),
        name_strategy().prop_map(|name| Command::Delete { name }),
    ];
    (any::<u64>(), proptest::option::of(command))
        .prop_map(|(clock_ms, command)| StampedCommand { clock_ms, command })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn any_command_round_trips(stamped in stamped_strategy()) {
        prop_assert_eq!(StampedCommand::decode(&stamped.encode()), Ok(stamped));
    }

    #[test]
    fn decode_never_panics_on_random_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
        // Whatever decodes must be exactly what encoding it gives back: one form per command.
        if let Ok(stamped) = StampedCommand::decode(&Bytes::copy_from_slice(&bytes)) {
            prop_assert_eq!(stamped.encode().to_vec(), bytes);
        }
    }

    #[test]
    fn decode_of_a_corrupted_entry_errs_or_is_canonical(
        stamped in stamped_strategy(),
        at in any::<prop::sample::Index>(),
        mask in 1..=255u8,
    ) {
        let mut bytes = stamped.encode().to_vec();
        let at = at.index(bytes.len());
        bytes[at] ^= mask;
        if let Ok(decoded) = StampedCommand::decode(&Bytes::copy_from_slice(&bytes)) {
            prop_assert_eq!(decoded.encode().to_vec(), bytes);
        }
    }
}

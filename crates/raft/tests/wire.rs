//! Wire and storage encodings: guards against a message or entry that does not survive the trip
//! through bytes, and against a decoder that panics (or accepts trailing junk) on bytes from the
//! network or a damaged disk.

// Tests may unwrap: a panic is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "support/strategies.rs"]
mod strategies;

use bytes::Bytes;
use proptest::prelude::*;
use raft::{Entry, LogIndex, Message, Payload, Term, WireError};

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn every_message_round_trips(msg in strategies::message()) {
        let bytes = msg.encode();
        prop_assert_eq!(Message::decode(&bytes), Ok(msg));
    }

    #[test]
    fn random_bytes_never_panic_the_decoder(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        let _ = Message::decode(&bytes);
    }

    #[test]
    fn damaged_encodings_never_panic_the_decoder(
        msg in strategies::message(),
        flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
        cut in any::<prop::sample::Index>(),
    ) {
        let mut bytes = msg.encode();
        for (at, value) in flips {
            let k = at.index(bytes.len());
            bytes[k] = value;
        }
        let _ = Message::decode(&bytes);
        let _ = Message::decode(&bytes[..cut.index(bytes.len() + 1)]);
    }

    #[test]
    fn every_entry_payload_round_trips(entry in strategies::entry()) {
        let (tag, data) = entry.stored();
        prop_assert_eq!(Entry::from_stored(entry.index, entry.term, tag, &data), Ok(entry));
    }

    #[test]
    fn random_payload_bytes_never_panic(
        tag in any::<u8>(),
        bytes in proptest::collection::vec(any::<u8>(), 0..64),
    ) {
        let _ = Entry::from_stored(LogIndex(1), Term(1), tag, &bytes);
    }
}

#[test]
fn trailing_bytes_are_refused() {
    let msg = Message::HeartbeatResponse(raft::HeartbeatResponse {
        term: Term(3),
        read_round: 9,
    });
    let mut bytes = msg.encode();
    bytes.push(0);
    assert_eq!(
        Message::decode(&bytes),
        Err(WireError::TrailingBytes { count: 1 })
    );
}

#[test]
fn stored_payload_format_is_stable() {
    // The WAL keeps these bytes across versions: the format must not drift.
    let noop = Entry {
        index: LogIndex(1),
        term: Term(1),
        payload: Payload::Noop,
    };
    assert_eq!(noop.stored(), (0, Bytes::new()));
    let command = Bytes::from_static(b"hi");
    let cmd = Entry {
        index: LogIndex(2),
        term: Term(1),
        payload: Payload::Command(command.clone()),
    };
    let (tag, data) = cmd.stored();
    assert_eq!((tag, &data[..]), (1, &b"hi"[..]));
    assert_eq!(
        data.as_ptr(),
        command.as_ptr(),
        "a command is stored uncopied"
    );
    // (stored tag and data, expected result)
    let table: Vec<(u8, &[u8], Result<Payload, WireError>)> = vec![
        (0, &[], Ok(Payload::Noop)),
        (1, &[], Ok(Payload::Command(Bytes::new()))),
        (1, &[7], Ok(Payload::Command(Bytes::from_static(&[7])))),
        (0, &[0], Err(WireError::TrailingBytes { count: 1 })),
        (3, &[1], Err(WireError::UnknownPayloadTag(3))),
    ];
    for (tag, bytes, expected) in table {
        let got = Entry::from_stored(LogIndex(1), Term(1), tag, bytes).map(|e| e.payload);
        assert_eq!(got, expected, "{tag} {bytes:?}");
    }
    // A configuration: tag 2 and its encoding; a damaged one is refused.
    let membership = raft::Membership::voters_only([raft::NodeId(1), raft::NodeId(2)]);
    let conf = Entry {
        index: LogIndex(3),
        term: Term(1),
        payload: Payload::Membership(membership.clone()),
    };
    let (tag, stored) = conf.stored();
    assert_eq!(tag, 2);
    assert_eq!(stored[..], membership.encode());
    assert_eq!(
        Entry::from_stored(LogIndex(3), Term(1), tag, &stored),
        Ok(conf)
    );
    for cut in 0..stored.len() {
        assert!(Entry::from_stored(LogIndex(3), Term(1), tag, &stored[..cut]).is_err());
    }
}

#[test]
fn message_encoding_is_compact() {
    // A heartbeat is a handful of varints: it should stay far below a typical MTU.
    let hb = Message::Heartbeat(raft::Heartbeat {
        term: Term(12),
        leader: raft::NodeId(3),
        commit: LogIndex(1_000_000),
        read_round: 77,
    });
    assert!(hb.encode().len() <= 12, "{} bytes", hb.encode().len());
}

#[test]
fn install_snapshot_is_appended_so_older_encodings_keep_their_tags() {
    // postcard tags an enum variant by its position: InstallSnapshot came last (tag 6), and
    // the variants before it kept theirs, so bytes from an older member still decode.
    let req = raft::InstallSnapshotRequest {
        term: Term(7),
        leader: raft::NodeId(2),
        index: LogIndex(1_000),
        snapshot_term: Term(6),
        membership: raft::Membership::voters_only([raft::NodeId(1), raft::NodeId(2)]),
    };
    let msg = Message::InstallSnapshot(req);
    let bytes = msg.encode();
    assert_eq!(bytes[0], 6);
    assert_eq!(Message::decode(&bytes), Ok(msg));
    let older = Message::HeartbeatResponse(raft::HeartbeatResponse {
        term: Term(3),
        read_round: 9,
    });
    assert_eq!(older.encode(), [5, 3, 9]);
    // Every cut of the encoding is refused, never a panic nor a different message.
    for cut in 0..bytes.len() {
        assert!(Message::decode(&bytes[..cut]).is_err(), "cut at {cut}");
    }
    // TimeoutNow (7) and the read-index pair (8, 9) came after it; a tag past the last
    // variant is malformed.
    let timeout_now = Message::TimeoutNow(raft::TimeoutNow {
        term: Term(3),
        leader: raft::NodeId(2),
    });
    assert_eq!(timeout_now.encode(), [7, 3, 2]);
    let ask = Message::ReadIndexRequest(raft::ReadIndexRequest {
        term: Term(3),
        id: 5,
    });
    assert_eq!(ask.encode(), [8, 3, 5]);
    let answer = Message::ReadIndexResponse(raft::ReadIndexResponse {
        term: Term(3),
        id: 5,
        index: Some(LogIndex(9)),
    });
    assert_eq!(answer.encode(), [9, 3, 5, 1, 9]);
    assert!(matches!(
        Message::decode(&[10, 1, 2, 3, 4]),
        Err(WireError::Malformed(_))
    ));
}

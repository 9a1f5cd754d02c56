//! What a peer sends: the payload of one peer frame, and the encodings nested in it.

use bytes::Bytes;
use fs::StampedCommand;
use raft::{Entry, LogIndex, Membership, Message, Payload, Term};
use replica::PeerMessage;

/// One peer frame's payload through [`PeerMessage::decode`], and the same bytes through each
/// decoder nested under it: [`Message::decode`], [`Entry::from_stored`] (what the WAL gives
/// back), [`Membership::decode`] and [`StampedCommand::decode`] (a logged client command).
///
/// Asserts: no panic, errors are typed; every decoded value re-encodes to bytes that decode
/// equal; a configuration decoded from a peer is valid ([`Membership::validate`]: the type
/// promises it, and an invalid one written to the log would fail to decode on restart); the
/// canonical binary forms (logged commands) re-encode to exactly their input.
pub fn peer_message(data: &[u8]) {
    if let Ok(msg) = PeerMessage::decode(&Bytes::copy_from_slice(data)) {
        assert_eq!(
            PeerMessage::decode(&Bytes::from(msg.encode())).as_ref(),
            Ok(&msg),
            "a peer message does not survive encode and decode"
        );
        match &msg {
            PeerMessage::Raft(m) => check_message(m),
            PeerMessage::Chunk(chunk) => check_membership(&chunk.offer.membership),
            PeerMessage::ChunkAck(_) => {}
        }
    }
    if let Ok(m) = Message::decode(data) {
        assert_eq!(
            Message::decode(&m.encode()).as_ref(),
            Ok(&m),
            "a raft message does not survive encode and decode"
        );
        check_message(&m);
    }
    if let Some((&tag, rest)) = data.split_first()
        && let Ok(entry) = Entry::from_stored(LogIndex(1), Term(1), tag, rest)
    {
        check_entry(&entry);
    }
    if let Ok(membership) = Membership::decode(data) {
        check_membership(&membership);
    }
    check_stamped(&Bytes::copy_from_slice(data));
}

fn check_message(m: &Message) {
    match m {
        Message::AppendEntriesRequest(req) => req.entries.iter().for_each(check_entry),
        Message::InstallSnapshot(req) => check_membership(&req.membership),
        _ => {}
    }
}

/// An entry as a follower would store it: its WAL payload must read back as the same entry.
fn check_entry(entry: &Entry) {
    match &entry.payload {
        Payload::Noop => {}
        Payload::Command(bytes) => check_stamped(bytes),
        Payload::Membership(m) => check_membership(m),
    }
    let (tag, data) = entry.stored();
    assert_eq!(
        Entry::from_stored(entry.index, entry.term, tag, &data).as_ref(),
        Ok(entry),
        "an entry does not survive its WAL payload encoding"
    );
}

fn check_membership(m: &Membership) {
    assert_eq!(
        m.validate(),
        Ok(()),
        "an invalid configuration was decoded: {m:?}"
    );
    assert_eq!(
        Membership::decode(&m.encode()).as_ref(),
        Ok(m),
        "a configuration does not survive encode and decode"
    );
}

fn check_stamped(bytes: &Bytes) {
    if let Ok(stamped) = StampedCommand::decode(bytes) {
        assert_eq!(
            &stamped.encode()[..],
            bytes,
            "a logged command's binary form is not canonical"
        );
    }
}

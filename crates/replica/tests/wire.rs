//! Peer message decoding: guards the copy-free path, where the commands of a decoded append are
//! slices of the frame that carried them.

// Tests may unwrap: a panic is a failed test.
#![allow(clippy::unwrap_used)]

use bytes::Bytes;
use raft::{AppendEntriesRequest, Entry, LogIndex, Message, NodeId, Payload, Term};
use replica::PeerMessage;

fn append_of(commands: &[&'static [u8]]) -> PeerMessage {
    PeerMessage::Raft(Message::AppendEntriesRequest(AppendEntriesRequest {
        term: Term(3),
        leader: NodeId(1),
        prev_log_index: LogIndex(0),
        prev_log_term: Term(0),
        entries: commands
            .iter()
            .zip(1..)
            .map(|(c, i)| Entry {
                index: LogIndex(i),
                term: Term(3),
                payload: Payload::Command(Bytes::from_static(c)),
            })
            .collect(),
        leader_commit: LogIndex(0),
    }))
}

#[test]
fn decoded_commands_are_slices_of_their_frame() {
    let sent = append_of(&[b"first command", b"", b"third"]);
    let frame = Bytes::from(sent.encode());
    let decoded = PeerMessage::decode(&frame).unwrap();
    assert_eq!(decoded, sent);
    let PeerMessage::Raft(Message::AppendEntriesRequest(request)) = &decoded else {
        panic!("decoded an append");
    };
    let range = frame.as_ptr_range();
    for entry in &request.entries {
        let Payload::Command(data) = &entry.payload else {
            panic!("a command");
        };
        // An empty command has nothing to share.
        assert_eq!(
            range.contains(&data.as_ptr()),
            !data.is_empty(),
            "{entry:?}"
        );
    }
    // Decoding outside a frame (the core's own decoder) copies, as before.
    let PeerMessage::Raft(message) = &sent else {
        unreachable!()
    };
    let copied = Message::decode(&message.encode()).unwrap();
    assert_eq!(&copied, message);
}

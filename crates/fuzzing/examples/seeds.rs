//! Writes the seed corpora under `fuzz/corpus/<target>/seed-*`: real commands, replies, peer
//! messages, a WAL segment, a hard state, a log meta file and a snapshot, each produced by the
//! product code. Run it again after a format change: `cargo run -p fuzzing --example seeds`.

#![allow(
    clippy::expect_used,
    reason = "a generator run by hand: a failure should stop it loudly"
)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use bytes::{Bytes, BytesMut};
use fs::{Admin, Command, MemberInfo, Name, Reply, StampedCommand, Store};
use raft::message::{
    AppendEntriesRequest, AppendEntriesResponse, AppendOutcome, Heartbeat, InstallSnapshotRequest,
    VoteRequest,
};
use raft::{Addresses, Entry, LogIndex, Member, Membership, Message, NodeId, Payload, Term};
use replica::{AckStatus, Chunk, ChunkAck, PeerMessage};

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus");
    client_command(&root.join("client_command"));
    client_reply(&root.join("client_reply"));
    peer_message(&root.join("peer_message"));
    wal_recovery(&root.join("wal_recovery"));
    snapshot(&root.join("snapshot"));
}

fn write(dir: &Path, name: &str, bytes: &[u8]) {
    std::fs::create_dir_all(dir).expect("create the corpus directory");
    let path: PathBuf = dir.join(format!("seed-{name}"));
    std::fs::write(&path, bytes).expect("write a seed");
}

fn name(s: &str) -> Name {
    Name::new(Bytes::copy_from_slice(s.as_bytes())).expect("a valid name")
}

fn commands() -> Vec<Command> {
    vec![
        Command::Read { name: name("foo") },
        Command::Write {
            name: name("foo"),
            content: Bytes::from_static(b"abcdef"),
            exptime_s: 0,
        },
        Command::Cas {
            name: name("foo"),
            version: 1,
            content: Bytes::from_static(b"gh\r\nij\0k"),
            exptime_s: 30,
        },
        Command::Delete { name: name("foo") },
    ]
}

fn client_command(dir: &Path) {
    let mut pipelined = BytesMut::new();
    for (i, command) in commands().iter().enumerate() {
        write(dir, &format!("command-{i}"), &command.to_bytes());
        command.encode(&mut pipelined);
    }
    write(dir, "pipelined", &pipelined);
    let admins = [
        Admin::Members,
        Admin::AddMember {
            id: 6,
            peer: "127.0.0.1:9085".into(),
            client: "127.0.0.1:8085".into(),
            http: None,
        },
        Admin::Promote { id: 6 },
        Admin::RemoveMember { id: 2 },
        Admin::TransferLeader { to: Some(3) },
        Admin::MembersLocal,
    ];
    for (i, admin) in admins.iter().enumerate() {
        write(dir, &format!("admin-{i}"), admin.encode().as_bytes());
    }
    // Malformed and edge-case framing: bare `\n`, extra spaces, over the limits, no terminator.
    write(dir, "bare-newline", b"write  a  3 \nxyz\nread a\n");
    write(
        dir,
        "too-large",
        b"write big 99999999999\r\nabc\r\nread big\r\n",
    );
    write(
        dir,
        "bad-fields",
        b"cas x y 1\r\nz\r\n\r\nfoo bar\r\nread\r\n",
    );
    write(dir, "not-terminated", b"write a 1\r\nxy\r\nread a\r\n");
}

fn client_reply(dir: &Path) {
    let replies = [
        Reply::Contents {
            version: 2,
            exptime_s: 7,
            content: Bytes::from_static(b"ghi\r\njk"),
        },
        Reply::Written { version: 1 },
        Reply::Deleted,
        Reply::FileNotFound,
        Reply::VersionMismatch { current: 4 },
        Reply::CmdErr,
        Reply::Internal,
        Reply::Redirect("127.0.0.1:8081".into()),
        Reply::Members(vec![
            MemberInfo {
                id: 1,
                voter: true,
                leader: true,
                peer: "127.0.0.1:9001".into(),
                client: "127.0.0.1:8081".into(),
                http: Some("127.0.0.1:7001".into()),
            },
            MemberInfo {
                id: 6,
                voter: false,
                leader: false,
                peer: "127.0.0.1:9085".into(),
                client: "127.0.0.1:8085".into(),
                http: None,
            },
        ]),
        Reply::MemberError("member 6 already exists".into()),
    ];
    let mut all = BytesMut::new();
    for (i, reply) in replies.iter().enumerate() {
        write(dir, &format!("reply-{i}"), &reply.to_bytes());
        reply.encode(&mut all);
    }
    write(dir, "pipelined", &all);
}

fn membership() -> Membership {
    let member = |id: u64, voter: bool| Member {
        voter,
        addresses: Addresses {
            peer: format!("127.0.0.1:900{id}"),
            client: format!("127.0.0.1:808{id}"),
            http: (id == 1).then(|| "127.0.0.1:7001".to_string()),
        },
    };
    let members: BTreeMap<NodeId, Member> = [
        (NodeId(1), member(1, true)),
        (NodeId(2), member(2, true)),
        (NodeId(3), member(3, false)),
    ]
    .into();
    Membership::new(members).expect("a valid configuration")
}

fn entries() -> Vec<Entry> {
    let mut payloads = vec![Payload::Noop];
    payloads.extend(
        commands()
            .into_iter()
            .map(|c| Payload::Command(StampedCommand::new(1_000, c).encode())),
    );
    payloads.push(Payload::Command(StampedCommand::clock(2_000).encode()));
    payloads.push(Payload::Membership(membership()));
    payloads
        .into_iter()
        .zip(1..)
        .map(|(payload, i)| Entry {
            index: LogIndex(i),
            term: Term(1 + i / 4),
            payload,
        })
        .collect()
}

fn offer() -> InstallSnapshotRequest {
    InstallSnapshotRequest {
        term: Term(3),
        leader: NodeId(1),
        index: LogIndex(7),
        snapshot_term: Term(2),
        membership: membership(),
    }
}

fn peer_message(dir: &Path) {
    let messages = [
        PeerMessage::Raft(Message::AppendEntriesRequest(AppendEntriesRequest {
            term: Term(2),
            leader: NodeId(1),
            prev_log_index: LogIndex(0),
            prev_log_term: Term(0),
            entries: entries(),
            leader_commit: LogIndex(3),
        })),
        PeerMessage::Raft(Message::AppendEntriesResponse(AppendEntriesResponse {
            term: Term(2),
            outcome: AppendOutcome::Reject {
                rejected: LogIndex(5),
                hint_index: LogIndex(3),
                hint_term: Term(1),
            },
        })),
        PeerMessage::Raft(Message::VoteRequest(VoteRequest {
            term: Term(4),
            candidate: NodeId(2),
            last_log_index: LogIndex(9),
            last_log_term: Term(3),
            prevote: true,
            transfer: false,
        })),
        PeerMessage::Raft(Message::Heartbeat(Heartbeat {
            term: Term(u64::MAX),
            leader: NodeId(1),
            commit: LogIndex(9),
            read_round: 12,
        })),
        PeerMessage::Raft(Message::InstallSnapshot(offer())),
        PeerMessage::Chunk(Chunk {
            offer: offer(),
            total_bytes: 10,
            offset: 4,
            data: Bytes::from_static(b"snap"),
        }),
        PeerMessage::ChunkAck(ChunkAck {
            term: Term(3),
            index: LogIndex(7),
            received: 8,
            status: AckStatus::Receiving,
        }),
    ];
    for (i, msg) in messages.iter().enumerate() {
        write(dir, &format!("message-{i}"), &msg.encode());
    }
    write(dir, "membership", &membership().encode());
    for (i, entry) in entries().iter().enumerate() {
        // The fuzz target reads the tag from the first byte.
        let (tag, data) = entry.stored();
        write(dir, &format!("payload-{i}"), &[&[tag], &data[..]].concat());
    }
}

fn scratch() -> tempfile::TempDir {
    tempfile::tempdir().expect("a scratch directory")
}

fn wal_recovery(dir: &Path) {
    let log_dir = scratch();
    let (mut log, _) = wal::Log::open(log_dir.path(), wal::Options::default()).expect("open");
    let wal_entries: Vec<wal::Entry> = entries()
        .iter()
        .map(|e| {
            let (kind, data) = e.stored();
            wal::Entry::of_kind(e.index.0, e.term.0, kind, data)
        })
        .collect();
    log.append(&wal_entries).expect("append");
    log.sync().expect("sync");
    drop(log);
    let segment = std::fs::read(log_dir.path().join(format!("{:020}.wal", 1))).expect("read");
    write(dir, "segment", &segment);
    // A torn tail: the last record cut short, as a crash mid-write leaves it.
    write(dir, "segment-torn", &segment[..segment.len() - 5]);
    write(dir, "segment-header", &segment[..wal::SEGMENT_HEADER_BYTES]);

    // A discarded prefix: the segment then starts below the log.meta's first index.
    let (mut log, _) = wal::Log::open(log_dir.path(), wal::Options::default()).expect("reopen");
    log.discard_prefix(3).expect("discard");
    log.sync().expect("sync");
    drop(log);
    let meta = std::fs::read(log_dir.path().join("log.meta")).expect("read the meta file");
    write(dir, "log-meta", &meta);

    let state_dir = scratch();
    let state = wal::HardState {
        term: 3,
        vote: 1,
        commit: 5,
    };
    wal::hard_state::save(state_dir.path(), &state).expect("save the hard state");
    let state = std::fs::read(state_dir.path().join(wal::hard_state::HARD_STATE_FILE));
    write(dir, "hard-state", &state.expect("read the hard state"));
}

fn snapshot(dir: &Path) {
    let mut store = Store::new();
    for command in commands() {
        store.apply(&command, 1_000);
    }
    store.apply(
        &Command::Write {
            name: name("lease"),
            content: Bytes::from_static(b"holder-2"),
            exptime_s: 60,
        },
        1_500,
    );
    store.apply(
        &Command::Write {
            name: name("bar"),
            content: Bytes::from_static(b"\0\r\n"),
            exptime_s: 0,
        },
        2_000,
    );
    let image = store.snapshot();
    write(dir, "store-image", &image);

    let snap_dir = scratch();
    let meta = wal::SnapshotMeta {
        index: 7,
        term: 2,
        config: Bytes::from(membership().encode()),
    };
    wal::save_snapshot(snap_dir.path(), &meta, &image).expect("save the snapshot");
    let file = std::fs::read(wal::snapshot_path(snap_dir.path(), 7)).expect("read the snapshot");
    write(dir, "snapshot-file", &file);
    // The payload alone: the target seals it with a correct CRC itself.
    write(dir, "snapshot-payload", &file[12..file.len() - 4]);
}

//! Guards the driver's promises to clients with a real Raft core: a write is answered once
//! committed and applied, a pipelined read sees the same batch's write, a request without a
//! leader waits (and gives up on time), a follower redirects, and a leader that loses its
//! leadership answers everything in flight with ERR_INTERNAL.

use std::collections::BTreeMap;

use bytes::Bytes;
use fs::{Command, Name, Reply, Store};
use raft::{LogIndex, Millis, NodeId, Recovered};
use replica::{Config, Now, Output, PeerMessage, Replica, Request};

type Out = Vec<Output<u32>>;

fn config() -> Config {
    // 1000 ms election timeout: requests park for 2000 ms.
    Config::new(1_000)
}

/// Voters 1..=members; member `id` serves clients at 127.0.0.1:(8080 + id).
fn membership(members: u64) -> raft::Membership {
    let members = (1..=members)
        .map(|id| {
            let member = raft::Member {
                voter: true,
                addresses: raft::Addresses {
                    peer: format!("127.0.0.1:{}", 9080 + id),
                    client: format!("127.0.0.1:{}", 8080 + id),
                    http: None,
                },
            };
            (NodeId(id), member)
        })
        .collect::<BTreeMap<_, _>>();
    raft::Membership::new(members).unwrap_or_else(|e| panic!("{e}"))
}

fn replica(id: u64, members: u64) -> Replica<u32> {
    let core = raft::Node::new(
        raft::Config::new(NodeId(id)),
        membership(members),
        Recovered::default(),
        LogIndex(0),
        7,
    )
    .unwrap_or_else(|e| panic!("core: {e}"));
    Replica::new(core, Store::new(), None, config())
}

fn at(ms: u64) -> Now {
    Now {
        mono: Millis(ms),
        wall_ms: 1_700_000_000_000 + ms,
    }
}

fn name(s: &str) -> Name {
    Name::new(Bytes::copy_from_slice(s.as_bytes())).unwrap_or_else(|e| panic!("{e}"))
}

fn write(token: u32, file: &str, content: &str) -> Request<u32> {
    Request {
        token,
        command: Command::Write {
            name: name(file),
            content: Bytes::copy_from_slice(content.as_bytes()),
            exptime_s: 0,
        },
    }
}

fn read(token: u32, file: &str) -> Request<u32> {
    Request {
        token,
        command: Command::Read { name: name(file) },
    }
}

/// Acknowledges every storage output at once (an instant disk), repeatedly, and returns the
/// replies seen on the way, in order.
fn settle(r: &mut Replica<u32>, now: Now, out: Out) -> Vec<(u32, Reply)> {
    settle_with(r, now, out, |_, _| None)
}

/// Like `settle`, and also lets `peer` answer each message sent (with the answer's sender).
fn settle_with(
    r: &mut Replica<u32>,
    now: Now,
    mut out: Out,
    mut peer: impl FnMut(NodeId, &raft::Message) -> Option<(NodeId, raft::Message)>,
) -> Vec<(u32, Reply)> {
    let mut replies = Vec::new();
    while !out.is_empty() {
        let mut next = Vec::new();
        for output in out {
            match output {
                Output::LogStore { entries } => {
                    if let Some(last) = entries.last() {
                        r.log_stored(now, last.index, last.term, &mut next);
                    }
                }
                Output::SaveState(state) => r.state_saved(now, state, &mut next),
                Output::Reply { token, reply } => replies.push((token, reply)),
                Output::Send {
                    to,
                    msg: PeerMessage::Raft(msg),
                } => {
                    if let Some((from, answer)) = peer(to, &msg) {
                        r.message(now, from, answer, &mut next);
                    }
                }
                _ => {}
            }
        }
        out = next;
    }
    replies
}

/// The last timer among `out`, if any.
fn last_timer(out: &Out) -> Option<Millis> {
    out.iter().rev().find_map(|o| match o {
        Output::Timer { at } => Some(*at),
        _ => None,
    })
}

/// A started single-node replica that leads.
fn single_leader() -> Replica<u32> {
    let mut r = replica(1, 1);
    let mut out = Vec::new();
    r.start(at(0), &mut out);
    let replies = settle(&mut r, at(0), out);
    assert!(replies.is_empty());
    assert_eq!(r.core().leader(), Some(NodeId(1)));
    r
}

#[test]
fn a_write_is_answered_once_committed_and_applied() {
    let mut r = single_leader();
    let mut out = Vec::new();
    r.requests(at(1), [write(1, "a", "hello")], &mut out);
    assert!(
        !out.iter().any(|o| matches!(o, Output::Reply { .. })),
        "no answer before the entry is durable"
    );
    let replies = settle(&mut r, at(1), out);
    assert_eq!(replies.len(), 1);
    assert!(
        matches!(replies[0], (1, Reply::Written { .. })),
        "{replies:?}"
    );
    assert_eq!(r.store().file_count(), 1);
}

#[test]
fn a_read_pipelined_behind_a_write_in_one_batch_sees_it() {
    let mut r = single_leader();
    let mut out = Vec::new();
    r.requests(at(1), [write(1, "a", "v1"), read(2, "a")], &mut out);
    let replies = settle(&mut r, at(1), out);
    let read_reply = replies
        .iter()
        .find(|(t, _)| *t == 2)
        .map(|(_, r)| r.clone());
    match read_reply {
        Some(Reply::Contents { content, .. }) => assert_eq!(&content[..], b"v1"),
        other => panic!("the read did not see the write: {other:?}"),
    }
    // And the write is answered before the read that follows it.
    let order: Vec<u32> = replies.iter().map(|(t, _)| *t).collect();
    assert_eq!(order, vec![1, 2]);
}

#[test]
fn without_a_leader_a_request_waits_then_gives_up_on_time() {
    let mut r = replica(1, 3);
    let mut out = Vec::new();
    r.start(at(0), &mut out);
    let mut timer = last_timer(&out);
    out.clear();
    r.requests(at(10), [write(1, "a", "x")], &mut out);
    timer = last_timer(&out).or(timer);
    // One timer covers both the core's election alarm and the park deadline.
    assert!(timer.is_some_and(|t| t <= Millis(2_010)), "{timer:?}");
    assert_eq!(r.in_flight(), 1);
    out.clear();
    r.timeout(at(2_009), &mut out);
    assert!(!out.iter().any(|o| matches!(o, Output::Reply { .. })));
    out.clear();
    r.timeout(at(2_010), &mut out);
    let replies: Vec<_> = out
        .iter()
        .filter_map(|o| match o {
            Output::Reply { token, reply } => Some((*token, reply.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(replies, vec![(1, Reply::Internal)]);
    assert_eq!(r.in_flight(), 0);
}

#[test]
fn a_parked_request_is_taken_up_again_as_soon_as_a_leader_is_known() {
    let mut r = replica(1, 3);
    let mut out = Vec::new();
    r.start(at(0), &mut out);
    r.requests(at(1), [write(1, "a", "x")], &mut out);
    assert!(settle(&mut r, at(1), out).is_empty());
    assert_eq!(r.in_flight(), 1, "parked while no leader is known");
    let mut out = Vec::new();
    r.message(at(2), NodeId(2), heartbeat_from_2(), &mut out);
    let replies = settle(&mut r, at(2), out);
    assert_eq!(replies, vec![(1, Reply::Redirect("127.0.0.1:8082".into()))]);
    assert_eq!(r.in_flight(), 0);
}

fn heartbeat_from_2() -> raft::Message {
    raft::Message::Heartbeat(raft::Heartbeat {
        term: raft::Term(1),
        leader: NodeId(2),
        commit: LogIndex(0),
        read_round: 0,
    })
}

/// A follower of a 3-member cluster that knows node 2 leads.
fn follower_of_2() -> Replica<u32> {
    let mut r = replica(1, 3);
    let mut out = Vec::new();
    r.start(at(0), &mut out);
    out.clear();
    r.message(at(1), NodeId(2), heartbeat_from_2(), &mut out);
    settle(&mut r, at(1), out);
    assert_eq!(r.core().leader(), Some(NodeId(2)));
    r
}

#[test]
fn a_follower_redirects_to_the_leaders_client_address() {
    let mut r = follower_of_2();
    let mut out = Vec::new();
    r.requests(at(2), [write(1, "a", "x"), read(2, "a")], &mut out);
    let replies = settle(&mut r, at(2), out);
    let redirect = Reply::Redirect("127.0.0.1:8082".into());
    assert_eq!(replies, vec![(1, redirect.clone()), (2, redirect)]);
}

#[test]
fn a_leader_deposed_answers_what_it_holds_with_err_internal() {
    let mut r = replica(1, 3);
    let mut out = Vec::new();
    r.start(at(0), &mut out);
    settle(&mut r, at(0), std::mem::take(&mut out));
    // Campaign: the election timeout passes; node 2 grants every (pre-)vote asked of it.
    let grant = |to: NodeId, msg: &raft::Message| match msg {
        raft::Message::VoteRequest(req) if to == NodeId(2) => Some((
            NodeId(2),
            raft::Message::VoteResponse(raft::VoteResponse {
                term: req.term,
                granted: true,
                prevote: req.prevote,
            }),
        )),
        _ => None,
    };
    let mut ms = 0;
    while r.core().role() != raft::Role::Leader && ms < 10_000 {
        ms += 100;
        let mut next = Vec::new();
        r.timeout(at(ms), &mut next);
        settle_with(&mut r, at(ms), next, grant);
    }
    assert_eq!(r.core().role(), raft::Role::Leader);
    let term = r.core().term();
    out.clear();
    r.requests(at(ms + 1), [write(1, "a", "x")], &mut out);
    assert!(
        settle(&mut r, at(ms + 1), out).is_empty(),
        "no majority yet"
    );
    assert_eq!(r.in_flight(), 1);
    // A newer leader appears: the write's fate is unknown.
    let heartbeat = raft::Message::Heartbeat(raft::Heartbeat {
        term: raft::Term(term.0 + 1),
        leader: NodeId(3),
        commit: LogIndex(0),
        read_round: 0,
    });
    let mut out = Vec::new();
    r.message(at(ms + 2), NodeId(3), heartbeat, &mut out);
    let replies = settle(&mut r, at(ms + 2), out);
    assert_eq!(replies, vec![(1, Reply::Internal)]);
    assert_eq!(r.in_flight(), 0);
}

fn write_expiring(token: u32, file: &str, exptime_s: u64) -> Request<u32> {
    Request {
        token,
        command: Command::Write {
            name: name(file),
            content: Bytes::from_static(b"x"),
            exptime_s,
        },
    }
}

/// `now` with the wall clock `skew_ms` ahead of (or, negative, behind) the one `at` gives.
fn skewed(ms: u64, skew_ms: i64) -> Now {
    let now = at(ms);
    Now {
        wall_ms: now.wall_ms.saturating_add_signed(skew_ms),
        ..now
    }
}

#[test]
fn an_idle_leader_appends_a_clock_entry_once_a_file_is_due_and_not_before() {
    let mut r = single_leader();
    let mut out = Vec::new();
    r.requests(at(10), [write_expiring(1, "f", 1)], &mut out);
    let replies = settle(&mut r, at(10), out);
    assert!(matches!(replies[..], [(1, Reply::Written { .. })]));
    let applied = r.applied();
    // Nothing is appended while the file is not yet due by the leader's clock.
    let mut out = Vec::new();
    r.timeout(at(500), &mut out);
    settle(&mut r, at(500), out);
    assert_eq!(
        r.applied(),
        applied,
        "no clock entry before the file is due"
    );
    let mut out = Vec::new();
    r.requests(at(500), [read(2, "f")], &mut out);
    assert!(matches!(
        settle(&mut r, at(500), out)[..],
        [(2, Reply::Contents { .. })]
    ));
    // The timer asks to be woken when the file falls due.
    let mut out = Vec::new();
    r.timeout(at(1_009), &mut out);
    assert_eq!(last_timer(&out), Some(Millis(1_010)));
    settle(&mut r, at(1_009), out);
    let mut out = Vec::new();
    r.timeout(at(1_010), &mut out);
    settle(&mut r, at(1_010), out);
    assert_eq!(
        r.applied().0,
        applied.0 + 1,
        "one clock entry once the file is due"
    );
    assert_eq!(r.store().file_count(), 0, "the clock entry purged the file");
    let mut out = Vec::new();
    r.requests(at(1_010), [read(3, "f")], &mut out);
    assert_eq!(settle(&mut r, at(1_010), out), [(3, Reply::FileNotFound)]);
    // With nothing left to expire, the leader stays quiet.
    let mut out = Vec::new();
    r.timeout(at(5_000), &mut out);
    settle(&mut r, at(5_000), out);
    assert_eq!(r.applied().0, applied.0 + 1);
}

#[test]
fn a_leader_appends_no_clock_entry_for_a_file_it_has_not_applied() {
    let mut r = replica(1, 3);
    let mut out = Vec::new();
    r.start(at(0), &mut out);
    settle(&mut r, at(0), out);
    // Win an election with 2's vote, and let 2 acknowledge everything.
    let mut out = Vec::new();
    r.timeout(at(5_000), &mut out);
    let grant_and_ack = |to: NodeId, msg: &raft::Message| match msg {
        raft::Message::VoteRequest(req) if to == NodeId(2) => Some((
            NodeId(2),
            raft::Message::VoteResponse(raft::VoteResponse {
                term: req.term,
                granted: true,
                prevote: req.prevote,
            }),
        )),
        _ => None,
    };
    settle_with(&mut r, at(5_000), out, grant_and_ack);
    assert_eq!(r.core().role(), raft::Role::Leader);
    let before = r.core().last_index();
    // The write never commits (nobody acknowledges), so the store holds no file to expire
    // and the leader appends nothing more, however long it waits.
    let mut out = Vec::new();
    r.requests(at(5_000), [write_expiring(1, "f", 1)], &mut out);
    settle(&mut r, at(5_000), out);
    let mut out = Vec::new();
    r.timeout(at(7_000), &mut out);
    settle(&mut r, at(7_000), out);
    assert_eq!(r.core().last_index().0, before.0 + 1, "only the write");
}

#[test]
fn a_read_is_judged_at_the_replicated_clock_not_the_serving_members() {
    let mut r = single_leader();
    let mut out = Vec::new();
    r.requests(at(10), [write_expiring(1, "f", 2)], &mut out);
    settle(&mut r, at(10), out);
    // The serving member's clock jumps 1 h ahead: the read is still judged by the log.
    let mut out = Vec::new();
    r.requests(skewed(20, 3_600_000), [read(2, "f")], &mut out);
    let replies = settle(&mut r, skewed(20, 3_600_000), out);
    assert!(
        matches!(replies[..], [(2, Reply::Contents { .. })]),
        "{replies:?}"
    );
    // A clock entry from that clock does expire the file, and a clock running behind later
    // never brings it back.
    let mut out = Vec::new();
    r.timeout(skewed(200, 3_600_000), &mut out);
    settle(&mut r, skewed(200, 3_600_000), out);
    let mut out = Vec::new();
    r.requests(skewed(300, -3_600_000), [read(3, "f")], &mut out);
    assert_eq!(
        settle(&mut r, skewed(300, -3_600_000), out),
        [(3, Reply::FileNotFound)]
    );
}

/// A backup asked for right behind a write, before that write is durable, holds it: it waits
/// at the barrier a read waits at (the log's last index on arrival, and the ReadIndex), and
/// then hands out the store as of the index applied.
#[test]
fn a_backup_holds_the_writes_that_reached_the_leader_before_it() {
    let mut r = single_leader();
    let mut out = Vec::new();
    r.requests(at(1), [write(1, "a", "v1")], &mut out);
    r.admin(at(1), 2, fs::Admin::Snapshot, &mut out);
    assert!(
        !out.iter().any(|o| matches!(o, Output::Backup { .. })),
        "no backup before the write it follows is applied"
    );
    let mut backups = Vec::new();
    while !out.is_empty() {
        let mut next = Vec::new();
        for output in out {
            match output {
                Output::LogStore { entries } => {
                    if let Some(last) = entries.last() {
                        r.log_stored(at(1), last.index, last.term, &mut next);
                    }
                }
                Output::SaveState(state) => r.state_saved(at(1), state, &mut next),
                Output::Backup {
                    token,
                    index,
                    store,
                    membership,
                    ..
                } => backups.push((token, index, store, membership)),
                _ => {}
            }
        }
        out = next;
    }
    let [(token, index, store, membership)] = &backups[..] else {
        panic!("one backup expected, got {}", backups.len());
    };
    assert_eq!(*token, 2);
    assert_eq!(*index, r.applied());
    assert_eq!(store.digest(), r.store().digest());
    assert!(matches!(store.read(&name("a")), Reply::Contents { .. }));
    assert_eq!(membership.members().len(), 1);
}

/// A follower does not answer a backup itself: it redirects to the leader, like a write.
#[test]
fn a_follower_redirects_a_backup() {
    let mut r = replica(2, 3);
    let mut out = Vec::new();
    r.start(at(0), &mut out);
    out.clear();
    r.admin(at(1), 9, fs::Admin::Snapshot, &mut out);
    let replies: Vec<_> = out
        .iter()
        .filter_map(|o| match o {
            Output::Reply { token, reply } => Some((*token, reply.clone())),
            _ => None,
        })
        .collect();
    // No leader known yet: ERR_INTERNAL (the client retries); never a backup of its own.
    assert!(
        matches!(&replies[..], [(9, Reply::Internal | Reply::Redirect(_))]),
        "{replies:?}"
    );
    assert!(!out.iter().any(|o| matches!(o, Output::Backup { .. })));
}

/// `members local` is answered at once by any member, whatever it knows of a leader: with no
/// leader (where `members` gets ERR_INTERNAL), as a follower (where `members` is redirected)
/// and as the leader; the leader flag names the member it believes leads, if any.
#[test]
fn members_local_is_answered_by_any_member_at_once() {
    fn answers(r: &mut Replica<u32>, ms: u64, admin: fs::Admin) -> Vec<(u32, Reply)> {
        let mut out = Vec::new();
        r.admin(at(ms), 5, admin, &mut out);
        settle(r, at(ms), out)
    }
    fn leaders(replies: &[(u32, Reply)]) -> Vec<u64> {
        match replies {
            [(5, Reply::Members(members))] => {
                assert_eq!(
                    members.iter().map(|m| m.id).collect::<Vec<_>>(),
                    [1, 2, 3][..members.len()]
                );
                members.iter().filter(|m| m.leader).map(|m| m.id).collect()
            }
            other => panic!("not a MEMBERS reply: {other:?}"),
        }
    }

    // No leader known: `members` cannot be served, `members local` is, listing no leader.
    let mut r = replica(1, 3);
    let mut out = Vec::new();
    r.start(at(0), &mut out);
    let replies = answers(&mut r, 1, fs::Admin::Members);
    assert_eq!(replies, vec![(5, Reply::Internal)]);
    let replies = answers(&mut r, 1, fs::Admin::MembersLocal);
    assert_eq!(leaders(&replies), Vec::<u64>::new());
    assert_eq!(r.in_flight(), 0, "nothing parked");

    // A follower: `members` is redirected, `members local` names the leader it follows.
    let mut r = follower_of_2();
    let replies = answers(&mut r, 2, fs::Admin::Members);
    assert_eq!(replies, vec![(5, Reply::Redirect("127.0.0.1:8082".into()))]);
    let replies = answers(&mut r, 2, fs::Admin::MembersLocal);
    assert_eq!(leaders(&replies), [2]);

    // The leader: both give the same list.
    let mut r = single_leader();
    let local = answers(&mut r, 1, fs::Admin::MembersLocal);
    assert_eq!(leaders(&local), [1]);
    assert_eq!(answers(&mut r, 1, fs::Admin::Members), local);
}

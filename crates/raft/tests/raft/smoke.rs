//! The simplest end-to-end paths, guarding against a core that cannot elect or commit at all,
//! and pinning down when followers learn the commit index (at once with `broadcast_commit`, with
//! the next heartbeat without it).

use bytes::Bytes;
use raft::testing::Cluster;
use raft::{LogIndex, Role};

use crate::common::HEARTBEAT_MS;

#[test]
fn three_nodes_elect_and_commit() {
    for broadcast_commit in [false, true] {
        let mut c = Cluster::with_config(3, 1, |cfg| cfg.broadcast_commit = broadcast_commit);
        let leader = c.run_until_leader(10_000).expect("a leader");
        c.deliver_all();
        let sent_before = c.in_flight().count();
        assert_eq!(sent_before, 0);
        c.clear_transcript();
        c.propose(
            leader,
            vec![Bytes::from_static(b"a"), Bytes::from_static(b"b")],
        );
        c.deliver_all();
        let sends = c
            .transcript()
            .iter()
            .filter(|(_, a)| matches!(a, raft::Action::Send { .. }))
            .count();
        // 2 AppendEntries and 2 answers; eager broadcast adds an empty round to carry the commit.
        assert_eq!(sends, if broadcast_commit { 8 } else { 4 });
        assert_eq!(c.node(leader).unwrap().commit_index(), LogIndex(3));
        assert_eq!(c.node(leader).unwrap().role(), Role::Leader);
        if !broadcast_commit {
            c.advance(HEARTBEAT_MS);
        }
        for id in c.ids() {
            assert_eq!(c.node(id).unwrap().commit_index(), LogIndex(3), "node {id}");
            assert_eq!(c.applied(id).len(), 3);
        }
    }
}

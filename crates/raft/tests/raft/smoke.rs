//! The simplest end-to-end paths, guarding against a core that cannot elect or commit at all.

use bytes::Bytes;
use raft::testing::Cluster;
use raft::{LogIndex, Role};

#[test]
fn three_nodes_elect_and_commit() {
    let mut c = Cluster::new(3, 1);
    let leader = c.run_until_leader(10_000).expect("a leader");
    c.propose(
        leader,
        vec![Bytes::from_static(b"a"), Bytes::from_static(b"b")],
    );
    c.deliver_all();
    for id in c.ids() {
        assert_eq!(c.node(id).unwrap().commit_index(), LogIndex(3), "node {id}");
        assert_eq!(c.applied(id).len(), 3);
    }
    assert_eq!(c.node(leader).unwrap().role(), Role::Leader);
}

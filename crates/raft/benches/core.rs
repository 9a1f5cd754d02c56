//! Throughput of the Raft core alone: a 5-node cluster wired in memory (FIFO delivery, storage
//! acknowledged at once, no encoding, no I/O), committed entries per second at the leader for
//! proposal batches of 1, 16 and 256 commands of 64 bytes.
//!
//! Run: `cargo bench -p raft --bench core` (add `-- --measurement-time 3` for a quick look).
//! Guards against performance regressions in the step function, replication and commit paths.

use std::collections::VecDeque;
use std::hint::black_box;
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use raft::{Action, Config, Event, LogIndex, Millis, Node, NodeId, ProposalId, Recovered, Role};

/// Nodes in the benchmarked cluster.
const NODES: u64 = 5;
/// Bytes per command: a small file-store write.
const COMMAND_BYTES: usize = 64;
/// Entries committed before the cluster is rebuilt (outside the timing), so that the in-memory
/// logs (never compacted yet) stay small.
const ENTRIES_PER_CLUSTER: u64 = 100_000;

/// The cluster and its perfect, instant world.
struct World {
    nodes: Vec<Node>,
    /// (receiver index, event), delivered in order.
    queue: VecDeque<(usize, Event)>,
    now: Millis,
    leader: usize,
    committed_at_leader: u64,
    next_proposal: u64,
    actions: Vec<Action>,
}

impl World {
    fn new() -> World {
        let voters: Vec<NodeId> = (1..=NODES).map(NodeId).collect();
        let nodes = voters
            .iter()
            .map(|&id| {
                let node = Node::new(
                    Config::new(id),
                    raft::Membership::voters_only(voters.iter().copied()),
                    Recovered::default(),
                    LogIndex(0),
                    id.0,
                );
                node.unwrap_or_else(|e| panic!("node {id}: {e}"))
            })
            .collect();
        let mut world = World {
            nodes,
            queue: VecDeque::new(),
            now: Millis(0),
            leader: 0,
            committed_at_leader: 0,
            next_proposal: 0,
            actions: Vec::new(),
        };
        for k in 0..world.nodes.len() {
            world.step(k, Event::Timeout);
        }
        // Node 1 times out first (well past any deadline) and wins.
        world.now = Millis(10_000);
        world.step(0, Event::Timeout);
        world.run();
        assert_eq!(world.nodes[0].role(), Role::Leader);
        world
    }

    fn step(&mut self, k: usize, event: Event) {
        let mut actions = std::mem::take(&mut self.actions);
        self.nodes[k].step_into(self.now, event, &mut actions);
        for action in actions.drain(..) {
            match action {
                Action::Send { to, msg } => {
                    let from = self.nodes[k].id();
                    self.queue
                        .push_back((to.0 as usize - 1, Event::Message { from, msg }));
                }
                Action::LogStore { entries } => {
                    if let Some(last) = entries.last() {
                        let (index, term) = (last.index, last.term);
                        self.queue.push_back((k, Event::LogStored { index, term }));
                    }
                }
                Action::SaveState(hs) => self.queue.push_back((k, Event::StateSaved(hs))),
                Action::Commit(entry) if k == self.leader => {
                    self.committed_at_leader += 1;
                    black_box(entry);
                }
                _ => {}
            }
        }
        self.actions = actions;
    }

    fn run(&mut self) {
        while let Some((k, event)) = self.queue.pop_front() {
            self.step(k, event);
        }
    }

    fn propose(&mut self, batch: usize, command: &Bytes) {
        let cmds = (0..batch)
            .map(|_| {
                self.next_proposal += 1;
                (ProposalId(self.next_proposal), command.clone())
            })
            .collect();
        self.step(self.leader, Event::Append(cmds));
        self.run();
    }
}

fn commit_throughput(c: &mut Criterion) {
    let command = Bytes::from(vec![7u8; COMMAND_BYTES]);
    let mut group = c.benchmark_group("commit_5_nodes");
    for batch in [1u64, 16, 256] {
        group.throughput(Throughput::Elements(batch));
        group.bench_function(BenchmarkId::from_parameter(batch), |b| {
            b.iter_custom(|iters| {
                let mut world = World::new();
                let mut elapsed = Duration::ZERO;
                for _ in 0..iters {
                    if world.committed_at_leader >= ENTRIES_PER_CLUSTER {
                        world = World::new();
                    }
                    let before = world.committed_at_leader;
                    let start = Instant::now();
                    world.propose(batch as usize, &command);
                    elapsed += start.elapsed();
                    assert_eq!(world.committed_at_leader, before + batch, "all committed");
                }
                elapsed
            });
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = commit_throughput
}
criterion_main!(benches);

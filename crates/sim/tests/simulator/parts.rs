//! Guards against a simulated world that cheats: the disk must make writes durable in order and
//! lose only what a crash may lose, the network must cut exactly the links a partition names,
//! alarms must never fire early, wall clocks must stay within the bound the checker is told of,
//! and the event queue must keep scheduling order at equal times.

use bytes::Bytes;
use raft::{Entry, HardState, LogIndex, Millis, NodeId, Payload, Term};
use sim::chain::Chain;
use sim::clock::{NodeClock, SimTime, WALL_EPOCH_MS, WALL_SKEW_MS_MAX};
use sim::disk::{Completion, CrashOrder, Disk, DiskOp};
use sim::event_queue::EventQueue;
use sim::network::{LinkFaults, Network, Partition};
use sim::random::SimRng;

fn entry(index: u64, term: u64) -> Entry {
    Entry {
        index: LogIndex(index),
        term: Term(term),
        payload: Payload::Command(Bytes::from(format!("e{index}"))),
    }
}

fn state(term: u64) -> HardState {
    HardState {
        term: Term(term),
        vote: Some(NodeId(1)),
        commit: LogIndex(0),
    }
}

#[test]
fn disk_completes_in_order_and_shares_one_ack_per_group() {
    let mut disk = Disk::new(false);
    let t0 = SimTime(0);
    disk.submit(DiskOp::SaveState(state(1)), t0, 100);
    disk.submit(DiskOp::Store(vec![entry(1, 1)]), t0, 50);
    disk.submit(DiskOp::Store(vec![entry(2, 1), entry(3, 1)]), t0, 10);
    let mut out = Vec::new();
    disk.complete_due(SimTime(99), &mut out);
    assert!(
        out.is_empty(),
        "nothing completes before the first write: {out:?}"
    );
    disk.complete_due(SimTime(100), &mut out);
    assert_eq!(
        out,
        vec![
            Completion::StateSaved(state(1)),
            Completion::LogStored {
                index: LogIndex(3),
                term: Term(1)
            }
        ],
        "later writes wait for earlier ones, and one ack covers the group"
    );
    assert_eq!(disk.image().entries.len(), 3);
    assert_eq!(disk.image().hard_state, state(1));
}

#[test]
fn crash_keeps_what_was_durable_and_only_a_prefix_of_the_rest() {
    let mut disk = Disk::new(false);
    disk.submit(DiskOp::Store(vec![entry(1, 1)]), SimTime(0), 10);
    disk.complete_due(SimTime(10), &mut Vec::new());
    disk.submit(DiskOp::SaveState(state(2)), SimTime(20), 10);
    disk.submit(DiskOp::Truncate(LogIndex(1)), SimTime(20), 10);
    disk.submit(
        DiskOp::Store(vec![entry(1, 2), entry(2, 2)]),
        SimTime(20),
        10,
    );
    assert_eq!(disk.records_in_flight(), 4);
    let mut survivor = disk.clone();
    let loss = survivor.crash(3);
    assert_eq!((loss.survived, loss.lost), (3, 1));
    let r = survivor.image();
    assert_eq!(r.hard_state, state(2));
    assert_eq!(
        r.entries,
        vec![entry(1, 2)],
        "the truncation and one entry made it"
    );
    let loss = disk.crash(0);
    assert_eq!((loss.survived, loss.lost), (0, 4));
    assert_eq!(disk.image().entries, vec![entry(1, 1)]);
    assert_eq!(disk.image().hard_state, HardState::default());
}

#[test]
fn wal_batch_order_keeps_the_batch_hard_state_before_its_log() {
    let fresh = || {
        let mut disk = Disk::new(false).with_crash_order(CrashOrder::WalBatch);
        // One batch: a new term, then entries of that term; a second batch behind it.
        disk.submit(DiskOp::SaveState(state(2)), SimTime(0), 10);
        disk.submit(
            DiskOp::Store(vec![entry(1, 2), entry(2, 2)]),
            SimTime(0),
            10,
        );
        disk.submit(DiskOp::Store(vec![entry(3, 2)]), SimTime(1), 50);
        disk
    };
    assert_eq!(
        fresh().records_in_flight(),
        3,
        "two log records and the hard state"
    );
    let mut nothing = fresh();
    let loss = nothing.crash(0);
    assert_eq!((loss.survived, loss.lost), (0, 4));
    assert_eq!(nothing.image().hard_state, HardState::default());
    assert!(nothing.image().entries.is_empty());
    let mut state_and_one = fresh();
    let loss = state_and_one.crash(2);
    assert_eq!((loss.survived, loss.lost), (2, 2));
    let r = state_and_one.image();
    assert_eq!(r.hard_state, state(2), "the hard state went first");
    assert_eq!(r.entries, vec![entry(1, 2)]);
    let mut all = fresh();
    all.crash(3);
    assert_eq!(all.image().hard_state, state(2));
    assert_eq!(all.image().entries.len(), 2, "the next batch never started");
}

#[test]
fn a_stalled_disk_completes_nothing_until_the_stall_ends() {
    let mut disk = Disk::new(false);
    disk.submit(DiskOp::Store(vec![entry(1, 1)]), SimTime(0), 10);
    disk.stall(SimTime(1_000));
    disk.submit(DiskOp::Store(vec![entry(2, 1)]), SimTime(5), 10);
    let mut out = Vec::new();
    disk.complete_due(SimTime(999), &mut out);
    assert!(out.is_empty());
    assert_eq!(disk.next_due(), Some(SimTime(1_000)));
    disk.complete_due(SimTime(1_000), &mut out);
    assert_eq!(out.len(), 1);
}

#[test]
fn a_lying_disk_acknowledges_before_anything_is_durable() {
    let mut disk = Disk::new(true);
    let (_, early) = disk.submit(DiskOp::Store(vec![entry(1, 1)]), SimTime(0), 1_000);
    assert!(early.is_some(), "acknowledged at once");
    disk.crash(0);
    assert!(disk.image().entries.is_empty(), "and lost in a crash");
}

#[test]
fn durable_chain_follows_the_durable_log() {
    let mut disk = Disk::new(false);
    disk.submit(DiskOp::Store(vec![entry(1, 1), entry(2, 1)]), SimTime(0), 1);
    disk.complete_due(SimTime(1), &mut Vec::new());
    let mut chain = Chain::new();
    chain.push(&entry(1, 1));
    chain.push(&entry(2, 1));
    assert_eq!(disk.chain(), &chain);
    let mut other = Chain::new();
    other.push(&entry(1, 1));
    other.push(&entry(2, 2));
    assert_ne!(other.link_at(2), chain.link_at(2));
    assert_eq!(other.link_at(1), chain.link_at(1));
}

#[test]
fn partitions_cut_exactly_the_links_they_name() {
    let ids: Vec<NodeId> = (1..=5).map(NodeId).collect();
    let mut net = Network::new(ids.clone(), LinkFaults::reliable(1, 2));
    let n = NodeId;
    net.partition(&Partition::OneWay {
        deaf: vec![n(1)],
        loud: vec![n(2), n(3)],
    });
    assert!(net.is_blocked(n(1), n(2)));
    assert!(!net.is_blocked(n(2), n(1)), "n1 still hears n2");
    assert!(!net.is_blocked(n(1), n(4)));
    net.partition(&Partition::Bridge {
        bridge: n(3),
        left: vec![n(1), n(2)],
        right: vec![n(4), n(5)],
    });
    assert!(net.is_blocked(n(1), n(4)) && net.is_blocked(n(5), n(2)));
    assert!(!net.is_blocked(n(3), n(1)) && !net.is_blocked(n(4), n(3)));
    assert!(!net.is_blocked(n(1), n(2)));
    net.partition(&Partition::Isolated(n(2)));
    for other in [1, 3, 4, 5] {
        assert!(net.is_blocked(n(2), n(other)) && net.is_blocked(n(other), n(2)));
    }
    assert!(!net.is_blocked(n(1), n(3)));
    net.heal();
    assert!(!net.is_partitioned());
}

#[test]
fn a_reliable_network_loses_nothing() {
    let net = Network::new(vec![NodeId(1)], LinkFaults::reliable(5, 9));
    let mut rng = SimRng::new(1);
    for _ in 0..1_000 {
        let fate = net.fate(&mut rng);
        assert!(matches!(fate.first, Some(5..=9)));
        assert_eq!(fate.duplicate, None);
    }
}

#[test]
fn alarms_never_fire_early_even_on_a_drifting_clock() {
    let mut rng = SimRng::new(9);
    for drift in [-500, -1, 0, 7, 500] {
        let clock = NodeClock::new(drift, rng.between(0, 1 << 40), 0);
        for _ in 0..1_000 {
            let now = SimTime(rng.between(0, 1 << 36));
            let at = Millis(clock.now(now).0 + rng.between(0, 5_000));
            let when = clock.when(at, now);
            assert!(when >= now);
            assert!(clock.now(when) >= at, "drift {drift}: fired before {at}");
            if when > now {
                assert!(clock.now(SimTime(when.0 - 1)) < at, "not later than needed");
            }
        }
    }
}

#[test]
fn wall_clocks_stay_within_their_deviation_bound_across_restarts() {
    let mut rng = SimRng::new(11);
    let skew_max = WALL_SKEW_MS_MAX as i64;
    for (drift, skew) in [
        (-500, -skew_max),
        (500, skew_max),
        (-500, skew_max),
        (0, 0),
        (3, -7),
    ] {
        let mut clock = NodeClock::new(drift, rng.between(0, 1 << 40), skew);
        // A run of up to 100 s of simulated time.
        let until = SimTime(rng.between(1, 100_000_000));
        let bound = clock.wall_deviation_ms(until);
        let (mut most_ahead, mut most_behind) = (i128::MIN, i128::MIN);
        for _ in 0..2_000 {
            let t = SimTime(rng.between(0, until.0));
            // A restart changes the monotonic clock, never the wall clock.
            let restarted = clock.restarted(rng.between(0, 1 << 40));
            assert_eq!(restarted.wall_ms(t), clock.wall_ms(t));
            clock = restarted;
            // True time, exact: the epoch plus simulated time.
            let off_us = i128::from(clock.wall_ms(t)) * 1_000
                - (i128::from(WALL_EPOCH_MS) * 1_000 + i128::from(t.0));
            most_ahead = most_ahead.max(off_us);
            most_behind = most_behind.max(-off_us);
            assert!(
                off_us <= i128::from(bound.ahead_ms) * 1_000,
                "{drift} {skew}: {off_us}"
            );
            assert!(
                -off_us <= i128::from(bound.behind_ms) * 1_000,
                "{drift} {skew}: {off_us}"
            );
        }
        // And the bound is not loose: the extremes come within a few ms of it.
        let gained = (drift.unsigned_abs() * until.0).div_ceil(1_000_000_000) as i128;
        assert!(i128::from(bound.ahead_ms) * 1_000 <= most_ahead.max(0) + (gained + 3) * 1_000);
        assert!(i128::from(bound.behind_ms) * 1_000 <= most_behind.max(0) + (gained + 3) * 1_000);
    }
}

#[test]
fn equal_times_come_out_in_scheduling_order() {
    let mut q = EventQueue::new();
    q.push(SimTime(5), "b");
    q.push(SimTime(1), "a");
    q.push(SimTime(5), "c");
    q.push(SimTime(5), "d");
    let order: Vec<&str> = std::iter::from_fn(|| q.pop().map(|(_, e)| e)).collect();
    assert_eq!(order, vec!["a", "b", "c", "d"]);
}

#[test]
fn one_seed_one_stream() {
    let mut a = SimRng::new(42);
    let mut b = SimRng::new(42);
    let xs: Vec<u64> = (0..100).map(|_| a.next_u64()).collect();
    let ys: Vec<u64> = (0..100).map(|_| b.next_u64()).collect();
    assert_eq!(xs, ys);
    let mut c = SimRng::new(43);
    assert_ne!(xs[0], c.next_u64());
}

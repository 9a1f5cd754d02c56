//! Guards group commit: concurrent appenders all complete durably while sharing fsyncs, a batch
//! queued behind an fsync costs exactly one more, completions run only after durability, and an
//! I/O error poisons the writer for good (fail-stop) instead of letting it carry on.

// Tests may unwrap (house rule); helpers outside #[test] need saying so.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread;

use wal::{Durable, Entry, Error, FaultHook, HardState, Log, Op, Options, Writer, hard_state};

fn entry(index: u64) -> Entry {
    Entry::new(index, 1, format!("command {index}").into_bytes())
}

fn open(dir: &std::path::Path, hook: Option<Arc<FaultHook>>) -> Log {
    let options = Options {
        segment_bytes: 64 << 10,
        fault_hook: hook,
        ..Options::default()
    };
    Log::open(dir, options).unwrap().0
}

/// A writer on a fresh log whose disk `FaultHook` the test drives; the directory lives as long
/// as the returned guard.
fn hooked_writer() -> (tempfile::TempDir, Arc<FaultHook>, Writer) {
    let dir = tempfile::tempdir().unwrap();
    let hook = Arc::new(FaultHook::new());
    let writer = Writer::spawn(open(dir.path(), Some(hook.clone()))).unwrap();
    (dir, hook, writer)
}

/// A completion that hands its result to a channel.
fn completion() -> (wal::Completion, mpsc::Receiver<Result<Durable, Error>>) {
    let (sender, receiver) = mpsc::channel();
    let done: wal::Completion = Box::new(move |result| sender.send(result).unwrap());
    (done, receiver)
}

#[test]
fn concurrent_appenders_complete_durably_and_share_fsyncs() {
    const THREADS: u64 = 8;
    const PER_THREAD: u64 = 40;
    let dir = tempfile::tempdir().unwrap();
    let writer = Arc::new(Writer::spawn(open(dir.path(), None)).unwrap());
    let before = writer.fsyncs();
    // Indexes are assigned and submitted under a small lock, so they reach the writer in order;
    // the wait for durability happens outside it.
    let next = Arc::new(Mutex::new(1u64));
    let handles: Vec<_> = (0..THREADS)
        .map(|_| {
            let writer = Arc::clone(&writer);
            let next = Arc::clone(&next);
            thread::spawn(move || {
                for _ in 0..PER_THREAD {
                    let (done, receiver) = completion();
                    let index = {
                        let mut next = next.lock().unwrap();
                        let index = *next;
                        writer.submit(Op::Append(vec![entry(index)]), done).unwrap();
                        *next += 1;
                        index
                    };
                    let durable = receiver.recv().unwrap().unwrap();
                    assert!(durable.last_index >= index);
                }
            })
        })
        .collect();
    for handle in handles {
        handle.join().unwrap();
    }
    let appends = THREADS * PER_THREAD;
    let fsyncs = writer.fsyncs() - before;
    eprintln!("{fsyncs} fsyncs for {appends} appends");
    assert!(
        fsyncs <= appends / 2,
        "{fsyncs} fsyncs for {appends} appends: too little batching"
    );
    let writer = Arc::into_inner(writer).unwrap();
    let log = writer.shutdown().unwrap();
    assert_eq!(log.last_index(), appends);
    drop(log);
    let log = open(dir.path(), None);
    let expected: Vec<Entry> = (1..=appends).map(entry).collect();
    assert_eq!(log.read(1, appends + 1).unwrap(), expected);
}

#[test]
fn appends_queued_behind_an_fsync_share_the_next_one() {
    let (_dir, hook, writer) = hooked_writer();
    let before = writer.fsyncs();

    hook.hold_syncs();
    let (done, first) = completion();
    writer.submit(Op::Append(vec![entry(1)]), done).unwrap();
    hook.wait_for_held_syncs(1); // the writer is inside the first batch's fsync
    let rest: Vec<_> = (2..=100)
        .map(|i| {
            let (done, receiver) = completion();
            writer.submit(Op::Append(vec![entry(i)]), done).unwrap();
            receiver
        })
        .collect();
    assert!(first.try_recv().is_err(), "completed before its fsync");
    hook.release_syncs();

    assert_eq!(first.recv().unwrap().unwrap().last_index, 1);
    for (i, receiver) in (2..).zip(rest) {
        let durable = receiver.recv().unwrap().unwrap();
        assert_eq!(
            durable.last_index, 100,
            "entry {i} completed in the second batch"
        );
    }
    // First batch: the segment's fdatasync and the directory fsync for the new segment.
    // Second batch, 99 appends: one fdatasync.
    assert_eq!(writer.fsyncs() - before, 3);
    writer.shutdown().unwrap();
}

#[test]
fn an_io_error_poisons_the_writer() {
    let (dir, hook, writer) = hooked_writer();
    writer.append_wait(vec![entry(1)]).unwrap();

    hook.fail_syncs(true);
    assert!(matches!(
        writer.append_wait(vec![entry(2)]),
        Err(Error::Io { .. })
    ));
    hook.fail_syncs(false);
    // Fail-stop: the disk works again, but nothing after the error is accepted.
    assert!(matches!(
        writer.append_wait(vec![entry(3)]),
        Err(Error::Io { .. })
    ));
    assert!(matches!(
        writer.submit_wait(Op::Sync),
        Err(Error::Io { .. })
    ));
    assert!(matches!(
        writer.submit_wait(Op::SaveHardState(HardState::default())),
        Err(Error::Io { .. })
    ));
    let mut log = writer.shutdown().unwrap();
    assert!(matches!(log.sync(), Err(Error::Poisoned(_))));
    drop(log);
    // Entry 2 was written before its fsync failed, so its fate is unknown; nothing after the
    // error was written at all.
    let log = open(dir.path(), None);
    assert!(log.last_index() == 1 || log.last_index() == 2);
    assert_eq!(hard_state::load(dir.path()).unwrap(), None);
}

#[test]
fn a_refused_operation_fails_alone() {
    let dir = tempfile::tempdir().unwrap();
    let writer = Writer::spawn(open(dir.path(), None)).unwrap();
    writer.append_wait(vec![entry(1)]).unwrap();
    assert!(matches!(
        writer.append_wait(vec![entry(5)]),
        Err(Error::NotContiguous {
            expected: 2,
            found: 5
        })
    ));
    let durable = writer.append_wait(vec![entry(2)]).unwrap();
    assert_eq!(durable.last_index, 2);
    writer.shutdown().unwrap();
}

#[test]
fn every_operation_kind_applies_in_order_and_persists() {
    let (dir, hook, writer) = hooked_writer();
    let state = HardState {
        term: 2,
        vote: 3,
        commit: 4,
    };
    // Hold the first fsync so that everything after it lands in one batch.
    hook.hold_syncs();
    let (done, first) = completion();
    writer
        .submit(Op::Append((1..=10).map(entry).collect()), done)
        .unwrap();
    hook.wait_for_held_syncs(1);
    let ops = vec![
        Op::TruncateSuffix(8),
        Op::Append(vec![Entry::new(8, 2, &b"new"[..])]),
        Op::DiscardPrefix(3),
        Op::SaveHardState(HardState::default()),
        Op::SaveHardState(state),
        Op::Sync,
    ];
    let receivers: Vec<_> = ops
        .into_iter()
        .map(|op| {
            let (done, receiver) = completion();
            writer.submit(op, done).unwrap();
            receiver
        })
        .collect();
    hook.release_syncs();
    first.recv().unwrap().unwrap();
    for receiver in receivers {
        let durable = receiver.recv().unwrap().unwrap();
        assert_eq!(
            durable,
            Durable {
                first_index: 4,
                last_index: 8
            }
        );
    }
    writer.shutdown().unwrap();
    let log = open(dir.path(), None);
    assert_eq!((log.first_index(), log.last_index()), (4, 8));
    assert_eq!(log.term(8), Some(2));
    assert_eq!(hard_state::load(dir.path()).unwrap(), Some(state));
}

#[test]
fn shutdown_returns_the_log_and_counters_stay_readable() {
    let dir = tempfile::tempdir().unwrap();
    let writer = Writer::spawn(open(dir.path(), None)).unwrap();
    let counters = writer.counters();
    writer.append_wait(vec![entry(1)]).unwrap();
    let log = writer.shutdown().unwrap();
    assert_eq!(log.last_index(), 1);
    assert!(counters.bytes_written() > 0);
}

#[test]
fn the_queue_is_bounded() {
    let (_dir, hook, writer) = hooked_writer();
    hook.hold_syncs();
    let (done, first) = completion();
    writer.submit(Op::Append(vec![entry(1)]), done).unwrap();
    hook.wait_for_held_syncs(1); // the writer holds the first op; the queue is empty
    let queued: Vec<_> = (0..wal::WRITER_QUEUE_OPS_MAX)
        .map(|_| {
            let (done, receiver) = completion();
            writer.try_submit(Op::Sync, done).unwrap();
            receiver
        })
        .collect();
    let (done, _) = completion();
    let rejected = writer.try_submit(Op::Sync, done).unwrap_err();
    assert!(matches!(rejected.error, Error::QueueFull));
    assert!(matches!(rejected.op, Op::Sync));
    hook.release_syncs();
    first.recv().unwrap().unwrap();
    for receiver in queued {
        receiver.recv().unwrap().unwrap();
    }
    writer.shutdown().unwrap();
}

/// Raft saves a new term before it writes entries of that term. A crash at any fsync of a batch
/// holding both must never leave the entries on disk without the term: recovery in the Raft core
/// refuses such a disk as corrupt.
#[test]
fn a_crash_never_leaves_entries_of_a_term_the_hard_state_lacks() {
    for crash_at in 0..12 {
        let dir = tempfile::tempdir().unwrap();
        let hook = Arc::new(FaultHook::new());
        hook.fail_syncs_after(crash_at);
        let writer = Writer::spawn(open(dir.path(), Some(hook))).unwrap();
        let (hs_done, hs_rx) = completion();
        let (log_done, log_rx) = completion();
        writer
            .submit(
                Op::SaveHardState(HardState {
                    term: 7,
                    vote: 2,
                    commit: 0,
                }),
                hs_done,
            )
            .unwrap();
        writer
            .submit(Op::Append(vec![Entry::new(1, 7, b"x".to_vec())]), log_done)
            .unwrap();
        let survived = hs_rx.recv().unwrap().is_ok() && log_rx.recv().unwrap().is_ok();
        let _ = writer.shutdown();

        let (log, _) = Log::open(dir.path(), Options::default()).unwrap();
        let saved_term = hard_state::load(dir.path())
            .unwrap()
            .map_or(0, |hs| hs.term);
        if log.last_index() >= 1 {
            assert!(
                saved_term >= 7,
                "crash at fsync {crash_at}: an entry of term 7 is on disk but the hard state says {saved_term}"
            );
        }
        if survived {
            assert_eq!((log.last_index(), saved_term), (1, 7));
        }
    }
}

/// A batch committed on the caller's thread is the thread's batch: applied in order, durable
/// with one fdatasync, and its completions run (here, before `run_inline` returns).
#[test]
fn an_inline_batch_is_durable_with_one_sync_before_it_returns() {
    let dir = tempfile::tempdir().unwrap();
    let writer = Writer::spawn(open(dir.path(), None)).unwrap();
    writer.append_wait(vec![entry(1)]).unwrap();
    assert!(writer.is_idle());
    let before = writer.fsyncs();
    let (receivers, batch): (Vec<_>, Vec<_>) = (2..=10)
        .map(|i| {
            let (done, receiver) = completion();
            (receiver, (Op::Append(vec![entry(i)]), done))
        })
        .unzip();
    assert!(writer.run_inline(batch).is_ok());
    for receiver in receivers {
        assert_eq!(receiver.try_recv().unwrap().unwrap().last_index, 10);
    }
    assert_eq!(writer.fsyncs() - before, 1);
    // The thread carries on from where the inline batch left the log.
    writer.append_wait(vec![entry(11)]).unwrap();
    drop(writer.shutdown().unwrap());
    let log = open(dir.path(), None);
    assert_eq!(
        log.read(1, 12).unwrap(),
        (1..=11).map(entry).collect::<Vec<_>>()
    );
}

/// While the thread still has work, an inline batch would overtake it: it is handed back
/// untouched, and taken once the thread is done.
#[test]
fn an_inline_batch_never_overtakes_work_queued_on_the_thread() {
    let (_dir, hook, writer) = hooked_writer();
    hook.hold_syncs();
    let (done, first) = completion();
    writer.submit(Op::Append(vec![entry(1)]), done).unwrap();
    hook.wait_for_held_syncs(1);
    assert!(!writer.is_idle());
    let (done, second) = completion();
    let batch = writer
        .run_inline(vec![(Op::Append(vec![entry(2)]), done)])
        .expect_err("taken inline while the thread was busy");
    assert_eq!(batch.len(), 1);
    hook.release_syncs();
    assert_eq!(first.recv().unwrap().unwrap().last_index, 1);
    // The completion ran on the thread before the count of queued ops drops.
    while !writer.is_idle() {
        thread::yield_now();
    }
    assert!(writer.run_inline(batch).is_ok());
    assert_eq!(second.try_recv().unwrap().unwrap().last_index, 2);
    writer.shutdown().unwrap();
}

/// An I/O error inline poisons the writer for the thread too (fail-stop either way).
#[test]
fn an_inline_io_error_poisons_the_thread_too() {
    let (_dir, hook, writer) = hooked_writer();
    hook.fail_syncs(true);
    let (done, failed) = completion();
    assert!(
        writer
            .run_inline(vec![(Op::Append(vec![entry(1)]), done)])
            .is_ok()
    );
    assert!(matches!(failed.try_recv().unwrap(), Err(Error::Io { .. })));
    hook.fail_syncs(false);
    assert!(matches!(
        writer.append_wait(vec![entry(2)]),
        Err(Error::Io { .. })
    ));
}

/// A batch stuck on the disk shows, to a reader on another thread, as running for longer and
/// longer; between batches it shows as none.
#[test]
fn a_stuck_batch_shows_how_long_it_has_run() {
    let (_dir, hook, writer) = hooked_writer();
    let counters = writer.counters();
    assert_eq!(counters.batch_running_for(), None);
    hook.hold_syncs();
    let (done, first) = completion();
    writer.submit(Op::Append(vec![entry(1)]), done).unwrap();
    hook.wait_for_held_syncs(1);
    let early = counters.batch_running_for().expect("a batch is running");
    // A reading later than the first: a monotonic clock, so it can only grow.
    let start = std::time::Instant::now();
    while start.elapsed() < std::time::Duration::from_millis(2) {
        thread::yield_now();
    }
    let late = counters.batch_running_for().expect("still running");
    assert!(late > early, "{late:?} after {early:?}");
    hook.release_syncs();
    assert_eq!(first.recv().unwrap().unwrap().last_index, 1);
    assert_eq!(counters.batch_running_for(), None);
    writer.shutdown().unwrap();
}

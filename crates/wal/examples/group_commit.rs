//! Group-commit throughput of the [`wal::Writer`]: `THREADS` appenders each submit one small
//! entry and wait for it to be durable, for a fixed time, in several rounds. Prints appends per
//! second and appends per fsync for each round and the median. Run with
//! `cargo run --release -p wal --example group_commit [seconds per round] [rounds]`.

// A benchmark may unwrap like a test: a failure here is a broken setup, not input.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::thread;
use std::time::{Duration, Instant};

use wal::{Entry, Log, Op, Options, Writer};

/// Concurrent appenders: about what a busy leader has in flight from its clients.
const THREADS: usize = 16;

/// Data per entry: a small client write.
const ENTRY_BYTES: usize = 128;

fn main() {
    let mut args = std::env::args().skip(1);
    let seconds: u64 = args.next().map_or(3, |s| s.parse().unwrap());
    let rounds: usize = args.next().map_or(5, |s| s.parse().unwrap());
    let mut rates = Vec::new();
    for round in 1..=rounds {
        let (rate, per_fsync) = one_round(Duration::from_secs(seconds));
        println!("round {round}: {rate:.0} appends/s, {per_fsync:.1} appends per fsync");
        rates.push(rate);
    }
    rates.sort_by(f64::total_cmp);
    println!("median: {:.0} appends/s", rates[rates.len() / 2]);
}

/// Runs the appenders for `length` on a fresh log; returns appends/s and appends per fsync.
fn one_round(length: Duration) -> (f64, f64) {
    let dir = tempfile::tempdir().unwrap();
    let (log, _) = Log::open(dir.path(), Options::default()).unwrap();
    let writer = Arc::new(Writer::spawn(log).unwrap());
    let next = Arc::new(Mutex::new(1u64));
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    let fsyncs_before = writer.fsyncs();
    let start = Instant::now();
    let threads: Vec<_> = (0..THREADS)
        .map(|_| {
            let (writer, next, stop, done) = (
                Arc::clone(&writer),
                Arc::clone(&next),
                Arc::clone(&stop),
                Arc::clone(&done),
            );
            thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let (sender, receiver) = mpsc::sync_channel(1);
                    {
                        // Indexes are assigned and submitted in order under the lock.
                        let mut next = next.lock().unwrap();
                        let entry = Entry::new(*next, 1, vec![7; ENTRY_BYTES]);
                        writer
                            .submit(
                                Op::Append(vec![entry]),
                                Box::new(move |r| {
                                    let _ = sender.send(r);
                                }),
                            )
                            .unwrap();
                        *next += 1;
                    }
                    receiver.recv().unwrap().unwrap();
                    done.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    thread::sleep(length);
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        t.join().unwrap();
    }
    let elapsed = start.elapsed().as_secs_f64();
    let appends = done.load(Ordering::Relaxed) as f64;
    let fsyncs = (writer.fsyncs() - fsyncs_before).max(1) as f64;
    Arc::into_inner(writer).unwrap().shutdown().unwrap();
    (appends / elapsed, appends / fsyncs)
}

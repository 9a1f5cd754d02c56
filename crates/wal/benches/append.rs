//! Appends per second with one fsync per append versus one fsync per batch of 64 (what group
//! commit buys). Run with `cargo bench -p wal`.

// Benches may unwrap like tests: a failure here is a broken setup, not input.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use wal::{Entry, Log, Options};

/// Entries per batch in the batched case: about what a busy leader gathers per fsync.
const BATCH: u64 = 64;

/// Data per entry: a small client write.
const ENTRY_BYTES: usize = 128;

fn appends(c: &mut Criterion) {
    let mut group = c.benchmark_group("append");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(3));

    let dir = tempfile::tempdir().unwrap();
    let (mut log, _) = Log::open(dir.path(), Options::default()).unwrap();
    let mut next = 1;
    group.throughput(Throughput::Elements(1));
    group.bench_function("fsync_each", |b| {
        b.iter(|| {
            log.append(&[Entry::new(next, 1, vec![7; ENTRY_BYTES])])
                .unwrap();
            log.sync().unwrap();
            next += 1;
        })
    });

    group.throughput(Throughput::Elements(BATCH));
    group.bench_function("fsync_per_64", |b| {
        b.iter(|| {
            let batch: Vec<Entry> = (next..next + BATCH)
                .map(|i| Entry::new(i, 1, vec![7; ENTRY_BYTES]))
                .collect();
            log.append(&batch).unwrap();
            log.sync().unwrap();
            next += BATCH;
        })
    });
    group.finish();
}

criterion_group!(benches, appends);
criterion_main!(benches);

//! Guards expiry judged by the replicated clock with real processes whose clocks disagree:
//! three members at -3 s, 0 and +3 s (libfaketime), files written with 1-2 s lifetimes, the
//! leader killed and restarted every couple of seconds, readers reading all along. Once a
//! reader has seen a file gone, it must never see that file again at a version it had seen
//! before (an expired version read again is what judging expiry by each leader's own clock
//! produced). Needs `faketime` (Debian package faketime; `.ci/run` installs it).
#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests fail loudly on purpose.

mod common;

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use client::{Client, ClientError};
use common::cluster::TestCluster;
use common::name;
use fs::{Command, Reply};

/// Files written so far are named `x0`, `x1`, ...; readers look at the newest this many.
const WINDOW: u64 = 40;

/// How long the faults and the traffic run.
const RUN: Duration = Duration::from_secs(12);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn skewed_clocks_and_leader_kills_never_bring_an_expired_version_back() {
    let mut cluster = TestCluster::start_skewed(3, "", &[-3, 0, 3]).await;
    cluster.leader().await;
    let stop = Arc::new(AtomicBool::new(false));
    // How many files have been written (acknowledged or not).
    let written = Arc::new(AtomicU64::new(0));

    // Each file is written once, with a 1-2 s lifetime: a file seen gone must stay gone.
    let writer = {
        let (addrs, stop, written) = (cluster.client_addrs(), stop.clone(), written.clone());
        tokio::spawn(async move {
            let mut client = Client::new(addrs).with_deadline(Duration::from_secs(30));
            let mut acked = 0u64;
            while !stop.load(Ordering::SeqCst) {
                let k = written.load(Ordering::SeqCst);
                let command = Command::Write {
                    name: name(&format!("x{k}")),
                    content: bytes::Bytes::from(format!("x{k}")),
                    exptime_s: 1 + k % 2,
                };
                match client.call(&command).await {
                    Ok(Reply::Written { .. }) => acked += 1,
                    Ok(other) => panic!("write got {other:?}"),
                    Err(ClientError::Unknown(_)) => {}
                    Err(err) => panic!("write failed: {err}"),
                }
                written.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            acked
        })
    };

    let readers: Vec<_> = (0..2)
        .map(|_| {
            let (addrs, stop, written) = (cluster.client_addrs(), stop.clone(), written.clone());
            tokio::spawn(async move {
                let mut client = Client::new(addrs).with_deadline(Duration::from_secs(30));
                let mut alive: HashSet<u64> = HashSet::new();
                let mut gone: HashSet<u64> = HashSet::new();
                while !stop.load(Ordering::SeqCst) {
                    let newest = written.load(Ordering::SeqCst);
                    for k in newest.saturating_sub(WINDOW)..newest {
                        let read = Command::Read {
                            name: name(&format!("x{k}")),
                        };
                        match client.call(&read).await {
                            Ok(Reply::Contents { .. }) => {
                                assert!(
                                    !gone.contains(&k),
                                    "x{k} was read again after it was seen expired"
                                );
                                alive.insert(k);
                            }
                            // Only a file seen alive counts as seen expired: a write may not
                            // have reached the store yet.
                            Ok(Reply::FileNotFound) => {
                                if alive.contains(&k) {
                                    gone.insert(k);
                                }
                            }
                            Ok(other) => panic!("read got {other:?}"),
                            Err(err) => panic!("read failed: {err}"),
                        }
                    }
                    // Yield between sweeps (the first ones find nothing to read).
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                gone.len()
            })
        })
        .collect();

    // The nemesis: kill -9 the leader every two seconds, and bring it back half a second on.
    let started = tokio::time::Instant::now();
    let mut kills = 0;
    while started.elapsed() < RUN {
        tokio::time::sleep(Duration::from_secs(2)).await;
        if readers.iter().any(|r| r.is_finished()) || writer.is_finished() {
            break; // A violation (or a failure) ended one: report it below.
        }
        let leader = cluster.leader().await;
        cluster.kill9(leader);
        kills += 1;
        tokio::time::sleep(Duration::from_millis(500)).await;
        cluster.restart(leader);
    }
    stop.store(true, Ordering::SeqCst);
    let acked = writer.await.unwrap();
    let mut expiries = 0;
    for r in readers {
        expiries += r.await.unwrap();
    }
    eprintln!("{acked} writes, {expiries} expiries observed, {kills} leader kills");
    assert!(acked > 10, "the writer made progress");
    assert!(expiries > 0, "some files were seen to expire");
}

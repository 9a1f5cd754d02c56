//! Guards the replicated cluster's promises with real `raftfs` processes on loopback: election
//! and redirects, failover after SIGKILL of the leader without losing acknowledged writes,
//! progress with a minority down and none without a majority, catch-up of a lagging member,
//! full-cluster restart, and a cut-off member that neither acknowledges writes nor disturbs the
//! leader when it returns (prevote).
#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests fail loudly on purpose.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use client::{Client, ClientError, Connection};
use common::cluster::{TestCluster, content_for};
use common::name;
use fs::{Command, Reply};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

fn write_cmd(file: &str, content: Bytes) -> Command {
    Command::Write {
        name: name(file),
        content,
        exptime_s: 0,
    }
}

/// Writes `count` files `{prefix}-{i}`, each holding its name, through `addr`.
async fn bulk_write(addr: &str, prefix: &str, count: usize) -> BTreeMap<String, u64> {
    common::bulk_write(addr, prefix, count, |f| content_for(f, 0)).await
}

/// Reads every file written by `bulk_write` back through the cluster.
async fn check_all(cluster: &TestCluster, acked: &BTreeMap<String, u64>) {
    common::check_all(cluster.client_addrs(), acked, |f| content_for(f, 0)).await;
}

/// Waits until every member in `members` has converged; returns the first one's status.
async fn wait_converged(cluster: &TestCluster, members: &[usize]) -> serde_json::Value {
    cluster.wait_converged(members).await.remove(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_members_elect_a_leader_and_followers_redirect() {
    let cluster = TestCluster::start(5).await;
    let leader = cluster.leader().await;
    let leader_addr = cluster.client_addr(leader);
    assert!(leader_addr.starts_with("127.0.0.1:"));

    let mut s = TcpStream::connect(&leader_addr).await.unwrap();
    let session: [(&[u8], &[u8]); 5] = [
        (b"read foo\r\n", b"ERR_FILE_NOT_FOUND\r\n"),
        (b"write foo 6\r\nabcdef\r\n", b"OK 1\r\n"),
        (b"read foo\r\n", b"CONTENTS 1 6 0\r\nabcdef\r\n"),
        (b"cas foo 1 7 0\r\nghijklm\r\n", b"OK 2\r\n"),
        (b"read foo\r\n", b"CONTENTS 2 7 0\r\nghijklm\r\n"),
    ];
    for (send, expect) in session {
        s.write_all(send).await.unwrap();
        let mut got = vec![0u8; expect.len()];
        s.read_exact(&mut got).await.unwrap();
        assert_eq!(
            String::from_utf8_lossy(&got),
            String::from_utf8_lossy(expect)
        );
    }

    let expected = format!("ERR_REDIRECT {leader_addr}\r\n");
    for follower in cluster.ids().into_iter().filter(|&i| i != leader) {
        let mut s = TcpStream::connect(cluster.client_addr(follower))
            .await
            .unwrap();
        for cmd in [
            &b"read foo\r\n"[..],
            b"write foo 1\r\nx\r\n",
            b"delete foo\r\n",
        ] {
            s.write_all(cmd).await.unwrap();
            let mut got = vec![0u8; expected.len()];
            s.read_exact(&mut got).await.unwrap();
            assert_eq!(
                String::from_utf8_lossy(&got),
                expected,
                "follower {follower}"
            );
        }
    }
}

/// A writer that records which of its writes were acknowledged, until told to stop.
fn spawn_writer(
    addrs: Vec<String>,
    id: usize,
    stop: Arc<AtomicBool>,
    acks: Arc<AtomicUsize>,
) -> tokio::task::JoinHandle<BTreeMap<String, u64>> {
    tokio::spawn(async move {
        let mut client = Client::new(addrs);
        let mut acked = BTreeMap::new();
        let mut seq = 0;
        while !stop.load(Ordering::SeqCst) {
            let file = format!("w{id}-{seq}");
            seq += 1;
            match client.call(&write_cmd(&file, content_for(&file, 0))).await {
                Ok(Reply::Written { version }) => {
                    acked.insert(file, version);
                    acks.fetch_add(1, Ordering::SeqCst);
                }
                Ok(other) => panic!("unexpected {other:?}"),
                Err(ClientError::Unknown(_)) => {} // May or may not have happened.
                Err(err) => panic!("writer {id}: {err}"),
            }
        }
        acked
    })
}

async fn wait_for_acks(acks: &AtomicUsize, at_least: usize) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while acks.load(Ordering::SeqCst) < at_least {
        assert!(
            Instant::now() < deadline,
            "writes stalled at {}",
            acks.load(Ordering::SeqCst)
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leader_kill9_fails_over_without_losing_acknowledged_writes() {
    let mut cluster = TestCluster::start(5).await;
    let old_leader = cluster.leader().await;
    let stop = Arc::new(AtomicBool::new(false));
    let acks = Arc::new(AtomicUsize::new(0));
    let writers: Vec<_> = (0..8)
        .map(|id| spawn_writer(cluster.client_addrs(), id, stop.clone(), acks.clone()))
        .collect();
    wait_for_acks(&acks, 300).await;

    cluster.kill9(old_leader);
    let killed_at = Instant::now();
    // Time until a write sent after the kill is acknowledged by the new leader.
    let mut probe = Client::new(cluster.client_addrs());
    let failover = loop {
        if let Ok(Reply::Written { .. }) = probe
            .call(&write_cmd("probe", Bytes::from_static(b"p")))
            .await
        {
            break killed_at.elapsed();
        }
    };
    let new_leader = cluster.leader().await;
    assert_ne!(new_leader, old_leader);
    eprintln!("failover: a new leader acknowledged a write {failover:?} after the kill");
    // Generous: the figure itself is measured by `raftfs bench failover`.
    assert!(
        failover < Duration::from_secs(10),
        "failover took {failover:?}"
    );

    let before = acks.load(Ordering::SeqCst);
    wait_for_acks(&acks, before + 300).await;
    stop.store(true, Ordering::SeqCst);
    let mut acked = BTreeMap::new();
    for writer in writers {
        acked.extend(writer.await.unwrap());
    }
    check_all(&cluster, &acked).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn minority_down_writes_continue_majority_down_blocks_until_one_returns() {
    let mut cluster = TestCluster::start(5).await;
    let leader = cluster.leader().await;
    let followers: Vec<usize> = cluster.ids().into_iter().filter(|&i| i != leader).collect();
    cluster.kill9(followers[0]);
    cluster.kill9(followers[1]);
    let mut client = Client::new(cluster.client_addrs());
    for i in 0..20 {
        let file = format!("two-down-{i}");
        assert!(matches!(
            client
                .call(&write_cmd(&file, content_for(&file, 0)))
                .await
                .unwrap(),
            Reply::Written { .. }
        ));
    }

    cluster.kill9(followers[2]);
    // Keep trying writes: none sent from now on may be acknowledged while only 2 of 5 run.
    let stop = Arc::new(AtomicBool::new(false));
    let acks = Arc::new(AtomicUsize::new(0));
    let writer = spawn_writer(cluster.client_addrs(), 99, stop.clone(), acks.clone());
    // Nothing to await: the point is that time passes (several election timeouts) and no write
    // is acknowledged.
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(
        acks.load(Ordering::SeqCst),
        0,
        "a write was acknowledged without a majority"
    );

    cluster.restart(followers[2]);
    wait_for_acks(&acks, 20).await;
    stop.store(true, Ordering::SeqCst);
    let acked = writer.await.unwrap();
    check_all(&cluster, &acked).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn member_down_for_ten_thousand_writes_catches_up() {
    let mut cluster = TestCluster::start(5).await;
    let leader = cluster.leader().await;
    let lagging = cluster.ids().into_iter().find(|&i| i != leader).unwrap();
    cluster.kill9(lagging);
    let acked = bulk_write(&cluster.client_addr(leader), "lag", 10_000).await;
    assert_eq!(acked.len(), 10_000);
    cluster.restart(lagging);
    let status = wait_converged(&cluster, &cluster.ids()).await;
    assert!(status["files"].as_u64().unwrap() >= 10_000);
    check_all(&cluster, &acked).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopping_every_member_and_restarting_keeps_every_acknowledged_write() {
    let mut cluster = TestCluster::start(5).await;
    let leader = cluster.leader().await;
    let acked = bulk_write(&cluster.client_addr(leader), "all", 500).await;
    for i in cluster.ids() {
        cluster.kill9(i);
    }
    for i in cluster.ids() {
        cluster.restart(i);
    }
    cluster.leader().await;
    check_all(&cluster, &acked).await;
    wait_converged(&cluster, &cluster.ids()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cut_off_member_never_acknowledges_and_rejoins_without_disturbing_the_leader() {
    let cluster = TestCluster::start(5).await;
    let leader = cluster.leader().await;
    // Let the cluster settle, then note the leader's term.
    bulk_write(&cluster.client_addr(leader), "pre", 10).await;
    let term = cluster.status(leader).await["term"].as_u64().unwrap();
    let cut = cluster.ids().into_iter().find(|&i| i != leader).unwrap();
    cluster.isolate(cut);

    // Writes sent straight to the cut-off member for several election timeouts: never OK.
    let mut direct = Connection::connect(&cluster.client_addr(cut))
        .await
        .unwrap();
    let until = Instant::now() + Duration::from_secs(4);
    let mut attempts = 0;
    while Instant::now() < until {
        let file = format!("cut-{attempts}");
        match direct
            .call(&write_cmd(&file, content_for(&file, 0)))
            .await
            .unwrap()
        {
            Reply::Redirect(_) | Reply::Internal => {}
            other => panic!("a cut-off member answered {other:?}"),
        }
        attempts += 1;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The majority side kept working meanwhile.
    let during = bulk_write(&cluster.client_addr(leader), "during", 50).await;

    cluster.heal_all();
    let status = wait_converged(&cluster, &cluster.ids()).await;
    let leader_status = cluster.status(leader).await;
    assert_eq!(leader_status["role"], "leader", "the leader kept its role");
    assert_eq!(
        leader_status["term"].as_u64().unwrap(),
        term,
        "no term change (prevote)"
    );
    assert!(status["files"].as_u64().unwrap() >= 60);
    check_all(&cluster, &during).await;
}

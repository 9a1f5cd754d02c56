//! Guards membership changes and leadership transfer with real `raftfs` processes on loopback:
//! a 6th member joins a loaded 5-member cluster and an old member leaves without losing an
//! acknowledged write; the configuration survives restarts (taken from the log, not the
//! cluster file); a leader stopped with SIGTERM hands over before it exits, so a rolling
//! restart of every member under load loses nothing; the admin commands' errors are clear.
#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests fail loudly on purpose.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use client::{Client, ClientError};
use common::cluster::TestCluster;
use common::name;
use fs::{Command, Reply};
use raftfs::admin::{AdminCommand, AdminError, Members, execute};
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// A writer that keeps writing distinct files through the cluster until stopped; returns
/// what was acknowledged (file -> version) and the longest wait for one acknowledgement.
fn writer(
    addrs: Vec<String>,
    stop: Arc<AtomicBool>,
    tag: usize,
) -> JoinHandle<(BTreeMap<String, u64>, Duration)> {
    tokio::spawn(async move {
        let mut client = Client::new(addrs).with_deadline(Duration::from_secs(30));
        let mut acked = BTreeMap::new();
        let mut longest = Duration::ZERO;
        let mut k = 0u64;
        while !stop.load(Ordering::SeqCst) {
            let file = format!("w{tag}-{k}");
            k += 1;
            let started = Instant::now();
            let command = Command::Write {
                name: name(&file),
                content: bytes::Bytes::from(file.clone()),
                exptime_s: 0,
            };
            match client.call(&command).await {
                Ok(Reply::Written { version }) => {
                    acked.insert(file, version);
                }
                Ok(other) => panic!("write got {other:?}"),
                // The member it was talking to went away mid-write: the outcome is unknown,
                // and the file is not counted either way.
                Err(ClientError::Unknown(_)) => {}
                Err(err) => panic!("write failed: {err}"),
            }
            longest = longest.max(started.elapsed());
        }
        (acked, longest)
    })
}

/// Reads every acknowledged file back through `addrs`.
async fn check_acked(addrs: Vec<String>, acked: &BTreeMap<String, u64>) {
    let mut client = Client::new(addrs);
    for (file, version) in acked {
        let reply = client
            .call(&Command::Read { name: name(file) })
            .await
            .unwrap();
        assert_eq!(
            reply,
            Reply::Contents {
                version: *version,
                exptime_s: 0,
                content: bytes::Bytes::from(file.clone()),
            },
            "acknowledged write of {file}"
        );
    }
}

fn target(cluster: &TestCluster) -> Members {
    Members {
        members: cluster.client_addrs(),
        ca: None,
    }
}

/// The voters and learners member `i` reports.
async fn configuration(cluster: &TestCluster, i: usize) -> (Vec<u64>, Vec<u64>) {
    let status = cluster.status(i).await;
    let ids = |key: &str| {
        status[key]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap())
            .collect::<Vec<_>>()
    };
    (ids("voters"), ids("learners"))
}

/// Waits until member `i` reports `voters` (and no learner).
async fn wait_voters(cluster: &TestCluster, i: usize, voters: &[u64]) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (v, l) = configuration(cluster, i).await;
        if v == voters && l.is_empty() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "member {i} has voters {v:?} learners {l:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until member `i` has applied what the leader had committed when the wait began (under
/// load the members never stand still at one index).
async fn wait_caught_up(cluster: &TestCluster, i: usize) {
    let leader = cluster.leader().await;
    let target = cluster.status(leader).await["commit_index"]
        .as_u64()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let applied = cluster.status(i).await["applied_index"].as_u64().unwrap();
        if applied >= target {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "member {i} applied {applied} of {target}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sixth_member_joins_a_loaded_cluster_and_an_old_one_leaves() {
    let mut cluster = TestCluster::start(5).await;
    let first_leader = cluster.leader().await;
    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..4)
        .map(|t| writer(cluster.client_addrs(), stop.clone(), t))
        .collect();

    // Member 6 starts with `serve --join`, then is added: as a learner, promoted once caught up.
    let (peer, client, http) = cluster.start_joiner(6).await;
    let added = execute(AdminCommand::AddMember {
        target: target(&cluster),
        id: 6,
        peer,
        client,
        http: Some(http),
        learner: false,
    })
    .await
    .unwrap();
    assert!(added.contains("as a voter"), "{added}");
    for i in 1..=6 {
        wait_voters(&cluster, i, &[1, 2, 3, 4, 5, 6]).await;
    }

    // An old member leaves: the first leader, so leadership moves too.
    let removed = execute(AdminCommand::RemoveMember {
        target: target(&cluster),
        id: first_leader as u64,
    })
    .await
    .unwrap();
    assert!(removed.contains("removed"), "{removed}");
    let rest: Vec<u64> = (1..=6).filter(|&i| i != first_leader as u64).collect();
    for &i in &rest {
        wait_voters(&cluster, i as usize, &rest).await;
    }
    cluster.kill9(first_leader);
    tokio::time::sleep(Duration::from_millis(500)).await; // let the writers go on a while

    stop.store(true, Ordering::SeqCst);
    let mut acked = BTreeMap::new();
    let mut longest = Duration::ZERO;
    for w in writers {
        let (a, l) = w.await.unwrap();
        acked.extend(a);
        longest = longest.max(l);
    }
    assert!(
        acked.len() > 100,
        "the writers made progress: {}",
        acked.len()
    );
    eprintln!(
        "{} writes acknowledged; longest wait for one: {longest:?}",
        acked.len()
    );
    let addrs: Vec<String> = rest
        .iter()
        .map(|&i| cluster.client_addr(i as usize))
        .collect();
    check_acked(addrs, &acked).await;
    let members: Vec<usize> = rest.iter().map(|&i| i as usize).collect();
    cluster.wait_converged(&members).await;

    // Restarted with the old cluster file (which lists 1-5), a member goes by its log: 6 is
    // a voter, the removed member is not.
    let again = rest[0] as usize;
    cluster.kill9(again);
    cluster.restart(again);
    wait_voters(&cluster, again, &rest).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rolling_restart_under_load_loses_nothing_and_leaders_hand_over_before_exiting() {
    let mut cluster = TestCluster::start(5).await;
    cluster.leader().await;
    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..4)
        .map(|t| writer(cluster.client_addrs(), stop.clone(), t))
        .collect();
    let mut handed_over = 0;
    for i in 1..=5 {
        let leader = cluster.leader().await;
        let term = cluster.status(leader).await["term"].as_u64().unwrap();
        cluster.terminate(i);
        if i == leader {
            // It exited only after another member took over, in the very next term: no
            // election timeout went by without a leader.
            let others: Vec<usize> = (1..=5).filter(|&j| j != i).collect();
            let mut new_leader = None;
            for &j in &others {
                let s = cluster.status(j).await;
                if s["role"] == "leader" {
                    new_leader = Some((j, s["term"].as_u64().unwrap()));
                }
            }
            let (j, new_term) = new_leader.expect("a member leads once the old leader exits");
            assert_eq!(new_term, term + 1, "member {j} took over by TimeoutNow");
            handed_over += 1;
        }
        cluster.restart(i);
        wait_caught_up(&cluster, i).await;
    }
    assert!(handed_over >= 1, "the leader was restarted at least once");
    stop.store(true, Ordering::SeqCst);
    let mut acked = BTreeMap::new();
    for w in writers {
        acked.extend(w.await.unwrap().0);
    }
    assert!(
        acked.len() > 100,
        "the writers made progress: {}",
        acked.len()
    );
    check_acked(cluster.client_addrs(), &acked).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_errors_are_clear() {
    let cluster = TestCluster::start(3).await;
    cluster.leader().await;
    let refused = |r: Result<String, AdminError>| match r {
        Err(AdminError::Refused(why)) => why,
        other => panic!("expected a refusal, got {other:?}"),
    };
    let why = refused(
        execute(AdminCommand::RemoveMember {
            target: target(&cluster),
            id: 9,
        })
        .await,
    );
    assert_eq!(why, "no member 9");
    let why = refused(
        execute(AdminCommand::Promote {
            target: target(&cluster),
            id: 2,
        })
        .await,
    );
    assert_eq!(why, "member 2 is already a voter");
    let why = refused(
        execute(AdminCommand::AddMember {
            target: target(&cluster),
            id: 2,
            peer: "127.0.0.1:1".into(),
            client: "127.0.0.1:2".into(),
            http: None,
            learner: true,
        })
        .await,
    );
    assert_eq!(why, "member 2 already exists");
    let listed = execute(AdminCommand::Members {
        target: target(&cluster),
        local: false,
    })
    .await
    .unwrap();
    assert_eq!(listed.lines().count(), 4, "{listed}");
    assert_eq!(listed.matches("leader").count(), 1, "{listed}");
}

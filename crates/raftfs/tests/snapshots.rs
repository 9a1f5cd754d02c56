//! Guards snapshots and compaction on real processes: a member down for a whole run catches up
//! by snapshot to an identical store, a member killed again and again in the middle of an
//! install still recovers and catches up, a restarted member starts from its snapshot and keeps
//! only the log after it, and a corrupted snapshot file is detected and never used.
#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests fail loudly on purpose.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use common::Server;
use common::cluster::TestCluster;

/// Small thresholds, so a test of a few thousand writes makes many snapshots.
const SETTINGS: &str = "snapshot_entries = 200\nsnapshot_trailing_entries = 20\n";

/// A content of `bytes` bytes that names its file.
fn content(file: &str, bytes: usize) -> Bytes {
    let mut c = format!("{file}:").into_bytes();
    c.resize(bytes, b'x');
    Bytes::from(c)
}

/// Writes `count` files `{prefix}-{i}` of `bytes` bytes through `addr`.
async fn bulk_write(addr: &str, prefix: &str, count: usize, bytes: usize) -> BTreeMap<String, u64> {
    common::bulk_write(addr, prefix, count, |f| content(f, bytes)).await
}

/// Reads every file written by `bulk_write` back through `addrs`.
async fn check_all(addrs: Vec<String>, acked: &BTreeMap<String, u64>, bytes: usize) {
    common::check_all(addrs, acked, |f| content(f, bytes)).await;
}

fn u(v: &serde_json::Value, key: &str) -> u64 {
    v[key].as_u64().unwrap_or_else(|| panic!("{key} in {v}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_down_for_the_whole_run_catches_up_by_snapshot_to_an_identical_store() {
    let mut cluster = TestCluster::start_with(3, SETTINGS).await;
    let leader = cluster.leader().await;
    let down = cluster.ids().into_iter().find(|&i| i != leader).unwrap();
    cluster.kill9(down);
    let acked = bulk_write(&cluster.client_addr(leader), "s", 2_000, 200).await;
    let before = cluster.status(leader).await;
    assert!(u(&before, "snapshot_index") >= 1_000, "{before}");
    assert!(
        u(&before, "first_index") > 800,
        "the log was compacted: {before}"
    );
    cluster.restart(down);
    let statuses = cluster.wait_converged(&cluster.ids()).await;
    let caught_up = &statuses[cluster.ids().iter().position(|&i| i == down).unwrap()];
    assert!(
        u(caught_up, "snapshots_installed") >= 1,
        "caught up by snapshot: {caught_up}"
    );
    let leader_now = cluster.leader().await;
    assert!(u(&cluster.status(leader_now).await, "snapshots_sent") >= 1);
    check_all(cluster.client_addrs(), &acked, 200).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_killed_in_the_middle_of_installs_recovers_and_catches_up() {
    // 3,000 files of 1 KiB: a snapshot of about 3 MiB, a dozen chunks.
    let mut cluster = TestCluster::start_with(3, SETTINGS).await;
    let leader = cluster.leader().await;
    let down = cluster.ids().into_iter().find(|&i| i != leader).unwrap();
    cluster.kill9(down);
    let acked = bulk_write(&cluster.client_addr(leader), "k", 3_000, 1_024).await;
    // Kill it at several points after it starts: before, during and after its install.
    for delay_ms in [0, 30, 80, 150, 300, 600] {
        cluster.restart(down);
        tokio::time::sleep(Duration::from_millis(delay_ms)).await;
        cluster.kill9(down);
    }
    cluster.restart(down);
    let statuses = cluster.wait_converged(&cluster.ids()).await;
    let caught_up = &statuses[cluster.ids().iter().position(|&i| i == down).unwrap()];
    assert!(u(caught_up, "snapshot_index") >= 2_800, "{caught_up}");
    check_all(cluster.client_addrs(), &acked, 1_024).await;
}

#[tokio::test]
async fn a_restarted_server_starts_from_its_snapshot_and_keeps_only_the_log_after_it() {
    let dir = tempfile::tempdir().unwrap();
    let http = common::free_port();
    let args = [
        "--snapshot-entries",
        "100",
        "--snapshot-trailing-entries",
        "10",
        "--http",
        &http,
    ];
    let mut server = Server::start_with(dir.path(), &args);
    let acked = bulk_write(&server.addr, "r", 1_050, 100).await;
    // Snapshots are written off the node task, one at a time: wait until the newest covers
    // all but fewer than `--snapshot-entries` of the applied entries (then none is in flight).
    let before = common::status_when(&http, "no snapshot within 100 entries", |status| {
        u(status, "applied_index") < u(status, "snapshot_index") + 100
    })
    .await;
    assert!(u(&before, "snapshots_made") >= 2, "{before}");
    server.kill9();
    // Restarted with snapshots out of reach, so the replay and the new term's first entry
    // cannot start another snapshot before the checks below.
    let args = ["--snapshot-entries", "1000000", "--http", &http];
    let server = Server::start_with(dir.path(), &args);
    // Entries after the snapshot are applied once this term's first entry commits.
    let after = common::status_when(&http, "not caught up", |status| {
        u(status, "applied_index") == u(status, "last_index")
    })
    .await;
    // The store came from the snapshot; only the entries after it were replayed.
    assert_eq!(u(&after, "snapshot_index"), u(&before, "snapshot_index"));
    assert_eq!(u(&after, "first_index"), u(&after, "snapshot_index") + 1);
    assert_eq!(u(&after, "files"), 1_050);
    check_all(vec![server.addr.clone()], &acked, 100).await;
}

#[tokio::test]
async fn a_corrupted_snapshot_file_is_detected_and_not_used() {
    let dir = tempfile::tempdir().unwrap();
    let args = ["--snapshot-entries", "50"];
    let mut server = Server::start_with(dir.path(), &args);
    bulk_write(&server.addr, "c", 120, 64).await;
    server.terminate();
    let snap = std::fs::read_dir(dir.path().join("snapshots"))
        .unwrap()
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|e| e == "snap"))
        .expect("a snapshot was written");
    let mut bytes = std::fs::read(&snap).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x40;
    std::fs::write(&snap, bytes).unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_raftfs"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path())
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    assert!(
        !output.status.success(),
        "a corrupt snapshot must not start"
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    let file_name = snap.file_name().unwrap().to_string_lossy().into_owned();
    assert!(
        stderr.contains(&file_name),
        "the error names the file {file_name}: {stderr}"
    );
}

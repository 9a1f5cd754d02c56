//! Guards `raftfs status` against a wrong picture of the cluster: against 3 real member
//! processes its table and `--json` list every member, exactly one leader and all healthy
//! (exit 0); with a member killed, that member's row says unreachable and the exit status is 1;
//! and `--watch` keeps printing readings until it is stopped. With no leader (a majority
//! killed), a survivor's own view of the configuration (`members local`) still gives a row per
//! member: the survivor knowing no leader and unhealthy, the others unreachable (exit 1).
#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests fail loudly on purpose.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use common::cluster::TestCluster;
use serde_json::Value;

/// How many times a reading is taken again while the cluster settles (a busy machine may delay
/// a heartbeat past the election timeout for a moment): each try is a full `raftfs status`.
const TRIES: usize = 50;

/// Runs `raftfs status ARGS` and returns its output.
fn status(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_raftfs"))
        .arg("status")
        .args(args)
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .output()
        .expect("run raftfs status")
}

/// Runs `raftfs status ARGS` until `accept` takes its output (at most [`TRIES`] times).
fn status_until(args: &[&str], accept: impl Fn(&Output) -> bool) -> Output {
    let mut last = None;
    for _ in 0..TRIES {
        let out = status(args);
        if accept(&out) {
            return out;
        }
        last = Some(out);
        std::thread::sleep(Duration::from_millis(200));
    }
    let last = last.unwrap();
    panic!(
        "raftfs status never gave the expected reading; last: {:?}\n{}\n{}",
        last.status,
        String::from_utf8_lossy(&last.stdout),
        String::from_utf8_lossy(&last.stderr)
    );
}

/// The table's data rows, split into cells (the header dropped).
fn table_rows(out: &Output) -> Vec<Vec<String>> {
    let text = String::from_utf8_lossy(&out.stdout);
    let mut lines = text.lines();
    let header = lines.next().expect("a header line");
    assert!(header.starts_with("ID"), "{header}");
    lines
        .map(|l| l.split_whitespace().map(str::to_owned).collect())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_shows_every_member_and_who_is_down() {
    let mut cluster = TestCluster::start(3).await;
    let leader = cluster.leader().await;
    let members = cluster.client_addrs().join(",");
    let args = ["--members", members.as_str()];

    // The table: one row per member, one leader, all healthy, exit 0.
    let out = status_until(&args, |out| out.status.code() == Some(0));
    let rows = table_rows(&out);
    assert_eq!(rows.len(), 3, "{rows:?}");
    let ids: Vec<&str> = rows.iter().map(|r| r[0].as_str()).collect();
    assert_eq!(ids, ["1", "2", "3"]);
    assert_eq!(rows.iter().filter(|r| r[2] == "leader").count(), 1);
    let leader_row = rows.iter().find(|r| r[2] == "leader").unwrap();
    assert_eq!(leader_row[0], leader.to_string());
    assert_eq!(leader_row[1], cluster.client_addr(leader));
    assert!(rows.iter().all(|r| r.last().unwrap() == "yes"), "{rows:?}");
    assert!(
        rows.iter().all(|r| r[4] == leader.to_string()),
        "all know the leader"
    );

    // The same as JSON.
    let json_args = ["--members", members.as_str(), "--json"];
    let out = status_until(&json_args, |out| out.status.code() == Some(0));
    let parsed: Value = serde_json::from_slice(&out.stdout).unwrap();
    let objects = parsed.as_array().unwrap();
    assert_eq!(objects.len(), 3);
    assert_eq!(
        objects.iter().filter(|o| o["role"] == "leader").count(),
        1,
        "{parsed:#}"
    );
    for o in objects {
        assert_eq!(o["healthy"], true, "{o:#}");
        assert_eq!(o["reachable"], true);
        assert_eq!(o["leader"], leader as u64);
        assert!(o["lag"].as_u64().is_some());
        assert!(o["last_contact_ms"].as_u64().is_some());
        for field in [
            "term",
            "commit_index",
            "applied_index",
            "last_index",
            "snapshot_index",
        ] {
            assert!(o[field].as_u64().is_some(), "{field} in {o:#}");
        }
    }

    // The leader's /status reports each follower's progress; a follower, its last contact.
    let leader_status = cluster.status(leader).await;
    let followers = leader_status["followers"].as_array().unwrap();
    assert_eq!(followers.len(), 2, "{leader_status:#}");
    for f in followers {
        assert!(f["match_index"].as_u64().unwrap() >= 1, "{f:#}");
        assert!(f["last_ack_ms"].as_u64().is_some(), "{f:#}");
    }
    let follower = cluster.ids().into_iter().find(|&i| i != leader).unwrap();
    let follower_status = cluster.status(follower).await;
    assert!(follower_status["last_contact_ms"].as_u64().is_some());
    assert!(follower_status.get("followers").is_none());

    // --watch prints readings until stopped: read until the second header appears.
    let mut watch = Command::new(env!("CARGO_BIN_EXE_raftfs"))
        .args(["status", "--members", members.as_str(), "--watch", "0.2"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = watch.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut headers = 0;
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if line.starts_with("ID ") {
                headers += 1;
                if headers == 2 {
                    let _ = tx.send(());
                    return;
                }
            }
        }
    });
    let second = rx.recv_timeout(Duration::from_secs(60));
    let _ = watch.kill();
    let _ = watch.wait();
    assert!(second.is_ok(), "--watch printed a second reading");

    // A follower killed: its row says unreachable, the others stay healthy, exit 1.
    let down = cluster.ids().into_iter().find(|&i| i != leader).unwrap();
    cluster.kill9(down);
    let out = status_until(&args, |out| {
        out.status.code() == Some(1)
            && table_rows(out)
                .iter()
                .filter(|r| r[0] != down.to_string())
                .all(|r| r.last().unwrap() == "yes")
    });
    let rows = table_rows(&out);
    assert_eq!(rows.len(), 3, "the killed member still has a row");
    let row = rows.iter().find(|r| r[0] == down.to_string()).unwrap();
    assert_eq!(row[2], "unreachable", "{row:?}");
    assert_eq!(row.last().unwrap(), "no");
    let out = status(&json_args);
    assert_eq!(out.status.code(), Some(1));
    let parsed: Value = serde_json::from_slice(&out.stdout).unwrap();
    let gone = parsed
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["id"] == down as u64)
        .unwrap();
    assert_eq!(gone["reachable"], false);
    assert_eq!(gone["healthy"], false);

    // Nobody to ask: exit 2.
    let nobody = status(&["--members", "127.0.0.1:1"]);
    assert_eq!(nobody.status.code(), Some(2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_without_a_leader_shows_a_survivors_view() {
    let mut cluster = TestCluster::start(3).await;
    let leader = cluster.leader().await;
    // Kill the leader and one follower: the survivor can never win an election.
    let survivor = cluster.ids().into_iter().find(|&i| i != leader).unwrap();
    let dead: Vec<usize> = cluster
        .ids()
        .into_iter()
        .filter(|&i| i != survivor)
        .collect();
    for &i in &dead {
        cluster.kill9(i);
    }
    // Wait until the survivor's election timeout has passed and it knows no leader.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let status = cluster.status(survivor).await;
        if status["leader"].is_null() {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the survivor still names a leader: {status:#}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let at = cluster.client_addr(survivor);

    // The leader's `members` cannot be had; the survivor's own view gives every row.
    let out = status(&["--members", at.as_str()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!("the member at {at} sees it")),
        "{stderr}"
    );
    let rows = table_rows(&out);
    let ids: Vec<&str> = rows.iter().map(|r| r[0].as_str()).collect();
    assert_eq!(ids, ["1", "2", "3"], "{rows:?}");
    for row in &rows {
        assert_eq!(row.last().unwrap(), "no", "{row:?}");
        if row[0] == survivor.to_string() {
            assert_ne!(row[2], "unreachable", "{row:?}");
            assert_eq!(row[4], "-", "no leader: {row:?}");
        } else {
            assert_eq!(row[2], "unreachable", "{row:?}");
        }
    }

    // The same as JSON.
    let out = status(&["--members", at.as_str(), "--json"]);
    assert_eq!(out.status.code(), Some(1));
    let parsed: Value = serde_json::from_slice(&out.stdout).unwrap();
    let objects = parsed.as_array().unwrap();
    assert_eq!(objects.len(), 3, "{parsed:#}");
    for o in objects {
        let alive = o["id"] == survivor as u64;
        assert_eq!(o["reachable"], alive, "{o:#}");
        assert_eq!(o["healthy"], false, "{o:#}");
        assert!(o["leader"].is_null(), "{o:#}");
    }

    // `raftfs admin members --local` lists the survivor's view too.
    let admin = |extra: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_raftfs"))
            .args(["admin", "members", "--members", at.as_str()])
            .args(extra)
            .stdin(Stdio::null())
            .output()
            .expect("run raftfs admin members")
    };
    let out = admin(&["--local"]);
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    let listed: Vec<&str> = text
        .lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert_eq!(listed, ["1", "2", "3"], "{text}");
    assert!(!text.contains("leader"), "no member leads: {text}");
}

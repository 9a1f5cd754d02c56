//! Guards durability: a server killed with SIGKILL in the middle of a stream of writes loses no
//! acknowledged write on restart, and nothing that was never written appears; the same when
//! the kills land while snapshots are being written and the log compacted behind them.
#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests fail loudly on purpose.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;
use common::{Server, name};
use fs::{Command, Reply};
use tokio::sync::Notify;

/// Acknowledged writes to wait for before each kill, so the kill lands mid-stream.
const ACKS_BEFORE_KILL: usize = 1000;
/// Kill and restart this many times; every round's writes must survive every later crash.
const ROUNDS: usize = 3;
const CLIENTS: usize = 8;

struct ClientLog {
    /// Files whose write was acknowledged, with the version the server gave.
    acked: BTreeMap<String, u64>,
    /// The file whose write was in flight when the connection died (outcome unknown).
    in_flight: Option<String>,
    /// How many writes this client attempted.
    attempted: usize,
}

fn content_of(file: &str) -> Bytes {
    Bytes::from(format!("content of {file}"))
}

/// Runs 8 writers until `kill_after` writes are acknowledged, then SIGKILLs the server.
async fn write_until_killed(
    server: &mut Server,
    round: usize,
    kill_after: usize,
) -> Vec<ClientLog> {
    let acks = Arc::new(AtomicUsize::new(0));
    let enough = Arc::new(Notify::new());
    let mut tasks = Vec::new();
    for client in 0..CLIENTS {
        let mut conn = server.connect().await;
        let acks = acks.clone();
        let enough = enough.clone();
        tasks.push(tokio::spawn(async move {
            let mut log = ClientLog {
                acked: BTreeMap::new(),
                in_flight: None,
                attempted: 0,
            };
            loop {
                let file = format!("r{round}-c{client}-{}", log.attempted);
                log.attempted += 1;
                let cmd = Command::Write {
                    name: name(&file),
                    content: content_of(&file),
                    exptime_s: 0,
                };
                match conn.call(&cmd).await {
                    Ok(Reply::Written { version }) => {
                        log.acked.insert(file, version);
                        if acks.fetch_add(1, Ordering::SeqCst) + 1 == kill_after {
                            enough.notify_one();
                        }
                    }
                    Ok(other) => panic!("unexpected reply {other:?}"),
                    Err(_) => {
                        log.in_flight = Some(file);
                        return log;
                    }
                }
            }
        }));
    }
    enough.notified().await;
    server.kill9();
    let mut logs = Vec::new();
    for task in tasks {
        logs.push(task.await.unwrap());
    }
    logs
}

/// Checks every round so far after a restart: acknowledged writes are there with their
/// versions, in-flight ones are absent or exact, and files never written are absent.
async fn check_rounds(server: &Server, rounds: &[Vec<ClientLog>]) -> u64 {
    let mut conn = server.connect().await;
    let mut versions = BTreeSet::new();
    for (round, logs) in rounds.iter().enumerate() {
        for (client, log) in logs.iter().enumerate() {
            for (file, version) in &log.acked {
                assert_eq!(
                    conn.call(&Command::Read { name: name(file) })
                        .await
                        .unwrap(),
                    Reply::Contents {
                        version: *version,
                        exptime_s: 0,
                        content: content_of(file),
                    },
                    "acknowledged write of {file} survives"
                );
                assert!(versions.insert(*version), "versions are unique");
            }
            if let Some(file) = &log.in_flight {
                match conn
                    .call(&Command::Read { name: name(file) })
                    .await
                    .unwrap()
                {
                    Reply::FileNotFound => {}
                    Reply::Contents { content, .. } => assert_eq!(content, content_of(file)),
                    other => panic!("unexpected {other:?}"),
                }
            }
            for seq in log.attempted..log.attempted + 5 {
                let file = format!("r{round}-c{client}-{seq}");
                assert_eq!(
                    conn.call(&Command::Read { name: name(&file) })
                        .await
                        .unwrap(),
                    Reply::FileNotFound,
                    "{file} was never written"
                );
            }
        }
    }
    versions.last().copied().unwrap_or(0)
}

#[tokio::test]
async fn kill9_during_writes_loses_no_acknowledged_write() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(dir.path());
    let mut rounds = Vec::new();
    for round in 0..ROUNDS {
        rounds.push(write_until_killed(&mut server, round, ACKS_BEFORE_KILL).await);
        server.restart();
        check_rounds(&server, &rounds).await;
    }
    // The store still works after recovery, and versions keep growing.
    let highest = check_rounds(&server, &rounds).await;
    let mut conn = server.connect().await;
    match conn
        .call(&Command::Write {
            name: name("after"),
            content: Bytes::from_static(b"x"),
            exptime_s: 0,
        })
        .await
        .unwrap()
    {
        Reply::Written { version } => assert!(version > highest),
        other => panic!("unexpected {other:?}"),
    }
}

/// Snapshots every 37 entries (keeping 5 behind) make a snapshot write or a log compaction be
/// under way at almost any instant; kills after a varying number of acknowledgements land at
/// many points of it.
#[tokio::test]
async fn kill9_while_snapshots_are_written_loses_no_acknowledged_write() {
    let dir = tempfile::tempdir().unwrap();
    let settings = [
        "--snapshot-entries",
        "37",
        "--snapshot-trailing-entries",
        "5",
    ];
    let mut server = Server::start_with(dir.path(), &settings);
    let mut rounds = Vec::new();
    for (round, kill_after) in [150, 311, 89, 427, 203, 58].into_iter().enumerate() {
        rounds.push(write_until_killed(&mut server, round, kill_after).await);
        server.restart();
        check_rounds(&server, &rounds).await;
    }
    // A kill can land between a snapshot's rename and the removal of the older one. Start
    // once more with snapshots out of reach: start-up keeps only the newest, and it holds
    // every acknowledged write.
    server.kill9();
    let mut server = Server::start_with(dir.path(), &["--snapshot-entries", "1000000"]);
    check_rounds(&server, &rounds).await;
    server.kill9();
    let snapshots = std::fs::read_dir(dir.path().join("snapshots"))
        .unwrap()
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().ends_with(".snap"))
        .count();
    assert_eq!(snapshots, 1, "the newest snapshot is kept, and only it");
}

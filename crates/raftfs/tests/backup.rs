//! Guards backups and disaster recovery with real processes: a backup saved through a follower
//! holds every acknowledged write and restores into a new cluster with the same store; a
//! damaged backup is refused; the admin command's exit codes; and the documented procedure
//! after losing a majority for good (docs/backup.md) keeps every acknowledged write.
#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests fail loudly on purpose.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Output};
use std::time::Duration;

use bytes::Bytes;
use client::Client;
use common::{free_port, name, spawn_raftfs_serve};
use fs::{Command, Reply};

/// One member of a cluster these tests start themselves (plaintext peers: the backup path is
/// what is under test, not peer authentication).
struct Proc {
    id: u64,
    peer: String,
    client: String,
    http: String,
    data_dir: PathBuf,
    child: Option<Child>,
}

impl Proc {
    fn new(id: u64, dir: &Path, tag: &str) -> Proc {
        Proc {
            id,
            peer: free_port(),
            client: free_port(),
            http: free_port(),
            data_dir: dir.join(format!("{tag}-data-{id}")),
            child: None,
        }
    }

    fn serve(&mut self, config: &Path) {
        let args: Vec<std::ffi::OsString> = vec![
            "--config".into(),
            config.into(),
            "--id".into(),
            self.id.to_string().into(),
            "--data-dir".into(),
            self.data_dir.clone().into(),
        ];
        self.child = Some(spawn_raftfs_serve(&args).0);
    }

    /// `serve --join`: waits to be added by `admin add-member`.
    fn join(&mut self, cluster: &str) {
        let args: Vec<std::ffi::OsString> = vec![
            "--join".into(),
            cluster.into(),
            "--id".into(),
            self.id.to_string().into(),
            "--peer".into(),
            self.peer.clone().into(),
            "--client".into(),
            self.client.clone().into(),
            "--http".into(),
            self.http.clone().into(),
            "--insecure-peers".into(),
            "--data-dir".into(),
            self.data_dir.clone().into(),
        ];
        self.child = Some(spawn_raftfs_serve(&args).0);
    }

    fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM and wait: a member stopped on purpose.
    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let pid = nix::unistd::Pid::from_raw(child.id() as i32);
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
            let _ = child.wait();
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// A cluster file for `members`, peers in plaintext, small snapshot thresholds so backups
/// cover a snapshot and a log after it.
fn write_config(path: &Path, members: &[&Proc]) {
    let mut text = String::from("insecure_peers = true\nsnapshot_entries = 40\n");
    for m in members {
        text.push_str(&format!(
            "[[member]]\nid = {}\npeer = \"{}\"\nclient = \"{}\"\nhttp = \"{}\"\n",
            m.id, m.peer, m.client, m.http
        ));
    }
    std::fs::write(path, text).unwrap();
}

/// Runs the raftfs binary with `args` to completion.
fn raftfs(args: &[&str]) -> Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_raftfs"))
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .expect("run raftfs")
}

fn text(out: &Output) -> String {
    format!(
        "status {:?}\nstdout: {}\nstderr: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The number after `key` in `line` (`... index 42 term 3 ...`).
fn field(line: &str, key: &str) -> String {
    let mut words = line.split_whitespace();
    while let Some(word) = words.next() {
        if word == key {
            return words.next().unwrap_or_default().to_owned();
        }
    }
    panic!("{key:?} not in {line:?}")
}

/// Waits until some member of `members` leads (answers a read itself); returns its index.
async fn leader(members: &[&Proc]) -> usize {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        for (k, m) in members.iter().enumerate() {
            if let Ok(Ok(mut conn)) = tokio::time::timeout(
                Duration::from_secs(2),
                client::Connection::connect(&m.client),
            )
            .await
            {
                let probe = Command::Read {
                    name: name("leader-probe"),
                };
                if let Ok(Ok(Reply::FileNotFound | Reply::Contents { .. })) =
                    tokio::time::timeout(Duration::from_secs(3), conn.call(&probe)).await
                {
                    return k;
                }
            }
        }
        assert!(tokio::time::Instant::now() < deadline, "no leader");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until every member has applied everything committed, at the same index, with the
/// same store digest; returns that digest.
async fn converged(members: &[&Proc]) -> String {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let mut statuses = Vec::new();
        for m in members {
            statuses.push(raftfs::status::fetch(&m.http).await);
        }
        let first = statuses[0].clone();
        let same = first.is_some()
            && statuses.iter().all(|s| {
                let (Some(s), Some(f)) = (s, &first) else {
                    return false;
                };
                s["applied_index"] == f["applied_index"]
                    && s["store_digest"] == f["store_digest"]
                    && s["commit_index"] == s["applied_index"]
            });
        if same {
            let status = first.unwrap();
            return status["store_digest"].as_str().unwrap().to_owned();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "members did not converge: {statuses:#?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn content(file: &str, round: u64) -> Bytes {
    Bytes::from(format!("{file} round {round}"))
}

/// Writes `count` files `{prefix}-{i}` through `client` (every fifth with a long expiry,
/// every seventh deleted again) and records what the store must hold afterwards.
async fn write_files(
    client: &mut Client,
    prefix: &str,
    count: usize,
    round: u64,
    acked: &mut BTreeMap<String, Option<(u64, Bytes)>>,
) {
    for i in 0..count {
        let file = format!("{prefix}-{i}");
        let exptime_s = if i % 5 == 0 { 3600 } else { 0 };
        let write = Command::Write {
            name: name(&file),
            content: content(&file, round),
            exptime_s,
        };
        let Ok(Reply::Written { version }) = client.call(&write).await else {
            panic!("write of {file} not acknowledged");
        };
        acked.insert(file.clone(), Some((version, content(&file, round))));
        if i % 7 == 3 {
            let delete = Command::Delete { name: name(&file) };
            assert_eq!(client.call(&delete).await.unwrap(), Reply::Deleted);
            acked.insert(file, None);
        }
    }
}

/// Reads every recorded file back through `client`.
async fn check_files(client: &mut Client, acked: &BTreeMap<String, Option<(u64, Bytes)>>) {
    for (file, expected) in acked {
        let reply = client
            .call(&Command::Read { name: name(file) })
            .await
            .unwrap();
        match (expected, reply) {
            (None, Reply::FileNotFound) => {}
            (
                Some((version, bytes)),
                Reply::Contents {
                    version: v,
                    content,
                    ..
                },
            ) if *version == v && *bytes == content => {}
            (expected, reply) => panic!("{file}: expected {expected:?}, read {reply:?}"),
        }
    }
}

/// A backup saved through a follower (which redirects to the leader) holds every write
/// acknowledged before it, and three new members restored from it start with the source's
/// store, elect a leader and take writes; a backup with one byte flipped is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_restores_into_a_new_cluster_and_a_corrupt_one_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut source: Vec<Proc> = (1..=3).map(|id| Proc::new(id, dir.path(), "a")).collect();
    let config = dir.path().join("a.toml");
    write_config(&config, &source.iter().collect::<Vec<_>>());
    for m in &mut source {
        m.serve(&config);
    }
    let lead = leader(&source.iter().collect::<Vec<_>>()).await;
    let addrs: Vec<String> = source.iter().map(|m| m.client.clone()).collect();
    let mut client = Client::new(addrs);
    let mut acked = BTreeMap::new();
    write_files(&mut client, "f", 150, 1, &mut acked).await;
    let digest = converged(&source.iter().collect::<Vec<_>>()).await;

    let follower = &source[(lead + 1) % 3].client;
    let backup = dir.path().join("backup.snap");
    let backup_arg = backup.to_str().unwrap();
    let out = raftfs(&[
        "admin",
        "snapshot",
        "save",
        backup_arg,
        "--members",
        follower,
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let saved = String::from_utf8_lossy(&out.stdout).to_string();
    assert_eq!(field(&saved, "store_digest"), digest, "{saved}");
    assert!(!dir.path().join("backup.snap.tmp").exists());

    // A copy with one byte flipped in the middle: restore and inspect refuse it, and say so.
    let mut bytes = std::fs::read(&backup).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x40;
    let corrupt = dir.path().join("corrupt.snap");
    std::fs::write(&corrupt, &bytes).unwrap();

    // The new cluster: other ports, fresh data directories.
    let mut target: Vec<Proc> = (1..=3).map(|id| Proc::new(id, dir.path(), "b")).collect();
    let new_config = dir.path().join("b.toml");
    write_config(&new_config, &target.iter().collect::<Vec<_>>());
    let refused = raftfs(&[
        "restore",
        corrupt.to_str().unwrap(),
        "--data-dir",
        target[0].data_dir.to_str().unwrap(),
        "--config",
        new_config.to_str().unwrap(),
        "--id",
        "1",
    ]);
    assert_eq!(refused.status.code(), Some(1), "{}", text(&refused));
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("corrupt"), "{stderr}");
    assert!(stderr.contains("checksum"), "{stderr}");
    assert!(
        !target[0].data_dir.exists(),
        "a refused restore wrote nothing"
    );
    let inspect = raftfs(&["admin", "snapshot", "inspect", corrupt.to_str().unwrap()]);
    assert_eq!(inspect.status.code(), Some(2), "{}", text(&inspect));

    for m in &target {
        let out = raftfs(&[
            "restore",
            backup_arg,
            "--data-dir",
            m.data_dir.to_str().unwrap(),
            "--config",
            new_config.to_str().unwrap(),
            "--id",
            &m.id.to_string(),
        ]);
        assert!(out.status.success(), "{}", text(&out));
    }
    // A second restore into a member's directory is refused: it is not empty now.
    let again = raftfs(&[
        "restore",
        backup_arg,
        "--data-dir",
        target[0].data_dir.to_str().unwrap(),
        "--config",
        new_config.to_str().unwrap(),
        "--id",
        "1",
    ]);
    assert_eq!(again.status.code(), Some(1), "{}", text(&again));
    assert!(String::from_utf8_lossy(&again.stderr).contains("not empty"));

    for m in &mut target {
        m.serve(&new_config);
    }
    let members: Vec<&Proc> = target.iter().collect();
    leader(&members).await;
    assert_eq!(converged(&members).await, digest, "restored store differs");
    let mut restored = Client::new(target.iter().map(|m| m.client.clone()).collect());
    check_files(&mut restored, &acked).await;
    write_files(&mut restored, "g", 30, 2, &mut acked).await;
    check_files(&mut restored, &acked).await;
}

/// `admin snapshot save` exits 2 when no member can be reached (and writes nothing), and a
/// restore for an id the cluster file does not list is refused.
#[tokio::test]
async fn exit_codes_of_save_and_restore() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("none.snap");
    let nobody = free_port();
    let out = raftfs(&[
        "admin",
        "snapshot",
        "save",
        file.to_str().unwrap(),
        "--members",
        &nobody,
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(!file.exists());

    let out = raftfs(&[
        "admin",
        "snapshot",
        "save",
        file.to_str().unwrap(),
        "--data-dir",
        dir.path().join("absent").to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("nothing to export"));

    let m = Proc::new(1, dir.path(), "x");
    let config = dir.path().join("x.toml");
    write_config(&config, &[&m]);
    let out = raftfs(&[
        "restore",
        file.to_str().unwrap(),
        "--data-dir",
        m.data_dir.to_str().unwrap(),
        "--config",
        config.to_str().unwrap(),
        "--id",
        "9",
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--id 9"));
}

/// docs/backup.md, "Losing a majority for good": of five members three are lost; the two
/// survivors are stopped, the more up-to-date one (highest last log term, then index, as the
/// offline export prints them) is exported and restored as a one-member cluster, two new
/// members join, and every acknowledged write is there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recovering_from_the_loss_of_a_majority() {
    let dir = tempfile::tempdir().unwrap();
    let mut old: Vec<Proc> = (1..=5).map(|id| Proc::new(id, dir.path(), "old")).collect();
    let config = dir.path().join("old.toml");
    write_config(&config, &old.iter().collect::<Vec<_>>());
    for m in &mut old {
        m.serve(&config);
    }
    leader(&old.iter().collect::<Vec<_>>()).await;
    let mut client = Client::new(old.iter().map(|m| m.client.clone()).collect());
    let mut acked = BTreeMap::new();
    write_files(&mut client, "f", 120, 1, &mut acked).await;
    // Every acknowledged write must be on a survivor: with a majority lost nothing else
    // guarantees it (docs/backup.md says so).
    converged(&old.iter().collect::<Vec<_>>()).await;
    drop(client);

    for m in &mut old[..3] {
        m.kill9();
    }
    let mut best: Option<((u64, u64), PathBuf)> = None;
    for m in &mut old[3..] {
        m.stop();
        let file = dir.path().join(format!("survivor-{}.snap", m.id));
        let out = raftfs(&[
            "admin",
            "snapshot",
            "save",
            file.to_str().unwrap(),
            "--data-dir",
            m.data_dir.to_str().unwrap(),
        ]);
        assert!(out.status.success(), "{}", text(&out));
        let line = String::from_utf8_lossy(&out.stdout).to_string();
        let position = (
            field(&line, "term").parse().unwrap(),
            field(&line, "index").parse().unwrap(),
        );
        if best.as_ref().is_none_or(|(p, _)| position > *p) {
            best = Some((position, file));
        }
    }
    let (_, survivor) = best.unwrap();

    // A new one-member cluster, member 4 on new ports, restored from the survivor's state.
    let mut first = Proc::new(4, dir.path(), "new");
    let one = dir.path().join("one.toml");
    write_config(&one, &[&first]);
    let out = raftfs(&[
        "restore",
        survivor.to_str().unwrap(),
        "--data-dir",
        first.data_dir.to_str().unwrap(),
        "--config",
        one.to_str().unwrap(),
        "--id",
        "4",
    ]);
    assert!(out.status.success(), "{}", text(&out));
    first.serve(&one);
    leader(&[&first]).await;
    let mut client = Client::new(vec![first.client.clone()]);
    check_files(&mut client, &acked).await;
    write_files(&mut client, "g", 20, 2, &mut acked).await;

    let mut joined = Vec::new();
    for id in [6, 7] {
        let mut m = Proc::new(id, dir.path(), "new");
        m.join(&first.client);
        let out = raftfs(&[
            "admin",
            "add-member",
            "--members",
            &first.client,
            "--id",
            &id.to_string(),
            "--peer",
            &m.peer,
            "--client",
            &m.client,
            "--http",
            &m.http,
        ]);
        assert!(out.status.success(), "{}", text(&out));
        joined.push(m);
    }
    let members: Vec<&Proc> = std::iter::once(&first).chain(joined.iter()).collect();
    converged(&members).await;
    let mut client = Client::new(members.iter().map(|m| m.client.clone()).collect());
    write_files(&mut client, "h", 20, 3, &mut acked).await;
    check_files(&mut client, &acked).await;
    // The new cluster survives the loss of the restored member: the others hold everything.
    drop(members);
    first.kill9();
    let rest: Vec<&Proc> = joined.iter().collect();
    leader(&rest).await;
    let mut client = Client::new(rest.iter().map(|m| m.client.clone()).collect());
    check_files(&mut client, &acked).await;
}

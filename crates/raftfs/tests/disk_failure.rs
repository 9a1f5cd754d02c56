//! Guards the server on a failing disk. When the log can no longer be written (here a full
//! filesystem, a real tmpfs mounted for the test), the server exits with an error instead of
//! answering as if all were well, and every write it acknowledged is there after a restart.
//! When a follower's disk stops (a real ext4 image, frozen with `fsfreeze`), the cluster keeps
//! taking writes, the stuck follower still answers `/status`, and once its disk moves again it
//! counts the stuck batch as slow, writes its log on the log's thread for a while, and catches
//! up. Needs root for `mount` (CI and the development machines run as root).
#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests fail loudly on purpose.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command as Process;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::cluster::TestCluster;
use common::{Server, bulk_write, check_all, name};
use fs::{Command, Reply};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A tmpfs mounted for the test, unmounted on drop.
struct Tmpfs(tempfile::TempDir);

impl Tmpfs {
    fn mount(size: &str) -> Tmpfs {
        let dir = tempfile::tempdir().unwrap();
        let status = Process::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .status()
            .expect("run mount");
        assert!(status.success(), "mounting a tmpfs needs root");
        Tmpfs(dir)
    }

    fn resize(&self, size: &str) {
        let status = Process::new("mount")
            .args(["-o", &format!("remount,size={size}")])
            .arg(self.0.path())
            .status()
            .unwrap();
        assert!(status.success());
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Process::new("umount").arg(self.0.path()).status();
    }
}

#[tokio::test]
async fn a_full_disk_stops_the_server_and_loses_no_acknowledged_write() {
    let disk = Tmpfs::mount("4m");
    let mut server = Server::start(&disk.0.path().join("data"));
    let mut conn = server.connect().await;
    let content = Bytes::from(vec![b'x'; 64 * 1024]);
    let mut acked = BTreeMap::new();
    let mut failed = false;
    for i in 0..1000 {
        let file = format!("fill-{i}");
        let write = Command::Write {
            name: name(&file),
            content: content.clone(),
            exptime_s: 0,
        };
        match conn.call(&write).await {
            Ok(Reply::Written { version }) => {
                acked.insert(file, version);
            }
            // The server stopped (connection closed) or answered ERR_INTERNAL: both fine.
            Ok(Reply::Internal) | Err(_) => {
                failed = true;
                break;
            }
            Ok(other) => panic!("unexpected {other:?}"),
        }
    }
    assert!(failed, "a 4 MiB disk cannot hold 1000 files of 64 KiB");
    assert!(!acked.is_empty());
    // Fail-stop: the process exits on its own, with an error status.
    let status = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            if let Some(status) = server.exit_status() {
                return status;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("the server stops after its disk fails");
    assert!(
        !status.success(),
        "exit status {status} reports the failure"
    );

    disk.resize("64m");
    server.restart();
    let mut conn = server.connect().await;
    for (file, version) in &acked {
        assert_eq!(
            conn.call(&Command::Read { name: name(file) })
                .await
                .unwrap(),
            Reply::Contents {
                version: *version,
                exptime_s: 0,
                content: content.clone(),
            },
            "acknowledged write of {file} survives"
        );
    }
}

/// Runs a command that must succeed.
fn run(program: &str, args: &[&std::ffi::OsStr]) {
    let status = Process::new(program)
        .args(args)
        .status()
        .unwrap_or_else(|err| panic!("run {program}: {err}"));
    assert!(status.success(), "{program} {args:?} failed ({status})");
}

/// A small ext4 filesystem in an image file, loop-mounted for the test; lazily unmounted on
/// drop (the member may still hold files open), which frees the loop device once it exits.
struct Ext4 {
    _dir: tempfile::TempDir,
    mount: PathBuf,
}

impl Ext4 {
    fn mount(size_mb: u64) -> Ext4 {
        let dir = tempfile::tempdir().unwrap();
        let image = dir.path().join("disk.img");
        let file = std::fs::File::create(&image).unwrap();
        file.set_len(size_mb << 20).unwrap();
        drop(file);
        run("mkfs.ext4", &["-q".as_ref(), image.as_os_str()]);
        let mount = dir.path().join("mnt");
        std::fs::create_dir(&mount).unwrap();
        run(
            "mount",
            &[
                "-o".as_ref(),
                "loop".as_ref(),
                image.as_os_str(),
                mount.as_os_str(),
            ],
        );
        Ext4 { _dir: dir, mount }
    }

    /// Stops every write to the filesystem until [`Frozen`] is dropped: writers block in the
    /// kernel, as on a disk that has stopped answering.
    fn freeze(&self) -> Frozen<'_> {
        run("fsfreeze", &["--freeze".as_ref(), self.mount.as_os_str()]);
        Frozen(&self.mount)
    }
}

impl Drop for Ext4 {
    fn drop(&mut self) {
        let _ = Process::new("umount").arg("-l").arg(&self.mount).status();
    }
}

/// A frozen filesystem; thawed on drop, so that a failing test never leaves a process stuck
/// in the kernel (not even SIGKILL ends a task blocked on a frozen filesystem).
struct Frozen<'a>(&'a Path);

impl Frozen<'_> {
    fn thaw(self) {}
}

impl Drop for Frozen<'_> {
    fn drop(&mut self) {
        let _ = Process::new("fsfreeze")
            .arg("--unfreeze")
            .arg(self.0)
            .status();
    }
}

/// GETs `path` from an HTTP address; the whole response, status line included.
async fn http_get(addr: &str, path: &str) -> String {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(format!("GET {path} HTTP/1.0\r\nHost: raftfs\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.unwrap();
    String::from_utf8_lossy(&response).into_owned()
}

/// What the frozen-disk test writes to `file`.
fn content(file: &str) -> Bytes {
    common::cluster::content_for(file, 0)
}

/// Files written while the follower's disk is frozen.
const FROZEN_WRITES: usize = 300;

#[tokio::test]
async fn a_follower_with_a_stopped_disk_answers_status_and_catches_up() {
    let mut cluster = TestCluster::start(3).await;
    let leader = cluster.leader().await;
    let follower = cluster.ids().into_iter().find(|&i| i != leader).unwrap();
    let mut acked = bulk_write(&cluster.client_addr(leader), "before", 100, content).await;
    cluster.wait_converged(&cluster.ids()).await;

    // The follower moves onto its own filesystem, with one runtime thread (as `raftfs
    // cluster` runs members): a node task stuck in the kernel then holds the whole runtime,
    // and only a status server of its own can answer.
    cluster.terminate(follower);
    let disk = Ext4::mount(64);
    let data = cluster.data_dir(follower);
    run(
        "cp",
        &["-a".as_ref(), data.as_os_str(), disk.mount.as_os_str()],
    );
    std::fs::remove_dir_all(&data).unwrap();
    std::os::unix::fs::symlink(disk.mount.join(data.file_name().unwrap()), &data).unwrap();
    cluster.set_serve_args(follower, &["--worker-threads", "1"]);
    cluster.restart(follower);
    cluster.wait_converged(&cluster.ids()).await;
    let before = cluster.status(follower).await;
    let leader_status = cluster.status(leader).await;
    // A follower on a healthy disk writes its log inline (a slow batch on a very busy
    // machine would explain otherwise); a leader never does.
    assert!(
        before["wal_inline"] == true || before["wal_slow_batches"].as_u64().unwrap() > 0,
        "{before:#?}"
    );
    assert_eq!(leader_status["wal_inline"], false, "{leader_status:#?}");

    let frozen = disk.freeze();
    // A majority without the follower: every write still commits, in bounded time.
    let written = tokio::time::timeout(
        Duration::from_secs(60),
        bulk_write(
            &cluster.client_addr(leader),
            "frozen",
            FROZEN_WRITES,
            content,
        ),
    )
    .await
    .expect("writes commit while a follower's disk is stopped");
    acked.extend(written);
    // The follower has had appends to write by now: its log is stuck in the kernel.
    let started = Instant::now();
    let answer = tokio::time::timeout(
        Duration::from_secs(10),
        http_get(&cluster.http_addr(follower), "/status"),
    )
    .await
    .expect("a member stuck on its disk still answers /status");
    let took = started.elapsed();
    let status_line = answer.lines().next().unwrap_or_default().to_owned();
    assert!(
        status_line.contains(" 200 ") || status_line.contains(" 503 "),
        "{answer}"
    );
    if status_line.contains(" 503 ") {
        assert!(
            answer.contains("node busy") && answer.contains("disk write has run for"),
            "{answer}"
        );
    }
    eprintln!("frozen follower answered in {took:?}: {status_line}");

    frozen.thaw();
    // The batch stuck in the frozen disk finishes now, seconds late: the follower counts it
    // and hands its writes to the log's thread for the next 10 s.
    let slow_before = before["wal_slow_batches"].as_u64().unwrap();
    let after = common::status_when(
        &cluster.http_addr(follower),
        "no slow batch counted",
        |status| status["wal_slow_batches"].as_u64().unwrap() > slow_before,
    )
    .await;
    assert_eq!(after["wal_inline"], false, "{after:#?}");
    let statuses = cluster.wait_converged(&cluster.ids()).await;
    assert!(
        statuses
            .iter()
            .all(|s| s["applied_index"] == statuses[0]["applied_index"])
    );
    check_all(cluster.client_addrs(), &acked, content).await;
    cluster.terminate(follower);
}

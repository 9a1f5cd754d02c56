//! Guards fail-stop on a failing disk: when the log can no longer be written (here a full
//! filesystem, a real tmpfs mounted for the test), the server exits with an error instead of
//! answering as if all were well, and every write it acknowledged is there after a restart.
//! Needs root for `mount` (CI and the development machines run as root).
#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests fail loudly on purpose.

mod common;

use std::collections::BTreeMap;
use std::process::Command as Process;
use std::time::Duration;

use bytes::Bytes;
use common::{Server, name};
use fs::{Command, Reply};

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

//! Test support: start real `raftfs` processes on loopback and talk to them over real TCP.
#![allow(dead_code)] // Each test file uses a different part of this module.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use std::collections::BTreeMap;

use bytes::Bytes;
use client::{Client, Connection};
use fs::{Name, Reply};

/// How long a server may take to start listening. Generous: CI machines are slow and busy.
pub const START_TIMEOUT: Duration = Duration::from_secs(30);

pub mod cluster;
pub mod metrics;
pub mod proxy;

/// The line a server logs once it listens for clients; it names the bound address.
pub const READY_MARKER: &str = "raftfs serving";

/// A `raftfs serve` process.
pub struct Server {
    child: Option<Child>,
    /// The client address it listens on.
    pub addr: String,
    /// Its data directory.
    pub data_dir: PathBuf,
    extra_args: Vec<String>,
}

impl Server {
    /// Starts a single-node store on a free port with `data_dir`.
    pub fn start(data_dir: &Path) -> Server {
        Server::start_with(data_dir, &[])
    }

    /// Starts a single-node store with extra arguments.
    pub fn start_with(data_dir: &Path, extra: &[&str]) -> Server {
        let extra_args: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
        let (child, addr) = spawn_serve(data_dir, &extra_args);
        Server {
            child: Some(child),
            addr,
            data_dir: data_dir.to_owned(),
            extra_args,
        }
    }

    /// Kills the process with SIGKILL (no chance to flush anything) and waits for it.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Sends SIGTERM and waits for the process to exit.
    pub fn terminate(&mut self) -> ExitStatus {
        let mut child = self.child.take().expect("server is running");
        let pid = nix::unistd::Pid::from_raw(child.id() as i32);
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).expect("send SIGTERM");
        child.wait().expect("wait for server")
    }

    /// Starts the server again on the same data directory (a new port).
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "stop the server before restarting it");
        let (child, addr) = spawn_serve(&self.data_dir, &self.extra_args);
        self.child = Some(child);
        self.addr = addr;
    }

    /// The exit status if the process has exited on its own (it is then reaped and forgotten).
    pub fn exit_status(&mut self) -> Option<ExitStatus> {
        let status = self.child.as_mut()?.try_wait().expect("poll server")?;
        self.child = None;
        Some(status)
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(child) => child.try_wait().expect("poll server").is_none(),
            None => false,
        }
    }

    /// The process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// A new client connection.
    pub async fn connect(&self) -> Connection {
        Connection::connect(&self.addr)
            .await
            .expect("connect to server")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// Starts a single-node `raftfs serve` on a free port and waits for its ready line; returns the
/// child and the client address.
fn spawn_serve(data_dir: &Path, extra: &[String]) -> (Child, String) {
    let mut args: Vec<std::ffi::OsString> = vec!["--listen".into(), "127.0.0.1:0".into()];
    args.push("--data-dir".into());
    args.push(data_dir.into());
    args.extend(extra.iter().map(Into::into));
    spawn_raftfs_serve(&args)
}

/// Starts `raftfs serve ARGS` with its log piped to us, and waits until it serves clients;
/// returns the child and the client address it reported.
pub fn spawn_raftfs_serve(args: &[std::ffi::OsString]) -> (Child, String) {
    spawn_raftfs_serve_skewed(args, 0)
}

/// Like [`spawn_raftfs_serve`], with the process's clocks (wall and monotonic) moved by
/// `skew_s` seconds through libfaketime (`faketime` from Debian), unless 0.
pub fn spawn_raftfs_serve_skewed(args: &[std::ffi::OsString], skew_s: i64) -> (Child, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_raftfs"));
    if skew_s != 0 {
        // The library itself, not the `faketime` wrapper: the wrapper forks, and killing it
        // would leave the server running.
        command
            .env("LD_PRELOAD", libfaketime())
            .env("FAKETIME", format!("{skew_s:+}"));
    }
    let mut child = command
        .arg("serve")
        .args(args)
        .env(
            "RUST_LOG",
            std::env::var("RAFTFS_TEST_RUST_LOG").unwrap_or_else(|_| "info".into()),
        )
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start raftfs");
    let addr = wait_ready(&mut child);
    (child, addr)
}

/// Where Debian's `faketime` package keeps the library.
fn libfaketime() -> std::path::PathBuf {
    let found = std::fs::read_dir("/usr/lib")
        .into_iter()
        .flatten()
        .flatten()
        .map(|dir| dir.path().join("faketime/libfaketime.so.1"))
        .chain([std::path::PathBuf::from(
            "/usr/lib/faketime/libfaketime.so.1",
        )])
        .find(|path| path.exists());
    found.expect(
        "libfaketime not found: install Debian's faketime package (apt-get install faketime)",
    )
}

/// Plays a telnet-style session on `stream`: sends each request and expects exactly the bytes
/// given as its answer.
pub async fn play_session(stream: &mut tokio::net::TcpStream, session: &[(&[u8], &[u8])]) {
    use tokio::io::AsyncWriteExt;
    for (send, expect) in session {
        stream.write_all(send).await.expect("send");
        expect_bytes(stream, expect).await;
    }
}

/// Reads exactly `expected.len()` bytes from a raw socket and compares them with `expected`.
pub async fn expect_bytes(stream: &mut tokio::net::TcpStream, expected: &[u8]) {
    use tokio::io::AsyncReadExt;
    let mut got = vec![0u8; expected.len()];
    tokio::time::timeout(Duration::from_secs(20), stream.read_exact(&mut got))
        .await
        .expect("reply in time")
        .expect("read reply");
    assert_eq!(
        String::from_utf8_lossy(&got),
        String::from_utf8_lossy(expected)
    );
}

/// Reads the server's log until it says where it serves; keeps draining the log afterwards so
/// the server never blocks on a full pipe.
pub fn wait_ready(child: &mut Child) -> String {
    let stderr = child.stderr.take().expect("piped stderr");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut tx = Some(tx);
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if std::env::var_os("RAFTFS_TEST_LOG").is_some() {
                eprintln!("[server] {line}");
            }
            if line.contains(READY_MARKER) {
                if let Some(tx) = tx.take() {
                    let _ = tx.send(line);
                }
            }
        }
    });
    let line = rx
        .recv_timeout(START_TIMEOUT)
        .expect("server did not report it was serving");
    line.split_whitespace()
        .find_map(|field| field.strip_prefix("client="))
        .expect("ready line names the client address")
        .to_owned()
}

/// A file name for tests.
pub fn name(s: &str) -> Name {
    Name::new(Bytes::copy_from_slice(s.as_bytes())).expect("valid name")
}

/// Writes `count` files named `{prefix}-{i}` with `content(name)` through `addr` (which must
/// lead), pipelined 100 at a time, and returns the versions they were given.
pub async fn bulk_write(
    addr: &str,
    prefix: &str,
    count: usize,
    content: impl Fn(&str) -> Bytes,
) -> BTreeMap<String, u64> {
    let mut conn = Connection::connect(addr).await.expect("connect");
    let mut acked = BTreeMap::new();
    for chunk in (0..count).collect::<Vec<_>>().chunks(100) {
        let write = |i: usize| {
            let file = format!("{prefix}-{i}");
            fs::Command::Write {
                name: name(&file),
                content: content(&file),
                exptime_s: 0,
            }
        };
        for &i in chunk {
            conn.queue(&write(i));
        }
        let mut unsettled = Vec::new();
        for &i in chunk {
            match conn.recv().await {
                Ok(Reply::Written { version }) => {
                    acked.insert(format!("{prefix}-{i}"), version);
                }
                // The leader changed under the pipeline (a busy machine can delay a follower
                // past an election timeout): ERR_INTERNAL leaves the outcome unknown and later
                // commands are redirected. Those are not acknowledgements; write them again
                // below, through a client that finds the new leader.
                Ok(Reply::Internal | Reply::Redirect(_)) | Err(_) => unsettled.push(i),
                Ok(other) => panic!("bulk write got {other:?}"),
            }
        }
        if unsettled.is_empty() {
            continue;
        }
        let mut client = Client::new(vec![addr.to_owned()]);
        for i in unsettled {
            // Writing the same content again is harmless: only the newest version counts.
            let version = loop {
                match client.call(&write(i)).await {
                    Ok(Reply::Written { version }) => break version,
                    Err(client::ClientError::Unknown(_)) => continue,
                    other => panic!("bulk write got {other:?}"),
                }
            };
            acked.insert(format!("{prefix}-{i}"), version);
        }
        let leader = client.connected_to().unwrap_or(addr).to_owned();
        conn = Connection::connect(&leader).await.expect("connect");
    }
    acked
}

/// Reads every acknowledged file back through `addrs` (following redirects) and checks its
/// version and that its content is `content(name)`.
pub async fn check_all(
    addrs: Vec<String>,
    acked: &BTreeMap<String, u64>,
    content: impl Fn(&str) -> Bytes,
) {
    let mut client = Client::new(addrs);
    for (file, version) in acked {
        let reply = client
            .call(&fs::Command::Read { name: name(file) })
            .await
            .expect("read");
        assert_eq!(
            reply,
            Reply::Contents {
                version: *version,
                exptime_s: 0,
                content: content(file),
            },
            "acknowledged write of {file}"
        );
    }
}

/// Sends raw bytes and reads `n` replies.
pub async fn raw_exchange(conn: &mut Connection, bytes: &[u8], n: usize) -> Vec<Reply> {
    conn.queue_raw(bytes);
    let mut replies = Vec::with_capacity(n);
    for _ in 0..n {
        replies.push(conn.recv().await.expect("reply"));
    }
    replies
}

/// GETs `/status` from a server's HTTP address and parses the JSON.
pub async fn http_status(addr: &str) -> serde_json::Value {
    raftfs::status::fetch(addr).await.expect("status JSON")
}

/// Polls `/status` at `addr` until `ready` holds of it (30 s at most, then fails saying it was
/// waiting for `what`); returns that status.
pub async fn status_when(
    addr: &str,
    what: &str,
    ready: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let status = http_status(addr).await;
        if ready(&status) {
            return status;
        }
        assert!(tokio::time::Instant::now() < deadline, "{what}: {status:#}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Test ports come from below the kernel's ephemeral range (32768 and up by default on Linux),
/// where port-0 listeners and outgoing connections take theirs, so a server restarted on its
/// old port never finds it taken by one of those. A per-process counter keeps this binary's
/// tests apart; the base depends on the process id to keep concurrent test binaries apart.
pub fn free_port() -> String {
    const LOW: u32 = 10_000;
    const SPAN: u32 = 20_000;
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let base = (std::process::id() * 997) % SPAN;
    loop {
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        assert!(n < SPAN, "ran out of test ports");
        let port = LOW + (base + n) % SPAN;
        let addr = format!("127.0.0.1:{port}");
        // Taken by something else on the machine: try the next one.
        if std::net::TcpListener::bind(&addr).is_ok() {
            return addr;
        }
    }
}

/// A base client port for a local cluster whose client, peer (+1000) and status (-1000) ports
/// are all free now.
pub fn free_base_port(nodes: u16) -> u16 {
    let start = 12_000 + (std::process::id() % 500) as u16 * 20;
    (0..1000)
        .map(|i| 12_000 + (start - 12_000 + i * 10) % 15_000)
        .find(|&base| {
            (0..nodes).all(|i| {
                [base + i, base + i + 1000, base + i - 1000]
                    .iter()
                    .all(|&port| std::net::TcpListener::bind(("127.0.0.1", port)).is_ok())
            })
        })
        .expect("a free range of ports")
}

//! Client-side resource budgets on a real `raftfs serve` process over real sockets:
//! thousands of idle connections, the connection cap's reply, a client that pipelines
//! reads of a large file and never reads the replies, many such clients against the shared
//! budget, a slowloris client, and the idle timeout
//! (which a command waiting for the cluster longer than it does not trigger).
//! Other clients must keep being served throughout; nothing here asserts a speed.
#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests fail loudly on purpose.

mod common;

use std::time::Duration;

use bytes::Bytes;
use client::Connection;
use common::cluster::TestCluster;
use common::{Server, name};
use fs::{Command, Reply};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Generous bound on how long any awaited event may take on a busy machine; reaching it fails
/// the test (it is not a speed assertion, only a guard against hanging).
const PATIENCE: Duration = Duration::from_secs(30);

/// Writes `content` to `file` and reads it back through `conn`, checking both replies.
async fn write_and_read(conn: &mut Connection, file: &str, content: Bytes) {
    let written = tokio::time::timeout(
        PATIENCE,
        conn.call(&Command::Write {
            name: name(file),
            content: content.clone(),
            exptime_s: 0,
        }),
    )
    .await
    .expect("write answered in time")
    .expect("write");
    let Reply::Written { version } = written else {
        panic!("write got {written:?}");
    };
    let read = tokio::time::timeout(PATIENCE, conn.call(&Command::Read { name: name(file) }))
        .await
        .expect("read answered in time")
        .expect("read");
    assert_eq!(
        read,
        Reply::Contents {
            version,
            exptime_s: 0,
            content
        }
    );
}

/// Awaits the server closing `stream`, and returns what it sent before closing.
async fn await_close(stream: &mut TcpStream) -> Vec<u8> {
    let mut rest = Vec::new();
    tokio::time::timeout(PATIENCE, stream.read_to_end(&mut rest))
        .await
        .expect("the server closed the connection")
        .expect("read until close");
    rest
}

/// A `/proc/PID/status` figure in KiB (`VmRSS`, `VmHWM`).
fn proc_kib(pid: u32, field: &str) -> u64 {
    raftfs::bench::proc_status_kib(pid, field).unwrap()
}

/// Resident memory allowed with 5,000 idle clients connected: 256 MiB, about 50 KiB each.
const IDLE_CLIENTS_RSS_KIB_MAX: u64 = 256 * 1024;

#[tokio::test]
async fn five_thousand_idle_clients_and_another_is_still_served() {
    const IDLE: usize = 5000;
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let mut idle = Vec::with_capacity(IDLE);
    for _ in 0..IDLE {
        idle.push(TcpStream::connect(&server.addr).await.expect("connect"));
    }
    // With every idle connection open, another client is served as usual.
    let mut active = server.connect().await;
    for round in 0..20 {
        write_and_read(&mut active, "busy", Bytes::from(format!("round {round}"))).await;
    }
    // And every idle connection was accepted and is served too (none was refused or dropped):
    // each sends a read, then each gets its answer.
    for stream in &mut idle {
        stream.write_all(b"read busy\r\n").await.expect("send");
    }
    for stream in &mut idle {
        common::expect_bytes(stream, b"CONTENTS 20 8 0\r\nround 19\r\n").await;
    }
    // What 5,000 open connections cost: a task and small buffers each.
    let rss_kib = proc_kib(server.pid().expect("running"), "VmRSS");
    eprintln!("{IDLE} open client connections: {rss_kib} KiB resident");
    assert!(
        rss_kib < IDLE_CLIENTS_RSS_KIB_MAX,
        "{IDLE} idle clients cost {rss_kib} KiB resident"
    );
    assert!(Server::is_running(&mut { server }), "the server still runs");
}

#[tokio::test]
async fn a_client_over_the_connection_cap_is_told_and_the_others_are_unaffected() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with(dir.path(), &["--max-client-connections", "3"]);
    let mut served = Vec::new();
    for i in 0..3 {
        let mut conn = server.connect().await;
        write_and_read(&mut conn, &format!("f{i}"), Bytes::from_static(b"x")).await;
        served.push(conn);
    }
    // The fourth is answered ERR_INTERNAL (docs/protocol.md: the server could not complete the command)
    // and closed, even though it sent a command.
    let mut over = TcpStream::connect(&server.addr).await.unwrap();
    over.write_all(b"read f0\r\n").await.unwrap();
    assert_eq!(await_close(&mut over).await, b"ERR_INTERNAL\r\n");
    // The three keep being served.
    for (i, conn) in served.iter_mut().enumerate() {
        write_and_read(conn, &format!("f{i}"), Bytes::from_static(b"y")).await;
    }
    // Once one leaves, its slot is free again: a new client is served (retried until the
    // server has seen the close, which it learns asynchronously).
    drop(served.pop());
    let started = std::time::Instant::now();
    loop {
        let mut conn = server.connect().await;
        conn.queue(&Command::Read { name: name("f0") });
        match conn.recv().await {
            Ok(Reply::Contents { .. }) => break,
            Ok(Reply::Internal) | Err(_) if started.elapsed() < PATIENCE => {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            other => panic!("a freed slot was not given to a new client: {other:?}"),
        }
    }
}

#[tokio::test]
async fn a_client_that_pipelines_big_reads_and_never_reads_replies_does_not_grow_memory() {
    const BIG: usize = 1 << 20;
    /// Far more replies than the budget could hold: 100,000 MiB if they were all buffered.
    const READS: usize = 100_000;
    let dir = tempfile::tempdir().unwrap();
    let http = common::free_port();
    let server = Server::start_with(dir.path(), &["--http", &http]);
    let pid = server.pid().expect("server pid");
    let mut writer = server.connect().await;
    write_and_read(&mut writer, "big", Bytes::from(vec![b'a'; BIG])).await;
    let baseline_kib = proc_kib(pid, "VmRSS");

    // The hog: pipelines reads of the big file and never reads a reply. Its sends block once
    // the server stops reading it and the kernel's buffers are full; that is the point.
    let mut hog = TcpStream::connect(&server.addr).await.unwrap();
    let commands = b"read big\r\n".repeat(READS);
    let hog_task = tokio::spawn(async move {
        let _ = hog.write_all(&commands).await;
        hog // Kept open (and unread) until the test ends.
    });

    // Meanwhile the big file is rewritten (so replies waiting for the hog would pin distinct
    // versions, not one shared buffer) and a small client keeps being served.
    let mut small = server.connect().await;
    for round in 0..10u8 {
        write_and_read(&mut writer, "big", Bytes::from(vec![b'b' + round; BIG])).await;
        for i in 0..10 {
            write_and_read(&mut small, "small", Bytes::from(format!("{round}.{i}"))).await;
        }
    }
    let status = common::http_status(&http).await;
    let reads_received = status["requests"]["read"].as_u64().unwrap();
    let peak_kib = proc_kib(pid, "VmHWM");
    let now_kib = proc_kib(pid, "VmRSS");
    eprintln!(
        "RSS before the hog {baseline_kib} KiB, after {now_kib} KiB, peak {peak_kib} KiB; \
         reads received {reads_received} of {READS} sent (10 MiB of rewrites in the log)"
    );
    // The server stopped reading the hog: its reads beyond the connection's queue were never
    // taken (the rest sit in kernel buffers, pushing back on the hog).
    assert!(
        reads_received < 2 * server::connection::PIPELINE_DEPTH_MAX as u64 + 200,
        "the server kept reading a client that reads no replies: {reads_received} reads"
    );
    // Memory: the 10 MiB of rewrites held in the log, the 2 MiB reply budget and a margin;
    // without the budget the hog's replies alone would need 100 GiB.
    let bound_kib = baseline_kib + 64 * 1024;
    assert!(
        peak_kib < bound_kib,
        "peak RSS {peak_kib} KiB exceeds the bound {bound_kib} KiB"
    );
    drop(hog_task);
}

/// `raftfs_client_buffered_bytes` from a member's `GET /metrics`.
async fn client_buffered_bytes(http: &str) -> u64 {
    const METRIC: &str = "raftfs_client_buffered_bytes";
    let scrape = common::metrics::scrape(http).await;
    assert!(common::metrics::present(&scrape, METRIC), "no {METRIC}");
    common::metrics::value(&scrape, METRIC, &[]) as u64
}

#[tokio::test]
async fn many_clients_that_never_read_replies_hold_the_total_budget_and_others_are_served() {
    const BIG: usize = 1 << 20;
    const HOGS: usize = 16;
    /// The shared budget: far below the hogs' own budgets together (16 x 2 MiB of replies).
    const TOTAL: u64 = 4 << 20;
    /// Over the budget, each connection may hold one more reply and command.
    const BOUND: u64 = TOTAL + HOGS as u64 * (BIG as u64 + 1024);
    let dir = tempfile::tempdir().unwrap();
    let http = common::free_port();
    let total = TOTAL.to_string();
    let server = Server::start_with(
        dir.path(),
        &["--http", &http, "--client-total-bytes", &total],
    );
    let mut writer = server.connect().await;
    write_and_read(&mut writer, "big", Bytes::from(vec![b'a'; BIG])).await;

    // Each hog pipelines reads of the big file (1 GiB of replies each) and never reads one.
    let mut hogs = Vec::with_capacity(HOGS);
    for _ in 0..HOGS {
        let mut hog = TcpStream::connect(&server.addr).await.unwrap();
        let commands = b"read big\r\n".repeat(1000);
        hogs.push(tokio::spawn(async move {
            let _ = hog.write_all(&commands).await;
            hog // Kept open (and unread) until the test ends.
        }));
    }
    // The hogs fill the shared budget (each alone would stop only at its own 2 MiB) and come to
    // rest there: every hog's writer blocked on its full socket, its reader paused. The level is
    // checked on the way and at rest (ten equal readings in a row), where a member that ignored
    // the shared budget would hold each hog's 2 MiB.
    let started = std::time::Instant::now();
    let mut readings = Vec::new();
    loop {
        let held = client_buffered_bytes(&http).await;
        assert!(
            held <= BOUND,
            "clients hold {held} bytes, over the bound {BOUND}"
        );
        readings.push(held);
        let at_rest = readings.len() >= 10 && readings.iter().rev().take(10).all(|&r| r == held);
        if held >= TOTAL && at_rest {
            break;
        }
        assert!(
            started.elapsed() < PATIENCE,
            "the hogs never came to rest holding the budget: {held}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // ...and while they hold it, a client that reads its replies is served, one command at a
    // time, and the sum stays bounded.
    let mut small = server.connect().await;
    for round in 0..20 {
        write_and_read(&mut small, "small", Bytes::from(format!("round {round}"))).await;
        let held = client_buffered_bytes(&http).await;
        eprintln!("round {round}: clients hold {held} bytes");
        assert!(
            held <= BOUND,
            "clients hold {held} bytes, over the bound {BOUND}"
        );
    }
    // Once the hogs are gone, what they held is given back.
    for hog in hogs {
        hog.abort();
        let _ = hog.await;
    }
    let started = std::time::Instant::now();
    loop {
        let held = client_buffered_bytes(&http).await;
        if held == 0 {
            break;
        }
        assert!(
            started.elapsed() < PATIENCE,
            "{held} bytes still counted after every hog left"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_slowloris_command_is_closed_after_the_timeout_however_slowly_it_trickles() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with(dir.path(), &["--partial-command-timeout", "1"]);
    // 122 bytes at one per 100 ms: 12 s to complete, far beyond the 1 s timeout. Each byte
    // arrives well within the timeout of the previous one, so only a deadline counted from the
    // command's first byte closes it.
    let mut command = b"write slowloris 100\r\n".to_vec();
    command.extend_from_slice(&[b'z'; 100]);
    command.extend_from_slice(b"\r\n");
    let total = command.len();
    let stream = TcpStream::connect(&server.addr).await.unwrap();
    let (mut read_half, mut write_half) = stream.into_split();
    let trickle = tokio::spawn(async move {
        let mut sent = 0;
        let mut ticks = tokio::time::interval(Duration::from_millis(100));
        for byte in command {
            ticks.tick().await;
            if write_half.write_all(&[byte]).await.is_err() {
                break;
            }
            sent += 1;
        }
        sent
    });
    // Others are served meanwhile.
    let mut other = server.connect().await;
    write_and_read(&mut other, "other", Bytes::from_static(b"fine")).await;
    let mut rest = Vec::new();
    tokio::time::timeout(PATIENCE, read_half.read_to_end(&mut rest))
        .await
        .expect("the slowloris connection was closed")
        .expect("read until close");
    assert!(rest.is_empty(), "nothing was answered: {rest:?}");
    trickle.abort();
    let sent = trickle.await.unwrap_or(0);
    assert!(sent < total, "closed only after the whole command arrived");
    // The command never took effect.
    let read = other
        .call(&Command::Read {
            name: name("slowloris"),
        })
        .await;
    assert_eq!(read.unwrap(), Reply::FileNotFound);
}

#[tokio::test]
async fn an_idle_connection_is_closed_after_the_idle_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with(dir.path(), &["--idle-timeout", "1"]);
    let mut stream = TcpStream::connect(&server.addr).await.unwrap();
    common::play_session(
        &mut stream,
        &[(b"read nothing\r\n", b"ERR_FILE_NOT_FOUND\r\n")],
    )
    .await;
    // Nothing in flight from here on: the server closes it, without a reply.
    assert!(await_close(&mut stream).await.is_empty());
    // A new connection is served as usual.
    let mut conn = server.connect().await;
    write_and_read(&mut conn, "after", Bytes::from_static(b"ok")).await;
}

#[tokio::test]
async fn a_command_waiting_for_the_cluster_longer_than_the_idle_timeout_keeps_its_connection() {
    // Elections of at least 1.5 s, and requests held up to 3 s while there is no leader: once
    // the other two members are gone, a write waits far longer than the 1 s idle timeout.
    let settings = "election_timeout_ms = 1500\nheartbeat_interval_ms = 150\n\
                    [client_limits]\nidle_timeout_s = 1\n";
    let mut cluster = TestCluster::start_with(3, settings).await;
    cluster.terminate(2);
    cluster.terminate(3);
    let mut stream = TcpStream::connect(cluster.client_addr(1)).await.unwrap();
    let sent = std::time::Instant::now();
    stream
        .write_all(b"write waiting 2\r\nhi\r\n")
        .await
        .unwrap();
    // Whatever the answer (no leader can be found), it comes.
    let first = tokio::time::timeout(PATIENCE, reply_line(&mut stream))
        .await
        .expect("the write was answered");
    let waited = sent.elapsed();
    assert!(first.starts_with("ERR_"), "the write got {first:?}");
    // Not a speed bound: without a quorum no answer can come before an election timeout, so
    // the command really was in flight longer than the idle timeout.
    assert!(
        waited > Duration::from_secs(1),
        "the write was in flight for only {waited:?}"
    );
    // The connection was not idle meanwhile: it still takes commands, and only once nothing
    // is in flight does the idle timeout close it.
    stream.write_all(b"read waiting\r\n").await.unwrap();
    let second = tokio::time::timeout(PATIENCE, reply_line(&mut stream))
        .await
        .expect("the read was answered");
    assert!(second.starts_with("ERR_"), "the read got {second:?}");
    assert!(await_close(&mut stream).await.is_empty());
}

/// Reads one reply line (through its CRLF) from `stream`; empty if the server closed first.
async fn reply_line(stream: &mut TcpStream) -> String {
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    while !line.ends_with(b"\r\n") {
        if stream.read(&mut byte).await.unwrap() == 0 {
            break;
        }
        line.push(byte[0]);
    }
    String::from_utf8_lossy(&line).into_owned()
}

#[tokio::test]
async fn a_pipelining_client_that_reads_its_replies_is_served_in_full_under_tiny_budgets() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with(
        dir.path(),
        &["--reply-buffer-bytes", "1024", "--pipeline-bytes", "1024"],
    );
    let mut conn = server.connect().await;
    // A command larger than either budget is still admitted (one always is), and a reply
    // larger than the reply budget is still sent.
    write_and_read(&mut conn, "large", Bytes::from(vec![b'l'; 64 * 1024])).await;
    // Hundreds of pipelined commands, far beyond both budgets, all answered in order.
    const N: usize = 500;
    for i in 0..N {
        conn.queue(&Command::Write {
            name: name(&format!("p{i}")),
            content: Bytes::from(format!("value {i}")),
            exptime_s: 0,
        });
        conn.queue(&Command::Read {
            name: name("large"),
        });
    }
    for i in 0..N {
        let written = tokio::time::timeout(PATIENCE, conn.recv())
            .await
            .unwrap()
            .unwrap();
        assert!(
            matches!(written, Reply::Written { .. }),
            "write {i}: {written:?}"
        );
        let read = tokio::time::timeout(PATIENCE, conn.recv())
            .await
            .unwrap()
            .unwrap();
        assert!(
            matches!(&read, Reply::Contents { content, .. } if content.len() == 64 * 1024),
            "read {i}"
        );
    }
}

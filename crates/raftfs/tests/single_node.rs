//! Guards the single-node store's promises over real TCP against the real binary: the README's
//! telnet session, pipelining, arbitrary framing and binary content, large files, expiry, cas
//! under contention, and that malformed input neither crashes the server nor disturbs others.
#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests fail loudly on purpose.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use bytes::Bytes;
use common::{Server, name, raw_exchange};
use fs::{Command, Reply};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn write(n: &str, content: &[u8], exptime_s: u64) -> Command {
    Command::Write {
        name: name(n),
        content: Bytes::copy_from_slice(content),
        exptime_s,
    }
}

fn read(n: &str) -> Command {
    Command::Read { name: name(n) }
}

#[tokio::test]
async fn seed_telnet_session_verbatim() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let mut s = TcpStream::connect(&server.addr).await.unwrap();
    let session: [(&[u8], &[u8]); 6] = [
        (b"read foo\r\n", b"ERR_FILE_NOT_FOUND\r\n"),
        (b"write foo 6\r\nabcdef\r\n", b"OK 1\r\n"),
        (b"read foo\r\n", b"CONTENTS 1 6 0\r\nabcdef\r\n"),
        (b"cas foo 1 7 0\r\nghijklm\r\n", b"OK 2\r\n"),
        (b"read foo\r\n", b"CONTENTS 2 7 0\r\nghijklm\r\n"),
        (b"delete foo\r\n", b"OK\r\n"),
    ];
    common::play_session(&mut s, &session).await;
    // And the error rows of the table.
    s.write_all(b"cas foo 2 1\r\nx\r\n").await.unwrap();
    common::expect_bytes(&mut s, b"ERR_FILE_NOT_FOUND\r\n").await;
    s.write_all(b"delete foo\r\n").await.unwrap();
    common::expect_bytes(&mut s, b"ERR_FILE_NOT_FOUND\r\n").await;
    s.write_all(b"write foo 1\r\nx\r\ncas foo 1 1\r\ny\r\n")
        .await
        .unwrap();
    common::expect_bytes(&mut s, b"OK 3\r\nERR_VERSION 3\r\n").await;
    s.write_all(b"bogus\r\n").await.unwrap();
    common::expect_bytes(&mut s, b"ERR_CMD_ERR\r\n").await;
}

#[tokio::test]
async fn hundred_commands_pipelined_in_one_send() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let mut conn = server.connect().await;
    let mut wire = Vec::new();
    for i in 0..50 {
        wire.extend_from_slice(format!("write f{i} 3\r\nv{i:02}\r\nread f{i}\r\n").as_bytes());
    }
    let replies = raw_exchange(&mut conn, &wire, 100).await;
    for i in 0..50 {
        let version = i as u64 + 1;
        assert_eq!(replies[2 * i], Reply::Written { version });
        assert_eq!(
            replies[2 * i + 1],
            Reply::Contents {
                version,
                exptime_s: 0,
                content: Bytes::from(format!("v{i:02}")),
            },
            "a pipelined read sees the write before it on the same connection"
        );
    }
}

#[tokio::test]
async fn command_delivered_one_byte_at_a_time() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let mut s = TcpStream::connect(&server.addr).await.unwrap();
    s.set_nodelay(true).unwrap();
    for byte in b"write slow 5 0\r\nhe\r\no\r\nread slow\r\n" {
        s.write_all(&[*byte]).await.unwrap();
        s.flush().await.unwrap();
        tokio::task::yield_now().await;
    }
    common::expect_bytes(&mut s, b"OK 1\r\nCONTENTS 1 5 0\r\nhe\r\no\r\n").await;
}

#[tokio::test]
async fn binary_content_every_byte_value_and_a_one_mib_file() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let mut conn = server.connect().await;

    let mut every_byte: Vec<u8> = (0..=255u8).collect();
    every_byte.extend_from_slice(b"\r\n\0\r\n\n\r");
    assert_eq!(
        conn.call(&write("bin", &every_byte, 0)).await.unwrap(),
        Reply::Written { version: 1 }
    );
    assert_eq!(
        conn.call(&read("bin")).await.unwrap(),
        Reply::Contents {
            version: 1,
            exptime_s: 0,
            content: Bytes::from(every_byte),
        }
    );

    let big: Vec<u8> = (0..(1u32 << 20)).map(|i| (i * 7 % 251) as u8).collect();
    assert_eq!(
        conn.call(&write("big", &big, 0)).await.unwrap(),
        Reply::Written { version: 2 }
    );
    match conn.call(&read("big")).await.unwrap() {
        Reply::Contents { content, .. } => assert!(content == big, "1 MiB round trip"),
        other => panic!("unexpected {other:?}"),
    }
    // One byte over the limit is refused before the content is buffered, and the connection
    // carries on after the announced bytes.
    let mut wire = format!("write big {}\r\n", (1 << 20) + 1).into_bytes();
    wire.extend(std::iter::repeat_n(b'z', (1 << 20) + 1));
    wire.extend_from_slice(b"\r\nread bin\r\n");
    let replies = raw_exchange(&mut conn, &wire, 2).await;
    assert_eq!(replies[0], Reply::CmdErr);
    assert!(matches!(replies[1], Reply::Contents { version: 1, .. }));
}

#[tokio::test]
async fn expiry_counts_down_expires_and_is_cancelled_by_a_write() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let mut conn = server.connect().await;

    conn.call(&write("long", b"x", 100)).await.unwrap();
    match conn.call(&read("long")).await.unwrap() {
        // Rounded up, so a fresh file reports the full lifetime (or one less on a slow machine).
        Reply::Contents { exptime_s, .. } => assert!((99..=100).contains(&exptime_s)),
        other => panic!("unexpected {other:?}"),
    }

    // A one-second file disappears: wait for it with a generous bound.
    conn.call(&write("short", b"x", 1)).await.unwrap();
    assert!(matches!(
        conn.call(&read("short")).await.unwrap(),
        Reply::Contents { exptime_s: 1, .. }
    ));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        match conn.call(&read("short")).await.unwrap() {
            Reply::FileNotFound => break,
            Reply::Contents { .. } => {}
            other => panic!("unexpected {other:?}"),
        }
        assert!(tokio::time::Instant::now() < deadline, "file never expired");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Expired means gone for cas and delete too.
    assert_eq!(
        conn.call(&Command::Cas {
            name: name("short"),
            version: 2,
            content: Bytes::from_static(b"y"),
            exptime_s: 0,
        })
        .await
        .unwrap(),
        Reply::FileNotFound
    );
    assert_eq!(
        conn.call(&Command::Delete {
            name: name("short")
        })
        .await
        .unwrap(),
        Reply::FileNotFound
    );

    // A write cancels an earlier expiry, and a stale expiry never deletes a re-created file.
    conn.call(&write("keep", b"x", 1)).await.unwrap();
    conn.call(&write("keep", b"y", 0)).await.unwrap();
    conn.call(&write("again", b"x", 1)).await.unwrap();
    conn.call(&Command::Delete {
        name: name("again"),
    })
    .await
    .unwrap();
    conn.call(&write("again", b"z", 0)).await.unwrap();
    // Nothing to await here: the point is that time passes and nothing happens.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    for n in ["keep", "again"] {
        match conn.call(&read(n)).await.unwrap() {
            Reply::Contents { exptime_s: 0, .. } => {}
            other => panic!("{n}: expected a live file, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn thirty_clients_cas_loop_on_one_file() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let mut conn = server.connect().await;
    assert_eq!(
        conn.call(&write("counter", b"0", 0)).await.unwrap(),
        Reply::Written { version: 1 }
    );
    let mut tasks = Vec::new();
    for client in 0..30 {
        let mut conn = server.connect().await;
        tasks.push(tokio::spawn(async move {
            let mut versions = Vec::new();
            let mut seen = 1;
            while versions.len() < 10 {
                let cas = Command::Cas {
                    name: name("counter"),
                    version: seen,
                    content: Bytes::from(format!("{client}")),
                    exptime_s: 0,
                };
                match conn.call(&cas).await.unwrap() {
                    Reply::Written { version } => {
                        versions.push(version);
                        seen = version;
                    }
                    Reply::VersionMismatch { current } => seen = current,
                    other => panic!("unexpected {other:?}"),
                }
            }
            versions
        }));
    }
    let mut all = Vec::new();
    for task in tasks {
        all.extend(task.await.unwrap());
    }
    assert_eq!(all.len(), 300, "exactly 300 OKs");
    let distinct: BTreeSet<u64> = all.iter().copied().collect();
    assert_eq!(distinct.len(), 300, "300 distinct versions");
    assert_eq!(distinct.last(), Some(&301));
}

#[tokio::test]
async fn malformed_input_never_disturbs_other_connections() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(dir.path());
    let mut good = server.connect().await;
    good.call(&write("steady", b"1", 0)).await.unwrap();
    // Start a write on the good connection and leave it half sent.
    good.queue_raw(b"write steady 4\r\nab");
    good.flush().await.unwrap();

    let garbage: Vec<Vec<u8>> = vec![
        b"\r\n".to_vec(),
        b"READ foo\r\n".to_vec(),
        b"write\r\n".to_vec(),
        b"write foo -1\r\n".to_vec(),
        b"write foo 99999999999999999999999\r\n".to_vec(),
        b"cas foo x 1\r\nz\r\n".to_vec(),
        vec![b'a'; 5000],
        b"\r\n".to_vec(),
        (0..=255u8).collect(),
        b"\n\n\n\0\0\0\r\n".to_vec(),
        b"write foo 3\r\nabcdefgh".to_vec(), // framing lost: the server closes this connection
    ];
    for junk in &garbage {
        let mut bad = TcpStream::connect(&server.addr).await.unwrap();
        bad.write_all(junk).await.unwrap();
        let _ = bad.shutdown().await;
        let mut out = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(10), bad.read_to_end(&mut out)).await;
        let text = String::from_utf8_lossy(&out);
        assert!(
            !text.contains("OK"),
            "junk {junk:?} must not succeed, got {text:?}"
        );
    }
    // Huge NUMBYTES announced and never sent: refused at once, nothing buffered.
    let mut huge = server.connect().await;
    let replies = raw_exchange(&mut huge, b"write foo 18446744073709551615\r\n", 1).await;
    assert_eq!(replies, vec![Reply::CmdErr]);

    good.queue_raw(b"cd\r\n");
    assert_eq!(good.recv().await.unwrap(), Reply::Written { version: 2 });
    assert_eq!(
        good.call(&read("steady")).await.unwrap(),
        Reply::Contents {
            version: 2,
            exptime_s: 0,
            content: Bytes::from_static(b"abcd"),
        }
    );
    assert!(server.is_running());
}

#[tokio::test]
async fn sigterm_stops_gracefully_and_keeps_the_data() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(dir.path());
    let mut conn = server.connect().await;
    conn.call(&write("kept", b"data", 0)).await.unwrap();
    let status = server.terminate();
    assert!(status.success(), "graceful stop exits 0, got {status}");
    server.restart();
    let mut conn = server.connect().await;
    assert_eq!(
        conn.call(&read("kept")).await.unwrap(),
        Reply::Contents {
            version: 1,
            exptime_s: 0,
            content: Bytes::from_static(b"data"),
        }
    );
}

#[tokio::test]
async fn status_endpoint_reports_the_node_and_counts_fsyncs() {
    let dir = tempfile::tempdir().unwrap();
    let http = common::free_port();
    let server = Server::start_with(dir.path(), &["--http", &http]);
    let mut conn = server.connect().await;
    for i in 0..10 {
        conn.call(&write(&format!("s{i}"), b"x", 0)).await.unwrap();
    }
    let status = common::http_status(&http).await;
    assert_eq!(status["role"], "leader");
    assert_eq!(status["files"], 10);
    assert_eq!(status["version"], 10);
    assert_eq!(status["requests"]["write"], 10);
    assert_eq!(status["applied_index"], status["commit_index"]);
    // Every acknowledged write was fsync'd: at least one fsync per sequential write.
    assert!(status["wal_fsyncs"].as_u64().unwrap() >= 10);
}

#[tokio::test]
async fn a_half_sent_command_times_out_but_an_idle_connection_does_not() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with(dir.path(), &["--partial-command-timeout", "1"]);
    let mut idle = TcpStream::connect(&server.addr).await.unwrap();
    let mut half = TcpStream::connect(&server.addr).await.unwrap();
    // Announces 10 bytes, sends 3, and stalls: the server closes it after the timeout.
    half.write_all(b"write stalled 10\r\nabc").await.unwrap();
    let mut rest = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(20), half.read_to_end(&mut rest)).await;
    assert!(
        closed.is_ok(),
        "the half-sent command's connection was closed"
    );
    assert!(rest.is_empty(), "nothing was answered: {rest:?}");
    // A connection that sat idle between commands for longer is still served.
    common::play_session(
        &mut idle,
        &[(b"read stalled\r\n", b"ERR_FILE_NOT_FOUND\r\n")],
    )
    .await;
}

/// Idle HTTP clients cannot take the status port: connections beyond the cap wait to be
/// accepted, and a connection that never sends its request is closed after the header
/// timeout, so a real request still gets its answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_http_connections_are_capped_and_closed() {
    use tokio::io::AsyncReadExt;
    let dir = tempfile::tempdir().unwrap();
    let http = common::free_port();
    let _server = Server::start_with(dir.path(), &["--http", &http]);
    let mut idle = Vec::new();
    for _ in 0..server::status::HTTP_CONNECTIONS_MAX {
        idle.push(tokio::net::TcpStream::connect(&http).await.unwrap());
    }
    // Every slot is held by a client that says nothing: this one waits for a slot, which the
    // header timeout frees.
    let status = common::http_status(&http).await;
    assert_eq!(status["role"], "leader");
    // And the idle ones were closed by the server (end of stream, no response).
    for mut conn in idle {
        let mut buf = [0u8; 1];
        assert_eq!(conn.read(&mut buf).await.unwrap_or(0), 0);
    }
}

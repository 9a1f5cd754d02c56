//! Guards `raftfs client`, the user's command line (docs/protocol.md, "Command line"): the
//! one-shot commands' output and exit statuses (0, 1 for ERR_FILE_NOT_FOUND and ERR_VERSION, 2
//! for everything else), byte-exact content through stdin, files and stdout, redirects
//! followed from a follower, TLS with --ca, and the shell both piped and on a terminal.
#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests fail loudly on purpose.

mod common;

use std::ffi::OsStr;
use std::io::{Read, Write};
use std::process::{Command, Output, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use common::Server;
use common::cluster::TestCluster;

/// How long a terminal test waits for the shell to print what it expects.
const SHELL_WAIT: Duration = Duration::from_secs(20);

/// Runs `raftfs client ARGS` with `stdin` piped in, to completion.
fn client<S: AsRef<OsStr>>(args: &[S], stdin: &[u8]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_raftfs"))
        .arg("client")
        .args(args)
        .env("RUST_LOG", "off")
        .env_remove("HOME")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run raftfs client");
    let mut pipe = child.stdin.take().unwrap();
    let input = stdin.to_vec();
    // A writer of its own: a child that answers before reading all of stdin must not deadlock
    // us on a full pipe.
    let writer = std::thread::spawn(move || {
        let _ = pipe.write_all(&input);
    });
    let output = child.wait_with_output().unwrap();
    writer.join().unwrap();
    output
}

/// `raftfs client --members ADDR ARGS` with nothing on stdin.
fn client_at(addr: &str, args: &[&str]) -> Output {
    let mut all = vec!["--members", addr];
    all.extend_from_slice(args);
    client(&all, b"")
}

/// Asserts the exit status, and on failure shows what the command said.
fn assert_status(output: &Output, code: i32) {
    assert_eq!(
        output.status.code(),
        Some(code),
        "stdout {:?}, stderr {:?}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Asserts exit status 0 and returns stdout.
fn ok(output: Output) -> Vec<u8> {
    assert_status(&output, 0);
    output.stdout
}

/// Asserts exit status `code` with exactly one line `raftfs client: ...` on stderr containing
/// `needle`, and nothing on stdout.
fn fails(output: &Output, code: i32, needle: &str) {
    assert_status(output, code);
    let stderr = String::from_utf8_lossy(&output.stderr);
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "one line, got {stderr:?}");
    assert!(lines[0].starts_with("raftfs client: "), "{stderr:?}");
    assert!(lines[0].contains(needle), "{stderr:?} mentions {needle:?}");
    assert!(output.stdout.is_empty(), "{:?}", output.stdout);
}

/// The version a write or cas printed.
fn version(stdout: &[u8]) -> u64 {
    let text = String::from_utf8_lossy(stdout);
    text.strip_suffix('\n')
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("a version and a newline, got {text:?}"))
}

#[test]
fn one_shot_commands_print_results_and_exit_0_or_1() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"));
    let at = |args: &[&str]| client_at(&server.addr, args);

    fails(&at(&["read", "greeting"]), 1, "ERR_FILE_NOT_FOUND");
    let v1 = version(&ok(at(&["write", "greeting", "--value", "hello"])));
    assert_eq!(ok(at(&["read", "greeting"])), b"hello");
    // The options may come after the subcommand too.
    let verbose = client(&["read", "greeting", "-v", "--members", &server.addr], b"");
    assert_status(&verbose, 0);
    assert_eq!(verbose.stdout, b"hello");
    assert_eq!(
        String::from_utf8_lossy(&verbose.stderr),
        format!("version {v1}, 5 bytes, never expires\n")
    );

    let v2 = version(&ok(at(&[
        "write",
        "greeting",
        "--value",
        "-dashed-",
        "--exptime",
        "300",
    ])));
    assert!(v2 > v1);
    let verbose = at(&["read", "--verbose", "greeting"]);
    assert_eq!(verbose.stdout, b"-dashed-");
    let stderr = String::from_utf8_lossy(&verbose.stderr);
    let left: u64 = stderr
        .strip_prefix(&format!("version {v2}, 8 bytes, expires in "))
        .and_then(|rest| rest.strip_suffix(" s\n"))
        .and_then(|secs| secs.parse().ok())
        .unwrap_or_else(|| panic!("{stderr:?}"));
    // Seconds remaining, rounded up: 300 unless this machine took seconds between the two.
    assert!((290..=300).contains(&left), "{stderr:?}");

    fails(
        &at(&["cas", "greeting", &v1.to_string(), "--value", "x"]),
        1,
        &format!("ERR_VERSION {v2}"),
    );
    let v3 = version(&ok(at(&[
        "cas",
        "greeting",
        &v2.to_string(),
        "--value",
        "bye",
    ])));
    assert!(v3 > v2);
    assert_eq!(ok(at(&["read", "greeting"])), b"bye");
    fails(
        &at(&["cas", "nothing", "1", "--value", "x"]),
        1,
        "ERR_FILE_NOT_FOUND",
    );

    assert!(ok(at(&["delete", "greeting"])).is_empty());
    fails(&at(&["delete", "greeting"]), 1, "ERR_FILE_NOT_FOUND");
    fails(&at(&["read", "greeting"]), 1, "ERR_FILE_NOT_FOUND");
}

#[test]
fn content_is_exact_bytes_through_stdin_files_and_stdout() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"));
    let mut content: Vec<u8> = (0..=255).collect();
    content.extend_from_slice(b"\r\n\0\r\nwrite x 3\r\n\n");
    let members = ["--members", server.addr.as_str()];

    let from_stdin = client(&[&members[..], &["write", "bin", "-"]].concat(), &content);
    let v1 = version(&ok(from_stdin));
    assert_eq!(ok(client_at(&server.addr, &["read", "bin"])), content);

    let path = dir.path().join("content");
    let reversed: Vec<u8> = content.iter().rev().copied().collect();
    std::fs::write(&path, &reversed).unwrap();
    let path = path.to_str().unwrap();
    version(&ok(client_at(
        &server.addr,
        &["write", "bin2", "--file", path],
    )));
    assert_eq!(ok(client_at(&server.addr, &["read", "bin2"])), reversed);

    let v1 = v1.to_string();
    let cas = [&members[..], &["cas", "bin", &v1, "-"]].concat();
    version(&ok(client(&cas, &reversed)));
    assert_eq!(ok(client_at(&server.addr, &["read", "bin"])), reversed);

    // Empty content is content too.
    version(&ok(client(
        &[&members[..], &["write", "empty", "-"]].concat(),
        b"",
    )));
    let empty = client_at(&server.addr, &["read", "empty", "--verbose"]);
    assert_status(&empty, 0);
    assert!(empty.stdout.is_empty());
    assert!(String::from_utf8_lossy(&empty.stderr).contains(", 0 bytes, "));
}

#[test]
fn everything_else_exits_2_with_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with(&dir.path().join("data"), &["--max-file-size", "8"]);
    let at = |args: &[&str]| client_at(&server.addr, args);

    // Nobody listens on a free port: connection refused until the timeout.
    let nobody = common::free_port();
    for args in [
        &["read", "f"][..],
        &["write", "f", "--value", "x"],
        &["delete", "f"],
    ] {
        let all = [&["--timeout", "0.5"][..], args].concat();
        fails(&client_at(&nobody, &all), 2, "refused");
    }

    // The store's own ERR_CMD_ERR: content over its maximum file size.
    fails(
        &at(&["write", "big", "--value", "123456789"]),
        2,
        "ERR_CMD_ERR",
    );
    // Names the protocol does not allow never reach the store.
    fails(&at(&["read", "a b"]), 2, "bad file name");
    fails(&at(&["write", "", "--value", "x"]), 2, "bad file name");
    let missing = dir.path().join("missing");
    fails(
        &at(&["write", "f", "--file", missing.to_str().unwrap()]),
        2,
        "cannot read",
    );
    let tls_ca = dir.path().join("not-a-ca.pem");
    std::fs::write(&tls_ca, "garbage").unwrap();
    fails(
        &at(&["--ca", tls_ca.to_str().unwrap(), "read", "f"]),
        2,
        "CA certificate",
    );

    // Usage errors (clap's): exit status 2 as well.
    for args in [
        &["write", "f"][..],
        &["write", "f", "--value", "x", "--file", "y"],
        &["write", "f", "--value", "x", "-"],
        &["write", "f", "stdin"],
        &["cas", "f", "latest", "--value", "x"],
        &["read"],
        &["frobnicate"],
        &["--timeout", "0", "read", "f"],
    ] {
        let output = at(args);
        assert_status(&output, 2);
        assert!(!output.stderr.is_empty(), "{args:?} says why");
    }
    // And nothing of that reached the store.
    fails(&at(&["read", "f"]), 1, "ERR_FILE_NOT_FOUND");
}

#[test]
fn ca_makes_the_client_speak_tls() {
    let dir = tempfile::tempdir().unwrap();
    let certs = dir.path().join("certs");
    let hosts = ["localhost".to_owned(), "127.0.0.1".to_owned()];
    raftfs::certs::generate(&certs, &[1], "raftfs", &hosts).unwrap();
    let server = Server::start_with(
        &dir.path().join("data"),
        &["--certs", certs.to_str().unwrap(), "--client-tls"],
    );
    let ca = raftfs::certs::ca_path(&certs);
    let ca = ca.to_str().unwrap();
    let v = version(&ok(client_at(
        &server.addr,
        &["--ca", ca, "write", "secret", "--value", "over tls"],
    )));
    let read = client_at(&server.addr, &["--ca", ca, "read", "secret", "-v"]);
    assert_eq!(ok(read), b"over tls");
    assert!(v > 0);
    // Plaintext to a TLS port gets no answer: exit status 2.
    let plain = client_at(&server.addr, &["--timeout", "0.5", "read", "secret"]);
    assert_status(&plain, 2);
}

/// `raftfs client ARGS` run without blocking the runtime (the cluster's peer proxies run on
/// it), `stdin` piped in.
async fn client_async(args: &[&str], stdin: &[u8]) -> Output {
    use tokio::io::AsyncWriteExt;
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_raftfs"))
        .arg("client")
        .args(args)
        .env("RUST_LOG", "off")
        .env_remove("HOME")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run raftfs client");
    let mut pipe = child.stdin.take().unwrap();
    pipe.write_all(stdin).await.unwrap();
    drop(pipe);
    child.wait_with_output().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commands_sent_to_a_follower_follow_the_redirect() {
    let cluster = TestCluster::start(3).await;
    let leader = cluster.leader().await;
    let follower = cluster.ids().into_iter().find(|&i| i != leader).unwrap();
    let addr = cluster.client_addr(follower);
    let at = |args: &'static [&'static str]| {
        let addr = addr.clone();
        async move {
            let mut all = vec!["--members", addr.as_str()];
            all.extend_from_slice(args);
            client_async(&all, b"").await
        }
    };

    let v1 = version(&ok(at(&["write", "f", "--value", "one"]).await));
    assert_eq!(ok(at(&["read", "f"]).await), b"one");
    let cas = client_async(
        &["--members", &addr, "cas", "f", &v1.to_string(), "-"],
        b"two",
    )
    .await;
    version(&ok(cas));
    assert_eq!(ok(at(&["read", "f"]).await), b"two");
    assert!(ok(at(&["delete", "f"]).await).is_empty());
    fails(&at(&["read", "f"]).await, 1, "ERR_FILE_NOT_FOUND");

    // The shell too, and its members table names every member and the leader.
    let script = b"write g \"via the shell\"\nread g\nmembers\n";
    let shell = client_async(&["--members", &addr], script).await;
    let stdout = String::from_utf8(ok(shell)).unwrap();
    let mut lines = stdout.lines();
    assert!(lines.next().unwrap().starts_with("OK "), "{stdout}");
    assert_eq!(lines.next(), Some("via the shell"), "{stdout}");
    assert!(lines.next().unwrap().starts_with("(version "), "{stdout}");
    assert!(lines.next().unwrap().starts_with("ID "), "{stdout}");
    let rows: Vec<&str> = lines.collect();
    assert_eq!(rows.len(), 3, "{stdout}");
    // One leader (not necessarily the one found above: a busy machine may have seen an
    // election since), and every member's client address.
    assert_eq!(
        rows.iter().filter(|row| row.contains(" leader ")).count(),
        1,
        "{stdout}"
    );
    for addr in cluster.client_addrs() {
        assert!(rows.iter().any(|row| row.contains(&addr)), "{stdout}");
    }
}

#[test]
fn the_shell_reads_a_script_from_a_pipe() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"));
    let members = ["--members", server.addr.as_str()];

    // Lines may end in \r\n; comments and blank lines are skipped; quit ends the script.
    let script = "# a comment\n\
                  write greeting \"hello world\"\r\n\
                  read greeting\n\
                  \n\
                  write bin \"a\\r\\n\\0\\xff\" 600\n\
                  read bin\n\
                  cas greeting 1 'bye bye'\n\
                  cas greeting 1 again\n\
                  read missing\n\
                  delete greeting\n\
                  quit\n\
                  write never \"run\"\n";
    let output = client(&members, script.as_bytes());
    assert_status(&output, 1);
    let stdout = String::from_utf8(output.stdout).unwrap();
    let expected = [
        "OK 1",
        "hello world",
        "(version 1, 11 bytes, never expires)",
        "OK 2",
        r#""a\r\n\0\xff""#,
        "(version 2, 5 bytes, expires in 600 s)",
        "OK 3",
        "ERR_VERSION 3",
        "ERR_FILE_NOT_FOUND",
        "OK",
    ];
    assert_eq!(stdout.lines().collect::<Vec<_>>(), expected, "{stdout}");
    assert!(output.stderr.is_empty());
    fails(
        &client_at(&server.addr, &["read", "never"]),
        1,
        "ERR_FILE_NOT_FOUND",
    );

    // A malformed line is reported and the script goes on; the worst status wins.
    let output = client(
        &members,
        b"read\nwrite f 'x' soon\nread missing\nread bin\n",
    );
    assert_status(&output, 2);
    let stdout = String::from_utf8(output.stdout).unwrap();
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines[0], "error: usage: read NAME", "{stdout}");
    assert!(lines[1].starts_with("error: EXPTIME must be"), "{stdout}");
    assert_eq!(lines[2], "ERR_FILE_NOT_FOUND", "{stdout}");
    assert_eq!(lines[3], r#""a\r\n\0\xff""#, "{stdout}");

    // All well: 0. `help` lists the commands.
    let output = client(&members, b"help\nread bin\n");
    let stdout = String::from_utf8(ok(output)).unwrap();
    assert!(
        stdout.contains("cas NAME VERSION VALUE [EXPTIME]"),
        "{stdout}"
    );

    // A member that cannot be reached: 2, and the reason on stdout with the other replies.
    let nobody = common::free_port();
    let output = client(&["--members", &nobody, "--timeout", "0.5"], b"read f\n");
    assert_status(&output, 2);
    assert!(
        String::from_utf8_lossy(&output.stdout).starts_with("error: cluster unavailable"),
        "{output:?}"
    );
}

/// A process on a pseudo-terminal: what it prints is collected by a thread; [`Pty::expect`]
/// waits for text to appear.
struct Pty {
    child: std::process::Child,
    input: std::fs::File,
    output: Arc<(Mutex<Vec<u8>>, Condvar)>,
    /// Where the next [`Pty::expect`] starts looking.
    seen: usize,
}

impl Pty {
    fn spawn(args: &[&str], home: &std::path::Path) -> Pty {
        let size = nix::pty::Winsize {
            ws_row: 24,
            ws_col: 200,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        let pty = nix::pty::openpty(Some(&size), None).unwrap();
        let mut command = Command::new(env!("CARGO_BIN_EXE_raftfs"));
        command
            .arg("client")
            .args(args)
            .env("RUST_LOG", "off")
            .env("TERM", "xterm")
            .env("HOME", home)
            .stdin(Stdio::from(pty.slave.try_clone().unwrap()))
            .stdout(Stdio::from(pty.slave.try_clone().unwrap()))
            .stderr(Stdio::from(pty.slave));
        let child = command.spawn().unwrap();
        // The builder holds our copies of the terminal's far end: without them, reading the
        // near end ends (EIO) once the child exits.
        drop(command);
        let input = std::fs::File::from(pty.master);
        let mut reader = input.try_clone().unwrap();
        let output: Arc<(Mutex<Vec<u8>>, Condvar)> = Arc::default();
        let collected = output.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n @ 1..) = reader.read(&mut buf) {
                let (bytes, arrived) = &*collected;
                bytes.lock().unwrap().extend_from_slice(&buf[..n]);
                arrived.notify_all();
            }
        });
        Pty {
            child,
            input,
            output,
            seen: 0,
        }
    }

    /// Types `keys`.
    fn send(&mut self, keys: &str) {
        self.input.write_all(keys.as_bytes()).unwrap();
    }

    /// Waits until `text` appears after what earlier calls found.
    fn expect(&mut self, text: &str) {
        let deadline = Instant::now() + SHELL_WAIT;
        let (bytes, arrived) = &*self.output;
        let mut bytes = bytes.lock().unwrap();
        loop {
            let found = bytes[self.seen..]
                .windows(text.len())
                .position(|window| window == text.as_bytes());
            if let Some(at) = found {
                self.seen += at + text.len();
                return;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero(),
                "{text:?} did not appear; the terminal shows {:?}",
                String::from_utf8_lossy(&bytes[self.seen..])
            );
            bytes = arrived.wait_timeout(bytes, left).unwrap().0;
        }
    }
}

#[test]
fn the_shell_on_a_terminal_prompts_edits_and_answers() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"));
    let home = dir.path().join("home");
    std::fs::create_dir(&home).unwrap();
    let mut shell = Pty::spawn(&["--members", &server.addr], &home);

    shell.expect("raftfs> ");
    shell.send("write greeting \"hello pty\"\r");
    shell.expect("OK 1");
    // Once connected, the prompt names the member.
    let prompt = format!("raftfs {}> ", server.addr);
    shell.expect(&prompt);
    // Line editing: Ctrl-A goes to the start of the line, where the missing `r` goes.
    shell.send("ead greeting\x01r\r");
    shell.expect("hello pty");
    shell.expect("(version 1, 9 bytes, never expires)");
    shell.expect(&prompt);
    // Up arrow recalls the last line.
    shell.send("\x1b[A\r");
    shell.expect("(version 1, 9 bytes, never expires)");
    shell.expect(&prompt);
    shell.send("read missing\r");
    shell.expect("ERR_FILE_NOT_FOUND");
    shell.expect(&prompt);
    shell.send("quit\r");
    let status = shell.child.wait().unwrap();
    assert!(status.success(), "{status:?}");
    let history = std::fs::read_to_string(home.join(".raftfs_history")).unwrap();
    assert!(
        history.contains("write greeting \"hello pty\""),
        "{history:?}"
    );
}

/// A fake member on a free port: every connection it accepts gets `answer` (if any) once
/// something arrives, and is then held open without another word.
fn fake_member(answer: Option<&'static [u8]>) -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { return };
            std::thread::spawn(move || {
                let mut buf = [0u8; 1024];
                while let Ok(1..) = conn.read(&mut buf) {
                    if let Some(answer) = answer {
                        let _ = conn.write_all(answer);
                    }
                }
            });
        }
    });
    addr
}

#[test]
fn a_member_that_never_answers_or_fails_a_write_exits_2() {
    let silent = fake_member(None);
    fails(
        &client_at(&silent, &["--timeout", "0.5", "read", "f"]),
        2,
        "no answer within",
    );
    // ERR_INTERNAL to a write: it may or may not have been applied, and the client says so
    // instead of retrying it.
    let failing = fake_member(Some(b"ERR_INTERNAL\r\n"));
    fails(
        &client_at(&failing, &["write", "f", "--value", "x"]),
        2,
        "outcome unknown",
    );
    // And a reply that answers another command is not taken for success.
    let confused = fake_member(Some(b"OK\r\n"));
    fails(
        &client_at(&confused, &["write", "f", "--value", "x"]),
        2,
        "unexpected reply: OK",
    );
}

#[test]
fn every_client_subcommand_has_help() {
    for sub in [&[][..], &["read"], &["write"], &["cas"], &["delete"]] {
        let args = [&["client"][..], sub, &["--help"]].concat();
        let output = Command::new(env!("CARGO_BIN_EXE_raftfs"))
            .args(&args)
            .output()
            .unwrap();
        assert_status(&output, 0);
        let help = String::from_utf8_lossy(&output.stdout);
        assert!(help.contains("Usage: raftfs client"), "{args:?}: {help}");
        assert!(help.contains("--members"), "{args:?}: {help}");
    }
}

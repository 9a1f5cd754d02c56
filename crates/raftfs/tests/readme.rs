//! Walks the README's quick start as a new user would, with the built binary standing for
//! `cargo run --release --`. The commands and the telnet sessions are read from README.md (the
//! code blocks after `<!-- quickstart: NAME -->` markers), so the README and this test cannot
//! drift apart: the single-node session is replayed verbatim, byte for byte, the local
//! cluster must redirect a write sent to a follower to its leader, and the cluster file the
//! README shows must load. scripts/quickstart.sh walks the same blocks in a fresh clone,
//! building with cargo.
//!
//! The one liberty taken: each server gets free ports (`--listen 127.0.0.1:0`, `--base-port`)
//! instead of the README's 8080, so that this test runs beside others on a shared machine.
//! Everything waits for events (the "raftfs serving" log line, replies), never for a time.
#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests fail loudly on purpose.

mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::free_base_port;

/// What stands for the binary in the README's commands.
const CARGO_RUN: &str = "cargo run --release --";

/// The line a server logs once it serves clients; it names the bound address.
const READY_MARKER: &str = "raftfs serving";

/// How long servers may take to start, a cluster to elect a leader, and processes to stop:
/// generous, CI machines are slow and busy.
const DEADLINE: Duration = Duration::from_secs(60);

/// The telnet session's own lines, which are not the server's.
const TELNET_CHATTER: [&str; 2] = ["Connected to ", "Escape character is "];

/// The README's quick-start blocks, by marker name, each a list of lines without the code
/// indentation.
fn quickstart() -> BTreeMap<String, Vec<String>> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../README.md");
    let text = std::fs::read_to_string(&path).expect("read README.md");
    let mut blocks = BTreeMap::new();
    let mut lines = text.lines().peekable();
    while let Some(line) = lines.next() {
        let Some(name) = line
            .trim()
            .strip_prefix("<!-- quickstart:")
            .and_then(|rest| rest.strip_suffix("-->"))
        else {
            continue;
        };
        let mut block = Vec::new();
        if lines.peek().is_some_and(|l| l.starts_with("```")) {
            lines.next();
            for l in lines.by_ref() {
                if l.starts_with("```") {
                    break;
                }
                block.push(l.to_owned());
            }
        } else {
            while let Some(l) = lines.next_if(|l| l.starts_with("    ")) {
                block.push(l[4..].to_owned());
            }
        }
        assert!(!block.is_empty(), "the quickstart block {name} is empty");
        let previous = blocks.insert(name.trim().to_owned(), block);
        assert!(previous.is_none(), "two quickstart blocks named {name}");
    }
    blocks
}

/// The arguments of the one `cargo run --release -- ...` command of block `name`.
fn raftfs_args(blocks: &BTreeMap<String, Vec<String>>, name: &str) -> Vec<String> {
    let block = &blocks[name];
    assert_eq!(block.len(), 1, "block {name} is one command");
    let args = block[0]
        .strip_prefix(CARGO_RUN)
        .unwrap_or_else(|| panic!("block {name} runs `{CARGO_RUN} ...`: {:?}", block[0]));
    args.split_whitespace().map(str::to_owned).collect()
}

/// One command of a telnet session and the server's exact answer.
#[derive(Debug)]
struct Exchange {
    send: Vec<u8>,
    expect: Vec<u8>,
}

/// A telnet session block: where it connects (`$ telnet HOST PORT`) and its exchanges. A line
/// whose first word is a verb is sent, with the content line after a write or cas; every
/// other line is the server's (a CONTENTS line and the content line after it).
fn session(block: &[String]) -> (String, u16, Vec<Exchange>) {
    let first: Vec<&str> = block[0].split_whitespace().collect();
    let ["$", "telnet", host, port] = first[..] else {
        panic!("a session starts with `$ telnet HOST PORT`: {:?}", block[0]);
    };
    let mut exchanges: Vec<Exchange> = Vec::new();
    let mut lines = block[1..]
        .iter()
        .filter(|l| !TELNET_CHATTER.iter().any(|c| l.starts_with(c)));
    while let Some(line) = lines.next() {
        let crlf = |l: &str| format!("{l}\r\n").into_bytes();
        let verb = line.split_whitespace().next().unwrap_or("");
        if ["read", "write", "cas", "delete"].contains(&verb) {
            let mut send = crlf(line);
            if verb == "write" || verb == "cas" {
                let content = lines.next().expect("content after write or cas");
                let numbytes: usize = line
                    .split_whitespace()
                    .nth(if verb == "write" { 2 } else { 3 })
                    .and_then(|n| n.parse().ok())
                    .expect("NUMBYTES");
                assert_eq!(numbytes, content.len(), "NUMBYTES of {line:?}");
                send.extend(crlf(content));
            }
            exchanges.push(Exchange {
                send,
                expect: Vec::new(),
            });
        } else {
            let exchange = exchanges.last_mut().expect("a command before its reply");
            exchange.expect.extend(crlf(line));
            if line.starts_with("CONTENTS ") {
                exchange
                    .expect
                    .extend(crlf(lines.next().expect("content after CONTENTS")));
            }
        }
    }
    (host.to_owned(), port.parse().expect("a port"), exchanges)
}

/// A `raftfs` process in its own process group, as a command typed at a shell prompt: Ctrl-C
/// reaches the whole group. Dropping it kills the group.
struct Process {
    child: Child,
    /// Log lines with the ready marker, as they come.
    ready: mpsc::Receiver<String>,
}

impl Process {
    fn start(dir: &Path, args: &[String]) -> Process {
        let mut child = Command::new(env!("CARGO_BIN_EXE_raftfs"))
            .args(args)
            .current_dir(dir)
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start raftfs");
        let stderr = child.stderr.take().expect("piped stderr");
        let (tx, ready) = mpsc::channel();
        std::thread::spawn(move || {
            // Drains the log to its end, so the processes never block on a full pipe.
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if std::env::var_os("RAFTFS_TEST_LOG").is_some() {
                    eprintln!("[raftfs] {line}");
                }
                if line.contains(READY_MARKER) {
                    let _ = tx.send(line);
                }
            }
        });
        Process { child, ready }
    }

    /// Waits for the next ready line and returns the client address it names.
    fn serving(&self) -> String {
        let line = self
            .ready
            .recv_timeout(DEADLINE)
            .expect("raftfs did not report it was serving");
        line.split_whitespace()
            .find_map(|field| field.strip_prefix("client="))
            .expect("the ready line names the client address")
            .to_owned()
    }

    /// Ctrl-C: SIGINT to the process group; waits for the exit.
    fn interrupt(&mut self) -> ExitStatus {
        let group = nix::unistd::Pid::from_raw(self.child.id() as i32);
        nix::sys::signal::killpg(group, nix::sys::signal::Signal::SIGINT).expect("SIGINT");
        let deadline = Instant::now() + DEADLINE;
        loop {
            if let Some(status) = self.child.try_wait().expect("poll raftfs") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "raftfs did not stop after Ctrl-C"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let group = nix::unistd::Pid::from_raw(self.child.id() as i32);
        let _ = nix::sys::signal::killpg(group, nix::sys::signal::Signal::SIGKILL);
        let _ = self.child.wait();
    }
}

fn connect(addr: &str) -> TcpStream {
    let stream = TcpStream::connect(addr).unwrap_or_else(|err| panic!("connect {addr}: {err}"));
    stream
        .set_read_timeout(Some(DEADLINE))
        .expect("read timeout");
    stream
}

/// Sends `exchange` and reads exactly as many bytes as it expects.
fn play(stream: &mut TcpStream, exchange: &Exchange) -> String {
    stream.write_all(&exchange.send).expect("send");
    let mut got = vec![0; exchange.expect.len()];
    stream.read_exact(&mut got).expect("the reply");
    String::from_utf8_lossy(&got).into_owned()
}

/// Sends `exchange` and reads one reply line.
fn reply_line(addr: &str, exchange: &Exchange) -> String {
    let mut stream = connect(addr);
    stream.write_all(&exchange.send).expect("send");
    let mut line = String::new();
    BufReader::new(stream)
        .read_line(&mut line)
        .expect("a reply line");
    line.trim_end().to_owned()
}

#[test]
fn the_readme_gives_the_build_and_test_commands() {
    let blocks = quickstart();
    assert_eq!(blocks["build"], ["cargo build --release"]);
    // .ci/run runs exactly this: the README's test command.
    assert_eq!(blocks["test"], ["cargo test --workspace"]);
    let names: Vec<&str> = blocks.keys().map(String::as_str).collect();
    assert_eq!(
        names,
        ["build", "cluster", "redirect", "serve", "session", "test"]
    );
}

#[test]
fn the_single_node_session_of_the_readme_is_what_a_server_says() {
    let blocks = quickstart();
    let args = raftfs_args(&blocks, "serve");
    assert_eq!(args, ["serve"]);
    let (host, port, exchanges) = session(&blocks["session"]);
    // The README's address is the default one, which --listen below replaces.
    assert_eq!((host.as_str(), port), ("localhost", 8080));
    let dir = tempfile::tempdir().unwrap();
    let mut listen = args.clone();
    listen.extend(["--listen".to_owned(), "127.0.0.1:0".to_owned()]);
    let mut server = Process::start(dir.path(), &listen);
    let addr = server.serving();

    let mut stream = connect(&addr);
    for exchange in &exchanges {
        let got = play(&mut stream, exchange);
        assert_eq!(
            got,
            String::from_utf8_lossy(&exchange.expect),
            "the reply to {:?}",
            String::from_utf8_lossy(&exchange.send)
        );
    }
    drop(stream);
    assert!(server.interrupt().success(), "serve exits 0 on Ctrl-C");
    // Where the README says the data went.
    assert!(dir.path().join("raftfs-data").is_dir());
}

#[test]
fn the_local_cluster_of_the_readme_redirects_a_follower_write_to_its_leader() {
    let blocks = quickstart();
    let args = raftfs_args(&blocks, "cluster");
    assert_eq!(args, ["cluster"]);
    let (host, readme_port, exchanges) = session(&blocks["redirect"]);
    assert_eq!(host, "localhost");
    let [write] = &exchanges[..] else {
        panic!("the redirect session is one write: {exchanges:?}");
    };
    let expected = String::from_utf8_lossy(&write.expect).trim_end().to_owned();
    let readme_leader: u16 = expected
        .strip_prefix("ERR_REDIRECT 127.0.0.1:")
        .and_then(|port| port.parse().ok())
        .unwrap_or_else(|| panic!("the README's follower redirects: {expected:?}"));
    // The README's ports are those of the default base port, 8080, and its 5 members.
    for port in [readme_port, readme_leader] {
        assert!((8080..8085).contains(&port), "port {port} of the README");
    }
    assert_ne!(readme_port, readme_leader);

    let nodes = 5;
    let base = free_base_port(nodes);
    let port = |readme: u16| base + (readme - 8080);
    let clients: Vec<String> = (0..nodes)
        .map(|i| format!("127.0.0.1:{}", base + i))
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let mut with_ports = args.clone();
    with_ports.extend(["--base-port".to_owned(), base.to_string()]);
    let mut cluster = Process::start(dir.path(), &with_ports);
    let mut serving: Vec<String> = (0..nodes).map(|_| cluster.serving()).collect();
    serving.sort();
    assert_eq!(serving, clients, "every member serves where it should");

    // The README's write to the README's member, until the cluster has a leader: a follower
    // that knows none yet waits for one a little, then answers ERR_INTERNAL.
    let deadline = Instant::now() + DEADLINE;
    let follower = format!("127.0.0.1:{}", port(readme_port));
    let (follower, leader) = loop {
        let reply = reply_line(&follower, write);
        if let Some(leader) = reply.strip_prefix("ERR_REDIRECT ") {
            break (follower.clone(), leader.to_owned());
        }
        if reply.starts_with("OK ") {
            // The README's member leads (it says that may happen): another member must
            // redirect to it.
            let other = clients.iter().find(|&c| *c != follower).unwrap().clone();
            let reply = reply_line(&other, write);
            if let Some(leader) = reply.strip_prefix("ERR_REDIRECT ") {
                break (other, leader.to_owned());
            }
        }
        assert!(
            reply == "ERR_INTERNAL" || reply.starts_with("OK "),
            "unexpected reply {reply:?}"
        );
        assert!(Instant::now() < deadline, "no leader in time");
    };
    assert!(
        clients.contains(&leader),
        "the redirect names a member: {leader}"
    );
    assert_ne!(leader, follower);
    // The redirect is right: the member it names runs the write.
    let reply = reply_line(&leader, write);
    assert!(reply.starts_with("OK "), "{leader} answers {reply:?}");

    // Ctrl-C stops every member, and the cluster command exits 0.
    assert!(cluster.interrupt().success(), "cluster exits 0 on Ctrl-C");
    for client in &clients {
        assert!(
            TcpStream::connect(client).is_err(),
            "member at {client} still running"
        );
    }
    assert!(dir.path().join("raftfs-cluster/cluster.toml").is_file());
    assert!(dir.path().join("raftfs-cluster/certs/ca.pem").is_file());
}

#[test]
fn the_cluster_file_the_readme_shows_loads() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../README.md");
    let text = std::fs::read_to_string(&path).expect("read README.md");
    let (_, rest) = text.split_once("```toml\n").expect("a TOML block");
    let (toml, _) = rest.split_once("```").expect("its end");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("cluster.toml");
    std::fs::write(&file, toml).unwrap();
    let cluster = server::config::ClusterFile::load(&file).expect("the README's cluster file");
    assert_eq!(cluster.member.len(), 1);
}

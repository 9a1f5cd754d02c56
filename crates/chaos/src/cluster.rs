//! Five (or any number of) real `raftfs serve` processes on loopback, each behind its fault
//! proxy, with the controls the nemesis needs: kill -9, SIGSTOP/SIGCONT, restart (optionally
//! under libfaketime with a clock offset) and a torn log tail.

use std::fs::OpenOptions;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::net::TcpListener;
use tokio::process::{Child, Command};
use tokio::sync::oneshot;

use crate::Error;
use crate::proxy::{Links, dial_from};
use crate::status::{self, Status};

/// The line a member logs once it serves clients.
const READY_MARKER: &str = "raftfs serving";

/// How long a member may take to start serving: generous, the machine is shared.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// Election timeout of the cluster, ms; the nemesis pauses members for longer than this.
pub const ELECTION_TIMEOUT_MS: u64 = 500;

/// One member: its addresses, its data, its process.
pub struct Member {
    /// Its id (1-based).
    pub id: usize,
    /// Client address (the text protocol).
    pub client: String,
    /// Status address (HTTP).
    pub http: String,
    /// Where it really listens for peers, behind its proxy.
    peer_listen: String,
    /// Its data directory.
    pub data_dir: PathBuf,
    /// Its log (stderr of every incarnation, appended).
    pub log: PathBuf,
    child: Option<Child>,
    /// Stopped with SIGSTOP and not continued yet.
    pub paused: bool,
    /// Its clock offset, seconds (libfaketime); 0 runs it plainly.
    pub skew_s: i64,
    /// Times it was started.
    pub starts: u64,
}

/// The running cluster.
pub struct Cluster {
    /// Members, index `id - 1`.
    pub members: Vec<Member>,
    /// The peer links' faults.
    pub links: Arc<Links>,
    config: PathBuf,
    raftfs: PathBuf,
    faketime: Option<PathBuf>,
    /// Members found already gone when the nemesis came to kill them: (id, exit status).
    found_dead: Vec<(usize, String)>,
}

impl Cluster {
    /// Writes a cluster file under `dir` and starts `n` members of `raftfs`, each behind its
    /// proxy, waiting until each serves clients. `settings` are extra top-level TOML keys.
    pub async fn start(
        raftfs: &Path,
        dir: &Path,
        n: usize,
        settings: &str,
        ports: &mut PortPicker,
    ) -> Result<Cluster, Error> {
        let links = Links::new(n);
        let mut text = format!(
            "election_timeout_ms = {ELECTION_TIMEOUT_MS}\nheartbeat_interval_ms = 50\n{settings}\n"
        );
        let mut members = Vec::new();
        for id in 1..=n {
            let (client, http, peer_listen) = (ports.pick()?, ports.pick()?, ports.pick()?);
            // The proxy's listener never moves, so an ephemeral port is fine for it.
            let listener = TcpListener::bind("127.0.0.1:0")
                .await
                .map_err(|e| Error::io("bind a proxy listener", e))?;
            let advertised = listener
                .local_addr()
                .map_err(|e| Error::io("proxy address", e))?;
            links.start_proxy(id, listener, peer_listen.clone());
            text.push_str(&format!(
                "[[member]]\nid = {id}\npeer = \"{advertised}\"\nclient = \"{client}\"\nhttp = \"{http}\"\n"
            ));
            members.push(Member {
                id,
                client,
                http,
                peer_listen,
                data_dir: dir.join(format!("data-{id}")),
                log: dir.join(format!("member-{id}.log")),
                child: None,
                paused: false,
                skew_s: 0,
                starts: 0,
            });
        }
        let config = dir.join("cluster.toml");
        std::fs::write(&config, text).map_err(|e| Error::io("write cluster.toml", e))?;
        make_certs(raftfs, dir, n).await?;
        let mut cluster = Cluster {
            members,
            links,
            config,
            raftfs: raftfs.to_owned(),
            faketime: find_libfaketime(),
            found_dead: Vec::new(),
        };
        for id in 1..=n {
            cluster.spawn(id).await?;
        }
        Ok(cluster)
    }

    /// Whether clock skew can be injected (libfaketime is installed).
    pub fn can_skew(&self) -> bool {
        self.faketime.is_some()
    }

    /// Every member's client address, by id.
    pub fn client_addrs(&self) -> Vec<String> {
        self.members.iter().map(|m| m.client.clone()).collect()
    }

    /// Member ids.
    pub fn ids(&self) -> Vec<usize> {
        self.members.iter().map(|m| m.id).collect()
    }

    fn member(&mut self, id: usize) -> &mut Member {
        &mut self.members[id - 1]
    }

    /// Whether member `id` runs (it may be paused).
    pub fn is_running(&self, id: usize) -> bool {
        self.members[id - 1].child.is_some()
    }

    /// Starts member `id` on its data directory (with its current skew) and waits until it
    /// serves clients, which it logs.
    pub async fn spawn(&mut self, id: usize) -> Result<(), Error> {
        let config = self.config.clone();
        let raftfs = self.raftfs.clone();
        let faketime = self.faketime.clone();
        let member = self.member(id);
        if member.child.is_some() {
            return Ok(());
        }
        let mut command = Command::new(&raftfs);
        command
            .arg("serve")
            .arg("--config")
            .arg(&config)
            .arg("--id")
            .arg(id.to_string())
            .arg("--data-dir")
            .arg(&member.data_dir)
            .arg("--peer-listen")
            .arg(&member.peer_listen)
            .arg("--peer-dial-from")
            .arg(dial_from(id).to_string())
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        if member.skew_s != 0 {
            if let Some(lib) = &faketime {
                // The library itself, not the `faketime` wrapper: the wrapper forks, and a
                // kill -9 of it would leave the server running.
                command
                    .env("LD_PRELOAD", lib)
                    .env("FAKETIME", format!("{:+}", member.skew_s));
            }
        }
        let mut child = command
            .spawn()
            .map_err(|e| Error::io(format!("start {}", raftfs.display()), e))?;
        member.starts += 1;
        let (ready_tx, ready_rx) = oneshot::channel();
        if let Some(stderr) = child.stderr.take() {
            let log_path = member.log.clone();
            let banner = format!(
                "=== start {} of member {id} (clock skew {:+} s)\n",
                member.starts, member.skew_s
            );
            tokio::spawn(drain_log(stderr, log_path, banner, ready_tx));
        }
        member.child = Some(child);
        member.paused = false;
        match tokio::time::timeout(START_TIMEOUT, ready_rx).await {
            Ok(Ok(())) => Ok(()),
            _ => {
                let log = member.log.display().to_string();
                self.kill9(id).await;
                Err(Error::Member(format!(
                    "member {id} did not report serving within {START_TIMEOUT:?} (log: {log})"
                )))
            }
        }
    }

    /// SIGKILLs member `id` (continuing it first is not needed: SIGKILL ends a stopped
    /// process too) and reaps it.
    pub async fn kill9(&mut self, id: usize) {
        let member = self.member(id);
        let mut found_dead = None;
        if let Some(mut child) = member.child.take() {
            // A member that died by itself must not pass for one the nemesis killed.
            if let Ok(Some(status)) = child.try_wait() {
                found_dead = Some(status.to_string());
            }
            let _ = child.start_kill();
            let _ = child.wait().await;
        }
        member.paused = false;
        if let Some(status) = found_dead {
            self.found_dead.push((id, status));
        }
    }

    /// SIGSTOPs member `id`.
    pub fn pause(&mut self, id: usize) {
        let member = self.member(id);
        if let Some(pid) = member.child.as_ref().and_then(Child::id) {
            if kill(Pid::from_raw(pid as i32), Signal::SIGSTOP).is_ok() {
                member.paused = true;
            }
        }
    }

    /// SIGCONTs member `id`.
    pub fn resume(&mut self, id: usize) {
        let member = self.member(id);
        if let Some(pid) = member.child.as_ref().and_then(Child::id) {
            let _ = kill(Pid::from_raw(pid as i32), Signal::SIGCONT);
        }
        member.paused = false;
    }

    /// Sets member `id`'s clock offset for its next start.
    pub fn set_skew(&mut self, id: usize, skew_s: i64) {
        self.member(id).skew_s = skew_s;
    }

    /// Members that exited without being killed: (id, exit status), reaped.
    pub fn exited(&mut self) -> Vec<(usize, String)> {
        let mut gone = std::mem::take(&mut self.found_dead);
        for member in &mut self.members {
            let Some(child) = member.child.as_mut() else {
                continue;
            };
            if let Ok(Some(status)) = child.try_wait() {
                gone.push((member.id, status.to_string()));
                member.child = None;
                member.paused = false;
            }
        }
        gone
    }

    /// Member `id`'s `/status`, unless it is down, paused or does not answer in time.
    pub async fn status(&self, id: usize) -> Option<Status> {
        let member = &self.members[id - 1];
        if member.child.is_none() || member.paused {
            return None;
        }
        status::fetch(&member.http).await
    }

    /// The leader with the highest term among the members that answer, if any claims it.
    pub async fn leader(&self) -> Option<usize> {
        let mut best: Option<(u64, usize)> = None;
        for id in self.ids() {
            if let Some(s) = self.status(id).await {
                if s.role == "leader" && best.is_none_or(|(term, _)| s.term > term) {
                    best = Some((s.term, id));
                }
            }
        }
        best.map(|(_, id)| id)
    }

    /// Waits up to `within` for a leader that a majority follows (its term's leader as seen by
    /// a majority of members), and returns it.
    pub async fn stable_leader(&self, within: Duration) -> Option<usize> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let mut statuses = Vec::new();
            for id in self.ids() {
                statuses.push(self.status(id).await);
            }
            let leader = statuses
                .iter()
                .flatten()
                .filter(|s| s.role == "leader")
                .max_by_key(|s| s.term);
            if let Some(leader) = leader {
                let followers = statuses
                    .iter()
                    .flatten()
                    .filter(|s| s.term == leader.term && s.leader == Some(leader.id))
                    .count();
                if followers > self.members.len() / 2 {
                    return usize::try_from(leader.id).ok();
                }
            }
            if tokio::time::Instant::now() >= deadline {
                return None;
            }
            // Leadership is only visible by asking: poll.
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Tears member `id`'s newest log segment (it must be down): cuts `chop` bytes off its end,
    /// or, if `garble` is non-empty, XORs its last bytes with those. Never touches the segment
    /// header. Returns what was done, for the fault log.
    pub fn tear_log_tail(&self, id: usize, chop: u64, garble: &[u8]) -> Result<String, Error> {
        const HEADER_BYTES: u64 = 24;
        let dir = self.members[id - 1].data_dir.join("log");
        let newest = std::fs::read_dir(&dir)
            .map_err(|e| Error::io(format!("list {}", dir.display()), e))?
            .flatten()
            .map(|entry| entry.path())
            .filter(|path| path.extension().is_some_and(|ext| ext == "wal"))
            .max()
            .ok_or_else(|| Error::Member(format!("no segment in {}", dir.display())))?;
        let len = std::fs::metadata(&newest)
            .map_err(|e| Error::io(format!("stat {}", newest.display()), e))?
            .len();
        let room = len.saturating_sub(HEADER_BYTES);
        let file_name = newest
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if room == 0 {
            return Ok(format!("{file_name} holds no record yet: left as is"));
        }
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&newest)
            .map_err(|e| Error::io(format!("open {}", newest.display()), e))?;
        if garble.is_empty() {
            let chop = chop.clamp(1, room);
            file.set_len(len - chop)
                .map_err(|e| Error::io(format!("truncate {}", newest.display()), e))?;
            Ok(format!("{file_name}: cut the last {chop} of {len} bytes"))
        } else {
            use std::io::{Read as _, Seek as _, SeekFrom};
            let n = (garble.len() as u64).min(room);
            let mut file = file;
            let mut tail = vec![0u8; n as usize];
            file.seek(SeekFrom::Start(len - n))
                .and_then(|_| file.read_exact(&mut tail))
                .map_err(|e| Error::io(format!("read {}", newest.display()), e))?;
            for (byte, mask) in tail.iter_mut().zip(garble) {
                *byte ^= mask;
            }
            file.seek(SeekFrom::Start(len - n))
                .and_then(|_| file.write_all(&tail))
                .and_then(|()| file.sync_all())
                .map_err(|e| Error::io(format!("write {}", newest.display()), e))?;
            Ok(format!("{file_name}: garbled the last {n} of {len} bytes"))
        }
    }

    /// Stops every member (SIGKILL; the run is over and nothing more is checked).
    pub async fn shutdown(&mut self) {
        for id in self.ids() {
            self.kill9(id).await;
        }
    }
}

/// Makes the cluster CA and every member's certificate in `dir/certs`, where the cluster
/// file's default `[tls]` table looks for them: peers speak mutual TLS, which the proxies
/// forward without reading.
async fn make_certs(raftfs: &Path, dir: &Path, n: usize) -> Result<(), Error> {
    let ids: Vec<String> = (1..=n).map(|i| i.to_string()).collect();
    let output = Command::new(raftfs)
        .arg("certs")
        .arg("--out")
        .arg(dir.join("certs"))
        .arg("--members")
        .arg(ids.join(","))
        .stdin(Stdio::null())
        .output()
        .await
        .map_err(|e| Error::io(format!("run {} certs", raftfs.display()), e))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(Error::Member(format!(
            "{} certs failed ({}): {}",
            raftfs.display(),
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        )))
    }
}

/// Copies a member's stderr into its log file, and says when it reports serving.
async fn drain_log(
    stderr: tokio::process::ChildStderr,
    path: PathBuf,
    banner: String,
    ready: oneshot::Sender<()>,
) {
    let mut ready = Some(ready);
    let mut file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .ok();
    if let Some(file) = file.as_mut() {
        let _ = file.write_all(banner.as_bytes());
    }
    let mut lines = BufReader::new(stderr).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        if let Some(file) = file.as_mut() {
            let _ = writeln!(file, "{line}");
        }
        if line.contains(READY_MARKER) {
            if let Some(ready) = ready.take() {
                let _ = ready.send(());
            }
        }
    }
}

/// Where Debian's `faketime` package keeps the library, if it is installed.
pub fn find_libfaketime() -> Option<PathBuf> {
    std::fs::read_dir("/usr/lib")
        .into_iter()
        .flatten()
        .flatten()
        .map(|dir| dir.path().join("faketime/libfaketime.so.1"))
        .chain([PathBuf::from("/usr/lib/faketime/libfaketime.so.1")])
        .find(|path| path.exists())
}

/// Hands out loopback ports for members to listen on. They come from below the kernel's
/// ephemeral range (32768 and up on Linux), where outgoing connections take theirs, so a member
/// restarted on its old port never finds it taken; the base depends on the process id to keep
/// concurrent runs apart.
pub struct PortPicker {
    next: u32,
    tried: u32,
}

impl PortPicker {
    const LOW: u32 = 10_000;
    const SPAN: u32 = 20_000;

    /// A picker for this process, offset by `salt` (so two pickers of one process differ).
    pub fn new(salt: u32) -> PortPicker {
        PortPicker {
            next: (std::process::id()
                .wrapping_mul(997)
                .wrapping_add(salt.wrapping_mul(101)))
                % Self::SPAN,
            tried: 0,
        }
    }

    /// The next free port, as `127.0.0.1:PORT`.
    pub fn pick(&mut self) -> Result<String, Error> {
        while self.tried < Self::SPAN {
            let port = Self::LOW + self.next % Self::SPAN;
            self.next += 1;
            self.tried += 1;
            let addr = format!("127.0.0.1:{port}");
            // Taken by something else on the machine: try the next one.
            if std::net::TcpListener::bind(&addr).is_ok() {
                return Ok(addr);
            }
        }
        Err(Error::Member("no free loopback port left".into()))
    }
}

//! The clients: real TCP connections speaking the text protocol, each operation recorded in
//! the checker's [`History`] when it is sent and when its answer comes (or never does).
//!
//! An operation is recorded at its first send, and the same operation is sent again after an
//! `ERR_REDIRECT` (which says the server did nothing). It ends definite on any other reply
//! except `ERR_INTERNAL`; it ends unknown on `ERR_INTERNAL`, on a timeout, or when the
//! connection dies after the command was sent, since a mutation may then have taken effect. An
//! operation is never resent after that: a blind resend could apply it twice.

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use fs::codec::ReplyDecoder;
use fs::{Command, Name, Reply};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use sim::history::{History, OpId};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

/// The shared history and its clock: microseconds since the run started, made strictly
/// increasing so that the checker sees every real-time order (equal times count as concurrent).
pub struct Recorder {
    start: Instant,
    inner: Mutex<(History, u64)>,
    /// Replies that break the protocol (`ERR_CMD_ERR` to a well-formed command, undecodable
    /// bytes): each is a bug, reported apart from the history.
    anomalies: Mutex<Vec<String>>,
}

/// History time units per millisecond (microseconds).
pub const UNITS_PER_MS: u64 = 1000;

impl Recorder {
    /// A recorder whose clock starts now.
    pub fn new() -> Arc<Recorder> {
        Arc::new(Recorder {
            start: Instant::now(),
            inner: Mutex::new((History::new(), 0)),
            anomalies: Mutex::default(),
        })
    }

    fn lock(&self) -> MutexGuard<'_, (History, u64)> {
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The time now, on the history's clock, strictly after every time handed out before.
    fn now(&self, last: &mut u64) -> u64 {
        let micros = u64::try_from(self.start.elapsed().as_micros()).unwrap_or(u64::MAX);
        *last = micros.max(*last + 1);
        *last
    }

    /// Seconds since the run started (for logs and the report).
    pub fn elapsed(&self) -> Duration {
        self.start.elapsed()
    }

    fn invoke(&self, client: u64, command: Command) -> OpId {
        let mut guard = self.lock();
        let (history, last) = &mut *guard;
        let time = self.now(last);
        history.invoke(client, time, command)
    }

    fn complete(&self, op: OpId, reply: Reply) {
        let mut guard = self.lock();
        let (history, last) = &mut *guard;
        let time = self.now(last);
        if let Err(err) = history.complete(op, time, reply) {
            drop(guard);
            self.anomaly(format!("recording {op}: {err}"));
        }
    }

    fn give_up(&self, op: OpId) {
        // Only an operation already finished is refused, and each is finished once.
        let _ = self.lock().0.give_up(op);
    }

    fn anomaly(&self, what: String) {
        self.anomalies
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .push(what);
    }

    /// Protocol anomalies seen so far.
    pub fn anomalies(&self) -> Vec<String> {
        self.anomalies
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    /// A copy of the history so far.
    pub fn history(&self) -> History {
        self.lock().0.clone()
    }
}

/// What a client workload does; the defaults give ten clients on three files at a time.
#[derive(Clone, Debug)]
pub struct Workload {
    /// Concurrent clients.
    pub clients: usize,
    /// Files in use at a time (contended by every client).
    pub files: usize,
    /// Files change every epoch (new names), so that no one file's history grows beyond what
    /// the checker searches quickly; old files are still read now and then, and at the end.
    pub epoch: Duration,
    /// How long one operation may take, redirects included, before its outcome is unknown.
    pub op_timeout: Duration,
    /// Mean pause between a client's operations.
    pub think: Duration,
    /// Largest EXPTIME given (seconds); a share of writes and cas carry one.
    pub exptime_max_s: u64,
}

impl Default for Workload {
    fn default() -> Workload {
        Workload {
            clients: 10,
            files: 3,
            epoch: Duration::from_secs(20),
            op_timeout: Duration::from_secs(3),
            think: Duration::from_millis(10),
            exptime_max_s: 4,
        }
    }
}

/// State the clients share: the files used so far and the newest version seen of each (so
/// that cas often names the current version and succeeds).
#[derive(Default)]
pub struct Shared {
    files: Mutex<BTreeSet<String>>,
    versions: Mutex<HashMap<String, u64>>,
    /// Set once the clients should stop.
    pub stop: AtomicBool,
    /// Operations sent, for progress lines.
    pub sent: AtomicU64,
}

impl Shared {
    /// Every file name a client has used.
    pub fn files(&self) -> Vec<String> {
        self.files
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .cloned()
            .collect()
    }

    fn note_file(&self, file: &str) {
        self.files
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(file.to_owned());
    }

    fn version(&self, file: &str) -> Option<u64> {
        self.versions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(file)
            .copied()
    }

    fn saw_version(&self, file: &str, version: u64) {
        let mut versions = self.versions.lock().unwrap_or_else(|p| p.into_inner());
        let entry = versions.entry(file.to_owned()).or_default();
        *entry = (*entry).max(version);
    }
}

/// A file name from the generated set; always valid.
fn file_name(file: &str) -> Option<Name> {
    Name::new(Bytes::copy_from_slice(file.as_bytes())).ok()
}

/// One client: a connection to some member, moved to whichever member a redirect names.
pub struct Client {
    id: u64,
    addrs: Vec<String>,
    target: usize,
    conn: Option<Conn>,
    recorder: Arc<Recorder>,
}

/// A connection with its buffers.
struct Conn {
    stream: TcpStream,
    input: BytesMut,
    decoder: ReplyDecoder,
}

/// Why an exchange got no reply.
enum Failure {
    /// Nothing was sent: the command certainly did nothing.
    NotSent,
    /// Sent, and then no reply: the outcome is unknown.
    Lost,
    /// The bytes that came back are not a reply.
    Garbled(String),
}

impl Client {
    /// A client numbered `id` that starts at member `first` of `addrs`.
    pub fn new(id: u64, addrs: Vec<String>, first: usize, recorder: Arc<Recorder>) -> Client {
        Client {
            id,
            target: first % addrs.len().max(1),
            addrs,
            conn: None,
            recorder,
        }
    }

    /// Runs `command` until it has an outcome or `timeout` passes, recording it. Returns the
    /// definite reply, if one came.
    pub async fn run(&mut self, command: Command, timeout: Duration) -> Option<Reply> {
        let deadline = Instant::now() + timeout;
        let mut op = None;
        let mut redirects = 0u32;
        loop {
            if Instant::now() >= deadline {
                break;
            }
            match self.exchange(&command, deadline, &mut op).await {
                Ok(Reply::Redirect(addr)) => {
                    redirects += 1;
                    self.conn = None;
                    match self.addrs.iter().position(|a| *a == addr) {
                        Some(i) => self.target = i,
                        None => self.next_target(),
                    }
                    // Members disagreeing about the leader during an election bounce a
                    // command around: back off instead of spinning.
                    if redirects > 5 {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                }
                Ok(Reply::CmdErr) => {
                    self.recorder
                        .anomaly(format!("ERR_CMD_ERR to {command:?} from {}", self.addr()));
                    self.conn = None;
                    break;
                }
                Ok(reply) => {
                    if let Some(op) = op.take() {
                        self.recorder.complete(op, reply.clone());
                    }
                    if reply == Reply::Internal {
                        // No leader reachable from there, or leadership lost: try elsewhere.
                        self.conn = None;
                        self.next_target();
                        return None;
                    }
                    return Some(reply);
                }
                Err(Failure::NotSent) => {
                    self.conn = None;
                    self.next_target();
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Err(Failure::Lost) => {
                    self.conn = None;
                    self.next_target();
                    break;
                }
                Err(Failure::Garbled(why)) => {
                    self.recorder
                        .anomaly(format!("undecodable reply from {}: {why}", self.addr()));
                    self.conn = None;
                    break;
                }
            }
        }
        if let Some(op) = op {
            self.recorder.give_up(op);
        }
        None
    }

    fn addr(&self) -> &str {
        &self.addrs[self.target]
    }

    fn next_target(&mut self) {
        self.target = (self.target + 1) % self.addrs.len().max(1);
    }

    /// Sends `command` on the current connection (opening one if needed) and awaits one reply.
    /// The operation is recorded as invoked right before its first send.
    async fn exchange(
        &mut self,
        command: &Command,
        deadline: Instant,
        op: &mut Option<OpId>,
    ) -> Result<Reply, Failure> {
        if self.conn.is_none() {
            let addr = self.addr().to_owned();
            let stream = match tokio::time::timeout_at(deadline, TcpStream::connect(&addr)).await {
                Ok(Ok(stream)) => stream,
                _ => return Err(Failure::NotSent),
            };
            let _ = stream.set_nodelay(true);
            self.conn = Some(Conn {
                stream,
                input: BytesMut::new(),
                decoder: ReplyDecoder::default(),
            });
        }
        let Some(conn) = self.conn.as_mut() else {
            return Err(Failure::NotSent);
        };
        if op.is_none() {
            *op = Some(self.recorder.invoke(self.id, command.clone()));
        }
        let bytes = command.to_bytes();
        let exchange = async {
            // A write that fails part-way may still have delivered the command.
            conn.stream
                .write_all(&bytes)
                .await
                .map_err(|_| Failure::Lost)?;
            loop {
                match conn.decoder.decode(&mut conn.input) {
                    Ok(Some(reply)) => return Ok(reply),
                    Ok(None) => {}
                    Err(err) => return Err(Failure::Garbled(err.to_string())),
                }
                match conn.stream.read_buf(&mut conn.input).await {
                    Ok(0) | Err(_) => return Err(Failure::Lost),
                    Ok(_) => {}
                }
            }
        };
        match tokio::time::timeout_at(deadline, exchange).await {
            Ok(result) => result,
            Err(_) => Err(Failure::Lost),
        }
    }
}

/// Runs one client of the workload until `shared.stop`: random reads, writes, cas and deletes
/// of the current epoch's files (and now and then a read of an older file).
pub async fn worker(
    id: u64,
    seed: u64,
    addrs: Vec<String>,
    workload: Workload,
    recorder: Arc<Recorder>,
    shared: Arc<Shared>,
) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ (id.wrapping_mul(0x9e37_79b9_7f4a_7c15)));
    let first = rng.random_range(0..addrs.len().max(1));
    let mut client = Client::new(id, addrs, first, recorder.clone());
    let mut seq = 0u64;
    let epoch_ms = u64::try_from(workload.epoch.as_millis())
        .unwrap_or(u64::MAX)
        .max(1);
    while !shared.stop.load(Ordering::SeqCst) {
        let epoch = u64::try_from(recorder.elapsed().as_millis()).unwrap_or(0) / epoch_ms;
        let file = if epoch > 0 && rng.random_bool(0.05) {
            let old = rng.random_range(0..epoch);
            format!("e{old}-f{}", rng.random_range(0..workload.files))
        } else {
            format!("e{epoch}-f{}", rng.random_range(0..workload.files))
        };
        let Some(name) = file_name(&file) else {
            continue;
        };
        seq += 1;
        let content = Bytes::from(format!("c{id}-{seq}"));
        let exptime_s = if workload.exptime_max_s > 0 && rng.random_bool(0.15) {
            rng.random_range(1..=workload.exptime_max_s)
        } else {
            0
        };
        let command = match rng.random_range(0..100) {
            0..40 => Command::Read { name },
            40..65 => Command::Write {
                name,
                content,
                exptime_s,
            },
            65..88 => {
                // Mostly the newest version seen, so that many succeed; sometimes a stale one.
                let known = shared.version(&file).unwrap_or(1);
                let version = if rng.random_bool(0.8) {
                    known
                } else {
                    known.saturating_sub(rng.random_range(1..=3))
                };
                Command::Cas {
                    name,
                    version,
                    content,
                    exptime_s,
                }
            }
            _ => Command::Delete { name },
        };
        if command.is_mutation() {
            shared.note_file(&file);
        }
        shared.sent.fetch_add(1, Ordering::Relaxed);
        match client.run(command, workload.op_timeout).await {
            Some(Reply::Contents { version, .. } | Reply::Written { version })
            | Some(Reply::VersionMismatch { current: version }) => {
                shared.saw_version(&file, version);
            }
            _ => {}
        }
        let think_ms = u64::try_from(workload.think.as_millis()).unwrap_or(0);
        if think_ms > 0 {
            // The pacing is the workload's schedule, not a wait for anything.
            tokio::time::sleep(Duration::from_millis(rng.random_range(0..=2 * think_ms))).await;
        }
    }
}

/// Reads `file` until a definite answer comes or `within` passes; every attempt is part of
/// the history. Returns the definite reply.
pub async fn final_read(client: &mut Client, file: &str, within: Duration) -> Option<Reply> {
    let name = file_name(file)?;
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        let command = Command::Read { name: name.clone() };
        if let Some(reply) = client.run(command, Duration::from_secs(5)).await {
            return Some(reply);
        }
    }
    None
}

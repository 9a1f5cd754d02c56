//! Simulated clients: each issues commands (read, write, cas or delete over a handful of names,
//! with contents unique in the run; in most runs some writes and cas of the shared names carry
//! an exptime of a few seconds), sends them to the last leader it heard of or
//! to a random node, follows redirects, and gives up on a command that times out or fails with
//! `ERR_INTERNAL` (its outcome is then unknown) before moving on.
//!
//! Most clients have one command outstanding at a time. A pipelining client (as a telnet
//! session typing ahead would) keeps up to its depth in flight on one connection, whose replies
//! come back in the order the commands went out; besides the shared names it has a private file
//! that only it writes (never deletes), often reading it right behind its own write, so that a
//! read which misses the same connection's earlier write shows (see `Check::SessionOrder`).

use std::collections::BTreeMap;

use bytes::Bytes;
use fs::{Command, Name, Reply};
use raft::NodeId;

use crate::clock::SimTime;
use crate::history::OpId;
use crate::random::SimRng;

/// Redirects followed for one command before the client gives up on it: a leader changes hands
/// a few times during an election, but a longer chain means the cluster is in flux.
pub const REDIRECTS_MAX: u32 = 5;

/// Chance (ppm) that a command goes to the last known leader rather than a random node: mostly,
/// as a real client would, but not always, so followers' redirects and parking get exercised.
const USE_LEADER_HINT_PPM: u32 = 800_000;

/// Chance (ppm) that a write or cas carries a large content, to exercise message byte caps.
const LARGE_CONTENT_PPM: u32 = 10_000;
/// Size of a large content, at most, bytes.
const LARGE_CONTENT_BYTES_MAX: u64 = 2_048;

/// Chance (ppm) that a pipelining client's command is on its private file.
const PRIVATE_FILE_PPM: u32 = 550_000;

/// Chance (ppm) that a pipelining client reads its private file right behind its own write of
/// it still in flight: the pattern the read barrier exists for.
const READ_BEHIND_WRITE_PPM: u32 = 700_000;

/// Longest EXPTIME a client gives, seconds: a few seconds, so that files expire while runs go
/// on (a run lasts several seconds of simulated time) and expiry meets reads, cas and deletes.
pub const EXPTIME_S_MAX: u64 = 3;

/// Client port in the simulated addresses; the number means nothing.
const CLIENT_PORT: u16 = 7000;

/// The client address of node `id`, as an `ERR_REDIRECT` names it.
pub fn node_address(id: NodeId) -> String {
    format!("node{}:{CLIENT_PORT}", id.0)
}

/// The node an `ERR_REDIRECT` address names, if it is one of ours.
pub fn parse_node_address(addr: &str) -> Option<NodeId> {
    let (host, port) = addr.split_once(':')?;
    if port != CLIENT_PORT.to_string() {
        return None;
    }
    host.strip_prefix("node")?.parse().ok().map(NodeId)
}

/// The command a client is waiting on.
#[derive(Debug, Clone)]
pub struct InFlight {
    /// Its history operation.
    pub op: OpId,
    /// The command.
    pub command: Command,
    /// The current attempt's number, unique over the client's whole life (redirects and new
    /// commands make new attempts), so a late reply to an older attempt is recognised as stale.
    pub attempt: u64,
    /// Where the current attempt went.
    pub target: NodeId,
    /// Redirects followed.
    pub redirects: u32,
    /// When the client first sent it.
    pub invoked_at: SimTime,
    /// The connection the current attempt went on (pipelining clients only).
    pub conn: Option<usize>,
}

/// One client. The simulator drives it; every random choice comes from the simulator's
/// generator.
#[derive(Debug, Clone)]
pub struct Client {
    /// The client's number.
    pub id: usize,
    /// The leader it last heard of.
    pub leader_hint: Option<NodeId>,
    /// The last version it saw per file (what its cas commands expect).
    versions: BTreeMap<Name, u64>,
    /// Contents written so far (makes each content unique).
    writes: u64,
    /// Commands it may have in flight at once: 1, or more for a pipelining client.
    pub depth: usize,
    /// The file only this client writes (pipelining clients only).
    pub private: Option<Name>,
    /// Its outstanding commands, oldest first.
    pub in_flight: Vec<InFlight>,
    /// The connection it sends new commands on, and the node at its other end (pipelining
    /// clients only; `None` until the first command, and after a timeout closed it).
    pub conn: Option<(usize, NodeId)>,
    /// Attempts made so far, over all commands.
    pub attempts: u64,
    /// Commands it may still start in the fault phase.
    pub budget: usize,
    /// In the final phase: whether it has had a definite answer to a write yet.
    pub final_done: bool,
    /// Chance (ppm) that a write or cas of a shared file carries an EXPTIME.
    expiring_ppm: u32,
}

/// What kind of reply arrived, for the simulator to act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReplyKind {
    /// A definite answer: record it.
    Definite,
    /// `ERR_INTERNAL`: record it (outcome unknown) and move on.
    Internal,
    /// Not executed; retry at this node.
    Redirect(NodeId),
    /// Not executed and not worth retrying (malformed, or a redirect to nowhere).
    Refused,
}

impl Client {
    /// Client `id` with `budget` commands to issue, one at a time.
    pub fn new(id: usize, budget: usize) -> Client {
        Client {
            id,
            leader_hint: None,
            versions: BTreeMap::new(),
            writes: 0,
            depth: 1,
            private: None,
            in_flight: Vec::new(),
            conn: None,
            attempts: 0,
            budget,
            final_done: false,
            expiring_ppm: 0,
        }
    }

    /// The same client, giving an EXPTIME of 1 to [`EXPTIME_S_MAX`] seconds to a write or cas of
    /// a shared file with chance `ppm` (never to its private file: a read behind its own write
    /// must find the file).
    pub fn expiring(self, ppm: u32) -> Client {
        Client {
            expiring_ppm: ppm,
            ..self
        }
    }

    /// Client `id` pipelining up to `depth` commands on one connection, with `private` as
    /// its own file.
    pub fn pipelining(id: usize, budget: usize, depth: usize, private: Name) -> Client {
        Client {
            depth,
            private: Some(private),
            ..Client::new(id, budget)
        }
    }

    /// Whether it keeps several commands in flight on one connection.
    pub fn pipelines(&self) -> bool {
        self.private.is_some()
    }

    /// Whether a command names its private file.
    pub fn is_private(&self, command: &Command) -> bool {
        self.private.as_ref() == Some(command.name())
    }

    /// Draws the next command over the file `names` (not empty); `write_only` in the final
    /// phase.
    pub fn next_command(&mut self, rng: &mut SimRng, names: &[Name], write_only: bool) -> Command {
        if let Some(private) = self.private.clone() {
            return self.next_pipelined_command(rng, names, private, write_only);
        }
        let file = rng.below(names.len());
        let name = names[file].clone();
        let kind = if write_only {
            1
        } else {
            rng.weighted(&[35, 30, 20, 15]).unwrap_or(0)
        };
        self.command_of(rng, kind, name)
    }

    /// A pipelining client's next command: often on its private file, often a read of it right
    /// behind a write of it still in flight; never a delete of it (so a read behind its own
    /// successful write must find the file).
    fn next_pipelined_command(
        &mut self,
        rng: &mut SimRng,
        names: &[Name],
        private: Name,
        write_only: bool,
    ) -> Command {
        if write_only {
            return self.command_of(rng, 1, private);
        }
        let behind_write = self.in_flight.last().is_some_and(|last| {
            self.is_private(&last.command) && !matches!(last.command, Command::Read { .. })
        });
        if behind_write && rng.chance(READ_BEHIND_WRITE_PPM) {
            return Command::Read { name: private };
        }
        if rng.chance(PRIVATE_FILE_PPM) {
            // Read, write, cas: no delete.
            let kind = rng.weighted(&[35, 45, 20]).unwrap_or(0);
            return self.command_of(rng, kind, private);
        }
        let name = names[rng.below(names.len())].clone();
        let kind = rng.weighted(&[35, 30, 20, 15]).unwrap_or(0);
        self.command_of(rng, kind, name)
    }

    /// A command of `kind` (read, write, cas, delete) on `name`.
    fn command_of(&mut self, rng: &mut SimRng, kind: usize, name: Name) -> Command {
        match kind {
            0 => Command::Read { name },
            1 => {
                let content = self.content(rng);
                Command::Write {
                    exptime_s: self.exptime(rng, &name),
                    name,
                    content,
                }
            }
            2 => {
                // Mostly the version last seen (a real read-modify-write), sometimes a guess.
                let version = match self.versions.get(&name) {
                    Some(&v) if !rng.chance(100_000) => v,
                    _ => rng.between(1, 40),
                };
                let content = self.content(rng);
                Command::Cas {
                    exptime_s: self.exptime(rng, &name),
                    name,
                    version,
                    content,
                }
            }
            _ => Command::Delete { name },
        }
    }

    /// The EXPTIME of a write or cas of `name`: 0 (never expires) or a few seconds. Draws
    /// nothing when the client gives none, so that such runs stay what they were.
    fn exptime(&self, rng: &mut SimRng, name: &Name) -> u64 {
        if self.private.as_ref() == Some(name) || !rng.chance(self.expiring_ppm) {
            return 0;
        }
        rng.between(1, EXPTIME_S_MAX)
    }

    /// A content never written before in this run.
    fn content(&mut self, rng: &mut SimRng) -> Bytes {
        self.writes += 1;
        let mut text = format!("c{}-{}", self.id, self.writes);
        if rng.chance(LARGE_CONTENT_PPM) {
            let pad = rng.between(1, LARGE_CONTENT_BYTES_MAX) as usize;
            text.push('.');
            text.extend(std::iter::repeat_n('x', pad));
        }
        Bytes::from(text)
    }

    /// Where to send a new command: usually the last known leader, else a random node.
    pub fn pick_target(&self, rng: &mut SimRng, nodes: usize) -> NodeId {
        match self.leader_hint {
            Some(leader) if rng.chance(USE_LEADER_HINT_PPM) => leader,
            _ => NodeId(rng.below(nodes) as u64 + 1),
        }
    }

    /// Classifies `reply` to `command` and learns from it (leader, versions).
    pub fn on_reply(&mut self, command: &Command, reply: &Reply) -> ReplyKind {
        let file = command.name().clone();
        match reply {
            Reply::Redirect(addr) => match parse_node_address(addr) {
                Some(leader) => {
                    self.leader_hint = Some(leader);
                    ReplyKind::Redirect(leader)
                }
                None => ReplyKind::Refused,
            },
            Reply::CmdErr => ReplyKind::Refused,
            Reply::Internal => {
                self.leader_hint = None;
                ReplyKind::Internal
            }
            Reply::Written { version }
            | Reply::Contents { version, .. }
            | Reply::VersionMismatch { current: version } => {
                self.versions.insert(file, *version);
                ReplyKind::Definite
            }
            Reply::Deleted | Reply::FileNotFound => {
                self.versions.remove(&file);
                ReplyKind::Definite
            }
            // Answers to administrative commands, which file commands never get.
            Reply::Done(_) | Reply::Members(_) | Reply::MemberError(_) | Reply::Snapshot { .. } => {
                ReplyKind::Refused
            }
        }
    }

    /// Its in-flight command whose current attempt is `attempt`, by position.
    pub fn position_of(&self, attempt: u64) -> Option<usize> {
        self.in_flight.iter().position(|f| f.attempt == attempt)
    }
}

//! Simulated clients: each has one command outstanding at a time (read, write, cas or delete
//! over a handful of names, with contents unique in the run and exptime 0), sends it to the last
//! leader it heard of or to a random node, follows redirects, and gives up on a command that
//! times out or fails with `ERR_INTERNAL` (its outcome is then unknown) before moving on.

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
    versions: BTreeMap<usize, u64>,
    /// Contents written so far (makes each content unique).
    writes: u64,
    /// Its outstanding command.
    pub current: Option<InFlight>,
    /// Attempts made so far, over all commands.
    pub attempts: u64,
    /// Commands it may still start in the fault phase.
    pub budget: usize,
    /// In the final phase: whether it has had a definite answer to a write yet.
    pub final_done: bool,
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
    /// Client `id` with `budget` commands to issue.
    pub fn new(id: usize, budget: usize) -> Client {
        Client {
            id,
            leader_hint: None,
            versions: BTreeMap::new(),
            writes: 0,
            current: None,
            attempts: 0,
            budget,
            final_done: false,
        }
    }

    /// Draws the next command over the file `names` (not empty); `write_only` in the final
    /// phase.
    pub fn next_command(&mut self, rng: &mut SimRng, names: &[Name], write_only: bool) -> Command {
        let file = rng.below(names.len());
        let name = names[file].clone();
        let kind = if write_only {
            1
        } else {
            rng.weighted(&[35, 30, 20, 15]).unwrap_or(0)
        };
        match kind {
            0 => Command::Read { name },
            1 => Command::Write {
                name,
                content: self.content(rng),
                exptime_s: 0,
            },
            2 => {
                // Mostly the version last seen (a real read-modify-write), sometimes a guess.
                let version = match self.versions.get(&file) {
                    Some(&v) if !rng.chance(100_000) => v,
                    _ => rng.between(1, 40),
                };
                Command::Cas {
                    name,
                    version,
                    content: self.content(rng),
                    exptime_s: 0,
                }
            }
            _ => Command::Delete { name },
        }
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

    /// Classifies `reply` and learns from it (leader, versions).
    pub fn on_reply(&mut self, reply: &Reply) -> ReplyKind {
        let file = self.current.as_ref().and_then(|c| file_number(&c.command));
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
                if let Some(f) = file {
                    self.versions.insert(f, *version);
                }
                ReplyKind::Definite
            }
            Reply::Deleted | Reply::FileNotFound => {
                if let Some(f) = file {
                    self.versions.remove(&f);
                }
                ReplyKind::Definite
            }
        }
    }
}

/// The file number a command names (`f3` is 3).
fn file_number(command: &Command) -> Option<usize> {
    command.name().as_str().strip_prefix('f')?.parse().ok()
}

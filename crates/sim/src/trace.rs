//! The run's trace: one line per thing that happened (time, actor, what).
//!
//! Lines are kept as small structured records, formatted only when someone reads them, so a
//! run that succeeds pays little: the last [`TRACE_TAIL_LINES`] are kept for a failure report,
//! and `--trace` prints (or a test collects) every line as it happens.

use std::collections::VecDeque;
use std::fmt;

use bytes::Bytes;
use fs::{Command, Reply};
use raft::{AppendOutcome, LogIndex, Message, NodeId, Role, Term};

use crate::clock::SimTime;

/// Lines kept for a failure report: enough to see the last elections and the commands around
/// the failure, short enough to read.
pub const TRACE_TAIL_LINES: usize = 400;

/// Content bytes shown per command or reply: the simulator's contents are short unique tags.
const CONTENT_SHOWN_MAX: usize = 16;

/// Who did something.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Actor {
    /// A node.
    Node(NodeId),
    /// A client.
    Client(usize),
    /// The fault injector.
    Nemesis,
    /// The simulator itself (phases, checks).
    Sim,
}

impl fmt::Display for Actor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Actor::Node(id) => write!(f, "{id}"),
            Actor::Client(c) => write!(f, "c{c}"),
            Actor::Nemesis => f.write_str("nemesis"),
            Actor::Sim => f.write_str("sim"),
        }
    }
}

/// A message in a few numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MsgSummary {
    /// AppendEntries request.
    Append {
        /// Sender's term.
        term: Term,
        /// prev_log_index.
        prev: LogIndex,
        /// prev_log_term.
        prev_term: Term,
        /// Entries carried.
        entries: usize,
        /// leader_commit.
        commit: LogIndex,
    },
    /// AppendEntries answer.
    AppendResp {
        /// Sender's term.
        term: Term,
        /// The outcome.
        outcome: AppendOutcome,
    },
    /// Vote or pre-vote request.
    Vote {
        /// Term asked for.
        term: Term,
        /// Candidate's last index.
        last: LogIndex,
        /// Candidate's last term.
        last_term: Term,
        /// Pre-vote?
        prevote: bool,
    },
    /// Vote or pre-vote answer.
    VoteResp {
        /// Term.
        term: Term,
        /// Granted?
        granted: bool,
        /// Pre-vote?
        prevote: bool,
    },
    /// Heartbeat.
    Heartbeat {
        /// Leader's term.
        term: Term,
        /// Commit index carried.
        commit: LogIndex,
        /// ReadIndex round.
        round: u64,
    },
    /// TimeoutNow (leadership transfer).
    TimeoutNow {
        /// Leader's term.
        term: Term,
    },
    /// A follower asks the leader for a read index.
    ReadIndexReq {
        /// Follower's term.
        term: Term,
    },
    /// The leader's read index (or refusal).
    ReadIndexResp {
        /// Leader's term.
        term: Term,
        /// The read index, if granted.
        index: Option<LogIndex>,
    },
    /// InstallSnapshot (metadata of a snapshot transfer).
    InstallSnapshot {
        /// Leader's term.
        term: Term,
        /// Last index the snapshot covers.
        index: LogIndex,
    },
    /// Heartbeat answer.
    HeartbeatResp {
        /// Sender's term.
        term: Term,
        /// Echoed round.
        round: u64,
    },
    /// A chunk of a snapshot in transfer.
    Chunk {
        /// The snapshot's index.
        index: LogIndex,
        /// Where the chunk starts.
        offset: u64,
        /// Its length.
        len: u64,
        /// The file's length.
        total: u64,
    },
    /// A follower's chunk ack.
    ChunkAck {
        /// The snapshot's index.
        index: LogIndex,
        /// Bytes received in order.
        received: u64,
        /// Where the transfer stands.
        status: replica::AckStatus,
    },
}

impl MsgSummary {
    /// Summarises a peer message.
    pub fn of_peer(msg: &replica::PeerMessage) -> MsgSummary {
        match msg {
            replica::PeerMessage::Raft(m) => MsgSummary::of(m),
            replica::PeerMessage::Chunk(c) => MsgSummary::Chunk {
                index: c.offer.index,
                offset: c.offset,
                len: c.data.len() as u64,
                total: c.total_bytes,
            },
            replica::PeerMessage::ChunkAck(a) => MsgSummary::ChunkAck {
                index: a.index,
                received: a.received,
                status: a.status,
            },
        }
    }

    /// Summarises `msg`.
    pub fn of(msg: &Message) -> MsgSummary {
        match msg {
            Message::AppendEntriesRequest(m) => MsgSummary::Append {
                term: m.term,
                prev: m.prev_log_index,
                prev_term: m.prev_log_term,
                entries: m.entries.len(),
                commit: m.leader_commit,
            },
            Message::AppendEntriesResponse(m) => MsgSummary::AppendResp {
                term: m.term,
                outcome: m.outcome,
            },
            Message::VoteRequest(m) => MsgSummary::Vote {
                term: m.term,
                last: m.last_log_index,
                last_term: m.last_log_term,
                prevote: m.prevote,
            },
            Message::VoteResponse(m) => MsgSummary::VoteResp {
                term: m.term,
                granted: m.granted,
                prevote: m.prevote,
            },
            Message::Heartbeat(m) => MsgSummary::Heartbeat {
                term: m.term,
                commit: m.commit,
                round: m.read_round,
            },
            Message::HeartbeatResponse(m) => MsgSummary::HeartbeatResp {
                term: m.term,
                round: m.read_round,
            },
            Message::InstallSnapshot(m) => MsgSummary::InstallSnapshot {
                term: m.term,
                index: m.index,
            },
            Message::TimeoutNow(m) => MsgSummary::TimeoutNow { term: m.term },
            Message::ReadIndexRequest(m) => MsgSummary::ReadIndexReq { term: m.term },
            Message::ReadIndexResponse(m) => MsgSummary::ReadIndexResp {
                term: m.term,
                index: m.index,
            },
        }
    }
}

impl fmt::Display for MsgSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            MsgSummary::InstallSnapshot { term, index } => {
                write!(f, "install-snapshot {term} at {index}")
            }
            MsgSummary::TimeoutNow { term } => write!(f, "timeout-now {term}"),
            MsgSummary::ReadIndexReq { term } => write!(f, "read-index? {term}"),
            MsgSummary::ReadIndexResp { term, index } => match index {
                Some(index) => write!(f, "read-index {term} = {index}"),
                None => write!(f, "read-index {term} refused"),
            },
            MsgSummary::Chunk {
                index,
                offset,
                len,
                total,
            } => write!(f, "chunk of snapshot {index}: {offset}+{len} of {total}"),
            MsgSummary::ChunkAck {
                index,
                received,
                status,
            } => write!(f, "chunk ack for snapshot {index}: {received} {status:?}"),
            MsgSummary::Append {
                term,
                prev,
                prev_term,
                entries,
                commit,
            } => write!(
                f,
                "append {term} prev {prev}/{prev_term} +{entries} commit {commit}"
            ),
            MsgSummary::AppendResp { term, outcome } => match outcome {
                AppendOutcome::Success { match_index } => {
                    write!(f, "append-ok {term} match {match_index}")
                }
                AppendOutcome::Reject {
                    rejected,
                    hint_index,
                    hint_term,
                } => write!(
                    f,
                    "append-reject {term} at {rejected} hint {hint_index}/{hint_term}"
                ),
            },
            MsgSummary::Vote {
                term,
                last,
                last_term,
                prevote,
            } => write!(
                f,
                "{} {term} last {last}/{last_term}",
                if prevote { "prevote" } else { "vote" }
            ),
            MsgSummary::VoteResp {
                term,
                granted,
                prevote,
            } => write!(
                f,
                "{}-{} {term}",
                if prevote { "prevote" } else { "vote" },
                if granted { "granted" } else { "refused" }
            ),
            MsgSummary::Heartbeat {
                term,
                commit,
                round,
            } => write!(f, "heartbeat {term} commit {commit} round {round}"),
            MsgSummary::HeartbeatResp { term, round } => {
                write!(f, "heartbeat-ok {term} round {round}")
            }
        }
    }
}

/// What happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Note {
    /// The nemesis asked the leader for a membership change or a transfer (or its answer).
    Admin(String),
    /// A node received a message.
    Recv {
        /// Sender.
        from: NodeId,
        /// The message.
        msg: MsgSummary,
    },
    /// A message was lost to a partition on arrival.
    Cut {
        /// Sender.
        from: NodeId,
        /// Intended receiver.
        to: NodeId,
    },
    /// A message sent to a node that is down was lost.
    ToDeadNode {
        /// Sender.
        from: NodeId,
    },
    /// A node's alarm fired.
    Timeout,
    /// A node snapshots its store.
    Snapshot {
        /// The index the snapshot covers.
        index: LogIndex,
    },
    /// A node installs a snapshot received from the leader.
    Install {
        /// The index the snapshot covers.
        index: LogIndex,
        /// Whether its log after the snapshot stays.
        keep_log: bool,
    },
    /// Durable: the log up to here (reported to the core).
    Stored {
        /// Index.
        index: LogIndex,
        /// Term.
        term: Term,
    },
    /// Durable: this hard state (reported to the core).
    Saved {
        /// Term.
        term: Term,
        /// Vote.
        vote: Option<NodeId>,
        /// Commit hint.
        commit: LogIndex,
    },
    /// The core reported a role change.
    Role {
        /// New role.
        role: Role,
        /// Term.
        term: Term,
        /// Known leader.
        leader: Option<NodeId>,
    },
    /// The node applied a committed entry.
    Applied {
        /// Index.
        index: LogIndex,
        /// Term.
        term: Term,
    },
    /// A client sent an operation (first attempt or retry) to a node.
    Send {
        /// History operation number.
        op: usize,
        /// Target node.
        to: NodeId,
        /// Attempt number of this operation.
        attempt: u64,
        /// The command.
        command: Command,
    },
    /// A client got a reply.
    Reply {
        /// History operation number.
        op: usize,
        /// The reply.
        reply: Reply,
    },
    /// A reply to an attempt the client no longer waits for (it timed out or was redirected).
    StaleReply {
        /// The attempt answered.
        attempt: u64,
    },
    /// A client stopped waiting (outcome unknown).
    GiveUp {
        /// History operation number.
        op: usize,
        /// Why.
        why: &'static str,
    },
    /// A node crashed.
    Crash {
        /// Unacknowledged records that survived.
        survived: usize,
        /// Records lost.
        lost: usize,
    },
    /// A node restarted from its disk.
    Restart {
        /// Recovered term.
        term: Term,
        /// Recovered vote.
        vote: Option<NodeId>,
        /// Recovered last index.
        last: LogIndex,
    },
    /// A node's process froze.
    Pause {
        /// Until when.
        until: SimTime,
    },
    /// A node's disk stalled.
    Stall {
        /// Until when.
        until: SimTime,
    },
    /// A partition was put in place.
    Partition(String),
    /// The partition healed.
    PartitionHealed,
    /// The whole cluster lost power.
    PowerLoss,
    /// The fault phase ended: everything healed, liveness now expected.
    FinalPhase,
    /// The cluster converged; the run is over.
    Converged {
        /// The common applied index.
        applied: LogIndex,
    },
}

/// Shows at most [`CONTENT_SHOWN_MAX`] bytes of content.
fn shown(content: &Bytes) -> String {
    let cut = &content[..content.len().min(CONTENT_SHOWN_MAX)];
    let text = String::from_utf8_lossy(cut);
    if content.len() > CONTENT_SHOWN_MAX {
        format!("{text}..({}B)", content.len())
    } else {
        text.into_owned()
    }
}

/// A command in one short phrase.
pub struct ShowCommand<'a>(pub &'a Command);

impl fmt::Display for ShowCommand<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Command::Read { name } => write!(f, "read {name}"),
            Command::Write { name, content, .. } => write!(f, "write {name} {}", shown(content)),
            Command::Cas {
                name,
                version,
                content,
                ..
            } => write!(f, "cas {name} v{version} {}", shown(content)),
            Command::Delete { name } => write!(f, "delete {name}"),
        }
    }
}

/// A reply in one short phrase.
pub struct ShowReply<'a>(pub &'a Reply);

impl fmt::Display for ShowReply<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Reply::Contents {
                version, content, ..
            } => write!(f, "CONTENTS v{version} {}", shown(content)),
            Reply::Written { version } => write!(f, "OK v{version}"),
            Reply::Deleted => f.write_str("OK"),
            Reply::FileNotFound => f.write_str("ERR_FILE_NOT_FOUND"),
            Reply::VersionMismatch { current } => write!(f, "ERR_VERSION v{current}"),
            Reply::CmdErr => f.write_str("ERR_CMD_ERR"),
            Reply::Internal => f.write_str("ERR_INTERNAL"),
            Reply::Redirect(addr) => write!(f, "ERR_REDIRECT {addr}"),
            Reply::Done(n) => write!(f, "OK {n}"),
            Reply::Members(m) => write!(f, "MEMBERS {}", m.len()),
            Reply::MemberError(why) => write!(f, "ERR_MEMBER {why}"),
            Reply::Snapshot { index, file, .. } => {
                write!(f, "SNAPSHOT i{index} {} bytes", file.len())
            }
        }
    }
}

impl fmt::Display for Note {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Note::Recv { from, msg } => write!(f, "<- {from} {msg}"),
            Note::Cut { from, to } => write!(f, "cut {from} -> {to}"),
            Note::ToDeadNode { from } => write!(f, "lost (down) from {from}"),
            Note::Timeout => f.write_str("timeout"),
            Note::Admin(what) => write!(f, "admin {what}"),
            Note::Stored { index, term } => write!(f, "durable log to {index}/{term}"),
            Note::Snapshot { index } => write!(f, "snapshot of the store at {index}"),
            Note::Install { index, keep_log } => write!(
                f,
                "installs the snapshot at {index}{}",
                if *keep_log {
                    ", keeping the log after it"
                } else {
                    ""
                }
            ),
            Note::Saved { term, vote, commit } => match vote {
                Some(v) => write!(f, "durable state {term} vote {v} commit {commit}"),
                None => write!(f, "durable state {term} no vote commit {commit}"),
            },
            Note::Role { role, term, leader } => match leader {
                Some(l) => write!(f, "{role} in {term}, leader {l}"),
                None => write!(f, "{role} in {term}, no leader"),
            },
            Note::Applied { index, term } => write!(f, "apply {index}/{term}"),
            Note::Send {
                op,
                to,
                attempt,
                command,
            } => write!(
                f,
                "op #{op} try {attempt} -> {to}: {}",
                ShowCommand(command)
            ),
            Note::Reply { op, reply } => write!(f, "op #{op} <- {}", ShowReply(reply)),
            Note::StaleReply { attempt } => write!(f, "late reply to attempt {attempt} ignored"),
            Note::GiveUp { op, why } => write!(f, "op #{op} unknown outcome: {why}"),
            Note::Crash { survived, lost } => {
                write!(f, "CRASH ({survived} unacked records survive, {lost} lost)")
            }
            Note::Restart { term, vote, last } => match vote {
                Some(v) => write!(f, "RESTART at {term} vote {v} log to {last}"),
                None => write!(f, "RESTART at {term} no vote log to {last}"),
            },
            Note::Pause { until } => write!(f, "PAUSE until {until}"),
            Note::Stall { until } => write!(f, "DISK STALL until {until}"),
            Note::Partition(desc) => write!(f, "PARTITION {desc}"),
            Note::PartitionHealed => f.write_str("partition healed"),
            Note::PowerLoss => f.write_str("POWER LOSS: every node crashes"),
            Note::FinalPhase => f.write_str(
                "--- faults stop: heal all, restart all, reliable network; liveness expected ---",
            ),
            Note::Converged { applied } => write!(f, "converged: every node applied {applied}"),
        }
    }
}

/// One trace line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    /// When.
    pub at: SimTime,
    /// Who.
    pub actor: Actor,
    /// What.
    pub note: Note,
}

impl fmt::Display for Line {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {:<7} {}", self.at, self.actor.to_string(), self.note)
    }
}

/// Where full trace lines go, besides the tail kept for failure reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TraceMode {
    /// Keep only the tail.
    Tail,
    /// Print every line to standard output as it happens (`--trace`).
    Print,
    /// Keep every line (tests that compare two runs).
    Collect,
}

/// The trace of one run.
#[derive(Debug)]
pub struct Trace {
    mode: TraceMode,
    tail: VecDeque<Line>,
    all: Vec<String>,
}

impl Trace {
    /// An empty trace.
    pub fn new(mode: TraceMode) -> Trace {
        Trace {
            mode,
            tail: VecDeque::with_capacity(TRACE_TAIL_LINES),
            all: Vec::new(),
        }
    }

    /// Records one line.
    pub fn push(&mut self, at: SimTime, actor: Actor, note: Note) {
        let line = Line { at, actor, note };
        match self.mode {
            TraceMode::Tail => {}
            TraceMode::Print => println!("{line}"),
            TraceMode::Collect => self.all.push(line.to_string()),
        }
        if self.tail.len() == TRACE_TAIL_LINES {
            self.tail.pop_front();
        }
        self.tail.push_back(line);
    }

    /// The last lines, formatted, oldest first.
    pub fn tail(&self, lines: usize) -> Vec<String> {
        let skip = self.tail.len().saturating_sub(lines);
        self.tail.iter().skip(skip).map(|l| l.to_string()).collect()
    }

    /// Every line, formatted ([`TraceMode::Collect`] only; empty otherwise).
    pub fn take_all(&mut self) -> Vec<String> {
        std::mem::take(&mut self.all)
    }
}

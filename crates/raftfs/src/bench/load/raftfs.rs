//! raftfs's side of the load generator: one task per connection to the leader, keeping up to
//! `--pipeline` commands in flight on it (replies come back in order), with no channel or
//! lock between the task and its socket.

use std::collections::VecDeque;
use std::sync::Arc;

use anyhow::Context;
use bytes::Bytes;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::{LoadArgs, Op, OpKind, Outcome, Shared, Ticket};
use client::{Client, Connection};
use fs::{Command, Name, Reply};

/// Commands in flight while prefilling.
const PREFILL_DEPTH: usize = 64;
/// Pause before reconnecting after a failed connection.
const RECONNECT_PAUSE: std::time::Duration = std::time::Duration::from_millis(50);

/// Finds the leader, prefills the files if asked, and starts one task per connection. The
/// tasks wait for the schedule to begin.
pub(super) async fn start(
    shared: &Arc<Shared>,
    args: &LoadArgs,
    prefill: bool,
) -> anyhow::Result<Vec<JoinHandle<anyhow::Result<()>>>> {
    let names: Arc<Vec<Name>> = Arc::new(
        (0..args.files)
            .map(|file| Name::new(Bytes::from(Shared::key(file))))
            .collect::<Result<_, _>>()?,
    );
    // A write through the redirect-following client finds the leader.
    let mut client = Client::new(args.endpoints.clone());
    let first = Command::Write {
        name: names[0].clone(),
        content: shared.value.clone(),
        exptime_s: 0,
    };
    let reply = client
        .call(&first)
        .await
        .with_context(|| format!("cannot write to raftfs at {}", args.endpoints.join(",")))?;
    let Reply::Written { version } = reply else {
        anyhow::bail!("a write to raftfs got {reply:?}");
    };
    shared.versions[0].store(version, std::sync::atomic::Ordering::Relaxed);
    let leader = client
        .connected_to()
        .context("the client lost its connection")?
        .to_owned();
    if prefill {
        prefill_files(shared, &names, &leader).await?;
    }
    let mut connections = Vec::with_capacity(args.connections);
    for _ in 0..args.connections {
        connections.push(
            Connection::connect(&leader)
                .await
                .with_context(|| format!("cannot connect to the leader at {leader}"))?,
        );
    }
    Ok(connections
        .into_iter()
        .enumerate()
        .map(|(c, conn)| {
            let worker = Worker {
                shared: shared.clone(),
                names: names.clone(),
                depth: args.pipeline,
                addr: leader.clone(),
            };
            tokio::spawn(worker.run(c, conn))
        })
        .collect())
}

/// Writes every file once, pipelined on one connection, and notes their versions.
async fn prefill_files(shared: &Shared, names: &[Name], leader: &str) -> anyhow::Result<()> {
    let mut conn = Connection::connect(leader).await?;
    for chunk in (0..names.len()).collect::<Vec<_>>().chunks(PREFILL_DEPTH) {
        for &file in chunk {
            conn.queue(&Command::Write {
                name: names[file].clone(),
                content: shared.value.clone(),
                exptime_s: 0,
            });
        }
        for &file in chunk {
            match conn.recv().await? {
                Reply::Written { version } => {
                    shared.versions[file].store(version, std::sync::atomic::Ordering::Relaxed)
                }
                other => anyhow::bail!("prefilling the files got {other:?}"),
            }
        }
    }
    Ok(())
}

/// A command on the wire, waiting for its reply.
struct InFlight {
    op: Op,
    ticket: Ticket,
    sent: Instant,
    /// The unmeasured write that precedes a delete: its reply sends the delete.
    prelude: bool,
}

struct Worker {
    shared: Arc<Shared>,
    names: Arc<Vec<Name>>,
    depth: usize,
    addr: String,
}

impl Worker {
    async fn run(mut self, c: usize, mut conn: Connection) -> anyhow::Result<()> {
        let mut chooser = self.shared.chooser(c);
        let mut in_flight: VecDeque<InFlight> = VecDeque::with_capacity(self.depth);
        // A ticket taken whose intended start (open loop) has not come yet.
        let mut waiting: Option<Ticket> = None;
        let mut done = false;
        self.shared.schedule.begun().await;
        // Set by a redirect: drain what is in flight, then reconnect there.
        let mut move_to: Option<String> = None;
        loop {
            if move_to.is_none() {
                while in_flight.len() < self.depth && !done {
                    let ticket = match waiting.take() {
                        Some(ticket) => ticket,
                        None => match self.shared.schedule.next() {
                            Some(ticket) => ticket,
                            None => {
                                done = true;
                                break;
                            }
                        },
                    };
                    let now = Instant::now();
                    if ticket.intended > now {
                        waiting = Some(ticket);
                        break;
                    }
                    let op = self.shared.next_op(&mut chooser);
                    let prelude = op.kind == OpKind::Delete;
                    self.queue(&mut conn, op, prelude);
                    in_flight.push_back(InFlight {
                        op,
                        ticket,
                        sent: now,
                        prelude,
                    });
                }
            }
            if in_flight.is_empty() {
                if let Some(addr) = move_to.take() {
                    self.addr = addr;
                    conn = self.reconnect().await;
                    continue;
                }
                if done {
                    return Ok(());
                }
            }
            let flushed = conn.flush().await;
            let reply = match (flushed, waiting) {
                (Err(err), _) => Err(err),
                (Ok(()), Some(ticket)) if !in_flight.is_empty() => {
                    tokio::select! {
                        reply = conn.recv() => reply,
                        () = tokio::time::sleep_until(ticket.intended) => continue,
                    }
                }
                (Ok(()), Some(ticket)) => {
                    tokio::time::sleep_until(ticket.intended).await;
                    continue;
                }
                (Ok(()), None) => conn.recv().await,
            };
            let reply = match reply {
                Ok(reply) => reply,
                Err(_) => {
                    // Every command in flight has an unknown outcome.
                    for lost in in_flight.drain(..) {
                        self.shared.error(lost.ticket, "io");
                    }
                    conn = self.reconnect().await;
                    continue;
                }
            };
            let Some(sent) = in_flight.pop_front() else {
                anyhow::bail!("a reply came with no command in flight");
            };
            match outcome(sent.op.kind, sent.prelude, reply) {
                Ok(_) if sent.prelude => {
                    let now = Instant::now();
                    self.queue(&mut conn, sent.op, false);
                    in_flight.push_back(InFlight {
                        sent: now,
                        prelude: false,
                        ..sent
                    });
                }
                Ok(outcome) => self.shared.answer(sent.op, sent.ticket, sent.sent, outcome),
                Err(Failure::Redirect(leader)) => {
                    self.shared.error(sent.ticket, "ERR_REDIRECT");
                    move_to = Some(leader);
                }
                Err(Failure::Other(kind)) => self.shared.error(sent.ticket, kind),
            }
        }
    }

    fn queue(&self, conn: &mut Connection, op: Op, prelude: bool) {
        let name = self.names[op.file].clone();
        let content = self.shared.value.clone();
        let command = match (op.kind, prelude) {
            (OpKind::Read, _) => Command::Read { name },
            (OpKind::Write, _) | (OpKind::Delete, true) => Command::Write {
                name,
                content,
                exptime_s: 0,
            },
            (OpKind::Cas, _) => Command::Cas {
                name,
                version: op.version,
                content,
                exptime_s: 0,
            },
            (OpKind::Delete, false) => Command::Delete { name },
        };
        conn.queue(&command);
    }

    /// Connects again to the current address, pausing between failed attempts.
    async fn reconnect(&self) -> Connection {
        loop {
            match Connection::connect(&self.addr).await {
                Ok(conn) => return conn,
                Err(_) => tokio::time::sleep(RECONNECT_PAUSE).await,
            }
        }
    }
}

/// Why a command got no definite answer.
enum Failure {
    Redirect(String),
    Other(&'static str),
}

/// The outcome of a reply to a command of `kind` (`prelude`: the write before a delete).
fn outcome(kind: OpKind, prelude: bool, reply: Reply) -> Result<Outcome, Failure> {
    match (kind, reply) {
        (_, Reply::Redirect(leader)) => Err(Failure::Redirect(leader)),
        (_, Reply::Internal) => Err(Failure::Other("ERR_INTERNAL")),
        (_, Reply::CmdErr) => Err(Failure::Other("ERR_CMD_ERR")),
        (OpKind::Read, Reply::Contents { version, .. }) => Ok(Outcome::Ok(Some(version))),
        (OpKind::Write | OpKind::Cas, Reply::Written { version }) => Ok(Outcome::Ok(Some(version))),
        (OpKind::Delete, Reply::Written { version }) if prelude => Ok(Outcome::Ok(Some(version))),
        (OpKind::Delete, Reply::Deleted) => Ok(Outcome::Ok(None)),
        (OpKind::Read | OpKind::Delete, Reply::FileNotFound) => Ok(Outcome::NotFound),
        (OpKind::Cas, Reply::VersionMismatch { current }) => Ok(Outcome::Conflict(Some(current))),
        (OpKind::Cas, Reply::FileNotFound) => Ok(Outcome::NotFound),
        _ => Err(Failure::Other("unexpected reply")),
    }
}

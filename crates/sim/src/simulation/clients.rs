//! The client side: issue commands, follow redirects, give up on timeouts, record every
//! invocation and answer in the history; for pipelining clients, keep several commands in flight
//! on one connection and check that a read sees the same connection's earlier writes.

use bytes::{Bytes, BytesMut};
use fs::{Command, Reply, ReplyDecoder};
use raft::NodeId;

use super::{Ev, Phase, Simulation};
use crate::client::{InFlight, REDIRECTS_MAX, ReplyKind};
use crate::connection::Connection;
use crate::failure::{Check, Violation};
use crate::trace::{Actor, Note};

/// Longest gap between two commands a pipelining client sends back to back, microseconds:
/// short enough that they usually reach the node in one batch or the next.
const PIPELINE_GAP_US_MAX: u64 = 200;

impl Simulation {
    pub(super) fn client_think(&mut self, c: usize) -> Result<(), Violation> {
        let client = &mut self.clients[c];
        if client.in_flight.len() >= client.depth {
            return Ok(());
        }
        let write_only = match self.phase {
            Phase::Faults if client.budget > 0 => {
                client.budget -= 1;
                false
            }
            Phase::Faults => {
                if self.clients.iter().all(|c| c.budget == 0) {
                    self.begin_final_phase()?;
                }
                return Ok(());
            }
            Phase::Final if client.final_done => return Ok(()),
            // In the final phase a pipelining client too waits for each answer.
            Phase::Final if !client.in_flight.is_empty() => return Ok(()),
            Phase::Final => true,
        };
        let command = self.clients[c].next_command(&mut self.rng, &self.names, write_only);
        let time = self.history_time();
        let op = self.history.invoke(c as u64, time, command.clone());
        self.stats.commands += 1;
        if let Command::Write { exptime_s, .. } | Command::Cas { exptime_s, .. } = &command
            && *exptime_s > 0
        {
            self.stats.expiring += 1;
        }
        if !self.clients[c].in_flight.is_empty() {
            self.stats.pipelined += 1;
        }
        let target = match self.clients[c].conn {
            Some((_, node)) => node,
            None => self.clients[c].pick_target(&mut self.rng, self.slots.len()),
        };
        self.clients[c].in_flight.push(InFlight {
            op,
            command,
            attempt: 0,
            target,
            redirects: 0,
            invoked_at: self.now,
            conn: None,
        });
        let i = self.clients[c].in_flight.len() - 1;
        self.client_send(c, i, target);
        let client = &self.clients[c];
        if client.pipelines()
            && self.phase == Phase::Faults
            && client.budget > 0
            && client.in_flight.len() < client.depth
        {
            // Type ahead: the next command follows at once, before this one is answered.
            let gap = self.rng.between(0, PIPELINE_GAP_US_MAX);
            self.queue
                .push(self.now.plus_us(gap), Ev::ClientThink { client: c });
        }
        Ok(())
    }

    /// Sends client `c`'s in-flight command `i` (a new attempt) to `target`: on its own for
    /// most clients, on the client's connection to `target` for a pipelining one.
    pub(super) fn client_send(&mut self, c: usize, i: usize, target: NodeId) {
        let client = &mut self.clients[c];
        let Some(current) = client.in_flight.get_mut(i) else {
            return;
        };
        client.attempts += 1;
        current.attempt = client.attempts;
        current.target = target;
        current.conn = None;
        let attempt = current.attempt;
        let bytes = current.command.to_bytes();
        let note = Note::Send {
            op: current.op.index(),
            to: target,
            attempt,
            command: current.command.clone(),
        };
        self.note(Actor::Client(c), note);
        let Some(node) = self.index_of(target) else {
            return;
        };
        let (lo, hi) = self.scenario.client_delay_us;
        let delay = self.rng.between(lo, hi);
        let mut at = self.now.plus_us(delay);
        let conn = self.clients[c]
            .pipelines()
            .then(|| self.connection_to(c, node, target));
        if let Some(id) = conn {
            // One stream: a request never overtakes an earlier one on the same connection.
            let connection = &mut self.connections[id];
            at = at.max(connection.request_at);
            connection.request_at = at;
            if let Some(current) = self.clients[c].in_flight.get_mut(i) {
                current.conn = Some(id);
            }
        }
        self.queue.push(
            at,
            Ev::Request {
                node,
                client: c,
                attempt,
                conn,
                bytes,
            },
        );
        self.queue.push(
            self.now.plus_ms(self.scenario.client_timeout_ms),
            Ev::ClientTimeout { client: c, attempt },
        );
    }

    /// Pipelining client `c`'s open connection to `target` (slot `node`), opened now if it has
    /// none there (a client talks to one node at a time).
    fn connection_to(&mut self, c: usize, node: usize, target: NodeId) -> usize {
        if let Some((id, to)) = self.clients[c].conn
            && to == target
            && !self.connections[id].broken
        {
            return id;
        }
        let id = self.connections.len();
        self.connections.push(Connection::new(c, node, self.now));
        self.clients[c].conn = Some((id, target));
        id
    }

    /// The driver answered the attempt `attempt` that came on connection `id`: the connection
    /// writes out every reply now in command order.
    pub(super) fn connection_reply(&mut self, id: usize, attempt: u64, bytes: Bytes) {
        let Some(connection) = self.connections.get_mut(id) else {
            return;
        };
        let client = connection.client;
        for (attempt, bytes) in connection.answered(attempt, bytes) {
            let (lo, hi) = self.scenario.client_delay_us;
            let delay = self.rng.between(lo, hi);
            let connection = &mut self.connections[id];
            let at = self.now.plus_us(delay).max(connection.reply_at);
            connection.reply_at = at;
            self.queue.push(
                at,
                Ev::Reply {
                    client,
                    attempt,
                    bytes,
                },
            );
        }
    }

    pub(super) fn client_reply(
        &mut self,
        c: usize,
        attempt: u64,
        bytes: &[u8],
    ) -> Result<(), Violation> {
        let Some(i) = self.clients[c].position_of(attempt) else {
            self.note(Actor::Client(c), Note::StaleReply { attempt });
            return Ok(());
        };
        let current = &self.clients[c].in_flight[i];
        let (op, invoked_at, conn, command) = (
            current.op,
            current.invoked_at,
            current.conn,
            current.command.clone(),
        );
        let mut buf = BytesMut::from(bytes);
        let reply = match ReplyDecoder::default().decode(&mut buf) {
            Ok(Some(reply)) => reply,
            other => {
                return Err(Violation::new(
                    Check::Harness,
                    format!("a reply does not parse: {other:?}"),
                ));
            }
        };
        self.note(
            Actor::Client(c),
            Note::Reply {
                op: op.index(),
                reply: reply.clone(),
            },
        );
        match self.clients[c].on_reply(&command, &reply) {
            ReplyKind::Definite | ReplyKind::Internal => {
                let definite = reply != fs::Reply::Internal;
                if definite && let Some(id) = conn {
                    self.check_session(c, id, op.index(), &command, &reply)?;
                }
                let was_write = matches!(command, Command::Write { .. });
                let time = self.history_time();
                self.history
                    .complete(op, time, reply)
                    .map_err(|e| Violation::new(Check::Harness, e.to_string()))?;
                if definite {
                    self.stats.definite += 1;
                    let latency = self.now.0 - invoked_at.0;
                    self.stats.latency_us_sum += latency;
                    self.stats.latency_us_max = self.stats.latency_us_max.max(latency);
                    if self.phase == Phase::Final && was_write {
                        self.clients[c].final_done = true;
                    }
                } else {
                    self.stats.unknown += 1;
                    // A node that cannot serve (one removed from the configuration never
                    // learns a leader again): with nothing else in flight on the connection,
                    // a pipelining client tries another node next, as a real one would.
                    if self.clients[c].in_flight.len() == 1 {
                        self.clients[c].conn = None;
                    }
                }
                self.client_finish(c, i);
                Ok(())
            }
            ReplyKind::Redirect(leader) => {
                self.stats.redirects += 1;
                let current = &mut self.clients[c].in_flight[i];
                current.redirects += 1;
                if current.redirects > REDIRECTS_MAX {
                    return self.client_give_up(c, i, "too many redirects");
                }
                self.client_send(c, i, leader);
                Ok(())
            }
            ReplyKind::Refused => Err(Violation::new(
                Check::Harness,
                format!(
                    "client c{c} got a reply that refuses a well-formed command: {}",
                    crate::trace::ShowReply(&reply)
                ),
            )),
        }
    }

    /// The session guarantee the read barrier exists for, on a pipelining client's private
    /// file (which no one else writes, and it never deletes): a read answered on connection
    /// `id` sees at least the version of every successful write or cas of the file answered
    /// before it on that connection. Replies come in command order, so those are exactly the
    /// writes sent before the read on this connection: the node had them in its log when the
    /// read arrived. The linearizability check cannot see this: the read and the write were in
    /// flight together, so it may order the read first.
    fn check_session(
        &mut self,
        c: usize,
        id: usize,
        op: usize,
        command: &Command,
        reply: &Reply,
    ) -> Result<(), Violation> {
        if !self.clients[c].is_private(command) {
            return Ok(());
        }
        let floor = self.connections[id].floor;
        let seen = match (command, reply) {
            (Command::Write { .. } | Command::Cas { .. }, Reply::Written { version }) => {
                self.connections[id].floor = floor.max(*version);
                return Ok(());
            }
            (Command::Read { .. }, Reply::Contents { version, .. }) => Some(*version),
            (Command::Read { .. }, Reply::FileNotFound) => None,
            _ => return Ok(()),
        };
        if floor == 0 || seen.is_some_and(|v| v >= floor) {
            return Ok(());
        }
        let target = self.slots[self.connections[id].node].id;
        Err(Violation::new(
            Check::SessionOrder,
            format!(
                "client c{c}'s read #{op} of its own file {}, pipelined on connection {id} to \
                 {target} behind its write answered OK {floor}, found {}",
                command.name().as_str(),
                match seen {
                    Some(v) => format!("version {v}"),
                    None => "no file".to_owned(),
                }
            ),
        ))
    }

    pub(super) fn client_timeout(&mut self, c: usize, attempt: u64) -> Result<(), Violation> {
        let Some(i) = self.clients[c].position_of(attempt) else {
            return Ok(());
        };
        self.clients[c].leader_hint = None;
        let Some(id) = self.clients[c].in_flight[i].conn else {
            return self.client_give_up(c, i, "timed out");
        };
        // A client that stops waiting closes the connection: every reply still due on it is lost.
        self.connections[id].close();
        if self.clients[c].conn.is_some_and(|(open, _)| open == id) {
            self.clients[c].conn = None;
        }
        while let Some(i) = self.clients[c]
            .in_flight
            .iter()
            .position(|f| f.conn == Some(id))
        {
            self.client_give_up(c, i, "timed out")?;
        }
        Ok(())
    }

    pub(super) fn client_give_up(
        &mut self,
        c: usize,
        i: usize,
        why: &'static str,
    ) -> Result<(), Violation> {
        let Some(current) = self.clients[c].in_flight.get(i) else {
            return Ok(());
        };
        let op = current.op;
        self.history
            .give_up(op)
            .map_err(|e| Violation::new(Check::Harness, e.to_string()))?;
        self.stats.unknown += 1;
        self.note(
            Actor::Client(c),
            Note::GiveUp {
                op: op.index(),
                why,
            },
        );
        self.client_finish(c, i);
        Ok(())
    }

    pub(super) fn client_finish(&mut self, c: usize, i: usize) {
        if i < self.clients[c].in_flight.len() {
            self.clients[c].in_flight.remove(i);
        }
        let think = self.rng.between(0, self.scenario.think_max_us);
        self.queue
            .push(self.now.plus_us(think), Ev::ClientThink { client: c });
    }
}

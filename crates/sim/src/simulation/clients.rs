//! The client side: issue a command, follow redirects, give up on timeouts, record every
//! invocation and answer in the history.

use bytes::BytesMut;
use fs::{Command, ReplyDecoder};
use raft::NodeId;

use super::{Ev, Phase, Simulation};
use crate::client::{InFlight, REDIRECTS_MAX, ReplyKind};
use crate::failure::{Check, Violation};
use crate::trace::{Actor, Note};

impl Simulation {
    pub(super) fn client_think(&mut self, c: usize) -> Result<(), Violation> {
        let client = &mut self.clients[c];
        if client.current.is_some() {
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
            Phase::Final => true,
        };
        let command = self.clients[c].next_command(&mut self.rng, &self.names, write_only);
        self.history_clock += 1;
        let op = self
            .history
            .invoke(c as u64, self.history_clock, command.clone());
        self.stats.commands += 1;
        let target = self.clients[c].pick_target(&mut self.rng, self.slots.len());
        self.clients[c].current = Some(InFlight {
            op,
            command,
            attempt: 0,
            target,
            redirects: 0,
            invoked_at: self.now,
        });
        self.client_send(c, target);
        Ok(())
    }

    /// Sends client `c`'s current command (a new attempt) to `target`.
    pub(super) fn client_send(&mut self, c: usize, target: NodeId) {
        let client = &mut self.clients[c];
        let Some(current) = client.current.as_mut() else {
            return;
        };
        client.attempts += 1;
        current.attempt = client.attempts;
        current.target = target;
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
        self.queue.push(
            self.now.plus_us(delay),
            Ev::Request {
                node,
                client: c,
                attempt,
                bytes,
            },
        );
        self.queue.push(
            self.now.plus_ms(self.scenario.client_timeout_ms),
            Ev::ClientTimeout { client: c, attempt },
        );
    }

    pub(super) fn client_reply(
        &mut self,
        c: usize,
        attempt: u64,
        bytes: &[u8],
    ) -> Result<(), Violation> {
        let Some((op, invoked_at)) = self.clients[c]
            .current
            .as_ref()
            .filter(|cur| cur.attempt == attempt)
            .map(|cur| (cur.op, cur.invoked_at))
        else {
            self.note(Actor::Client(c), Note::StaleReply { attempt });
            return Ok(());
        };
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
        match self.clients[c].on_reply(&reply) {
            ReplyKind::Definite | ReplyKind::Internal => {
                let definite = reply != fs::Reply::Internal;
                let was_write = self.clients[c]
                    .current
                    .as_ref()
                    .is_some_and(|cur| matches!(cur.command, Command::Write { .. }));
                self.history_clock += 1;
                self.history
                    .complete(op, self.history_clock, reply)
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
                }
                self.client_finish(c);
                Ok(())
            }
            ReplyKind::Redirect(leader) => {
                self.stats.redirects += 1;
                let redirects = self.clients[c].current.as_mut().map_or(0, |cur| {
                    cur.redirects += 1;
                    cur.redirects
                });
                if redirects > REDIRECTS_MAX {
                    return self.client_give_up(c, "too many redirects");
                }
                self.client_send(c, leader);
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

    pub(super) fn client_timeout(&mut self, c: usize, attempt: u64) -> Result<(), Violation> {
        if self.clients[c]
            .current
            .as_ref()
            .is_some_and(|cur| cur.attempt == attempt)
        {
            self.clients[c].leader_hint = None;
            return self.client_give_up(c, "timed out");
        }
        Ok(())
    }

    pub(super) fn client_give_up(&mut self, c: usize, why: &'static str) -> Result<(), Violation> {
        let Some(current) = self.clients[c].current.as_ref() else {
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
        self.client_finish(c);
        Ok(())
    }

    pub(super) fn client_finish(&mut self, c: usize) {
        self.clients[c].current = None;
        let think = self.rng.between(0, self.scenario.think_max_us);
        self.queue
            .push(self.now.plus_us(think), Ev::ClientThink { client: c });
    }
}

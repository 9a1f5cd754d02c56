//! Running each node's production driver (crate `replica`): start it from its disk, hand it
//! its inputs with its own clocks, carry out its outputs in order (disk writes, sends, replies,
//! timers), report durable writes back, and run the per-step safety checks.

use bytes::Bytes;
use raft::{AppendEntriesResponse, AppendOutcome, LogIndex, Message, NodeId};
use replica::{Now, Output, Replica};

use super::{CLOCK_ORIGIN_US_MAX, Ev, FORGED_ACK_PPM, Simulation};
use crate::clock::SimTime;
use crate::disk::{Completion, DiskOp};
use crate::failure::{Check, Violation};
use crate::process::{Process, Waiter};
use crate::scenario::Sabotage;
use crate::stats::FaultKind;
use crate::trace::{Actor, MsgSummary, Note};

impl Simulation {
    /// Starts (or restarts) node `k` from what its disk holds.
    pub(super) fn start_node(&mut self, k: usize) -> Result<(), Violation> {
        let id = self.slots[k].id;
        let recovered = self.slots[k].disk.recovered();
        let hard_state = recovered.hard_state;
        let last = LogIndex(recovered.entries.len() as u64);
        let voters: Vec<NodeId> = self.slots.iter().map(|s| s.id).collect();
        let seed = self.rng.next_u64();
        let core = raft::Node::new(
            self.scenario.raft_config(id),
            voters.clone(),
            recovered,
            LogIndex(0),
            seed,
        )
        .map_err(|e| {
            Violation::new(
                Check::CoreContract,
                format!("{id} refuses to start from its own disk: {e}"),
            )
        })?;
        let config = replica::Config {
            park_ms: 2 * self.scenario.raft.election_timeout_ms,
            client_addrs: voters
                .iter()
                .map(|&v| (v, crate::client::node_address(v)))
                .collect(),
        };
        let replica = Replica::new(core, fs::Store::new(), LogIndex(0), config);
        let origin = self.rng.between(0, CLOCK_ORIGIN_US_MAX);
        let slot = &mut self.slots[k];
        slot.clock = slot.clock.restarted(origin);
        slot.process = Some(Process::new(replica));
        slot.paused_until = None;
        self.invariants.restart(k, self.slots[k].disk.chain());
        if self.now > SimTime(0) {
            self.note(
                Actor::Node(id),
                Note::Restart {
                    term: hard_state.term,
                    vote: hard_state.vote,
                    last,
                },
            );
        }
        self.drive(k, |replica, now, out| replica.start(now, out))
    }

    /// Hands node `k`'s driver one input (`call`) with the node's clocks of this moment, then
    /// carries out what it asks and runs the per-step checks. Nothing happens on a node that
    /// is down.
    pub(super) fn drive(
        &mut self,
        k: usize,
        call: impl FnOnce(&mut Replica<Waiter>, Now, &mut Vec<Output<Waiter>>),
    ) -> Result<(), Violation> {
        let now = Now {
            mono: self.slots[k].clock.now(self.now),
            wall_ms: self.slots[k].clock.wall_ms(self.now),
        };
        let Some(process) = self.slots[k].process.as_mut() else {
            return Ok(());
        };
        let mut out = Vec::new();
        call(&mut process.replica, now, &mut out);
        self.carry_out(k, out)
    }

    /// Carries out one call's outputs in order (crate `replica` documentation, "What a runtime
    /// must do"), then runs the per-step checks.
    fn carry_out(&mut self, k: usize, outputs: Vec<Output<Waiter>>) -> Result<(), Violation> {
        let id = self.slots[k].id;
        let Some(term) = self.slots[k].process.as_ref().map(|p| p.core().term()) else {
            return Ok(());
        };
        for output in outputs {
            match output {
                Output::Send { to, msg } => self.transmit(k, to, msg)?,
                Output::LogTruncate { from } => {
                    self.invariants.on_truncate(k, from, term)?;
                    self.submit_disk(k, DiskOp::Truncate(from));
                }
                Output::LogStore { entries } => {
                    self.invariants.on_store(k, &entries)?;
                    self.maybe_strike_leader(k, term, &entries);
                    self.submit_disk(k, DiskOp::Store(entries));
                }
                Output::SaveState(hs) => self.submit_disk(k, DiskOp::SaveState(hs)),
                Output::Applied(entry) => {
                    self.invariants.on_commit(k, &entry, term)?;
                    self.note(
                        Actor::Node(id),
                        Note::Applied {
                            index: entry.index,
                            term: entry.term,
                        },
                    );
                }
                Output::Reply { token, reply } => match token.conn {
                    Some(id) => self.connection_reply(id, token.attempt, reply.to_bytes()),
                    None => {
                        let (lo, hi) = self.scenario.client_delay_us;
                        let delay = self.rng.between(lo, hi);
                        self.queue.push(
                            self.now.plus_us(delay),
                            Ev::Reply {
                                client: token.client,
                                attempt: token.attempt,
                                bytes: reply.to_bytes(),
                            },
                        );
                    }
                },
                Output::Timer { at } => self.arm_timer(k, at),
                Output::RoleChanged { role, term, leader } => {
                    self.note(Actor::Node(id), Note::Role { role, term, leader });
                }
                Output::BadEntry { index, error } => {
                    // The simulator wrote every command itself: none may fail to decode.
                    return Err(Violation::new(
                        Check::CoreContract,
                        format!(
                            "{id} commits i{} whose command does not decode: {error}",
                            index.0
                        ),
                    ));
                }
            }
        }
        let Some(process) = self.slots[k].process.as_ref() else {
            return Ok(());
        };
        let core = process.core();
        let (role, term, commit) = (core.role(), core.term(), core.commit_index());
        self.invariants.after_step(k, role, term, commit)
    }

    /// Schedules node `k`'s timer for `at` on its monotonic clock (perhaps late, as a busy
    /// process notices it); only the latest timer of a process fires.
    fn arm_timer(&mut self, k: usize, at: raft::Millis) {
        let mut when = self.slots[k].clock.when(at, self.now);
        if self.rng.chance(self.scenario.alarm_late_ppm) {
            let late = self.rng.between(1, self.scenario.alarm_late_max_ms.max(1));
            when = when.plus_ms(late);
            self.stats.faults.add(FaultKind::TimerLate, 1);
        }
        let incarnation = self.slots[k].incarnation;
        if let Some(process) = self.slots[k].process.as_mut() {
            process.alarm_generation += 1;
            let generation = process.alarm_generation;
            self.queue.push(
                when,
                Ev::Alarm {
                    node: k,
                    incarnation,
                    generation,
                },
            );
        }
    }

    /// Queues a storage operation of node `k` on its disk.
    pub(super) fn submit_disk(&mut self, k: usize, op: DiskOp) {
        let (lo, hi) = self.scenario.disk_latency_us;
        let latency = self.rng.between(lo, hi);
        let slot = &mut self.slots[k];
        let (done_at, early) = slot.disk.submit(op, self.now, latency);
        let incarnation = slot.incarnation;
        if slot.disk_wakeup.is_none_or(|w| w < done_at) {
            slot.disk_wakeup = Some(done_at);
            self.queue.push(
                done_at,
                Ev::DiskDone {
                    node: k,
                    incarnation,
                },
            );
        }
        if let Some(completion) = early {
            self.queue.push(
                self.now,
                Ev::DiskAck {
                    node: k,
                    incarnation,
                    completion,
                },
            );
        }
    }

    /// Reports a durable operation to node `k`'s core.
    pub(super) fn report_durable(
        &mut self,
        k: usize,
        completion: Completion,
    ) -> Result<(), Violation> {
        let id = self.slots[k].id;
        match completion {
            Completion::StateSaved(hs) => {
                self.note(
                    Actor::Node(id),
                    Note::Saved {
                        term: hs.term,
                        vote: hs.vote,
                        commit: hs.commit,
                    },
                );
                self.drive(k, |replica, now, out| replica.state_saved(now, hs, out))
            }
            Completion::LogStored { index, term } => {
                self.note(Actor::Node(id), Note::Stored { index, term });
                self.drive(k, |replica, now, out| {
                    replica.log_stored(now, index, term, out)
                })
            }
        }
    }

    /// Puts a message from node `k` on the wire (encoded, as the real transport does).
    pub(super) fn transmit(&mut self, k: usize, to: NodeId, msg: Message) -> Result<(), Violation> {
        let from = self.slots[k].id;
        self.stats.messages += 1;
        if let Message::VoteResponse(resp) = &msg
            && resp.granted
            && !resp.prevote
        {
            self.invariants.on_vote(from, resp.term, to)?;
        }
        let Some(to_k) = self.index_of(to) else {
            return Err(Violation::new(
                Check::CoreContract,
                format!("{from} sends to {to}, which is not a member"),
            ));
        };
        if self.scenario.sabotage == Sabotage::ForgedAcks
            && let Message::AppendEntriesRequest(req) = &msg
            && let Some(last) = req.entries.last()
            && self.rng.chance(FORGED_ACK_PPM)
        {
            // The follower never sees the entries, but the leader hears that it stored them.
            let forged = Message::AppendEntriesResponse(AppendEntriesResponse {
                term: req.term,
                outcome: AppendOutcome::Success {
                    match_index: last.index,
                },
            });
            let delay = self.rng.between(
                self.scenario.links.delay_min_us,
                self.scenario.links.delay_max_us,
            );
            self.queue.push(
                self.now.plus_us(delay),
                Ev::Deliver {
                    from: to,
                    to: k,
                    bytes: Bytes::from(forged.encode()),
                },
            );
            return Ok(());
        }
        let bytes = Bytes::from(msg.encode());
        let fate = self.network.fate(&mut self.rng);
        match fate.first {
            None => self.stats.faults.add(FaultKind::MessageDropped, 1),
            Some(delay) => {
                if fate.long {
                    self.stats.faults.add(FaultKind::MessageDelayed, 1);
                }
                self.queue.push(
                    self.now.plus_us(delay),
                    Ev::Deliver {
                        from,
                        to: to_k,
                        bytes: bytes.clone(),
                    },
                );
            }
        }
        if let Some(delay) = fate.duplicate {
            self.stats.faults.add(FaultKind::MessageDuplicated, 1);
            self.queue.push(
                self.now.plus_us(delay),
                Ev::Deliver {
                    from,
                    to: to_k,
                    bytes,
                },
            );
        }
        Ok(())
    }

    /// A message arrives at node `to`.
    pub(super) fn deliver(
        &mut self,
        from: NodeId,
        to: usize,
        bytes: &[u8],
    ) -> Result<(), Violation> {
        let to_id = self.slots[to].id;
        if self.network.is_blocked(from, to_id) {
            self.stats.faults.add(FaultKind::MessageCut, 1);
            self.note(Actor::Node(to_id), Note::Cut { from, to: to_id });
            return Ok(());
        }
        if self.slots[to].process.is_none() {
            self.note(Actor::Node(to_id), Note::ToDeadNode { from });
            return Ok(());
        }
        let msg = Message::decode(bytes).map_err(|e| {
            Violation::new(
                Check::CoreContract,
                format!("a message from {from} to {to_id} does not decode: {e}"),
            )
        })?;
        self.note(
            Actor::Node(to_id),
            Note::Recv {
                from,
                msg: MsgSummary::of(&msg),
            },
        );
        self.drive(to, |replica, now, out| replica.message(now, from, msg, out))
    }

    pub(super) fn index_of(&self, id: NodeId) -> Option<usize> {
        let k = (id.0 as usize).checked_sub(1)?;
        (k < self.slots.len()).then_some(k)
    }
}

//! Driving each node exactly as the `raft` crate documentation says: start it from its disk,
//! step it, carry out its actions in order (disk writes, sends, commits, alarms, client
//! bookkeeping), report durable writes back, and run the per-step safety checks.

use bytes::Bytes;
use raft::{Action, AppendEntriesResponse, AppendOutcome, Event, LogIndex, Message, NodeId};

use super::{CLOCK_ORIGIN_US_MAX, Ev, FORGED_ACK_PPM, Simulation};
use crate::clock::SimTime;
use crate::disk::{Completion, DiskOp};
use crate::failure::{Check, Violation};
use crate::replica::Replica;
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
            voters,
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
        let origin = self.rng.between(0, CLOCK_ORIGIN_US_MAX);
        let slot = &mut self.slots[k];
        slot.clock = slot.clock.restarted(origin);
        slot.replica = Some(Replica::new(core));
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
        self.step(k, Event::Timeout)
    }

    /// Feeds `event` to node `k` and carries out what it asks.
    pub(super) fn step(&mut self, k: usize, event: Event) -> Result<(), Violation> {
        let now_ms = self.slots[k].clock.now(self.now);
        let Some(replica) = self.slots[k].replica.as_mut() else {
            return Ok(());
        };
        let actions = replica.core.step(now_ms, event);
        self.execute(k, actions)
    }

    /// Carries out a step's actions in order (crate `raft` documentation, "What a driver must
    /// do"), then runs the per-step checks.
    pub(super) fn execute(&mut self, k: usize, actions: Vec<Action>) -> Result<(), Violation> {
        let id = self.slots[k].id;
        let mut leader_found = false;
        for action in actions {
            match action {
                Action::Send { to, msg } => self.transmit(k, to, msg)?,
                Action::LogTruncate { from } => {
                    let term = self.slots[k]
                        .replica
                        .as_ref()
                        .map_or(raft::Term(0), |r| r.core.term());
                    self.invariants.on_truncate(k, from, term)?;
                    self.submit_disk(k, DiskOp::Truncate(from));
                }
                Action::LogStore { entries } => {
                    self.invariants.on_store(k, &entries)?;
                    self.submit_disk(k, DiskOp::Store(entries));
                }
                Action::SaveState(hs) => self.submit_disk(k, DiskOp::SaveState(hs)),
                Action::Commit(entry) => {
                    let Some(replica) = self.slots[k].replica.as_mut() else {
                        continue;
                    };
                    let term = replica.core.term();
                    self.invariants.on_commit(k, &entry, term)?;
                    replica.apply(&entry)?;
                    self.note(
                        Actor::Node(id),
                        Note::Applied {
                            index: entry.index,
                            term: entry.term,
                        },
                    );
                }
                Action::Appended { id: p, index, term } => {
                    if let Some(r) = self.slots[k].replica.as_mut() {
                        r.appended(p, index, term);
                    }
                }
                Action::CommitError { id: p, error } => {
                    let raft::ProposeError::NotLeader { leader } = error;
                    if let Some(r) = self.slots[k].replica.as_mut() {
                        r.proposal_failed(p, leader);
                    }
                }
                Action::ReadReady { id: r, index } => {
                    if let Some(rep) = self.slots[k].replica.as_mut() {
                        rep.read_ready(r, index);
                    }
                }
                Action::ReadError { id: r, error } => {
                    let raft::ReadError::NotLeader { leader } = error;
                    if let Some(rep) = self.slots[k].replica.as_mut() {
                        rep.read_failed(r, leader);
                    }
                }
                Action::Alarm { at } => {
                    let mut when = self.slots[k].clock.when(at, self.now);
                    if self.rng.chance(self.scenario.alarm_late_ppm) {
                        // A busy or descheduled process notices its timer late.
                        let late = self.rng.between(1, self.scenario.alarm_late_max_ms.max(1));
                        when = when.plus_ms(late);
                        self.stats.faults.add(FaultKind::TimerLate, 1);
                    }
                    let incarnation = self.slots[k].incarnation;
                    if let Some(r) = self.slots[k].replica.as_mut() {
                        r.alarm_generation += 1;
                        let generation = r.alarm_generation;
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
                // No snapshots here yet: no node compacts, so no leader sends one (and no
                // simulated peer forges an InstallSnapshot, the only way to be asked to install).
                Action::SendSnapshot { .. } | Action::InstallSnapshot { .. } => {}
                Action::RoleChanged { role, term, leader } => {
                    self.note(Actor::Node(id), Note::Role { role, term, leader });
                    if let Some(r) = self.slots[k].replica.as_mut() {
                        r.leader_changed(leader);
                    }
                    leader_found |= leader.is_some();
                }
            }
        }
        let wall = self.slots[k].clock.wall_ms(self.now);
        let Some(replica) = self.slots[k].replica.as_mut() else {
            return Ok(());
        };
        replica.serve_reads(wall);
        let (role, term, commit) = (
            replica.core.role(),
            replica.core.term(),
            replica.core.commit_index(),
        );
        let parked = if leader_found && replica.has_parked() {
            replica.take_parked()
        } else {
            Vec::new()
        };
        self.invariants.after_step(k, role, term, commit)?;
        self.flush_replies(k);
        if !parked.is_empty() {
            self.handle_requests(k, parked)?;
        }
        Ok(())
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
                self.step(k, Event::StateSaved(hs))
            }
            Completion::LogStored { index, term } => {
                self.note(Actor::Node(id), Note::Stored { index, term });
                self.step(k, Event::LogStored { index, term })
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
        if self.slots[to].replica.is_none() {
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
        self.step(to, Event::Message { from, msg })
    }

    pub(super) fn index_of(&self, id: NodeId) -> Option<usize> {
        let k = (id.0 as usize).checked_sub(1)?;
        (k < self.slots.len()).then_some(k)
    }
}

//! Running each node's production driver (crate `replica`): start it from its disk, hand it
//! its inputs with its own clocks, carry out its outputs in order (disk writes, sends, replies,
//! timers), report durable writes back, and run the per-step safety checks.

use bytes::Bytes;
use raft::{AppendEntriesResponse, AppendOutcome, LogIndex, Message, NodeId};
use replica::{Now, Output, PeerMessage, Replica};

use super::{CLOCK_ORIGIN_US_MAX, Ev, FORGED_ACK_PPM, Simulation};
use crate::clock::SimTime;
use crate::disk::{Completion, DiskOp, SnapshotFile};
use crate::failure::{Check, Violation};
use crate::process::{Process, Waiter};
use crate::scenario::Sabotage;
use crate::snapfile;
use crate::stats::FaultKind;
use crate::trace::{Actor, MsgSummary, Note};

impl Simulation {
    /// Starts (or restarts) node `k` from what its disk holds, through the same recovery as
    /// the server (`replica::reconcile`).
    pub(super) fn start_node(&mut self, k: usize) -> Result<(), Violation> {
        let id = self.slots[k].id;
        let image = self.slots[k].disk.image();
        let hard_state = image.hard_state;
        let refused = |e: String| {
            Violation::new(
                Check::CoreContract,
                format!("{id} refuses to start from its own disk: {e}"),
            )
        };
        let (store, snapshot, membership) = match &image.snapshot {
            Some(file) => {
                let Some((info, store, membership)) = snapfile::decode(&file.bytes) else {
                    return Err(refused("its snapshot file does not verify".into()));
                };
                (store, Some(info), Some(membership))
            }
            None => (fs::Store::new(), None, None),
        };
        let mut reconciled = replica::reconcile(
            hard_state,
            snapshot.map(|s| (s.index, s.term)),
            image.first,
            image.entries,
        )
        .map_err(|e| refused(e.to_string()))?;
        reconciled.recovered.membership = membership;
        self.slots[k]
            .disk
            .fix(reconciled.truncate_from, reconciled.discard_upto);
        let last = reconciled
            .recovered
            .entries
            .last()
            .map_or(snapshot.map_or(LogIndex(0), |s| s.index), |e| e.index);
        let voters: Vec<NodeId> = self.slots.iter().map(|s| s.id).collect();
        let seed = self.rng.next_u64();
        let applied = snapshot.map_or(LogIndex(0), |s| s.index);
        let core = raft::Node::new(
            self.scenario.raft_config(id),
            bootstrap(&voters),
            reconciled.recovered,
            applied,
            seed,
        )
        .map_err(|e| refused(e.to_string()))?;
        let config = self.scenario.replica_config();
        let replica = Replica::new(core, store, snapshot, config);
        let origin = self.rng.between(0, CLOCK_ORIGIN_US_MAX);
        let slot = &mut self.slots[k];
        slot.clock = slot.clock.restarted(origin);
        slot.process = Some(Process::new(replica));
        slot.paused_until = None;
        self.invariants
            .restart(k, self.slots[k].disk.chain(), applied);
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
                    self.count_clock_entry(&entry);
                    self.note(
                        Actor::Node(id),
                        Note::Applied {
                            index: entry.index,
                            term: entry.term,
                        },
                    );
                }
                Output::Reply { token, reply } if token.client == Waiter::ADMIN.client => {
                    self.admin_done(id, token.attempt, &reply);
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
                // The simulated network routes by id: no address book to keep.
                Output::Members(_) => {}
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
                Output::SaveSnapshot {
                    index,
                    term,
                    store,
                    membership,
                } => {
                    let (info, bytes) = snapfile::encode(index, term, &store, &membership);
                    self.note(Actor::Node(id), Note::Snapshot { index });
                    self.submit_disk(k, DiskOp::SaveSnapshot(SnapshotFile { info, bytes }));
                }
                Output::Backup { index, .. } => {
                    // The simulated clients never ask for a backup (an operator's tool).
                    return Err(Violation::new(
                        Check::CoreContract,
                        format!("{id} handed out a backup at i{} nobody asked for", index.0),
                    ));
                }
                Output::LogDiscard { upto } => self.submit_disk(k, DiskOp::Discard(upto)),
                Output::SendChunk {
                    to,
                    offer,
                    offset,
                    len,
                    total_bytes,
                } => self.send_chunk(k, to, offer, offset, len, total_bytes)?,
                Output::StageChunk {
                    offer,
                    offset,
                    data,
                } => self.stage_chunk(k, offer, offset, &data)?,
                Output::StageFinish { offer } => {
                    let staged = self.slots[k]
                        .process
                        .as_mut()
                        .and_then(|p| p.staging.take());
                    if let Some((staged, bytes)) = staged
                        && staged == offer
                    {
                        let op = DiskOp::SyncStaging {
                            index: offer.index,
                            file: Bytes::from(bytes),
                        };
                        self.submit_disk(k, op);
                    }
                }
                Output::InstallSnapshot {
                    index,
                    term,
                    keep_log,
                } => self.install(k, index, term, keep_log)?,
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

    /// Writes a received chunk to node `k`'s staging file (in order: the driver guarantees it).
    fn stage_chunk(
        &mut self,
        k: usize,
        offer: replica::Offer,
        offset: u64,
        data: &[u8],
    ) -> Result<(), Violation> {
        let id = self.slots[k].id;
        let Some(p) = self.slots[k].process.as_mut() else {
            return Ok(());
        };
        if offset == 0 {
            p.staging = Some((offer.clone(), Vec::new()));
        }
        match &mut p.staging {
            Some((staged, bytes)) if *staged == offer && bytes.len() as u64 == offset => {
                bytes.extend_from_slice(data);
                Ok(())
            }
            _ => Err(Violation::new(
                Check::CoreContract,
                format!(
                    "{id} stages bytes at {offset} of snapshot i{} out of order",
                    offer.index.0
                ),
            )),
        }
    }

    /// `Output::InstallSnapshot`: the staged file becomes node `k`'s snapshot on its disk.
    fn install(
        &mut self,
        k: usize,
        index: LogIndex,
        term: raft::Term,
        keep_log: bool,
    ) -> Result<(), Violation> {
        let id = self.slots[k].id;
        self.invariants.on_install(k, index, term, keep_log)?;
        self.note(Actor::Node(id), Note::Install { index, keep_log });
        let staged = self.slots[k].process.as_mut().and_then(|p| p.staged.take());
        let Some((_, bytes)) = staged.filter(|(i, _)| *i == index) else {
            return Err(Violation::new(
                Check::CoreContract,
                format!("{id} installs snapshot i{} that it never staged", index.0),
            ));
        };
        let info = replica::SnapshotInfo {
            index,
            term,
            file_bytes: bytes.len() as u64,
        };
        let chain = self.invariants.committed_prefix(index);
        let file = SnapshotFile { info, bytes };
        self.submit_disk(
            k,
            DiskOp::Install {
                file,
                keep_log,
                chain,
            },
        );
        Ok(())
    }

    /// Puts a chunk of node `k`'s snapshot for follower `to` on the wire, read from the file
    /// its transfer opened (or opening the current one); if that snapshot is gone, the driver
    /// hears so.
    fn send_chunk(
        &mut self,
        k: usize,
        to: NodeId,
        offer: replica::Offer,
        offset: u64,
        len: u64,
        total_bytes: u64,
    ) -> Result<(), Violation> {
        let current = self.slots[k].disk.snapshot().cloned();
        let Some(process) = self.slots[k].process.as_mut() else {
            return Ok(());
        };
        let open = match process.sending.get(&to) {
            Some((index, bytes)) if *index == offer.index => Some(bytes.clone()),
            _ => current
                .filter(|f| f.info.index == offer.index)
                .map(|f| f.bytes),
        };
        let Some(file) = open else {
            return self.drive(k, |replica, now, out| {
                replica.chunk_unavailable(now, to, out)
            });
        };
        process.sending.insert(to, (offer.index, file.clone()));
        let (start, end) = (offset as usize, (offset + len) as usize);
        if start > end || end > file.len() {
            return Err(Violation::new(
                Check::CoreContract,
                format!(
                    "the driver asks for bytes {start}..{end} of a {}-byte snapshot",
                    file.len()
                ),
            ));
        }
        let chunk = replica::Chunk {
            offer,
            total_bytes,
            offset,
            data: file.slice(start..end),
        };
        self.stats.chunks_sent += 1;
        self.transmit(k, to, PeerMessage::Chunk(chunk))
    }

    /// Reports a durable operation to node `k`'s driver.
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
            Completion::SnapshotSaved(info) => {
                self.stats.snapshots_made += 1;
                self.drive(k, |replica, now, out| {
                    replica.snapshot_saved(now, info, out)
                })
            }
            Completion::Staged { index, file } => {
                let store = snapfile::decode(&file)
                    .filter(|(info, _, _)| info.index == index)
                    .map(|(_, store, _)| store);
                if store.is_some()
                    && let Some(p) = self.slots[k].process.as_mut()
                {
                    p.staged = Some((index, file));
                }
                self.drive(k, |replica, now, out| {
                    replica.snapshot_staged(now, index, store, out)
                })
            }
            Completion::Installed { index, term } => {
                self.stats.snapshots_installed += 1;
                self.drive(k, |replica, now, out| {
                    replica.snapshot_installed(now, index, term, out)
                })
            }
        }
    }

    /// Puts a message from node `k` on the wire (encoded, as the real transport does).
    pub(super) fn transmit(
        &mut self,
        k: usize,
        to: NodeId,
        msg: PeerMessage,
    ) -> Result<(), Violation> {
        let from = self.slots[k].id;
        self.stats.messages += 1;
        if let PeerMessage::Raft(Message::ReadIndexRequest(_)) = &msg {
            self.stats.follower_read_requests += 1;
        }
        if let PeerMessage::Raft(Message::VoteResponse(resp)) = &msg
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
            && let PeerMessage::Raft(Message::AppendEntriesRequest(req)) = &msg
            && let Some(last) = req.entries.last()
            && self.rng.chance(FORGED_ACK_PPM)
        {
            // The follower never sees the entries, but the leader hears that it stored them.
            let forged = PeerMessage::Raft(Message::AppendEntriesResponse(AppendEntriesResponse {
                term: req.term,
                outcome: AppendOutcome::Success {
                    match_index: last.index,
                },
            }));
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
        bytes: &Bytes,
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
        let msg = PeerMessage::decode(bytes).map_err(|e| {
            Violation::new(
                Check::CoreContract,
                format!("a message from {from} to {to_id} does not decode: {e}"),
            )
        })?;
        self.note(
            Actor::Node(to_id),
            Note::Recv {
                from,
                msg: MsgSummary::of_peer(&msg),
            },
        );
        self.drive(to, |replica, now, out| replica.peer(now, from, msg, out))
    }

    /// Counts `entry` if it is a clock entry applied here first (every node applies it).
    fn count_clock_entry(&mut self, entry: &raft::Entry) {
        if entry.index <= self.applied_first {
            return;
        }
        self.applied_first = entry.index;
        if let raft::Payload::Command(bytes) = &entry.payload
            && fs::StampedCommand::decode(bytes).is_ok_and(|s| s.command.is_none())
        {
            self.stats.clock_entries += 1;
        }
    }

    pub(super) fn index_of(&self, id: NodeId) -> Option<usize> {
        let k = (id.0 as usize).checked_sub(1)?;
        (k < self.slots.len()).then_some(k)
    }
}

/// The founding configuration: every node a voter, reached at its simulated address (what
/// `ERR_REDIRECT` names and the clients parse back).
fn bootstrap(voters: &[NodeId]) -> raft::Membership {
    let members = voters
        .iter()
        .map(|&v| {
            let address = crate::client::node_address(v);
            let member = raft::Member {
                voter: true,
                addresses: raft::Addresses {
                    peer: address.clone(),
                    client: address,
                    http: None,
                },
            };
            (v, member)
        })
        .collect();
    raft::Membership::new(members).unwrap_or_else(|e| panic!("simulated members: {e}"))
}

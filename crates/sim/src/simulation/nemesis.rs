//! Fault injection: crashes with torn writes, partitions of four shapes, disk stalls and process
//! pauses; and the end of the fault phase, which heals everything.

use raft::{Entry, NodeId, Payload, Role, Term};

use super::{CONVERGE_BOUND_ELECTIONS, Ev, LEADER_BOUND_ELECTIONS, Phase, Simulation};
use crate::failure::Violation;
use crate::network::Partition;
use crate::process::Waiter;
use crate::scenario::Nemesis;
use crate::stats::FaultKind;
use crate::trace::{Actor, Note};

impl Simulation {
    pub(super) fn schedule_nemesis(&mut self) {
        let (lo, hi) = self.scenario.fault_interval_ms;
        let wait = self.rng.between(lo.max(1), hi.max(1));
        self.queue.push(self.now.plus_ms(wait), Ev::Nemesis);
    }

    /// Schedules the next spurious timeout, if the scenario has them and faults still strike.
    pub(super) fn schedule_spurious_timeout(&mut self) {
        let (lo, hi) = self.scenario.spurious_timeout_ms;
        if hi == 0 || self.phase != Phase::Faults {
            return;
        }
        let wait = self.rng.between(lo.max(1), hi);
        self.queue.push(self.now.plus_ms(wait), Ev::SpuriousTimeout);
    }

    /// A random running node gets `Timeout` although its alarm is not due: the core compares
    /// its own deadlines with the clock, so this must change nothing it would not do anyway.
    pub(super) fn spurious_timeout(&mut self) -> Result<(), Violation> {
        if self.phase != Phase::Faults {
            return Ok(());
        }
        self.schedule_spurious_timeout();
        let k = self.rng.below(self.slots.len());
        if self.slots[k].process.is_none() || self.slots[k].paused_until.is_some() {
            return Ok(());
        }
        self.stats.faults.add(FaultKind::TimerSpurious, 1);
        self.note(Actor::Node(self.slots[k].id), Note::Timeout);
        self.drive(k, |replica, now, out| replica.timeout(now, out))
    }

    pub(super) fn nemesis(&mut self) -> Result<(), Violation> {
        if self.phase != Phase::Faults {
            return Ok(());
        }
        self.schedule_nemesis();
        let Some(pick) = self.rng.weighted(&self.scenario.fault_weights) else {
            return Ok(());
        };
        let (lo, hi) = self.scenario.fault_duration_ms;
        let duration = self.rng.between(lo, hi);
        match Nemesis::ALL[pick] {
            Nemesis::Crash => self.crash_some_node(),
            Nemesis::Split => {
                let mut ids = self.ids();
                self.rng.shuffle(&mut ids);
                let cut = 1 + self.rng.below(ids.len() / 2);
                let b = ids.split_off(cut);
                self.partition(Partition::Split { a: ids, b }, FaultKind::Split, duration);
                Ok(())
            }
            Nemesis::OneWay => {
                let mut ids = self.ids();
                self.rng.shuffle(&mut ids);
                let cut = 1 + self.rng.below(ids.len() - 1);
                let loud = ids.split_off(cut);
                self.partition(
                    Partition::OneWay { deaf: ids, loud },
                    FaultKind::OneWay,
                    duration,
                );
                Ok(())
            }
            Nemesis::IsolateLeader => {
                let target = match self.current_leader() {
                    Some(leader) => leader,
                    None => NodeId(self.rng.below(self.slots.len()) as u64 + 1),
                };
                self.partition(
                    Partition::Isolated(target),
                    FaultKind::IsolateLeader,
                    duration,
                );
                Ok(())
            }
            Nemesis::Bridge => {
                let mut ids = self.ids();
                self.rng.shuffle(&mut ids);
                let bridge = ids.remove(0);
                let half = ids.len() / 2;
                let right = ids.split_off(half);
                self.partition(
                    Partition::Bridge {
                        bridge,
                        left: ids,
                        right,
                    },
                    FaultKind::Bridge,
                    duration,
                );
                Ok(())
            }
            Nemesis::Reconfigure => self.reconfigure(),
            Nemesis::Transfer => self.transfer_leadership(),
            Nemesis::DiskStall => {
                let k = self.rng.below(self.slots.len());
                let until = self.now.plus_ms(duration);
                self.slots[k].disk.stall(until);
                let incarnation = self.slots[k].incarnation;
                self.queue.push(
                    until,
                    Ev::DiskDone {
                        node: k,
                        incarnation,
                    },
                );
                self.stats.faults.add(FaultKind::DiskStall, 1);
                self.note(Actor::Node(self.slots[k].id), Note::Stall { until });
                Ok(())
            }
            Nemesis::Pause => {
                let k = self.rng.below(self.slots.len());
                if self.slots[k].process.is_none() {
                    return Ok(());
                }
                let until = self.now.plus_ms(duration);
                self.slots[k].paused_until = Some(until);
                self.stats.faults.add(FaultKind::Pause, 1);
                self.note(Actor::Node(self.slots[k].id), Note::Pause { until });
                Ok(())
            }
        }
    }

    /// Node `k`, in `term`, just appended `entries`: perhaps schedule a leader strike
    /// (`Scenario::leader_strike_ppm` and the rest), soon enough to land while they replicate.
    /// Three moments count: a leader appending client commands (cut them off before they reach
    /// a majority), a leader appending its no-op (depose it before that commits), and a follower
    /// appending an entry of an older term than its leader's (the leader spreading an old entry:
    /// depose it before its own no-op follows, keeping that follower away from it).
    pub(super) fn maybe_strike_leader(&mut self, k: usize, term: Term, entries: &[Entry]) {
        if self.scenario.leader_strike_ppm == 0
            || self.strike_pending
            || self.phase != Phase::Faults
        {
            return;
        }
        let Some(role) = self.slots[k].process.as_ref().map(|p| p.core().role()) else {
            return;
        };
        let s = &self.scenario;
        let (leader, ppm, (lo, hi), spare) = if role == Role::Leader {
            if entries
                .iter()
                .any(|e| e.term == term && e.payload == Payload::Noop)
            {
                (
                    k,
                    s.leader_strike_noop_ppm,
                    s.leader_strike_noop_delay_us,
                    None,
                )
            } else {
                (k, s.leader_strike_ppm, s.leader_strike_delay_us, None)
            }
        } else if entries.iter().any(|e| e.term < term) {
            let leader = self.slots.iter().position(|slot| {
                slot.process
                    .as_ref()
                    .is_some_and(|p| p.core().role() == Role::Leader && p.core().term() == term)
            });
            let Some(leader) = leader else {
                return;
            };
            (
                leader,
                s.leader_strike_noop_ppm,
                s.leader_strike_noop_delay_us,
                Some(self.slots[k].id),
            )
        } else {
            return;
        };
        if !self.rng.chance(ppm) {
            return;
        }
        let delay = self.rng.between(lo, hi);
        self.strike_pending = true;
        self.queue.push(
            self.now.plus_us(delay),
            Ev::LeaderStrike {
                node: leader,
                term,
                spare,
            },
        );
    }

    /// Strikes node `k` if it still leads `term`: cut off with one follower other than
    /// `spare` (most often: the entries it sent reach at most that one, and the rest elect a
    /// new leader), isolated, or crashed. The next strike replaces the partition, so a deposed
    /// leader comes back while its successor is cut off in turn: figure 8's three terms.
    pub(super) fn leader_strike(
        &mut self,
        k: usize,
        term: Term,
        spare: Option<NodeId>,
    ) -> Result<(), Violation> {
        self.strike_pending = false;
        let still = self.slots[k]
            .process
            .as_ref()
            .is_some_and(|p| p.core().role() == Role::Leader && p.core().term() == term);
        if !still || self.phase != Phase::Faults {
            return Ok(());
        }
        self.stats.faults.add(FaultKind::LeaderStrike, 1);
        let leader = self.slots[k].id;
        let election = self.scenario.raft.election_timeout_ms;
        let duration = self.rng.between(election, 4 * election);
        match self.rng.weighted(&[6, 2, 1]).unwrap_or(0) {
            0 => {
                let mut others: Vec<NodeId> = self
                    .ids()
                    .into_iter()
                    .filter(|&n| n != leader && Some(n) != spare)
                    .collect();
                self.rng.shuffle(&mut others);
                let mut b = others.split_off(1);
                b.extend(spare);
                let mut a = vec![leader];
                a.extend(others);
                self.partition(Partition::Split { a, b }, FaultKind::Split, duration);
            }
            1 => self.partition(
                Partition::Isolated(leader),
                FaultKind::IsolateLeader,
                duration,
            ),
            _ => self.crash(k),
        }
        Ok(())
    }

    pub(super) fn partition(&mut self, partition: Partition, kind: FaultKind, duration_ms: u64) {
        self.network.partition(&partition);
        self.partition_epoch += 1;
        self.stats.faults.add(kind, 1);
        self.note(Actor::Nemesis, Note::Partition(partition.to_string()));
        self.queue.push(
            self.now.plus_ms(duration_ms),
            Ev::PartitionEnd {
                epoch: self.partition_epoch,
            },
        );
    }

    /// Crashes a running node: the leader a third of the time, else any; a crash that would
    /// leave less than a majority running happens only rarely.
    pub(super) fn crash_some_node(&mut self) -> Result<(), Violation> {
        let up: Vec<usize> = (0..self.slots.len())
            .filter(|&k| self.slots[k].process.is_some())
            .collect();
        let majority = self.slots.len() / 2 + 1;
        if up.len() <= majority && !self.rng.chance(self.scenario.majority_crash_ppm) {
            return Ok(());
        }
        let leader = self.current_leader().and_then(|l| self.index_of(l));
        let k = match leader {
            Some(k) if self.rng.chance(333_333) => k,
            _ => match self.rng.pick(&up) {
                Some(&k) => k,
                None => return Ok(()),
            },
        };
        self.crash(k);
        Ok(())
    }

    /// The whole cluster loses power: every running node crashes at once, each keeping only
    /// what its disk made durable plus what a crash may keep of the rest, and each restarts
    /// after its own downtime. Committed entries must all survive.
    pub(super) fn power_loss(&mut self) {
        if self.phase != Phase::Faults {
            return;
        }
        self.stats.faults.add(FaultKind::PowerLoss, 1);
        self.note(Actor::Nemesis, Note::PowerLoss);
        for k in 0..self.slots.len() {
            if self.slots[k].process.is_some() {
                self.crash(k);
            }
        }
    }

    /// Crashes node `k`: its process is gone, its disk keeps what was durable plus a random
    /// prefix of what was in flight.
    pub(super) fn crash(&mut self, k: usize) {
        let in_flight = self.slots[k].disk.records_in_flight();
        // A third of crashes lose everything in flight, a third keep it all, a third cut it.
        let survive = match self.rng.below(3) {
            0 => 0,
            1 => in_flight,
            _ => self.rng.below(in_flight + 1),
        };
        let slot = &mut self.slots[k];
        let loss = slot.disk.crash(survive);
        slot.process = None;
        slot.incarnation += 1;
        slot.paused_until = None;
        slot.disk_wakeup = None;
        let incarnation = slot.incarnation;
        self.stats.faults.add(FaultKind::Crash, 1);
        self.stats
            .faults
            .add(FaultKind::UnackedRecordSurvived, loss.survived as u64);
        self.stats
            .faults
            .add(FaultKind::UnackedRecordLost, loss.lost as u64);
        self.note(
            Actor::Node(self.slots[k].id),
            Note::Crash {
                survived: loss.survived,
                lost: loss.lost,
            },
        );
        let (lo, hi) = self.scenario.downtime_ms;
        let downtime = self.rng.between(lo, hi);
        self.queue.push(
            self.now.plus_ms(downtime),
            Ev::Restart {
                node: k,
                incarnation,
            },
        );
    }

    /// Ends the fault phase: heals everything and starts the liveness clock.
    pub(super) fn begin_final_phase(&mut self) -> Result<(), Violation> {
        if self.phase == Phase::Final {
            return Ok(());
        }
        self.phase = Phase::Final;
        self.final_phase_at = Some(self.now);
        self.note(Actor::Sim, Note::FinalPhase);
        self.network.heal();
        self.network.make_reliable();
        for k in 0..self.slots.len() {
            self.slots[k].paused_until = None;
            self.slots[k].disk.end_stall(self.now);
            let incarnation = self.slots[k].incarnation;
            self.queue.push(
                self.now,
                Ev::DiskDone {
                    node: k,
                    incarnation,
                },
            );
            if self.slots[k].process.is_none() {
                self.start_node(k)?;
            }
        }
        for c in 0..self.clients.len() {
            if self.clients[c].in_flight.is_empty() {
                self.queue.push(self.now, Ev::ClientThink { client: c });
            }
        }
        let election = self.scenario.raft.election_timeout_ms;
        self.queue.push(
            self.now.plus_ms(LEADER_BOUND_ELECTIONS * election),
            Ev::LeaderDeadline,
        );
        self.queue.push(
            self.now.plus_ms(CONVERGE_BOUND_ELECTIONS * election),
            Ev::FinalDeadline,
        );
        Ok(())
    }

    /// The slot of the current leader, if it runs and is not paused (an admin command for it).
    fn leader_slot(&self) -> Option<usize> {
        let k = self.current_leader().and_then(|l| self.index_of(l))?;
        let slot = &self.slots[k];
        (slot.process.is_some() && slot.paused_until.is_none()).then_some(k)
    }

    /// A membership change through the leader, keeping at most one node out of the voters (so
    /// that every majority of a configuration is a majority of the whole cluster, which the
    /// durability check counts): with every node a voter, remove one (the leader itself, a
    /// third of the time); a removed node is added back as a learner; a learner is promoted.
    /// The leader may refuse (a change pending, a learner behind, no commit in its term yet).
    fn reconfigure(&mut self) -> Result<(), Violation> {
        let Some(k) = self.leader_slot() else {
            return Ok(());
        };
        let Some(process) = self.slots[k].process.as_ref() else {
            return Ok(());
        };
        let leader = process.core().id();
        let membership = process.core().membership().clone();
        let out = self.ids().into_iter().find(|&id| !membership.is_voter(id));
        let (admin, code) = match out {
            None => {
                let voters: Vec<NodeId> = membership.voters().collect();
                let target = if self.rng.chance(REMOVE_LEADER_PPM) || voters.is_empty() {
                    leader
                } else {
                    voters[self.rng.below(voters.len())]
                };
                (fs::Admin::RemoveMember { id: target.0 }, ADMIN_REMOVE)
            }
            Some(id) if membership.contains(id) => (fs::Admin::Promote { id: id.0 }, ADMIN_PROMOTE),
            Some(id) => {
                let address = crate::client::node_address(id);
                let add = fs::Admin::AddMember {
                    id: id.0,
                    peer: address.clone(),
                    client: address,
                    http: None,
                };
                (add, ADMIN_ADD)
            }
        };
        self.note(Actor::Node(leader), Note::Admin(format!("{admin:?}")));
        let waiter = Waiter {
            attempt: code,
            ..Waiter::ADMIN
        };
        self.drive(k, |replica, now, out| {
            replica.admin(now, waiter, admin, out)
        })
    }

    /// Asks the leader to hand leadership to a voter (a random one, or the most up-to-date).
    fn transfer_leadership(&mut self) -> Result<(), Violation> {
        let Some(k) = self.leader_slot() else {
            return Ok(());
        };
        let Some(process) = self.slots[k].process.as_ref() else {
            return Ok(());
        };
        let leader = process.core().id();
        let voters: Vec<NodeId> = process
            .core()
            .membership()
            .voters()
            .filter(|&v| v != leader)
            .collect();
        let to = match voters.len() {
            0 => return Ok(()),
            n if self.rng.chance(500_000) => Some(voters[self.rng.below(n)].0),
            _ => None,
        };
        let admin = fs::Admin::TransferLeader { to };
        self.note(Actor::Node(leader), Note::Admin(format!("{admin:?}")));
        let waiter = Waiter {
            attempt: ADMIN_TRANSFER,
            ..Waiter::ADMIN
        };
        self.drive(k, |replica, now, out| {
            replica.admin(now, waiter, admin, out)
        })
    }

    /// The answer to one of the nemesis's administrative commands: counted when it succeeded.
    pub(super) fn admin_done(&mut self, node: NodeId, code: u64, reply: &fs::Reply) {
        self.note(
            Actor::Node(node),
            Note::Admin(format!("answered {reply:?}")),
        );
        if !matches!(reply, fs::Reply::Done(_)) {
            return;
        }
        let kind = match code {
            ADMIN_REMOVE => FaultKind::MemberRemoved,
            ADMIN_ADD => FaultKind::LearnerAdded,
            ADMIN_PROMOTE => FaultKind::LearnerPromoted,
            _ => FaultKind::LeaderTransferred,
        };
        self.stats.faults.add(kind, 1);
    }
}

/// Chance (ppm) that a removal takes the leader itself out.
const REMOVE_LEADER_PPM: u32 = 333_333;

/// What an administrative command of the nemesis was, in its waiter's `attempt`.
const ADMIN_REMOVE: u64 = 1;
const ADMIN_ADD: u64 = 2;
const ADMIN_PROMOTE: u64 = 3;
const ADMIN_TRANSFER: u64 = 4;

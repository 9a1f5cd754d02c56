//! The end of a run: convergence, what is missing when it does not come, and the
//! linearizability check of the client history.

use super::Simulation;
use crate::clock::WallDeviation;
use crate::failure::{Check, Violation};
use crate::history::ClockBound;
use crate::linearizability::{self, CheckResult};

impl Simulation {
    /// Whether every client is done and every node runs, has applied everything the leader
    /// holds, and holds the same store.
    pub(super) fn converged(&self) -> bool {
        if self
            .clients
            .iter()
            .any(|c| !c.final_done || !c.in_flight.is_empty())
        {
            return false;
        }
        let Some(leader) = self.current_leader().and_then(|l| self.index_of(l)) else {
            return false;
        };
        let Some(lead) = self.slots[leader].process.as_ref() else {
            return false;
        };
        let target = lead.core().last_index();
        if lead.core().commit_index() != target {
            return false;
        }
        // Only the members of the leader's configuration must converge: a node removed from it
        // is left alone.
        let members = lead.core().membership().clone();
        let mut stores = Vec::with_capacity(self.slots.len());
        for slot in self.slots.iter().filter(|s| members.contains(s.id)) {
            match &slot.process {
                Some(r) if r.applied() == target && slot.paused_until.is_none() => {
                    stores.push(r.store())
                }
                _ => return false,
            }
        }
        stores.windows(2).all(|w| w[0] == w[1])
    }

    /// Why the cluster has not converged, for a liveness failure.
    pub(super) fn convergence_gap(&self) -> String {
        let waiting: Vec<String> = self
            .clients
            .iter()
            .filter(|c| !c.final_done || !c.in_flight.is_empty())
            .map(|c| format!("c{}", c.id))
            .collect();
        let mut stores_differ = false;
        let first = self.slots.iter().find_map(|s| s.process.as_ref());
        for slot in &self.slots {
            if let (Some(a), Some(b)) = (first, slot.process.as_ref())
                && a.applied() == b.applied()
                && a.store() != b.store()
            {
                stores_differ = true;
            }
        }
        format!(
            "clients still waiting: [{}]; {}{}",
            waiting.join(" "),
            self.cluster_summary(),
            if stores_differ {
                "; stores differ at an equal applied index"
            } else {
                ""
            }
        )
    }

    /// The failure of a run that used up its event budget: where it stood, and what it was
    /// busy with.
    pub(super) fn over_budget(&self) -> Violation {
        Violation::new(
            Check::Budget,
            format!(
                "the run used up its budget of {} events ({} per client command plus {}) at {} \
                 with {} events queued, in the {} phase: {}",
                self.events_max,
                super::EVENTS_PER_COMMAND_MAX,
                super::EVENTS_BASE,
                self.now.to_string().trim(),
                self.queue.len(),
                match self.phase {
                    super::Phase::Faults => "fault",
                    super::Phase::Final => "final",
                },
                self.cluster_summary()
            ),
        )
    }

    /// One phrase per node: role, term, commit, applied.
    pub(super) fn cluster_summary(&self) -> String {
        self.slots
            .iter()
            .map(|s| match &s.process {
                Some(r) => format!(
                    "{} {} {} commit {} applied {} last {} in-flight {}",
                    s.id,
                    r.core().role(),
                    r.core().term(),
                    r.core().commit_index(),
                    r.applied(),
                    r.core().last_index(),
                    r.in_flight()
                ),
                None => format!("{} down", s.id),
            })
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// How far any member's wall clock (the stamps' source) read from true time during the run,
    /// for the checker to bound when an expiring file may be found gone. True time is simulated
    /// time past `WALL_EPOCH_MS`; a clock's deviation is its skew plus the drift it gained, the
    /// largest at the start or the end of the run. History times may run late by up to a
    /// microsecond (`history_time`): one millisecond more covers them.
    fn clock_bound(&self) -> ClockBound {
        let deviation = self
            .slots
            .iter()
            .map(|slot| slot.clock.wall_deviation_ms(self.now))
            .fold(WallDeviation::default(), WallDeviation::widest);
        ClockBound {
            units_per_ms: super::HISTORY_UNITS_PER_MS,
            ahead_ms: deviation.ahead_ms,
            behind_ms: deviation.behind_ms + 1,
        }
    }

    /// The end-of-run linearizability check.
    pub(super) fn check_history(&mut self) -> Result<(), Violation> {
        self.history.set_clock_bound(self.clock_bound());
        match linearizability::check(&self.history) {
            Ok(CheckResult::Linearizable(stats)) => {
                self.stats.checker_states += stats.states as u64;
                Ok(())
            }
            Ok(CheckResult::Inconclusive { stats, .. }) => {
                self.stats.checker_states += stats.states as u64;
                self.stats.checker_inconclusive += 1;
                Ok(())
            }
            Err(violation) => Err(Violation::new(
                Check::Linearizability,
                format!("\n{violation}"),
            )),
        }
    }
}

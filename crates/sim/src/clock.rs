//! Simulated time: the global clock of the event queue, and each node's own monotonic and wall
//! clocks, which drift from it and restart from a new origin when the node's process restarts.

use std::fmt;

use raft::Millis;

/// Microseconds in a millisecond.
const US_PER_MS: u64 = 1_000;

/// Parts per million: the unit of clock drift.
const PPM: u64 = 1_000_000;

/// Most a node's clock may drift, in parts per million. Real quartz is within about 100 ppm;
/// a few hundred more stands for a VM whose clock is slewed, without making election timers
/// meaningless.
pub const DRIFT_PPM_MAX: u64 = 500;

/// A point of simulated time, in microseconds since the start of the run. Finer than the
/// milliseconds the core sees, so that network and disk latencies can be sub-millisecond and
/// events rarely tie.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct SimTime(pub u64);

impl SimTime {
    /// This instant plus `us` microseconds (saturating: the end of time never comes).
    pub fn plus_us(self, us: u64) -> SimTime {
        SimTime(self.0.saturating_add(us))
    }

    /// This instant plus `ms` milliseconds.
    pub fn plus_ms(self, ms: u64) -> SimTime {
        self.plus_us(ms.saturating_mul(US_PER_MS))
    }

    /// Whole milliseconds since the start of the run.
    pub fn as_ms(self) -> u64 {
        self.0 / US_PER_MS
    }
}

impl fmt::Display for SimTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:>5}.{:06}s", self.0 / PPM, self.0 % PPM)
    }
}

/// One node's clocks. The monotonic clock (what `step` is given) runs at `1 + drift` times the
/// simulated rate from an origin that changes at every restart (a new process); the wall clock
/// (what stamps commands, judging expiry) is simulated time plus a fixed skew.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NodeClock {
    /// Drift in parts per million, `-DRIFT_PPM_MAX..=DRIFT_PPM_MAX`, stored as `PPM + drift`.
    rate_ppm: u64,
    /// The monotonic reading at simulated time 0, in microseconds (a process's arbitrary origin).
    origin_us: u64,
    /// Wall clock minus simulated time, in milliseconds (may be ahead of or behind others').
    wall_skew_ms: u64,
}

impl NodeClock {
    /// A clock with `drift_ppm` (clamped to the maximum), monotonic origin `origin_us` and wall
    /// skew `wall_skew_ms`.
    pub fn new(drift_ppm: i64, origin_us: u64, wall_skew_ms: u64) -> NodeClock {
        let drift = drift_ppm.clamp(-(DRIFT_PPM_MAX as i64), DRIFT_PPM_MAX as i64);
        NodeClock {
            rate_ppm: PPM.saturating_add_signed(drift),
            origin_us,
            wall_skew_ms,
        }
    }

    /// The same clock after a process restart: same drift and wall skew, new monotonic origin.
    pub fn restarted(self, origin_us: u64) -> NodeClock {
        NodeClock { origin_us, ..self }
    }

    /// The monotonic reading, in microseconds, at simulated time `t`.
    fn monotonic_us(&self, t: SimTime) -> u64 {
        let scaled = u128::from(t.0) * u128::from(self.rate_ppm) / u128::from(PPM);
        self.origin_us
            .saturating_add(u64::try_from(scaled).unwrap_or(u64::MAX))
    }

    /// The monotonic reading the core is given at simulated time `t`.
    pub fn now(&self, t: SimTime) -> Millis {
        Millis(self.monotonic_us(t) / US_PER_MS)
    }

    /// The earliest simulated time, not before `not_before`, at which this clock reads at least
    /// `at`: when to deliver an alarm the core set for `at`. Never early, so that an alarm
    /// cannot fire, be re-armed for the same instant and fire again without time passing.
    pub fn when(&self, at: Millis, not_before: SimTime) -> SimTime {
        let target_us = at.0.saturating_mul(US_PER_MS);
        if self.monotonic_us(not_before) >= target_us {
            return not_before;
        }
        let since_origin = u128::from(target_us - self.origin_us.min(target_us));
        let mut t = u64::try_from(since_origin * u128::from(PPM) / u128::from(self.rate_ppm))
            .unwrap_or(u64::MAX);
        // The division rounds down; step forward until the reading is reached (a step or two).
        while self.monotonic_us(SimTime(t)) < target_us && t < u64::MAX {
            t += 1;
        }
        SimTime(t).max(not_before)
    }

    /// The wall clock in milliseconds at simulated time `t`: what a leader stamps commands with.
    pub fn wall_ms(&self, t: SimTime) -> u64 {
        t.as_ms().saturating_add(self.wall_skew_ms)
    }
}

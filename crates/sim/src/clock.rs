//! Simulated time: the global clock of the event queue, and each node's own monotonic and wall
//! clocks. Both run at the node's rate (one oscillator: within [`DRIFT_PPM_MAX`] of true time);
//! the monotonic clock restarts from a new origin when the node's process restarts, the wall
//! clock (a machine's) does not: it reads the epoch plus the node's rate-scaled simulated time,
//! set a fixed skew ahead of or behind true time.

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

/// What a wall clock set exactly right reads at simulated time 0, in Unix milliseconds
/// (2023-11-14): a real clock is this far from zero, so a clock set behind true time reads
/// a plain `u64`, as a real one would.
pub const WALL_EPOCH_MS: u64 = 1_700_000_000_000;

/// Most a node's wall clock may be set ahead of or behind true time, ms: a new leader's clock may
/// lag its predecessor's by twice this.
pub const WALL_SKEW_MS_MAX: u64 = 2_000;

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
/// (what stamps commands, judging expiry) runs at the same rate from [`WALL_EPOCH_MS`] plus a
/// fixed skew, across restarts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NodeClock {
    /// Drift in parts per million, `-DRIFT_PPM_MAX..=DRIFT_PPM_MAX`, stored as `PPM + drift`.
    rate_ppm: u64,
    /// The monotonic reading at simulated time 0, in microseconds (a process's arbitrary origin).
    origin_us: u64,
    /// Wall clock minus true time at simulated time 0, in milliseconds: positive ahead, negative
    /// behind, within `WALL_SKEW_MS_MAX`.
    wall_skew_ms: i64,
}

impl NodeClock {
    /// A clock with `drift_ppm` (clamped to the maximum), monotonic origin `origin_us` and wall
    /// skew `wall_skew_ms` (clamped to `WALL_SKEW_MS_MAX` either way).
    pub fn new(drift_ppm: i64, origin_us: u64, wall_skew_ms: i64) -> NodeClock {
        let drift = drift_ppm.clamp(-(DRIFT_PPM_MAX as i64), DRIFT_PPM_MAX as i64);
        let skew_max = WALL_SKEW_MS_MAX as i64;
        NodeClock {
            rate_ppm: PPM.saturating_add_signed(drift),
            origin_us,
            wall_skew_ms: wall_skew_ms.clamp(-skew_max, skew_max),
        }
    }

    /// The same clock after a process restart: same drift and wall clock, new monotonic origin.
    pub fn restarted(self, origin_us: u64) -> NodeClock {
        NodeClock { origin_us, ..self }
    }

    /// Simulated time `t` as this node's oscillator counts it, in microseconds.
    fn scaled_us(&self, t: SimTime) -> u64 {
        let scaled = u128::from(t.0) * u128::from(self.rate_ppm) / u128::from(PPM);
        u64::try_from(scaled).unwrap_or(u64::MAX)
    }

    /// The monotonic reading, in microseconds, at simulated time `t`.
    fn monotonic_us(&self, t: SimTime) -> u64 {
        self.origin_us.saturating_add(self.scaled_us(t))
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

    /// The wall clock in Unix milliseconds at simulated time `t`: what a leader stamps commands
    /// with. True time then is `WALL_EPOCH_MS` plus `t`.
    pub fn wall_ms(&self, t: SimTime) -> u64 {
        (WALL_EPOCH_MS + self.scaled_us(t) / US_PER_MS).saturating_add_signed(self.wall_skew_ms)
    }

    /// How far the wall clock may read from true time (`WALL_EPOCH_MS` plus simulated time) at
    /// any instant up to `until`: the most it is ahead and the most it is behind, in whole
    /// milliseconds, never less than the truth. The deviation at `t` is the skew plus the drift
    /// gained by `t`, so its extremes are at 0 and `until`; readings are whole milliseconds,
    /// which loses up to one more.
    pub fn wall_deviation_ms(&self, until: SimTime) -> WallDeviation {
        let drift_ppm = i128::from(self.rate_ppm) - i128::from(PPM);
        // Drift gained (or lost) by `until`, in ms, rounded away from zero.
        let drift_us = drift_ppm * i128::from(until.0);
        let drift_ms = drift_us
            .unsigned_abs()
            .div_ceil(u128::from(PPM * US_PER_MS));
        let drift_ms = i128::try_from(drift_ms).unwrap_or(i128::MAX);
        let gained = if drift_ppm > 0 { drift_ms } else { 0 };
        let lost = if drift_ppm < 0 { drift_ms } else { 0 };
        let skew = i128::from(self.wall_skew_ms);
        let clamp = |ms: i128| u64::try_from(ms.max(0)).unwrap_or(u64::MAX);
        WallDeviation {
            ahead_ms: clamp(skew + gained + 1),
            behind_ms: clamp(-skew + lost + 1),
        }
    }
}

/// Bounds on how far a wall clock read from true time over a stretch of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct WallDeviation {
    /// The most it read ahead of true time, ms (0 if never ahead).
    pub ahead_ms: u64,
    /// The most it read behind true time, ms (0 if never behind).
    pub behind_ms: u64,
}

impl WallDeviation {
    /// The bounds that hold for both clocks.
    pub fn widest(self, other: WallDeviation) -> WallDeviation {
        WallDeviation {
            ahead_ms: self.ahead_ms.max(other.ahead_ms),
            behind_ms: self.behind_ms.max(other.behind_ms),
        }
    }
}

//! Time as the driver sees it: the core owns no clock and reads only what `step` is given.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A reading of the driver's monotonic clock, in milliseconds since an arbitrary origin.
///
/// The core only compares readings and adds durations to them, so the origin does not matter;
/// readings must never go backwards (the core treats an earlier reading as the latest one seen).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
pub struct Millis(pub u64);

impl Millis {
    /// This reading plus `ms` milliseconds, saturating (a deadline at the end of time never fires).
    pub fn after(self, ms: u64) -> Millis {
        Millis(self.0.saturating_add(ms))
    }

    /// Milliseconds from `earlier` to this reading, 0 if `earlier` is later.
    pub fn since(self, earlier: Millis) -> u64 {
        self.0.saturating_sub(earlier.0)
    }
}

impl fmt::Display for Millis {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}ms", self.0)
    }
}

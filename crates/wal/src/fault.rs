//! A test hook on the sync path: make syncs fail, or hold them at a gate.
//!
//! Failing an fsync for real is hard (as root nearly every file is writable), so tests arm this
//! hook through [`crate::Options::fault_hook`] instead. Production leaves it `None`.

use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};

/// Injects faults into every fsync the log, hard-state and snapshot code performs.
#[derive(Debug, Default)]
pub struct FaultHook {
    /// When set, every sync fails with an I/O error instead of running.
    fail_syncs: AtomicBool,
    /// Syncs that reached the hook, failed or not: lets a test see that a path fsyncs even
    /// where no [`crate::Counters`] are in reach (hard-state and snapshot loads).
    seen: AtomicU64,
    /// The gate syncs wait at while it is held.
    gate: Mutex<Gate>,
    /// Signalled when the gate opens or a sync starts waiting.
    changed: Condvar,
}

#[derive(Debug, Default)]
struct Gate {
    held: bool,
    waiting: usize,
    /// Syncs still allowed to succeed before every later one fails; `None` = no limit.
    fail_after: Option<u64>,
}

impl FaultHook {
    /// A hook that does nothing until armed.
    pub fn new() -> Self {
        FaultHook::default()
    }

    /// From now on, every sync fails (`true`) or runs normally (`false`).
    pub fn fail_syncs(&self, on: bool) {
        self.fail_syncs.store(on, Ordering::SeqCst);
    }

    /// Lets the next `n` syncs succeed and fails every one after them: a crash at the
    /// `n`-th fsync, with everything written before it still in place.
    pub fn fail_syncs_after(&self, n: u64) {
        self.lock().fail_after = Some(n);
    }

    /// Number of syncs attempted through this hook so far (including injected failures).
    pub fn syncs_seen(&self) -> u64 {
        self.seen.load(Ordering::SeqCst)
    }

    /// Makes every later sync wait until [`FaultHook::release_syncs`].
    pub fn hold_syncs(&self) {
        self.lock().held = true;
    }

    /// Lets waiting and later syncs run.
    pub fn release_syncs(&self) {
        self.lock().held = false;
        self.changed.notify_all();
    }

    /// Blocks until at least `n` syncs are waiting at the held gate.
    pub fn wait_for_held_syncs(&self, n: usize) {
        let mut gate = self.lock();
        while gate.waiting < n {
            gate = self
                .changed
                .wait(gate)
                .unwrap_or_else(PoisonError::into_inner);
        }
    }

    /// Called before each sync: waits at the gate, then fails if armed.
    pub(crate) fn before_sync(&self) -> io::Result<()> {
        self.seen.fetch_add(1, Ordering::SeqCst);
        let mut gate = self.lock();
        if gate.held {
            gate.waiting += 1;
            self.changed.notify_all();
            while gate.held {
                gate = self
                    .changed
                    .wait(gate)
                    .unwrap_or_else(PoisonError::into_inner);
            }
            gate.waiting -= 1;
        }
        let exhausted = match gate.fail_after {
            Some(0) => true,
            Some(n) => {
                gate.fail_after = Some(n - 1);
                false
            }
            None => false,
        };
        drop(gate);
        if exhausted || self.fail_syncs.load(Ordering::SeqCst) {
            return Err(io::Error::other("fsync failure injected by FaultHook"));
        }
        Ok(())
    }

    fn lock(&self) -> MutexGuard<'_, Gate> {
        // A panic elsewhere while holding this lock leaves the gate state valid.
        self.gate.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

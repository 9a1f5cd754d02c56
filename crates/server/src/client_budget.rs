//! The byte budget all client connections of a member share (`[client_limits] total_bytes`):
//! commands read and not yet answered plus encoded replies not yet sent, summed over every
//! connection. Each connection's own budgets (`pipeline_bytes`, `reply_buffer_bytes`) bound one
//! client; this one bounds them all together, so that many clients that pipeline and never
//! read cannot make the member hold their budgets times the connection cap.
//!
//! While the sum is at or over the budget, a connection with something in flight reads no
//! further commands and its writer gathers no further replies while it has some unsent (TCP
//! pushes back on its client), like ZooKeeper's `globalOutstandingLimit`. A connection with
//! nothing in flight is always admitted one command and gets its one reply, so clients that read
//! their replies keep being served, one command at a time, while others hold the budget. The
//! member therefore holds at most the budget plus one command and one reply per connection.

use std::sync::Arc;

use prometheus_client::metrics::gauge::Gauge;
use tokio::sync::Notify;

/// Default bytes all client connections together may hold (256 MiB): thousands of pipelining
/// clients' worth of small commands, a hundred and more of maximum-size files.
pub const TOTAL_BYTES_DEFAULT: usize = 256 << 20;

/// The shared budget: what the connections hold now, and who waits for room.
#[derive(Debug)]
pub struct ClientBudget {
    /// Bytes held by all connections (also `raftfs_client_buffered_bytes`).
    held: Gauge,
    /// The budget.
    cap: usize,
    /// Woken (all waiters) when the sum falls below the budget.
    room: Notify,
}

impl ClientBudget {
    /// A budget of `cap` bytes that keeps its level in `held` (the metric).
    pub fn new(cap: usize, held: Gauge) -> Arc<ClientBudget> {
        Arc::new(ClientBudget {
            held,
            cap,
            room: Notify::new(),
        })
    }

    /// Counts `bytes` more held.
    pub fn take(&self, bytes: usize) {
        if bytes > 0 {
            self.held.inc_by(as_i64(bytes));
        }
    }

    /// Counts `bytes` no longer held, waking the waiters if that makes room.
    pub fn give_back(&self, bytes: usize) {
        if bytes == 0 {
            return;
        }
        let before = self.held.dec_by(as_i64(bytes));
        assert!(
            before >= as_i64(bytes),
            "client budget given back more than was taken"
        );
        let cap = as_i64(self.cap);
        if before >= cap && before - as_i64(bytes) < cap {
            self.room.notify_waiters();
        }
    }

    /// Whether the connections hold the whole budget (or more).
    pub fn is_full(&self) -> bool {
        self.held.get() >= as_i64(self.cap)
    }

    /// Bytes held now.
    pub fn held(&self) -> usize {
        usize::try_from(self.held.get()).unwrap_or(0)
    }

    /// Waits until the budget is not full (at once if it is not).
    pub async fn room(&self) {
        loop {
            let room = self.room.notified();
            tokio::pin!(room);
            // Registered before the check, so a give-back between the check and the wait
            // still wakes us.
            room.as_mut().enable();
            if !self.is_full() {
                return;
            }
            room.await;
        }
    }
}

/// A byte count as the gauge's type (a count of bytes in memory always fits).
fn as_i64(bytes: usize) -> i64 {
    i64::try_from(bytes).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn the_level_follows_takes_and_give_backs() {
        let budget = ClientBudget::new(100, Gauge::default());
        assert!(!budget.is_full());
        budget.take(60);
        budget.take(40);
        assert!(budget.is_full());
        assert_eq!(budget.held(), 100);
        budget.give_back(1);
        assert!(!budget.is_full());
        budget.give_back(99);
        assert_eq!(budget.held(), 0);
    }

    #[tokio::test]
    async fn a_waiter_is_woken_when_room_is_made_and_not_before() {
        let budget = ClientBudget::new(100, Gauge::default());
        budget.take(150);
        let waiter = tokio::spawn({
            let budget = budget.clone();
            async move { budget.room().await }
        });
        // Still full after giving back 40: the waiter keeps waiting.
        budget.give_back(40);
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished());
        budget.give_back(20);
        tokio::time::timeout(Duration::from_secs(10), waiter)
            .await
            .expect("woken once the budget had room")
            .expect("waiter task");
    }

    #[tokio::test]
    async fn room_returns_at_once_when_not_full() {
        let budget = ClientBudget::new(100, Gauge::default());
        budget.take(99);
        budget.room().await;
    }

    #[test]
    #[should_panic(expected = "given back more than was taken")]
    fn giving_back_more_than_was_taken_is_a_bug() {
        let budget = ClientBudget::new(100, Gauge::default());
        budget.take(10);
        budget.give_back(11);
    }
}

//! A pipelining client's connection to a node, modelled as the real one behaves: one TCP stream
//! each way, so requests reach the node in the order sent and replies reach the client in the
//! order sent, and the server writes a connection's replies in the order of its commands
//! (`crates/server/src/connection.rs` awaits each reply slot in turn), whatever order the driver
//! answers them in. The driver is production code and answers each token when it is ready; the
//! reordering back into command order is the connection's, so it is modelled here.
//!
//! A connection belongs to one process of its node: a request that finds the node down, or a
//! different process than the one that took its first request, breaks it (a crashed server's
//! sockets do not survive its restart), and a broken connection delivers nothing more.

use std::collections::VecDeque;

use bytes::Bytes;

use crate::clock::SimTime;

/// One connection. See the module documentation.
#[derive(Debug, Clone)]
pub struct Connection {
    /// The client at one end.
    pub client: usize,
    /// The node (slot) at the other.
    pub node: usize,
    /// The process (incarnation) of the node that took the first request.
    pub incarnation: Option<u64>,
    /// When the latest request sent reaches the node: later ones arrive no earlier.
    pub request_at: SimTime,
    /// When the latest reply written reaches the client: later ones arrive no earlier.
    pub reply_at: SimTime,
    /// Attempts the node took, in arrival order, with their replies once the driver gave them.
    awaiting: VecDeque<(u64, Option<Bytes>)>,
    /// Broken (node crashed) or closed (the client gave up on it): nothing more is delivered.
    pub broken: bool,
    /// The highest version a successful write or cas of the client's private file reported on
    /// this connection: a read of that file behind it must see at least this version.
    pub floor: u64,
}

impl Connection {
    /// A new connection from `client` to node slot `node`, opened at `now`.
    pub fn new(client: usize, node: usize, now: SimTime) -> Connection {
        Connection {
            client,
            node,
            incarnation: None,
            request_at: now,
            reply_at: now,
            awaiting: VecDeque::new(),
            broken: false,
            floor: 0,
        }
    }

    /// The node's process `incarnation` took `attempt`; false if that breaks the connection
    /// (another process than the one it was talking to).
    pub fn taken(&mut self, attempt: u64, incarnation: u64) -> bool {
        if self.broken || self.incarnation.is_some_and(|i| i != incarnation) {
            self.close();
            return false;
        }
        self.incarnation = Some(incarnation);
        self.awaiting.push_back((attempt, None));
        true
    }

    /// The driver answered `attempt` with `bytes`; returns the replies now writable, in
    /// command order (those of earlier commands all answered).
    pub fn answered(&mut self, attempt: u64, bytes: Bytes) -> Vec<(u64, Bytes)> {
        if self.broken {
            return Vec::new();
        }
        if let Some(slot) = self
            .awaiting
            .iter_mut()
            .find(|(a, r)| *a == attempt && r.is_none())
        {
            slot.1 = Some(bytes);
        }
        let mut ready = Vec::new();
        while let Some((attempt, Some(_))) = self.awaiting.front() {
            let attempt = *attempt;
            if let Some((_, Some(bytes))) = self.awaiting.pop_front() {
                ready.push((attempt, bytes));
            }
        }
        ready
    }

    /// Breaks or closes the connection: nothing more goes through.
    pub fn close(&mut self) {
        self.broken = true;
        self.awaiting.clear();
    }
}

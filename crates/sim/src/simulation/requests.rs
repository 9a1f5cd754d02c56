//! Client requests at the nodes: parsed from their wire form as the server does, queued until
//! the node's task loop comes round, then handed to the production driver in one batch.

use bytes::BytesMut;
use fs::{Decoded, Decoder};

use super::{DRAIN_DELAY_US_MAX, Ev, Simulation};
use crate::failure::{Check, Violation};
use crate::process::{Request, Waiter};

impl Simulation {
    /// A client's request reaches node `k`.
    pub(super) fn receive_request(
        &mut self,
        k: usize,
        client: usize,
        attempt: u64,
        conn: Option<usize>,
        bytes: &[u8],
    ) -> Result<(), Violation> {
        let incarnation = self.slots[k].incarnation;
        let up = self.slots[k].process.is_some();
        if let Some(id) = conn {
            // A connection to a process that is gone is broken: the client will time out.
            let connection = &mut self.connections[id];
            if !up {
                connection.close();
            }
            if !up || !connection.taken(attempt, incarnation) {
                return Ok(());
            }
        }
        let Some(process) = self.slots[k].process.as_mut() else {
            // Connection refused: the client will time out.
            return Ok(());
        };
        let mut buf = BytesMut::from(bytes);
        let command = match Decoder::default().decode(&mut buf) {
            Some(Decoded::Command(command)) => command,
            other => {
                return Err(Violation::new(
                    Check::Harness,
                    format!("a client request does not parse: {other:?}"),
                ));
            }
        };
        process.inbox.push(Request {
            token: Waiter {
                client,
                attempt,
                conn,
            },
            command,
        });
        if !process.drain_scheduled {
            process.drain_scheduled = true;
            let delay = self.rng.between(0, DRAIN_DELAY_US_MAX);
            let incarnation = self.slots[k].incarnation;
            self.queue.push(
                self.now.plus_us(delay),
                Ev::Drain {
                    node: k,
                    incarnation,
                },
            );
        }
        Ok(())
    }

    /// Node `k` takes up the requests that arrived since it last looked, as one batch.
    pub(super) fn drain_requests(&mut self, k: usize) -> Result<(), Violation> {
        let Some(process) = self.slots[k].process.as_mut() else {
            return Ok(());
        };
        process.drain_scheduled = false;
        let requests = std::mem::take(&mut process.inbox);
        self.drive(k, |replica, now, out| replica.requests(now, requests, out))
    }
}

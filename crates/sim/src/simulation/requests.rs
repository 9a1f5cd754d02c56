//! Client requests at the nodes, handled by the production driver's rules: parked while no
//! leader is known, mutations batched into one `Append`, reads through ReadIndex after the
//! mutations that arrived before them.

use bytes::{Bytes, BytesMut};
use fs::{Command, Decoded, Decoder, StampedCommand};
use raft::{Event, ProposalId};

use super::{DRAIN_DELAY_US_MAX, Ev, Simulation};
use crate::failure::{Check, Violation};
use crate::replica::Request;

impl Simulation {
    /// A client's request reaches node `k` (parsed from its wire form, as the server does).
    pub(super) fn receive_request(
        &mut self,
        k: usize,
        client: usize,
        attempt: u64,
        bytes: &[u8],
    ) -> Result<(), Violation> {
        let Some(replica) = self.slots[k].replica.as_mut() else {
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
        replica.inbox.push(Request {
            client,
            attempt,
            command,
        });
        if !replica.drain_scheduled {
            replica.drain_scheduled = true;
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

    /// Takes up requests in order, proposing the mutations in one batch (reads first flush the
    /// mutations before them, so a read sees them).
    pub(super) fn handle_requests(
        &mut self,
        k: usize,
        requests: Vec<Request>,
    ) -> Result<(), Violation> {
        let mut batch = Vec::new();
        for request in requests {
            self.handle_request(k, request, &mut batch)?;
        }
        self.propose(k, &mut batch)
    }

    pub(super) fn handle_request(
        &mut self,
        k: usize,
        request: Request,
        batch: &mut Vec<(ProposalId, Bytes)>,
    ) -> Result<(), Violation> {
        let wall = self.slots[k].clock.wall_ms(self.now);
        let park_until = self.now.plus_ms(2 * self.scenario.raft.election_timeout_ms);
        let incarnation = self.slots[k].incarnation;
        let Some(replica) = self.slots[k].replica.as_mut() else {
            return Ok(());
        };
        if replica.core.leader().is_none() {
            // SPEC: a server that knows no leader waits up to about two election timeouts.
            replica.park(request, park_until);
            self.queue.push(
                park_until,
                Ev::ParkExpiry {
                    node: k,
                    incarnation,
                },
            );
            return Ok(());
        }
        match &request.command {
            Command::Read { name } => {
                let name = name.clone();
                self.propose(k, batch)?;
                let Some(replica) = self.slots[k].replica.as_mut() else {
                    return Ok(());
                };
                let barrier = replica.core.last_index();
                let id = replica.read(&request, name, barrier);
                self.step(k, Event::ReadIndex(id))
            }
            command => {
                let stamped = StampedCommand::new(wall, command.clone()).encode();
                let id = replica.propose(&request);
                batch.push((id, stamped));
                Ok(())
            }
        }
    }

    pub(super) fn propose(
        &mut self,
        k: usize,
        batch: &mut Vec<(ProposalId, Bytes)>,
    ) -> Result<(), Violation> {
        if batch.is_empty() {
            return Ok(());
        }
        self.step(k, Event::Append(std::mem::take(batch)))
    }

    /// Sends node `k`'s pending replies to their clients (encoded, as on the wire).
    pub(super) fn flush_replies(&mut self, k: usize) {
        let Some(replica) = self.slots[k].replica.as_mut() else {
            return;
        };
        let outbox = std::mem::take(&mut replica.outbox);
        for out in outbox {
            let (lo, hi) = self.scenario.client_delay_us;
            let delay = self.rng.between(lo, hi);
            self.queue.push(
                self.now.plus_us(delay),
                Ev::Reply {
                    client: out.client,
                    attempt: out.attempt,
                    bytes: out.reply.to_bytes(),
                },
            );
        }
    }
}

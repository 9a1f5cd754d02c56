//! How connections reach the node: a bounded queue of requests, each with the place in its
//! connection's mailbox that its reply goes to.

use std::sync::Arc;

use fs::{Admin, Command};
use tokio::sync::mpsc;

use crate::mailbox::ReplyTo;

use crate::metrics::Metrics;

/// A client command on its way to the node, with where to send the answer.
pub type Request = replica::Request<ReplyTo>;

/// An administrative command on its way to the node, with where to send the answer.
#[derive(Debug)]
pub struct AdminRequest {
    /// Where the reply goes.
    pub token: ReplyTo,
    /// The command.
    pub admin: Admin,
}

/// How connections reach the node. Cheap to clone.
#[derive(Debug, Clone)]
pub struct NodeHandle {
    tx: mpsc::Sender<Request>,
    admin: mpsc::Sender<AdminRequest>,
    metrics: Arc<Metrics>,
}

impl NodeHandle {
    pub(super) fn new(
        tx: mpsc::Sender<Request>,
        admin: mpsc::Sender<AdminRequest>,
        metrics: Arc<Metrics>,
    ) -> NodeHandle {
        NodeHandle { tx, admin, metrics }
    }

    /// The member's event metrics, which connections count into.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// Queues an administrative command (on a queue of its own, so it never waits behind a
    /// full client queue), to be answered through `token`; false if the node has stopped (the
    /// dropped token then answers `ERR_INTERNAL`).
    pub async fn admin(&self, admin: Admin, token: ReplyTo) -> bool {
        self.admin.send(AdminRequest { token, admin }).await.is_ok()
    }

    /// Queues a command for the node (waiting while the queue is full), to be answered through
    /// `token`; false if the node has stopped (the dropped token then answers `ERR_INTERNAL`).
    pub async fn submit(&self, command: Command, token: ReplyTo) -> bool {
        self.tx.send(Request { token, command }).await.is_ok()
    }
}

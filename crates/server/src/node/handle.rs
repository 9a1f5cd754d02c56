//! How connections reach the node: a bounded queue of requests, each with the oneshot its reply
//! comes back on.

use std::sync::Arc;

use fs::{Admin, Command, Reply};
use tokio::sync::{mpsc, oneshot};

use crate::metrics::Metrics;

/// A client command on its way to the node, with where to send the answer.
pub type Request = replica::Request<oneshot::Sender<Reply>>;

/// An administrative command on its way to the node, with where to send the answer.
#[derive(Debug)]
pub struct AdminRequest {
    /// Where the reply goes.
    pub token: oneshot::Sender<Reply>,
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
    /// full client queue) and returns where its reply will arrive; `None` if the node stopped.
    pub async fn admin(&self, admin: Admin) -> Option<oneshot::Receiver<Reply>> {
        let (token, rx) = oneshot::channel();
        self.admin.send(AdminRequest { token, admin }).await.ok()?;
        Some(rx)
    }

    /// Queues a command for the node (waiting while the queue is full) and returns where its
    /// reply will arrive; `None` if the node has stopped.
    pub async fn submit(&self, command: Command) -> Option<oneshot::Receiver<Reply>> {
        let (token, rx) = oneshot::channel();
        self.tx.send(Request { token, command }).await.ok()?;
        Some(rx)
    }
}

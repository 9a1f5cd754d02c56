//! How connections reach the node: a bounded queue of requests, each with the oneshot its reply
//! comes back on.

use fs::{Command, Reply};
use tokio::sync::{mpsc, oneshot};

/// A client command on its way to the node, with where to send the answer.
pub type Request = replica::Request<oneshot::Sender<Reply>>;

/// How connections reach the node. Cheap to clone.
#[derive(Debug, Clone)]
pub struct NodeHandle {
    tx: mpsc::Sender<Request>,
}

impl NodeHandle {
    pub(super) fn new(tx: mpsc::Sender<Request>) -> NodeHandle {
        NodeHandle { tx }
    }

    /// Queues a command for the node (waiting while the queue is full) and returns where its
    /// reply will arrive; `None` if the node has stopped.
    pub async fn submit(&self, command: Command) -> Option<oneshot::Receiver<Reply>> {
        let (token, rx) = oneshot::channel();
        self.tx.send(Request { token, command }).await.ok()?;
        Some(rx)
    }
}

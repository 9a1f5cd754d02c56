//! The client listener: accepts connections and runs one task per connection, up to a limit.

use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tracing::{info, warn};

use crate::connection::{self, ConnectionLimits};
use crate::node::NodeHandle;
use crate::shutdown::Shutdown;

/// Client connections served at once; further clients wait in the kernel's accept queue.
pub const CONNECTIONS_MAX: usize = 10_000;

/// How long shutdown waits for open connections to write their last replies.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// Pause after a failed accept (out of file descriptors, say) so the loop does not spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// Accepts clients until shutdown, then waits (briefly) for their connections to finish.
pub async fn run(
    listener: TcpListener,
    node: NodeHandle,
    limits: ConnectionLimits,
    mut shutdown: Shutdown,
) {
    let permits = Arc::new(Semaphore::new(CONNECTIONS_MAX));
    let mut connections = JoinSet::new();
    loop {
        let permit = tokio::select! {
            permit = permits.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
            _ = shutdown.wait() => break,
        };
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = shutdown.wait() => break,
        };
        match accepted {
            Ok((stream, peer)) => {
                tracing::debug!(%peer, "client connected");
                let node = node.clone();
                let conn_shutdown = shutdown.clone();
                connections.spawn(async move {
                    connection::serve(stream, node, limits, conn_shutdown).await;
                    drop(permit);
                });
            }
            Err(err) => {
                warn!(%err, "accept failed");
                tokio::time::sleep(ACCEPT_BACKOFF).await;
            }
        }
        // Reap finished connection tasks so the set does not grow with every client ever seen.
        while connections.try_join_next().is_some() {}
    }
    info!(open = connections.len(), "client listener stopping");
    let drained = tokio::time::timeout(DRAIN_TIMEOUT, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        warn!("connections still open after the drain timeout; closing them");
        connections.abort_all();
    }
}

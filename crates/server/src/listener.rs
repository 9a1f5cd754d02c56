//! The client listener: accepts connections and runs one task per connection, up to the
//! connection cap; a client beyond it is answered `ERR_INTERNAL` and closed, so it learns why
//! at once while the clients already connected are unaffected.

use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;
use tracing::{debug, info, warn};

use crate::client_budget::ClientBudget;
use crate::connection::{self, ConnectionLimits};
use crate::metrics::Metrics;
use crate::node::NodeHandle;
use crate::shutdown::Shutdown;

/// Refused clients being answered at once; beyond this, refused clients are closed without
/// the reply, so a flood cannot make refusing cost more descriptors than this.
pub const REFUSING_MAX: usize = 64;

/// How long shutdown waits for open connections to write their last replies.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// First pause after a failed accept (out of file descriptors, say), doubled on each failure in
/// a row up to [`ACCEPT_BACKOFF_MAX`], so the loop does not spin on EMFILE.
const ACCEPT_BACKOFF_MIN: Duration = Duration::from_millis(10);

/// Longest pause after failed accepts.
const ACCEPT_BACKOFF_MAX: Duration = Duration::from_secs(1);

/// Counts one open client connection in `raftfs_client_connections` while it lives, so a
/// connection task that is aborted (the drain timeout) is uncounted too.
struct OpenConnection(Arc<Metrics>);

impl OpenConnection {
    fn new(metrics: Arc<Metrics>) -> OpenConnection {
        metrics.client_connections.inc();
        OpenConnection(metrics)
    }
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0.client_connections.dec();
    }
}

/// Accepts clients until shutdown, then waits (briefly) for their connections to finish.
/// At most `max_connections` are served at once, all of them within `budget`.
pub async fn run(
    listener: TcpListener,
    node: NodeHandle,
    limits: ConnectionLimits,
    budget: Arc<ClientBudget>,
    max_connections: usize,
    tls: Option<TlsAcceptor>,
    mut shutdown: Shutdown,
) {
    let permits = Arc::new(Semaphore::new(max_connections));
    let refusals = Arc::new(Semaphore::new(REFUSING_MAX));
    let mut connections = JoinSet::new();
    let mut backoff = ACCEPT_BACKOFF_MIN;
    let mut refused_since_log = 0u64;
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = shutdown.wait() => break,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => {
                backoff = ACCEPT_BACKOFF_MIN;
                accepted
            }
            Err(err) => {
                warn!(%err, pause_ms = backoff.as_millis() as u64, "accept failed; pausing");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(ACCEPT_BACKOFF_MAX);
                continue;
            }
        };
        if let Err(err) = stream.set_nodelay(true) {
            debug!(%err, "set_nodelay failed");
        }
        match permits.clone().try_acquire_owned() {
            Ok(permit) => {
                debug!(%peer, "client connected");
                let node = node.clone();
                let conn_shutdown = shutdown.clone();
                let tls = tls.clone();
                let budget = budget.clone();
                connections.spawn(async move {
                    let metrics = node.metrics().clone();
                    match tls {
                        None => {
                            let _open = OpenConnection::new(metrics);
                            connection::serve(stream, node, limits, budget, conn_shutdown).await;
                        }
                        // The handshake gets the time a half-sent command gets.
                        Some(tls) => match tokio::time::timeout(
                            limits.partial_command_timeout,
                            tls.accept(stream),
                        )
                        .await
                        {
                            Ok(Ok(stream)) => {
                                let _open = OpenConnection::new(metrics);
                                connection::serve(stream, node, limits, budget, conn_shutdown)
                                    .await;
                            }
                            Ok(Err(err)) => debug!(%peer, %err, "client TLS handshake failed"),
                            Err(_) => debug!(%peer, "client TLS handshake timed out"),
                        },
                    }
                    drop(permit);
                });
            }
            Err(_) => {
                // Over the cap: say so and close. Logged once per 1000 so a flood does not
                // flood the log too.
                if refused_since_log == 0 {
                    warn!(
                        %peer,
                        max_connections,
                        "client connection cap reached; refusing with ERR_INTERNAL \
                         (logged once per 1000 refusals)"
                    );
                }
                refused_since_log = (refused_since_log + 1) % 1000;
                // A TLS client could not read a plaintext refusal: it is just closed.
                if tls.is_some() {
                    continue;
                }
                if let Ok(refusing) = refusals.clone().try_acquire_owned() {
                    tokio::spawn(async move {
                        connection::refuse(stream).await;
                        drop(refusing);
                    });
                }
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

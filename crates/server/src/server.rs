//! Starting and stopping a whole server: storage, node task and client listener, with a graceful
//! stop on SIGINT or SIGTERM.

use anyhow::Context;
use tokio::net::TcpListener;
use tracing::info;

use crate::client_budget::ClientBudget;
use crate::config::NodeConfig;
use crate::connection::ConnectionLimits;
use crate::metrics::Metrics;
use crate::node::{INBOUND_QUEUE_MAX, Node, PeerInbox};
use crate::shutdown;
use crate::{limits, listener};
use crate::{status, transport};
use tokio::sync::mpsc;

/// Resolves when the process gets SIGINT (Ctrl-C) or SIGTERM.
pub async fn stop_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(term) => term,
        Err(_) => {
            // Without a SIGTERM handler, Ctrl-C still works.
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

/// Runs a server until SIGINT or SIGTERM, then stops it gracefully: no new connections, replies
/// for commands already read are written, the log is flushed.
pub async fn run_until_signal(config: NodeConfig) -> anyhow::Result<()> {
    run(config, stop_signal()).await
}

/// For a node started with `--join`: asks the cluster for its members and logs who this node
/// joins and the command that adds it (or that it is a member already).
async fn announce_join(config: NodeConfig) {
    let Some(me) = config.me().cloned() else {
        return;
    };
    let mut client =
        client::Client::new(config.join.clone()).with_deadline(std::time::Duration::from_secs(10));
    match client.admin(&fs::Admin::Members).await {
        Ok(fs::Reply::Members(members)) => {
            let ids: Vec<u64> = members.iter().map(|m| m.id).collect();
            if ids.contains(&me.id) {
                info!(id = me.id, ?ids, "already a member of the cluster");
            } else {
                info!(
                    ?ids,
                    "waiting to be added: raftfs admin add-member --members {} --id {} --peer {} \
                     --client {}{}",
                    config.join.join(","),
                    me.id,
                    me.peer,
                    me.client,
                    me.http
                        .as_ref()
                        .map_or(String::new(), |h| format!(" --http {h}"))
                );
            }
        }
        Ok(other) => tracing::warn!(?other, "the cluster did not list its members"),
        Err(err) => tracing::warn!(%err, "cannot reach the cluster to join"),
    }
}

/// Runs a server until `stop` resolves or the node fails.
pub async fn run(
    config: NodeConfig,
    stop: impl std::future::Future<Output = ()>,
) -> anyhow::Result<()> {
    let me = config
        .me()
        .context("this node is not in the member list")?
        .clone();
    // Descriptors first: the connection cap is derived from the limit in force.
    let descriptors =
        limits::raise_descriptor_limit().context("cannot read the file descriptor limit")?;
    let max_connections = limits::connection_cap(&config.client_limits, descriptors.soft)?;
    info!(
        was = descriptors.was,
        soft = descriptors.soft,
        hard = descriptors.hard,
        max_client_connections = max_connections,
        "file descriptor limit (soft raised to hard); client connections capped"
    );
    let clients = TcpListener::bind(&me.client)
        .await
        .with_context(|| format!("cannot listen for clients on {}", me.client))?;
    let bound = clients
        .local_addr()
        .context("cannot read the client address")?;
    let (trigger, shutdown) = shutdown::channel();
    let metrics = std::sync::Arc::new(Metrics::new());
    let (inbound_tx, inbound) = mpsc::channel(INBOUND_QUEUE_MAX);
    let (bulk_tx, bulk_inbound) = mpsc::channel(transport::BULK_INBOUND_MAX);
    let (hello_tx, hellos) = mpsc::channel(transport::HELLO_QUEUE_MAX);
    let identity = config
        .peer_identity()
        .context("cannot set up TLS between members (make certificates with `raftfs certs`, or set insecure_peers = true on a trusted network)")?;
    // Listen for peers whenever this node can authenticate them: members may be added to any
    // cluster, a single node's too (given certificates).
    if let Some(identity) = &identity {
        let peer_listen = config.peer_listen.as_ref().unwrap_or(&me.peer);
        let peers = TcpListener::bind(peer_listen)
            .await
            .with_context(|| format!("cannot listen for peers on {peer_listen}"))?;
        tokio::spawn(transport::accept_loop(
            peers,
            identity.clone(),
            transport::InboundLanes {
                raft: inbound_tx,
                bulk: bulk_tx,
                hellos: hello_tx,
            },
            metrics.clone(),
            shutdown.clone(),
        ));
    }
    let (status_tx, status_queries) = mpsc::channel(status::STATUS_QUEUE_MAX);
    let status_listener = match &me.http {
        Some(http) => Some(
            TcpListener::bind(http)
                .await
                .and_then(|listener| listener.into_std())
                .with_context(|| format!("cannot listen for status requests on {http}"))?,
        ),
        None => None,
    };
    let (node, handle) = Node::open(
        config.clone(),
        identity,
        PeerInbox {
            raft: inbound,
            bulk: bulk_inbound,
            hellos,
        },
        status_queries,
        metrics.clone(),
        shutdown.clone(),
    )
    .await?;
    if let Some(listener) = status_listener {
        let sources = status::Sources {
            metrics,
            log: node.log_counters(),
        };
        status::spawn(listener, status_tx, sources, shutdown.clone())
            .context("cannot start the status server")?;
    }
    let client_tls = match (&config.tls, config.client_tls) {
        (Some(files), true) => {
            Some(crate::tls::client_acceptor(files).context("cannot set up TLS for clients")?)
        }
        (None, true) => anyhow::bail!("client_tls needs the member's certificate"),
        (_, false) => None,
    };
    // Tests and scripts wait for this line; it names the bound address (useful with port 0).
    info!(id = config.id, client = %bound, tls = client_tls.is_some(), data_dir = %config.data_dir.display(), "raftfs serving");

    let limits = ConnectionLimits::new(&config.client_limits, config.file_bytes_max);
    let budget = ClientBudget::new(
        config.client_limits.total_bytes,
        handle.metrics().client_buffered_bytes.clone(),
    );
    if config.joining {
        tokio::spawn(announce_join(config.clone()));
    }
    let listener_task = tokio::spawn(listener::run(
        clients,
        handle,
        limits,
        budget,
        max_connections,
        client_tls,
        shutdown,
    ));
    let node_task = tokio::spawn(node.run());
    tokio::pin!(node_task);
    let outcome = tokio::select! {
        _ = stop => {
            info!("stop requested; shutting down");
            trigger.trigger();
            None
        }
        result = &mut node_task => Some(result),
    };
    trigger.trigger();
    let _ = listener_task.await;
    let result = match outcome {
        Some(result) => result,
        None => node_task.await,
    };
    result.context("node task panicked")?
}

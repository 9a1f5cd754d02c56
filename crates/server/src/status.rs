//! Status and metrics over HTTP, on the member's optional `http` address:
//!
//! - `GET /status`: JSON with the node's role, term, leader, log and store figures, and a digest
//!   of the whole store (kept up to date by the store itself, so O(1)), so replicas can be
//!   compared.
//! - `GET /metrics`: the same figures, and the event counters and latency histograms of
//!   [`crate::metrics`], in the Prometheus text format.
//! - `GET /health`: 200 when the node knows a leader, 503 otherwise.
//!
//! Every answer comes from the node task itself, so its figures are one consistent reading.
//! The server runs on a thread of its own ([`spawn`]), so it answers while the node is stuck:
//! a node that does not answer within [`NODE_ANSWER_TIMEOUT`] gets a 503 that says so, and how
//! long the log's current disk batch has run (a disk that stalls shows here first).

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use serde::Serialize;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, mpsc, oneshot};
use tracing::{debug, warn};

use crate::metrics::Metrics;
use crate::shutdown::Shutdown;

/// Status queries waiting for the node; a scraper that floods us waits on this bound.
pub const STATUS_QUEUE_MAX: usize = 64;

/// One consistent reading of a node.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Status {
    /// The node's id.
    pub id: u64,
    /// `leader`, `candidate`, `precandidate` or `follower`.
    pub role: String,
    /// Current term.
    pub term: u64,
    /// The leader's id, if known.
    pub leader: Option<u64>,
    /// The voters of the configuration in force (the live one, from the log).
    pub voters: Vec<u64>,
    /// Its learners (members that receive the log but do not vote).
    pub learners: Vec<u64>,
    /// Commit index.
    pub commit_index: u64,
    /// Index applied to the store.
    pub applied_index: u64,
    /// Last index in the log.
    pub last_index: u64,
    /// Last index on disk.
    pub durable_index: u64,
    /// Files in the store.
    pub files: u64,
    /// Bytes of file content in the store.
    pub content_bytes: u64,
    /// The store's version counter.
    pub version: u64,
    /// The store's digest ([`fs::Store::digest`]) as 16 hex digits: members with equal digests
    /// hold equal stores. Reported only by `/status`. Costs O(1): the node task does no work
    /// proportional to the store for any status query.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub store_digest: Option<String>,
    /// Client commands received, by kind.
    pub requests: RequestCounts,
    /// fsyncs the log has performed.
    pub wal_fsyncs: u64,
    /// Whether the log's writes are committed on the node's own thread now: a follower whose
    /// disk has not been slow in the last 10 s. False on the leader, which always hands them
    /// to the log's thread.
    pub wal_inline: bool,
    /// Inline log batches slower than 100 ms since start (a stalling disk): each sent the
    /// writes back to the log's thread for 10 s.
    pub wal_slow_batches: u64,
    /// Index of the newest snapshot (0 without one).
    pub snapshot_index: u64,
    /// Size of the newest snapshot's file, bytes.
    pub snapshot_bytes: u64,
    /// First index the log holds in memory (after compaction).
    pub first_index: u64,
    /// Snapshots this node made of its store since start.
    pub snapshots_made: u64,
    /// Snapshots delivered to followers since start.
    pub snapshots_sent: u64,
    /// Snapshots received from a leader and installed since start.
    pub snapshots_installed: u64,
    /// Entries the log holds: `last_index - first_index + 1`, 0 when empty.
    pub log_entries: u64,
    /// Bytes of the log's segment files on disk, as of the log writer's last batch.
    pub log_bytes: u64,
    /// Client commands the node has taken and not yet answered (parked ones included): the
    /// pending proposals and reads.
    pub in_flight: u64,
    /// The election timeout (minimum), milliseconds: what `last_contact_ms` is judged against.
    pub election_timeout_ms: u64,
    /// Milliseconds since this member last heard from the leader: on a follower, since the last
    /// message of the leader of its term; on the leader, the age of the oldest acknowledgement
    /// among the most recent quorum (a majority of the voters, itself included, heard from
    /// within that time: 0 for a single voter). `None` when unknown (no leader, or a new
    /// leader not yet acknowledged by a quorum).
    pub last_contact_ms: Option<u64>,
    /// On the leader: every other member's replication progress, by id. Empty elsewhere.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub followers: Vec<FollowerProgress>,
    /// The log's fsync latencies (for `/metrics` only).
    #[serde(skip)]
    pub wal_sync: wal::SyncLatency,
}

/// What the leader knows of one follower's replication, from its answers in this term.
#[derive(Debug, Clone, Default, Serialize)]
pub struct FollowerProgress {
    /// The follower's id.
    pub id: u64,
    /// Whether it votes.
    pub voter: bool,
    /// Highest index it acknowledged as durable and matching the leader's log (0 before its
    /// first successful append in this term).
    pub match_index: u64,
    /// Milliseconds since its last answer to the leader (append or heartbeat); `None` if it has
    /// not answered in this term.
    pub last_ack_ms: Option<u64>,
}

/// Client commands received since start.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RequestCounts {
    /// `read` commands.
    pub read: u64,
    /// `write` commands.
    pub write: u64,
    /// `cas` commands.
    pub cas: u64,
    /// `delete` commands.
    pub delete: u64,
}

/// A question for the node: answer with a fresh [`Status`].
#[derive(Debug)]
pub struct StatusQuery {
    /// Whether to report the store digest (`/status` does; it is O(1)).
    pub with_digest: bool,
    /// Where the answer goes.
    pub reply: oneshot::Sender<Status>,
}

/// HTTP connections served at once; more wait in the kernel's accept queue. Scrapers and
/// operators need a handful; the cap keeps descriptors for the log and the peers.
pub const HTTP_CONNECTIONS_MAX: usize = 64;

/// How long a connection may take to send a request's headers (a slow or idle client is
/// closed, so it cannot hold a connection slot).
pub const HTTP_HEADER_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a request waits for the node before the answer is a 503 "node busy".
pub const NODE_ANSWER_TIMEOUT: Duration = Duration::from_secs(1);

/// Pause after a failed accept (out of file descriptors, say) so the loop does not spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// What the status server reads besides the node's answers.
#[derive(Debug, Clone)]
pub struct Sources {
    /// The node's event counters and histograms.
    pub metrics: Arc<Metrics>,
    /// The log's counters, read directly (atomics) when the node does not answer.
    pub log: Arc<wal::Counters>,
}

/// Starts the status server on a thread of its own, with its own single-threaded runtime, so
/// that it answers while the node's runtime is busy or blocked (a follower writes its log on
/// the node task: see `node::storage`). It stops at shutdown.
pub fn spawn(
    listener: std::net::TcpListener,
    node: mpsc::Sender<StatusQuery>,
    sources: Sources,
    shutdown: Shutdown,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    listener.set_nonblocking(true)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    std::thread::Builder::new()
        .name("raftfs-status".into())
        .spawn(move || {
            runtime.block_on(async move {
                match TcpListener::from_std(listener) {
                    Ok(listener) => serve(listener, node, sources, shutdown).await,
                    Err(err) => warn!(%err, "status listener unusable; no status server"),
                }
            })
        })
}

/// Serves HTTP status requests until shutdown.
async fn serve(
    listener: TcpListener,
    node: mpsc::Sender<StatusQuery>,
    sources: Sources,
    mut shutdown: Shutdown,
) {
    let permits = Arc::new(Semaphore::new(HTTP_CONNECTIONS_MAX));
    loop {
        // A slot first, then a connection: beyond the cap, clients wait to be accepted.
        let permit = tokio::select! {
            permit = permits.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => return,
            },
            _ = shutdown.wait() => return,
        };
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = shutdown.wait() => return,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(err) => {
                warn!(%err, "status accept failed; pausing");
                tokio::time::sleep(ACCEPT_BACKOFF).await;
                continue;
            }
        };
        let node = node.clone();
        let sources = sources.clone();
        tokio::spawn(async move {
            let service =
                hyper::service::service_fn(move |req| answer(req, node.clone(), sources.clone()));
            if let Err(err) = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HTTP_HEADER_TIMEOUT)
                .serve_connection(TokioIo::new(stream), service)
                .await
            {
                debug!(%err, "status connection ended");
            }
            drop(permit);
        });
    }
}

async fn answer(
    req: Request<Incoming>,
    node: mpsc::Sender<StatusQuery>,
    sources: Sources,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let with_digest = req.uri().path() == "/status";
    let status = tokio::time::timeout(NODE_ANSWER_TIMEOUT, async {
        let (reply, rx) = oneshot::channel();
        node.send(StatusQuery { with_digest, reply }).await.ok()?;
        rx.await.ok()
    })
    .await;
    let status = match status {
        Ok(Some(status)) => status,
        Ok(None) => {
            return Ok(reply(
                StatusCode::SERVICE_UNAVAILABLE,
                "text/plain",
                "node stopped\n".into(),
            ));
        }
        Err(_) => {
            return Ok(reply(
                StatusCode::SERVICE_UNAVAILABLE,
                "text/plain",
                busy_message(&sources.log),
            ));
        }
    };
    let metrics = &sources.metrics;
    Ok(match req.uri().path() {
        "/status" => match serde_json::to_string_pretty(&status) {
            Ok(json) => reply(StatusCode::OK, "application/json", json + "\n"),
            Err(err) => reply(
                StatusCode::INTERNAL_SERVER_ERROR,
                "text/plain",
                err.to_string(),
            ),
        },
        "/metrics" => match metrics.encode(&status) {
            Ok(text) => reply(
                StatusCode::OK,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
                text,
            ),
            Err(_) => reply(
                StatusCode::INTERNAL_SERVER_ERROR,
                "text/plain",
                "metrics encoding failed\n".into(),
            ),
        },
        "/health" if status.leader.is_some() => reply(StatusCode::OK, "text/plain", "ok\n".into()),
        "/health" => reply(
            StatusCode::SERVICE_UNAVAILABLE,
            "text/plain",
            "no leader\n".into(),
        ),
        _ => reply(
            StatusCode::NOT_FOUND,
            "text/plain",
            "try /status, /metrics or /health\n".into(),
        ),
    })
}

/// The answer when the node does not answer in time.
fn busy_message(log: &wal::Counters) -> String {
    let waited = NODE_ANSWER_TIMEOUT.as_millis();
    match log.batch_running_for() {
        Some(running) => format!(
            "node busy: no answer within {waited} ms; the log's disk write has run for {} ms\n",
            running.as_millis()
        ),
        None => format!("node busy: no answer within {waited} ms\n"),
    }
}

fn reply(code: StatusCode, content_type: &str, body: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = code;
    if let Ok(value) = content_type.parse() {
        response.headers_mut().insert("content-type", value);
    }
    response
}

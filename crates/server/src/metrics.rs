//! Every metric a member exports on `GET /metrics`, in the Prometheus text format (OpenMetrics
//! flavour, from the `prometheus-client` crate), each name prefixed `raftfs_`, with its unit last
//! (`_seconds`, `_bytes`) and `_total` on counters. The doc comment of each item below says what
//! the metric means; docs/operations.md copies them.
//!
//! Two kinds of figures:
//! - **Events**, counted where they happen: [`Metrics`] holds lock-free counters and histograms
//!   (atomics; a histogram is a fixed array of buckets), shared by the node task, the client
//!   connections and the peer transport. Nothing on the request path allocates or locks for a
//!   metric: a command costs one counter increment and one histogram observation.
//! - **State** (term, indexes, store size, snapshots, ...), read at scrape time from the node
//!   task's one consistent [`Status`] reading and rendered as gauges and counters
//!   ([`Metrics::encode`]).
//!
//! The state metrics, read from [`Status`] at each scrape (gauges unless `_total`):
//! - `raftfs_term`: the current Raft term. `raftfs_is_leader`: 1 on the leader.
//!   `raftfs_role{role}`: 1 for the role the member has now (`leader`, `candidate`,
//!   `precandidate`, `follower`), 0 for the others.
//! - `raftfs_commit_index`, `raftfs_applied_index`, `raftfs_last_index`, `raftfs_durable_index`
//!   (last index on this member's disk), `raftfs_first_index` (first index the log holds).
//! - `raftfs_log_entries`: entries the log holds (compaction behind a snapshot drops them);
//!   `raftfs_log_bytes`: bytes of its segment files on disk, as of the log writer's last batch.
//! - `raftfs_pending_proposals`: client commands the node has taken and not answered yet
//!   (proposals in replication, reads waiting for their barrier, requests parked without a
//!   leader); bounded by the node's in-flight cap.
//! - `raftfs_voters`, `raftfs_learners`: members of the configuration in force.
//! - `raftfs_files`, `raftfs_content_bytes`, `raftfs_version`: the store's files, bytes of
//!   content and version counter.
//! - `raftfs_snapshot_index`, `raftfs_snapshot_bytes`: the newest snapshot's index and file
//!   size; `raftfs_snapshots_made_total` (of this member's store),
//!   `raftfs_snapshots_sent_total` (delivered to followers), `raftfs_snapshots_installed_total`
//!   (received from a leader), since start.
//! - `raftfs_{read,write,cas,delete}_requests_total`: commands of each kind that reached the
//!   node task (redirected ones included; `raftfs_commands_total` counts answers instead).
//! - `raftfs_wal_inline`: 1 while a follower commits its log writes inline;
//!   `raftfs_wal_slow_inline_batches_total`: inline batches slower than 100 ms, each sending
//!   the writes to the log's thread for 10 s (a stalling disk).
//! - `raftfs_wal_fsyncs_total`: fsyncs of the log (files and directories);
//!   `raftfs_wal_fsync_duration_seconds`: a histogram of how long each took, buckets
//!   `wal::SYNC_BUCKET_BOUNDS_US` (50 µs to 10 s).
//!
//! Names kept from before this module: `raftfs_term`, `raftfs_is_leader`, `raftfs_commit_index`,
//! `raftfs_applied_index`, `raftfs_last_index`, `raftfs_durable_index`, `raftfs_files`,
//! `raftfs_content_bytes`, `raftfs_version`, `raftfs_snapshot_index`, `raftfs_snapshot_bytes`,
//! `raftfs_first_index`, `raftfs_{read,write,cas,delete}_requests_total`,
//! `raftfs_wal_fsyncs_total`, `raftfs_snapshots_{made,sent,installed}_total`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use fs::{Command, Reply};
use prometheus_client::encoding::text::{encode_eof, encode_registry};
use prometheus_client::encoding::{EncodeMetric, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::{MetricType, TypedMetric};
use prometheus_client::registry::Registry;

use crate::status::Status;

/// Upper bounds of the latency buckets, seconds: 100 µs (a read served from memory) to 10 s (a
/// command parked through elections), about three per decade, so a p99 read off them is within
/// a factor of about two. Fixed, so an observation is one comparison search and two atomic adds.
pub const LATENCY_BUCKETS_SECONDS: [f64; 16] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];

/// [`LATENCY_BUCKETS_SECONDS`] in nanoseconds, for the comparison on the hot path.
const LATENCY_BOUNDS_NANOS: [u64; 16] = [
    100_000,
    250_000,
    500_000,
    1_000_000,
    2_500_000,
    5_000_000,
    10_000_000,
    25_000_000,
    50_000_000,
    100_000_000,
    250_000_000,
    500_000_000,
    1_000_000_000,
    2_500_000_000,
    5_000_000_000,
    10_000_000_000,
];

/// Buckets of a latency histogram: one per bound and one past the last.
const LATENCY_BUCKETS: usize = LATENCY_BOUNDS_NANOS.len() + 1;

/// A latency histogram with the fixed buckets of [`LATENCY_BUCKETS_SECONDS`], lock-free (the
/// crate's own histogram takes a mutex per observation). Clones share the same cells.
#[derive(Debug, Clone, Default)]
pub struct Histogram {
    cells: Arc<HistogramCells>,
}

#[derive(Debug, Default)]
struct HistogramCells {
    /// Observations per bucket, not cumulative (the encoder accumulates).
    buckets: [AtomicU64; LATENCY_BUCKETS],
    /// Sum of all observations, nanoseconds.
    sum_nanos: AtomicU64,
}

impl Histogram {
    /// Records one observation.
    pub fn observe(&self, took: Duration) {
        self.observe_n(took, 1);
    }

    /// Records `n` observations of the same duration at the cost of one (a batch of entries
    /// committed together).
    pub fn observe_n(&self, took: Duration, n: u64) {
        let nanos = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX);
        let bucket = LATENCY_BOUNDS_NANOS.partition_point(|&bound| bound < nanos);
        self.cells.buckets[bucket].fetch_add(n, Ordering::Relaxed);
        self.cells
            .sum_nanos
            .fetch_add(nanos.saturating_mul(n), Ordering::Relaxed);
    }

    /// Observations so far.
    pub fn count(&self) -> u64 {
        self.cells
            .buckets
            .iter()
            .map(|b| b.load(Ordering::Relaxed))
            .sum()
    }
}

impl TypedMetric for Histogram {
    const TYPE: MetricType = MetricType::Histogram;
}

impl EncodeMetric for Histogram {
    fn encode(&self, encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        let counts: Vec<u64> = self
            .cells
            .buckets
            .iter()
            .map(|b| b.load(Ordering::Relaxed))
            .collect();
        let sum = self.cells.sum_nanos.load(Ordering::Relaxed) as f64 / 1e9;
        encode_buckets(encoder, &LATENCY_BUCKETS_SECONDS, &counts, sum)
    }

    fn metric_type(&self) -> MetricType {
        MetricType::Histogram
    }
}

/// Encodes a histogram from per-bucket counts (`counts` has one more entry than `bounds`: the
/// overflow bucket) and the sum of observations.
fn encode_buckets(
    mut encoder: MetricEncoder,
    bounds: &[f64],
    counts: &[u64],
    sum: f64,
) -> Result<(), std::fmt::Error> {
    let buckets: Vec<(f64, u64)> = bounds
        .iter()
        .copied()
        .chain([f64::INFINITY])
        .zip(counts.iter().copied())
        .collect();
    let count = counts.iter().sum();
    encoder.encode_histogram::<NoLabelSet>(sum, count, &buckets, None)
}

/// The log's fsync latencies as the WAL counted them, for encoding at scrape time.
#[derive(Debug)]
struct SyncHistogram(wal::SyncLatency);

impl EncodeMetric for SyncHistogram {
    fn encode(&self, encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        let bounds: Vec<f64> = wal::SYNC_BUCKET_BOUNDS_US
            .iter()
            .map(|&us| us as f64 / 1e6)
            .collect();
        let sum = self.0.sum_nanos as f64 / 1e9;
        encode_buckets(encoder, &bounds, &self.0.counts, sum)
    }

    fn metric_type(&self) -> MetricType {
        MetricType::Histogram
    }
}

/// The kind of a client command, the `kind` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommandKind {
    /// `read`.
    Read,
    /// `write`.
    Write,
    /// `cas`.
    Cas,
    /// `delete`.
    Delete,
    /// The administrative commands (`members`, membership changes, leadership transfer).
    Admin,
    /// A line that did not parse (answered `ERR_CMD_ERR` by the connection itself).
    Malformed,
}

impl CommandKind {
    /// Every kind, in label order.
    pub const ALL: [CommandKind; 6] = [
        CommandKind::Read,
        CommandKind::Write,
        CommandKind::Cas,
        CommandKind::Delete,
        CommandKind::Admin,
        CommandKind::Malformed,
    ];

    /// The kind of a file command.
    pub fn of(command: &Command) -> CommandKind {
        match command {
            Command::Read { .. } => CommandKind::Read,
            Command::Write { .. } => CommandKind::Write,
            Command::Cas { .. } => CommandKind::Cas,
            Command::Delete { .. } => CommandKind::Delete,
        }
    }

    /// Whether a command of this kind can be answered with `result`.
    pub fn can_get(self, result: CommandResult) -> bool {
        use CommandResult as R;
        // Every kind the node runs can find no leader in time or be redirected.
        let common = matches!(result, R::Ok | R::Internal | R::Redirect);
        match self {
            CommandKind::Read | CommandKind::Delete => common || result == R::NotFound,
            CommandKind::Write => common,
            CommandKind::Cas => common || matches!(result, R::NotFound | R::Version),
            CommandKind::Admin => common || result == R::Refused,
            CommandKind::Malformed => result == R::CmdErr,
        }
    }

    /// The label value.
    pub fn label(self) -> &'static str {
        match self {
            CommandKind::Read => "read",
            CommandKind::Write => "write",
            CommandKind::Cas => "cas",
            CommandKind::Delete => "delete",
            CommandKind::Admin => "admin",
            CommandKind::Malformed => "malformed",
        }
    }
}

/// How a command was answered, the `result` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommandResult {
    /// `CONTENTS`, `OK`, `MEMBERS`, `SNAPSHOT`: it succeeded.
    Ok,
    /// `ERR_FILE_NOT_FOUND`.
    NotFound,
    /// `ERR_VERSION`: a cas on a version other than the current one.
    Version,
    /// `ERR_CMD_ERR`: malformed.
    CmdErr,
    /// `ERR_INTERNAL`: not completed (no leader in time, leadership lost, shutting down).
    Internal,
    /// `ERR_REDIRECT`: this member does not lead.
    Redirect,
    /// `ERR_MEMBER`: an administrative command the cluster refused.
    Refused,
}

impl CommandResult {
    /// Every result, in label order.
    pub const ALL: [CommandResult; 7] = [
        CommandResult::Ok,
        CommandResult::NotFound,
        CommandResult::Version,
        CommandResult::CmdErr,
        CommandResult::Internal,
        CommandResult::Redirect,
        CommandResult::Refused,
    ];

    /// The result a reply reports.
    pub fn of(reply: &Reply) -> CommandResult {
        match reply {
            Reply::Contents { .. }
            | Reply::Written { .. }
            | Reply::Deleted
            | Reply::Done(_)
            | Reply::Members(_)
            | Reply::Snapshot { .. } => CommandResult::Ok,
            Reply::FileNotFound => CommandResult::NotFound,
            Reply::VersionMismatch { .. } => CommandResult::Version,
            Reply::CmdErr => CommandResult::CmdErr,
            Reply::Internal => CommandResult::Internal,
            Reply::Redirect(_) => CommandResult::Redirect,
            Reply::MemberError(_) => CommandResult::Refused,
        }
    }

    /// The label value.
    pub fn label(self) -> &'static str {
        match self {
            CommandResult::Ok => "ok",
            CommandResult::NotFound => "not_found",
            CommandResult::Version => "version",
            CommandResult::CmdErr => "cmd_err",
            CommandResult::Internal => "internal",
            CommandResult::Redirect => "redirect",
            CommandResult::Refused => "refused",
        }
    }
}

/// Why a message for a peer was dropped, the `reason` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropReason {
    /// The peer's outgoing queue was full (the link is slower than the traffic).
    QueueFull,
    /// The peer is not in the configuration this node knows.
    UnknownPeer,
    /// Queued while the link was down, discarded when it failed (Raft resends what matters).
    LinkDown,
}

impl DropReason {
    const ALL: [DropReason; 3] = [
        DropReason::QueueFull,
        DropReason::UnknownPeer,
        DropReason::LinkDown,
    ];

    fn label(self) -> &'static str {
        match self {
            DropReason::QueueFull => "queue_full",
            DropReason::UnknownPeer => "unknown_peer",
            DropReason::LinkDown => "link_down",
        }
    }
}

/// Label set of a family: (name, value) pairs fixed at start.
type Labels = [(&'static str, &'static str); 2];

/// A member's event metrics, shared (behind an `Arc`) by the node task, the client listener and
/// connections, the peer transport and the status server. See the module doc.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    /// `raftfs_commands_total{kind, result}`: client commands answered, by kind and by how
    /// they were answered. Counted when the reply is taken for writing, on the member the
    /// client is connected to (so a redirected command counts once as `redirect` there, and
    /// again on the leader when the client retries there).
    commands: [[Counter; CommandResult::ALL.len()]; CommandKind::ALL.len()],
    /// `raftfs_command_duration_seconds{kind}`: time from a command's last byte read to its
    /// reply being ready to write, on the member the client is connected to (includes queueing
    /// in the node, replication and commit for mutations, the read barrier for reads).
    command_seconds: [Histogram; CommandKind::ALL.len()],
    /// `raftfs_commit_duration_seconds`: on the leader, time from proposing a log entry (handing
    /// it to the log writer and the followers) to its commit and apply, per entry (entries
    /// proposed together count once each, with their batch's latency).
    pub commit_seconds: Histogram,
    /// `raftfs_apply_duration_seconds`: time the node task spent on one step that applied
    /// committed entries to the store (stepping the core, applying, answering the clients), per
    /// step that applied at least one entry.
    pub apply_seconds: Histogram,
    /// `raftfs_leader_changes_total`: times this member learned of a new leader (another id, or
    /// the same one in a new term), itself included.
    pub leader_changes: Counter,
    /// `raftfs_elections_started_total`: elections this member started as a candidate (each
    /// one a new term), after winning a pre-vote or on a leadership transfer.
    pub elections_started: Counter,
    /// `raftfs_prevotes_started_total`: times this member became a pre-candidate (an election
    /// timeout without hearing from a leader). Pre-vote rounds repeated while it stays one
    /// change neither role nor term and are not counted again: a member cut off from the
    /// others shows as `raftfs_role{role="precandidate"} == 1` for a long time.
    pub prevotes_started: Counter,
    /// `raftfs_proposals_committed_total`: log entries this member proposed as leader that
    /// committed (client mutations, their batches counted per entry, plus the leader's no-op,
    /// clock and configuration entries). With more batches outstanding than the observer
    /// tracks (`IN_FLIGHT_MAX`), the oldest is forgotten and counted neither here nor as failed.
    pub proposals_committed: Counter,
    /// `raftfs_proposals_failed_total`: log entries this member proposed as leader that it
    /// lost leadership before seeing commit (their clients were answered `ERR_INTERNAL`; the
    /// entries may still commit under the next leader).
    pub proposals_failed: Counter,
    /// `raftfs_client_connections`: client connections open now (over TLS: from the
    /// handshake on).
    pub client_connections: Gauge,
    /// `raftfs_client_buffered_bytes`: bytes all client connections hold now, commands read and
    /// not yet answered plus replies not yet sent (`[client_limits] total_bytes` bounds it; see
    /// `client_budget`).
    pub client_buffered_bytes: Gauge,
    /// `raftfs_client_received_bytes_total`: bytes read from client connections.
    pub client_bytes_received: Counter,
    /// `raftfs_client_sent_bytes_total`: bytes written to client connections.
    pub client_bytes_sent: Counter,
    /// `raftfs_peer_received_bytes_total`: bytes of peer frames received (both lanes, Raft
    /// messages and snapshot chunks, with their 4-byte length prefix; TLS overhead not counted).
    pub peer_bytes_received: Counter,
    /// `raftfs_peer_sent_bytes_total`: bytes of peer frames sent, counted the same way.
    pub peer_bytes_sent: Counter,
    /// `raftfs_peer_messages_dropped_total{reason}`: messages for peers dropped instead of
    /// sent (see [`DropReason`]). Raft tolerates loss; a steady rate means a slow or dead link.
    peer_dropped: [Counter; DropReason::ALL.len()],
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    /// Creates every metric and registers it once; the hot path then only touches atomics.
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("raftfs");
        let commands_family = Family::<Labels, Counter>::default();
        // Only the answers a kind can get are exported (21 series, not 42); the others get a
        // counter of their own that is never exported, so counting needs no branch.
        let commands = CommandKind::ALL.map(|kind| {
            CommandResult::ALL.map(|result| {
                if kind.can_get(result) {
                    commands_family
                        .get_or_create_owned(&[("kind", kind.label()), ("result", result.label())])
                } else {
                    Counter::default()
                }
            })
        });
        registry.register(
            "commands",
            "Client commands answered, by kind and result",
            commands_family,
        );
        let seconds_family = Family::<[(&'static str, &'static str); 1], Histogram>::default();
        let command_seconds = CommandKind::ALL
            .map(|kind| seconds_family.get_or_create_owned(&[("kind", kind.label())]));
        registry.register(
            "command_duration_seconds",
            "Time from a client command read to its reply ready, by kind",
            seconds_family,
        );
        let dropped_family = Family::<[(&'static str, &'static str); 1], Counter>::default();
        let peer_dropped =
            DropReason::ALL.map(|r| dropped_family.get_or_create_owned(&[("reason", r.label())]));
        registry.register(
            "peer_messages_dropped",
            "Messages for peers dropped instead of sent, by reason",
            dropped_family,
        );
        let metrics = Metrics {
            commands,
            command_seconds,
            commit_seconds: Histogram::default(),
            apply_seconds: Histogram::default(),
            leader_changes: Counter::default(),
            elections_started: Counter::default(),
            prevotes_started: Counter::default(),
            proposals_committed: Counter::default(),
            proposals_failed: Counter::default(),
            client_connections: Gauge::default(),
            client_buffered_bytes: Gauge::default(),
            client_bytes_received: Counter::default(),
            client_bytes_sent: Counter::default(),
            peer_bytes_received: Counter::default(),
            peer_bytes_sent: Counter::default(),
            peer_dropped,
            registry: Registry::default(),
        };
        let histograms = [
            (
                "commit_duration_seconds",
                "Leader: time from proposing a log entry to its commit, per entry",
                &metrics.commit_seconds,
            ),
            (
                "apply_duration_seconds",
                "Time of one node step that applied committed entries",
                &metrics.apply_seconds,
            ),
        ];
        for (name, help, histogram) in histograms {
            registry.register(name, help, histogram.clone());
        }
        let counters = [
            (
                "leader_changes",
                "Times this member learned of a new leader",
                &metrics.leader_changes,
            ),
            (
                "elections_started",
                "Elections this member started as a candidate",
                &metrics.elections_started,
            ),
            (
                "prevotes_started",
                "Times this member became a pre-candidate",
                &metrics.prevotes_started,
            ),
            (
                "proposals_committed",
                "Log entries proposed as leader that committed",
                &metrics.proposals_committed,
            ),
            (
                "proposals_failed",
                "Log entries proposed as leader whose commit this member did not see",
                &metrics.proposals_failed,
            ),
            (
                "client_received_bytes",
                "Bytes read from client connections",
                &metrics.client_bytes_received,
            ),
            (
                "client_sent_bytes",
                "Bytes written to client connections",
                &metrics.client_bytes_sent,
            ),
            (
                "peer_received_bytes",
                "Bytes of peer frames received",
                &metrics.peer_bytes_received,
            ),
            (
                "peer_sent_bytes",
                "Bytes of peer frames sent",
                &metrics.peer_bytes_sent,
            ),
        ];
        for (name, help, counter) in counters {
            registry.register(name, help, counter.clone());
        }
        registry.register(
            "client_connections",
            "Client connections open now",
            metrics.client_connections.clone(),
        );
        registry.register(
            "client_buffered_bytes",
            "Bytes client connections hold: commands not yet answered, replies not yet sent",
            metrics.client_buffered_bytes.clone(),
        );
        Metrics {
            registry,
            ..metrics
        }
    }

    /// Counts a client command answered with `reply`, `took` after it was read.
    pub fn command_done(&self, kind: CommandKind, reply: &Reply, took: Duration) {
        let result = CommandResult::of(reply);
        self.commands[kind as usize][result as usize].inc();
        self.command_seconds[kind as usize].observe(took);
    }

    /// Client commands of `kind` answered with `result` so far.
    pub fn commands(&self, kind: CommandKind, result: CommandResult) -> u64 {
        self.commands[kind as usize][result as usize].get()
    }

    /// Counts a message for a peer dropped for `reason`.
    pub fn peer_dropped(&self, reason: DropReason) {
        self.peer_dropped[reason as usize].inc();
    }

    /// Counts `n` messages for a peer dropped for `reason`.
    pub fn peer_dropped_n(&self, reason: DropReason, n: u64) {
        if n > 0 {
            self.peer_dropped[reason as usize].inc_by(n);
        }
    }

    /// The whole exposition: the event metrics, then the node's state from `status` (one
    /// consistent reading of the node task), then the end marker.
    pub fn encode(&self, status: &Status) -> Result<String, std::fmt::Error> {
        let mut out = String::new();
        encode_registry(&mut out, &self.registry)?;
        encode_registry(&mut out, &state_registry(status))?;
        encode_eof(&mut out)?;
        Ok(out)
    }
}

/// A gauge holding `value` (saturated to the gauge's range).
fn gauge(value: u64) -> Gauge {
    let gauge = Gauge::<i64>::default();
    gauge.set(i64::try_from(value).unwrap_or(i64::MAX));
    gauge
}

/// A counter holding `value`.
fn counter(value: u64) -> Counter {
    let counter = Counter::<u64>::default();
    counter.inc_by(value);
    counter
}

/// The node's state as metrics, built for one scrape from one reading.
fn state_registry(status: &Status) -> Registry {
    let mut registry = Registry::with_prefix("raftfs");
    let gauges: [(&str, &str, u64); 18] = [
        ("term", "Current Raft term", status.term),
        (
            "wal_inline",
            "1 while this member commits its log writes on the node's own thread (a follower with a fast disk)",
            u64::from(status.wal_inline),
        ),
        (
            "is_leader",
            "1 if this node leads",
            u64::from(status.role == "leader"),
        ),
        ("commit_index", "Raft commit index", status.commit_index),
        (
            "applied_index",
            "Index applied to the store",
            status.applied_index,
        ),
        ("last_index", "Last index in the log", status.last_index),
        ("durable_index", "Last index on disk", status.durable_index),
        (
            "first_index",
            "First index held in the log",
            status.first_index,
        ),
        (
            "log_entries",
            "Entries in the log (first to last index; compaction drops them)",
            status.log_entries,
        ),
        (
            "log_bytes",
            "Bytes of the log's segment files on disk",
            status.log_bytes,
        ),
        (
            "pending_proposals",
            "Client commands taken by the node and not yet answered (parked ones included)",
            status.in_flight,
        ),
        ("files", "Files in the store", status.files),
        (
            "content_bytes",
            "Bytes of file content",
            status.content_bytes,
        ),
        ("version", "Store-wide version counter", status.version),
        (
            "snapshot_index",
            "Index of the newest snapshot",
            status.snapshot_index,
        ),
        (
            "snapshot_bytes",
            "Size of the newest snapshot file",
            status.snapshot_bytes,
        ),
        (
            "voters",
            "Voters in the configuration in force",
            status.voters.len() as u64,
        ),
        (
            "learners",
            "Learners in the configuration in force",
            status.learners.len() as u64,
        ),
    ];
    for (name, help, value) in gauges {
        registry.register(name, help, gauge(value));
    }
    let roles = Family::<[(&'static str, &'static str); 1], Gauge>::default();
    for role in ["leader", "candidate", "precandidate", "follower"] {
        roles
            .get_or_create(&[("role", role)])
            .set(i64::from(status.role == role));
    }
    registry.register(
        "role",
        "1 for the role this node has now, 0 for the others",
        roles,
    );
    let counters: [(&str, &str, u64); 9] = [
        (
            "read_requests",
            "read commands received by the node task",
            status.requests.read,
        ),
        (
            "write_requests",
            "write commands received by the node task",
            status.requests.write,
        ),
        (
            "cas_requests",
            "cas commands received by the node task",
            status.requests.cas,
        ),
        (
            "delete_requests",
            "delete commands received by the node task",
            status.requests.delete,
        ),
        (
            "wal_fsyncs",
            "fsyncs performed by the log",
            status.wal_fsyncs,
        ),
        (
            "wal_slow_inline_batches",
            "inline log batches slower than 100 ms, each sending the writes to the log thread for 10 s",
            status.wal_slow_batches,
        ),
        (
            "snapshots_made",
            "Snapshots of the store made",
            status.snapshots_made,
        ),
        (
            "snapshots_sent",
            "Snapshots delivered to followers",
            status.snapshots_sent,
        ),
        (
            "snapshots_installed",
            "Snapshots received and installed",
            status.snapshots_installed,
        ),
    ];
    for (name, help, value) in counters {
        registry.register(name, help, counter(value));
    }
    registry.register(
        "wal_fsync_duration_seconds",
        "Time of one fsync of the log (file or directory)",
        SyncHistogram(status.wal_sync),
    );
    registry
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)] // Tests fail loudly on purpose.

    use super::*;

    /// An observation lands in the first bucket whose bound is at or above it; beyond the last
    /// bound it lands in +Inf; the buckets encode cumulatively with `_count` and `_sum`.
    #[test]
    fn histogram_buckets_are_inclusive_and_cumulative() {
        let metrics = Metrics::new();
        metrics.commit_seconds.observe(Duration::from_micros(100));
        metrics
            .commit_seconds
            .observe_n(Duration::from_millis(3), 2);
        metrics.commit_seconds.observe(Duration::from_secs(11));
        assert_eq!(metrics.commit_seconds.count(), 4);
        let text = metrics.encode(&Status::default()).unwrap();
        for line in [
            "raftfs_commit_duration_seconds_count 4",
            "raftfs_commit_duration_seconds_bucket{le=\"0.0001\"} 1",
            "raftfs_commit_duration_seconds_bucket{le=\"0.0025\"} 1",
            "raftfs_commit_duration_seconds_bucket{le=\"0.005\"} 3",
            "raftfs_commit_duration_seconds_bucket{le=\"10.0\"} 3",
            "raftfs_commit_duration_seconds_bucket{le=\"+Inf\"} 4",
            "raftfs_commit_duration_seconds_sum 11.0061",
        ] {
            assert!(text.contains(line), "{line} in\n{text}");
        }
        assert!(text.ends_with("# EOF\n"));
    }

    /// Commands count under their kind and result; only the results a kind can get are
    /// exported.
    #[test]
    fn commands_count_by_kind_and_result() {
        let metrics = Metrics::new();
        let took = Duration::from_millis(1);
        metrics.command_done(CommandKind::Write, &Reply::Written { version: 1 }, took);
        metrics.command_done(
            CommandKind::Cas,
            &Reply::VersionMismatch { current: 1 },
            took,
        );
        metrics.command_done(CommandKind::Read, &Reply::Redirect("a:1".into()), took);
        assert_eq!(metrics.commands(CommandKind::Write, CommandResult::Ok), 1);
        let text = metrics.encode(&Status::default()).unwrap();
        for line in [
            "raftfs_commands_total{kind=\"write\",result=\"ok\"} 1",
            "raftfs_commands_total{kind=\"cas\",result=\"version\"} 1",
            "raftfs_commands_total{kind=\"read\",result=\"redirect\"} 1",
            "raftfs_command_duration_seconds_count{kind=\"cas\"} 1",
        ] {
            assert!(text.contains(line), "{line} in\n{text}");
        }
        let series = text
            .lines()
            .filter(|l| l.starts_with("raftfs_commands_total{"))
            .count();
        assert_eq!(series, 21);
        assert!(!text.contains("kind=\"write\",result=\"version\""));
    }
}

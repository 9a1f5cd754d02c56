//! Cluster and node settings: the TOML member list of docs/protocol.md and the settings with defaults.
//! [`example`] is the whole file with every key at its default (`raftfs config example`); an
//! unknown key anywhere is an error naming it, its line and its table.
//!
//! ```toml
//! election_timeout_ms = 500      # optional, default 500
//! heartbeat_interval_ms = 50     # optional, default 50
//! max_file_size = 1048576        # optional, default 1 MiB
//! snapshot_entries = 10000       # optional: snapshot after this many entries ...
//! snapshot_bytes = 67108864      # optional: ... or this many command bytes (64 MiB)
//! snapshot_trailing_entries = 1000  # optional: log entries kept behind a snapshot
//! read_mode = "index"            # optional: "index" (ReadIndex) or "lease"
//! follower_reads = false         # optional: followers serve reads at the leader's read index
//! cluster_id = "raftfs"          # optional: in every hello and member certificate name
//! insecure_peers = false         # optional: plaintext, unauthenticated peer links
//! client_tls = false             # optional: clients must speak TLS
//!
//! [tls]                          # optional; the defaults are what `raftfs certs --out certs`
//! ca = "certs/ca.pem"            # writes beside this file. Relative paths are relative to
//! cert = "certs/member-{id}.pem" # the file's directory; {id} is the member's id.
//! key = "certs/member-{id}-key.pem"
//!
//! [client_limits]             # optional: see crate::limits for every key and default
//! idle_timeout_s = 3600
//!
//! [[member]]
//! id = 1                      # unsigned, unique, non-zero
//! peer = "127.0.0.1:9001"     # Raft traffic between members
//! client = "127.0.0.1:8081"   # the text protocol; what ERR_REDIRECT names
//! http = "127.0.0.1:7001"     # optional: status and metrics
//! ```

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::tls::{PeerTls, TlsError, TlsFiles};
use crate::transport::{PeerIdentity, Security};

/// Default minimum election timeout (randomised up to twice this). Loopback and LAN round trips
/// are well under a millisecond and fsync takes milliseconds, so 500 ms leaves a wide margin
/// against spurious elections while keeping failover (timeout + prevote + vote + no-op commit)
/// under two seconds in the worst case.
pub const ELECTION_TIMEOUT_MS_DEFAULT: u64 = 500;

/// Default heartbeat interval: a tenth of the election timeout, so several heartbeats can be lost
/// before a follower starts an election.
pub const HEARTBEAT_INTERVAL_MS_DEFAULT: u64 = 50;

/// Default largest file, in bytes (docs/protocol.md: `--max-file-size`, default 1 MiB).
pub const FILE_BYTES_MAX_DEFAULT: u64 = 1 << 20;

/// Largest file size that may be configured: a Raft entry must fit in one WAL record and one
/// peer frame with room to spare.
pub const FILE_BYTES_MAX_LIMIT: u64 = 32 << 20;

/// One member of the cluster, as listed in the TOML file.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Member {
    /// Unique, non-zero member id.
    pub id: u64,
    /// Address (HOST:PORT) for Raft traffic between members.
    pub peer: String,
    /// Address (HOST:PORT) for the client text protocol; what ERR_REDIRECT names.
    pub client: String,
    /// Optional address for status and metrics over HTTP.
    #[serde(default)]
    pub http: Option<String>,
}

/// The whole cluster file.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterFile {
    /// Minimum election timeout in milliseconds (randomised up to twice this).
    #[serde(default = "election_timeout_default")]
    pub election_timeout_ms: u64,
    /// Leader heartbeat interval in milliseconds.
    #[serde(default = "heartbeat_interval_default")]
    pub heartbeat_interval_ms: u64,
    /// Largest file accepted, in bytes.
    #[serde(default = "file_bytes_max_default")]
    pub max_file_size: u64,
    /// Snapshot once this many log entries were applied since the last snapshot.
    #[serde(default = "snapshot_entries_default")]
    pub snapshot_entries: u64,
    /// Snapshot once the commands applied since the last snapshot add up to this many bytes.
    #[serde(default = "snapshot_bytes_default")]
    pub snapshot_bytes: u64,
    /// Log entries kept behind a snapshot for followers slightly behind.
    #[serde(default = "snapshot_trailing_entries_default")]
    pub snapshot_trailing_entries: u64,
    /// How the leader confirms a linearizable read: `"index"` (ReadIndex, a heartbeat round
    /// per batch of reads; the default) or `"lease"` (at once while it holds a lease that ends
    /// a 10% clock-drift margin before any other member could be elected; needs clocks that run
    /// at about the same rate).
    #[serde(default)]
    pub read_mode: ReadMode,
    /// Followers serve linearizable reads themselves, asking the leader only for a read index,
    /// instead of redirecting them to the leader.
    #[serde(default)]
    pub follower_reads: bool,
    /// The cluster's id: sent and checked in every peer hello, and part of the name in every
    /// member certificate, so members of two clusters never mix.
    #[serde(default = "cluster_id_default")]
    pub cluster_id: String,
    /// Peer links in plaintext, unauthenticated: any process that reaches a peer port can
    /// then speak Raft. Only for a trusted network.
    #[serde(default)]
    pub insecure_peers: bool,
    /// Clients must speak TLS to the client port (with the member's certificate).
    #[serde(default)]
    pub client_tls: bool,
    /// Where the members' certificates are.
    #[serde(default)]
    pub tls: TlsSection,
    /// Budgets of client connections (the `[client_limits]` table; every key optional).
    #[serde(default)]
    pub client_limits: crate::limits::ClientLimits,
    /// Every member of the cluster.
    pub member: Vec<Member>,
    /// The directory of the file, which relative paths start from.
    #[serde(skip)]
    pub dir: PathBuf,
}

/// The `[tls]` table: the cluster CA and each member's certificate and key.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsSection {
    /// The cluster CA's certificate.
    #[serde(default = "tls_ca_default")]
    pub ca: String,
    /// A member's certificate; `{id}` stands for its id.
    #[serde(default = "tls_cert_default")]
    pub cert: String,
    /// A member's private key; `{id}` stands for its id.
    #[serde(default = "tls_key_default")]
    pub key: String,
}

impl Default for TlsSection {
    fn default() -> TlsSection {
        TlsSection {
            ca: tls_ca_default(),
            cert: tls_cert_default(),
            key: tls_key_default(),
        }
    }
}

impl TlsSection {
    /// Member `id`'s files, relative paths taken from `dir`.
    pub fn files(&self, dir: &Path, id: u64) -> TlsFiles {
        let path = |template: &str| dir.join(template.replace("{id}", &id.to_string()));
        TlsFiles {
            ca: path(&self.ca),
            cert: path(&self.cert),
            key: path(&self.key),
        }
    }
}

fn cluster_id_default() -> String {
    crate::tls::CLUSTER_ID_DEFAULT.to_owned()
}
fn tls_ca_default() -> String {
    "certs/ca.pem".into()
}
fn tls_cert_default() -> String {
    "certs/member-{id}.pem".into()
}
fn tls_key_default() -> String {
    "certs/member-{id}-key.pem".into()
}

/// How a leader confirms a linearizable read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ReadMode {
    /// ReadIndex: a round of heartbeats confirms leadership (thesis 6.4).
    #[default]
    Index,
    /// A leader lease (thesis 6.4.1).
    Lease,
}

fn election_timeout_default() -> u64 {
    ELECTION_TIMEOUT_MS_DEFAULT
}
fn heartbeat_interval_default() -> u64 {
    HEARTBEAT_INTERVAL_MS_DEFAULT
}
fn file_bytes_max_default() -> u64 {
    FILE_BYTES_MAX_DEFAULT
}
fn snapshot_entries_default() -> u64 {
    replica::SnapshotPolicy::default().entries
}
fn snapshot_bytes_default() -> u64 {
    replica::SnapshotPolicy::default().bytes
}
fn snapshot_trailing_entries_default() -> u64 {
    replica::SnapshotPolicy::default().trailing_entries
}

/// Why a configuration cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
    /// The file is not valid TOML of the expected shape.
    #[error("config file {path} is invalid: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What the parser said.
        message: String,
    },
    /// The settings contradict each other or are out of range.
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

impl ClusterFile {
    /// Reads and validates a cluster file.
    pub fn load(path: &Path) -> Result<ClusterFile, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        let mut file: ClusterFile = toml::from_str(&text).map_err(|err| ConfigError::Parse {
            path: path.to_owned(),
            message: one_line_toml_error(&text, &err),
        })?;
        file.dir = path
            .parent()
            .map(Path::to_owned)
            .unwrap_or_else(|| PathBuf::from("."));
        file.validate()?;
        Ok(file)
    }

    /// Checks every relation between the settings.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |m: String| Err(ConfigError::Invalid(m));
        if self.member.is_empty() {
            return invalid("the cluster has no [[member]]".into());
        }
        let mut ids = BTreeSet::new();
        let mut addrs = BTreeSet::new();
        for m in &self.member {
            if m.id == 0 {
                return invalid("member id 0 is reserved; ids start at 1".into());
            }
            if !ids.insert(m.id) {
                return invalid(format!("member id {} is listed twice", m.id));
            }
            for addr in [Some(&m.peer), Some(&m.client), m.http.as_ref()]
                .into_iter()
                .flatten()
            {
                if !addrs.insert(addr.clone()) {
                    return invalid(format!("address {addr} is used twice"));
                }
            }
        }
        check_timing(
            self.election_timeout_ms,
            self.heartbeat_interval_ms,
            self.max_file_size,
        )?;
        crate::tls::check_cluster_id(&self.cluster_id)
            .map_err(|err| ConfigError::Invalid(err.to_string()))?;
        check_snapshot(&self.snapshot_policy())?;
        self.client_limits
            .validate()
            .map_err(|err| ConfigError::Invalid(err.to_string()))
    }

    /// The snapshot settings.
    pub fn snapshot_policy(&self) -> replica::SnapshotPolicy {
        replica::SnapshotPolicy {
            entries: self.snapshot_entries,
            bytes: self.snapshot_bytes,
            trailing_entries: self.snapshot_trailing_entries,
        }
    }

    /// The member with this id.
    pub fn member(&self, id: u64) -> Option<&Member> {
        self.member.iter().find(|m| m.id == id)
    }
}

/// A TOML error as "line L (in [TABLE]): what", without the multi-line source excerpt the
/// parser draws. The table is the header in force at that line, so an unknown key inside
/// `[tls]` or `[client_limits]` says where it is, not only what it is.
fn one_line_toml_error(text: &str, err: &toml::de::Error) -> String {
    let message = err.message().trim().replace('\n', " ");
    match err.span() {
        Some(span) => {
            let before = &text[..span.start.min(text.len())];
            let line = before.matches('\n').count() + 1;
            let table = before
                .lines()
                .rev()
                .map(str::trim)
                .find(|l| l.starts_with('['))
                .map(|header| header.split('#').next().unwrap_or(header).trim());
            match table {
                Some(table) => format!("line {line} (in {table}): {message}"),
                None => format!("line {line} (top level): {message}"),
            }
        }
        None => message,
    }
}

/// A commented cluster file holding every key at its default, with its meaning, and three
/// members on loopback (`raftfs config example`). It loads as it is: a test checks that, and
/// that every value in it is the default, so the text cannot drift from the code.
pub fn example() -> String {
    let policy = replica::SnapshotPolicy::default();
    let limits = crate::limits::ClientLimits::default();
    let mut text = format!(
        r#"# raftfs cluster file (`raftfs serve --config FILE --id ID`). Every key but the
# [[member]] list is optional; the values below are the defaults.

# Minimum election timeout in ms (randomised up to twice this); at least
# {ratio} heartbeat intervals.
election_timeout_ms = {election}
# Leader heartbeat interval in ms.
heartbeat_interval_ms = {heartbeat}
# Largest file accepted, in bytes (at most {file_limit}).
max_file_size = {file_max}
# Snapshot once this many log entries were applied since the last snapshot ...
snapshot_entries = {snap_entries}
# ... or once the commands applied since then add up to this many bytes.
snapshot_bytes = {snap_bytes}
# Log entries kept behind a snapshot, so followers slightly behind catch up from the log.
snapshot_trailing_entries = {snap_trailing}
# How the leader confirms linearizable reads: "index" (ReadIndex, a heartbeat round per
# batch) or "lease" (a leader lease; needs clocks that run at about the same rate).
read_mode = "index"
# Followers serve linearizable reads at a read index they ask the leader for.
follower_reads = false
# The cluster's id: in every peer hello and member certificate name.
cluster_id = "{cluster_id}"
# Plaintext, unauthenticated peer links: only on a trusted network.
insecure_peers = false
# Clients must speak TLS to the client port (with the member's certificate).
client_tls = false

# Certificates, as `raftfs certs --out certs` writes them beside this file. Relative paths
# start at this file's directory; {{id}} is the member's id.
[tls]
ca = "{ca}"
cert = "{cert}"
key = "{key}"

# Budgets of client connections.
[client_limits]
# Connections served at once (default: computed from the descriptor limit).
# max_connections = 9000
# Encoded reply bytes a connection may have unsent before its commands are not read.
reply_buffer_bytes = {reply}
# Command bytes a connection may have read and not yet answered before more are not read.
pipeline_bytes = {pipeline}
# Seconds from a command's first byte until, still incomplete, its connection is closed.
partial_command_timeout_s = {partial}
# Seconds a connection with nothing in flight stays open.
idle_timeout_s = {idle}

# Not in this file, on purpose: what differs per host is a flag of `raftfs serve` (--data-dir,
# --peer-listen, --peer-dial-from); the driver's own timings (parking, snapshot transfer
# retries) follow election_timeout_ms.

# The founding members (the log's configuration wins once the first leader wrote it):
# id (unique, non-zero), peer (Raft traffic), client (the text protocol, what ERR_REDIRECT
# names), http (optional: /status, /metrics, /health).
"#,
        ratio = raft::config::HEARTBEATS_PER_ELECTION_TIMEOUT_MIN,
        election = ELECTION_TIMEOUT_MS_DEFAULT,
        heartbeat = HEARTBEAT_INTERVAL_MS_DEFAULT,
        file_limit = FILE_BYTES_MAX_LIMIT,
        file_max = FILE_BYTES_MAX_DEFAULT,
        snap_entries = policy.entries,
        snap_bytes = policy.bytes,
        snap_trailing = policy.trailing_entries,
        cluster_id = crate::tls::CLUSTER_ID_DEFAULT,
        ca = tls_ca_default(),
        cert = tls_cert_default(),
        key = tls_key_default(),
        reply = limits.reply_buffer_bytes,
        pipeline = limits.pipeline_bytes,
        partial = limits.partial_command_timeout_s,
        idle = limits.idle_timeout_s,
    );
    for id in 1..=3 {
        text.push_str(&format!(
            "[[member]]\nid = {id}\npeer = \"127.0.0.1:{}\"\nclient = \"127.0.0.1:{}\"\nhttp = \"127.0.0.1:{}\"\n\n",
            9000 + id,
            8080 + id,
            7000 + id
        ));
    }
    text
}

/// Checks the timing and size settings shared by single-node and cluster modes.
pub fn check_timing(
    election_timeout_ms: u64,
    heartbeat_interval_ms: u64,
    file_bytes_max: u64,
) -> Result<(), ConfigError> {
    let ratio = raft::config::HEARTBEATS_PER_ELECTION_TIMEOUT_MIN;
    if heartbeat_interval_ms == 0 || election_timeout_ms < ratio * heartbeat_interval_ms {
        return Err(ConfigError::Invalid(format!(
            "election_timeout_ms ({election_timeout_ms}) must be at least {ratio} times \
             heartbeat_interval_ms ({heartbeat_interval_ms}), which must be non-zero"
        )));
    }
    if file_bytes_max == 0 || file_bytes_max > FILE_BYTES_MAX_LIMIT {
        return Err(ConfigError::Invalid(format!(
            "max file size {file_bytes_max} must be between 1 and {FILE_BYTES_MAX_LIMIT}"
        )));
    }
    Ok(())
}

/// Checks the snapshot settings.
pub fn check_snapshot(policy: &replica::SnapshotPolicy) -> Result<(), ConfigError> {
    if policy.entries == 0 || policy.bytes == 0 {
        return Err(ConfigError::Invalid(format!(
            "snapshot_entries ({}) and snapshot_bytes ({}) must be at least 1",
            policy.entries, policy.bytes
        )));
    }
    Ok(())
}

/// Everything one node needs to run.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    /// This node's id.
    pub id: u64,
    /// The bootstrap members, this node included (for a joining node: itself alone, for its
    /// addresses). Only a data directory that holds no configuration yet uses them: once the
    /// first leader has written the configuration into the log, every member takes it from
    /// its log and snapshot.
    pub members: Vec<Member>,
    /// Started with `--join`: the node waits, with an empty configuration, to be added by a
    /// membership change.
    pub joining: bool,
    /// The members' client addresses given to `--join` (asked for the cluster's members, so
    /// the log says who this node is joining and how to add it).
    pub join: Vec<String>,
    /// Where to listen for peers, if not at the peer address the configuration advertises
    /// (behind a proxy or NAT).
    pub peer_listen: Option<String>,
    /// The local address this node's outgoing peer connections come from, if not the one the
    /// OS picks (a multi-homed host, firewall rules by source, or a fault-injecting proxy that
    /// tells members apart by source address).
    pub peer_dial_from: Option<std::net::IpAddr>,
    /// Where the log, hard state and snapshots live.
    pub data_dir: PathBuf,
    /// Largest file accepted, in bytes.
    pub file_bytes_max: u64,
    /// Budgets of client connections: their number, buffered bytes and timeouts.
    pub client_limits: crate::limits::ClientLimits,
    /// Minimum election timeout in milliseconds.
    pub election_timeout_ms: u64,
    /// Leader heartbeat interval in milliseconds.
    pub heartbeat_interval_ms: u64,
    /// When to snapshot and how much log to keep behind a snapshot.
    pub snapshot: replica::SnapshotPolicy,
    /// How the leader confirms reads.
    pub read_mode: ReadMode,
    /// Whether followers serve reads.
    pub follower_reads: bool,
    /// The cluster's id (hellos, certificate names).
    pub cluster_id: String,
    /// This member's certificate material; `None` for a single-node store given none (it
    /// then has no peer transport).
    pub tls: Option<TlsFiles>,
    /// Plaintext, unauthenticated peer links.
    pub insecure_peers: bool,
    /// Clients must speak TLS.
    pub client_tls: bool,
}

impl NodeConfig {
    /// A single-node store: one member whose client address is `listen`.
    pub fn single(listen: String, data_dir: PathBuf, file_bytes_max: u64) -> NodeConfig {
        let peer = default_peer_address(&listen);
        NodeConfig {
            id: 1,
            members: vec![Member {
                id: 1,
                peer,
                client: listen,
                http: None,
            }],
            joining: false,
            join: Vec::new(),
            peer_listen: None,
            peer_dial_from: None,
            data_dir,
            file_bytes_max,
            client_limits: crate::limits::ClientLimits::default(),
            election_timeout_ms: ELECTION_TIMEOUT_MS_DEFAULT,
            heartbeat_interval_ms: HEARTBEAT_INTERVAL_MS_DEFAULT,
            snapshot: replica::SnapshotPolicy::default(),
            read_mode: ReadMode::Index,
            follower_reads: false,
            cluster_id: cluster_id_default(),
            tls: None,
            insecure_peers: false,
            client_tls: false,
        }
    }

    /// Member `id` of a cluster file.
    pub fn member_of(file: &ClusterFile, id: u64, data_dir: PathBuf) -> Result<Self, ConfigError> {
        if file.member(id).is_none() {
            return Err(ConfigError::Invalid(format!(
                "--id {id} is not a member of the cluster file (members: {})",
                file.member
                    .iter()
                    .map(|m| m.id.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        Ok(NodeConfig {
            id,
            members: file.member.clone(),
            joining: false,
            join: Vec::new(),
            peer_listen: None,
            peer_dial_from: None,
            data_dir,
            file_bytes_max: file.max_file_size,
            client_limits: file.client_limits,
            election_timeout_ms: file.election_timeout_ms,
            heartbeat_interval_ms: file.heartbeat_interval_ms,
            snapshot: file.snapshot_policy(),
            read_mode: file.read_mode,
            follower_reads: file.follower_reads,
            cluster_id: file.cluster_id.clone(),
            tls: Some(file.tls.files(&file.dir, id)),
            insecure_peers: file.insecure_peers,
            client_tls: file.client_tls,
        })
    }

    /// How this node's peer links authenticate: `None` when it has none (no certificates and
    /// insecure peers off).
    pub fn peer_identity(&self) -> Result<Option<PeerIdentity>, TlsError> {
        let security = match (&self.tls, self.insecure_peers) {
            (_, true) => Security::Insecure,
            (Some(files), false) => {
                Security::Tls(std::sync::Arc::new(PeerTls::load(files, &self.cluster_id)?))
            }
            (None, false) => return Ok(None),
        };
        Ok(Some(PeerIdentity {
            me: raft::NodeId(self.id),
            cluster: self.cluster_id.clone(),
            security,
        }))
    }

    /// This node's own member entry.
    pub fn me(&self) -> Option<&Member> {
        self.members.iter().find(|m| m.id == self.id)
    }

    /// The configuration a data directory without one starts from: the members listed, or
    /// none at all for a node that waits to join.
    pub fn bootstrap(&self) -> Result<raft::Membership, raft::MembershipError> {
        if self.joining {
            return Ok(raft::Membership::default());
        }
        membership_of(&self.members)
    }
}

/// The configuration of a cluster file's member list: every member a voter (what a new
/// cluster starts from, bootstrapped or restored from a backup).
pub fn membership_of(members: &[Member]) -> Result<raft::Membership, raft::MembershipError> {
    let members = members
        .iter()
        .map(|m| {
            let member = raft::Member {
                voter: true,
                addresses: raft::Addresses {
                    peer: m.peer.clone(),
                    client: m.client.clone(),
                    http: m.http.clone(),
                },
            };
            (raft::NodeId(m.id), member)
        })
        .collect();
    raft::Membership::new(members)
}

/// The peer address of a single-node store listening for clients at `client`: the same host,
/// port + 1000 (port 0 stays 0), so it can later be grown into a cluster.
pub fn default_peer_address(client: &str) -> String {
    match client.rsplit_once(':') {
        Some((host, port)) => match port.parse::<u16>() {
            Ok(0) => format!("{host}:0"),
            Ok(p) => match p.checked_add(1000) {
                Some(peer) => format!("{host}:{peer}"),
                None => format!("{host}:0"),
            },
            Err(_) => format!("{host}:0"),
        },
        None => "127.0.0.1:0".into(),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)] // Tests fail loudly on purpose.

    use super::*;

    #[test]
    fn parses_the_spec_example() {
        let text = r#"
            [[member]]
            id = 1
            peer = "127.0.0.1:9001"
            client = "127.0.0.1:8081"
            http = "127.0.0.1:7001"
            [[member]]
            id = 2
            peer = "127.0.0.1:9002"
            client = "127.0.0.1:8082"
        "#;
        let file: ClusterFile = toml::from_str(text).unwrap();
        file.validate().unwrap();
        assert_eq!(file.member.len(), 2);
        assert_eq!(file.election_timeout_ms, ELECTION_TIMEOUT_MS_DEFAULT);
        assert_eq!(file.member(2).unwrap().http, None);
    }

    #[test]
    fn the_example_loads_and_holds_the_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cluster.toml");
        std::fs::write(&path, example()).unwrap();
        let file = ClusterFile::load(&path).unwrap();
        assert_eq!(file.member.len(), 3);
        let defaults: ClusterFile = toml::from_str(
            "[[member]]\nid = 1\npeer = \"127.0.0.1:9001\"\nclient = \"127.0.0.1:8081\"\n",
        )
        .unwrap();
        let ClusterFile { member, dir: _, .. } = file.clone();
        let file = ClusterFile {
            member: defaults.member.clone(),
            dir: PathBuf::new(),
            ..file
        };
        assert_eq!(file, defaults, "a value in the example is not the default");
        assert_eq!(member[2].http.as_deref(), Some("127.0.0.1:7003"));
    }

    /// An unknown key is refused, and the message names it and the table it is in.
    #[test]
    fn unknown_keys_are_named_with_their_table() {
        let member = "[[member]]\nid = 1\npeer = \"a:1\"\nclient = \"a:2\"\n";
        let cases = [
            (
                format!("electon_timeout_ms = 5\n{member}"),
                "line 1 (top level)",
                "electon_timeout_ms",
            ),
            (
                format!("[tls]\nca = \"x\"\ncerts = \"y\"\n{member}"),
                "line 3 (in [tls])",
                "certs",
            ),
            (
                format!("[client_limits]\nidle_timeout = 5\n{member}"),
                "line 2 (in [client_limits])",
                "idle_timeout",
            ),
            (
                format!("{member}colour = \"red\"\n"),
                "line 5 (in [[member]])",
                "colour",
            ),
        ];
        let dir = tempfile::tempdir().unwrap();
        for (text, place, key) in cases {
            let path = dir.path().join("cluster.toml");
            std::fs::write(&path, &text).unwrap();
            let message = ClusterFile::load(&path).unwrap_err().to_string();
            assert!(
                message.contains(place),
                "{message:?} does not say {place:?}"
            );
            assert!(message.contains(key), "{message:?} does not name {key:?}");
            assert!(!message.contains('\n'), "{message:?} is not one line");
        }
    }

    #[test]
    fn rejects_duplicates_and_bad_timing() {
        let dup = r#"
            [[member]]
            id = 1
            peer = "a:1"
            client = "a:2"
            [[member]]
            id = 1
            peer = "a:3"
            client = "a:4"
        "#;
        let file: ClusterFile = toml::from_str(dup).unwrap();
        assert!(file.validate().is_err());
        assert!(check_timing(200, 100, 1).is_err());
        assert!(check_timing(1000, 100, 0).is_err());
        assert!(check_timing(1000, 100, 1 << 20).is_ok());
    }
}

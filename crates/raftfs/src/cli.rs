//! The command line of docs/protocol.md: the subcommands, and the arguments of `raftfs serve`
//! and `raftfs cluster` (the other subcommands' are in their own modules).

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};

use server::config::{self, ClusterFile, NodeConfig};
use server::limits::{ClientLimits, LimitsError};

/// raftfs: a small replicated file store built on Raft, spoken to over a telnet-compatible text
/// protocol (read, write, cas, delete).
#[derive(Debug, Parser)]
#[command(
    name = "raftfs",
    version,
    about = "raftfs: a small replicated file store built on Raft, spoken to over a \
             telnet-compatible text protocol (read, write, cas, delete)",
    long_about = None
)]
pub struct Cli {
    /// What to run.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run one server: a single-node store by default, or one member of a cluster with --config.
    Serve(Box<ServeArgs>),
    /// Run a local cluster of N member processes on 127.0.0.1 until Ctrl-C.
    Cluster(ClusterArgs),
    /// Measure write throughput, the disk's fsync rate, leader failover time, or snapshots
    /// (memory and disk bounded by compaction, catch-up by snapshot, restart time).
    Bench(crate::bench::BenchArgs),
    /// Change the cluster's membership or leadership, list its members, or save and inspect
    /// backups.
    Admin(crate::admin::AdminArgs),
    /// Make a cluster CA and member certificates for mutual TLS between members (and for
    /// clients, with client_tls).
    Certs(crate::certs::CertsArgs),
    /// Read, write, cas and delete files: one command, or a shell (interactive on a terminal,
    /// line by line from a pipe).
    Client(crate::client_cmd::ClientArgs),
    /// Print a commented example cluster file, or check one.
    Config(crate::config_cmd::ConfigArgs),
    /// Seed a member of a new cluster from a backup (`raftfs admin snapshot save`).
    Restore(crate::restore::RestoreArgs),
    /// Show every member's role, indexes, lag behind the leader and health (from its /status).
    Status(crate::status::StatusArgs),
}

/// Arguments of `raftfs serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Cluster file (TOML, lists the founding members); run as member --id of it. Only a data
    /// directory without a configuration uses the list: after that the log's configuration
    /// wins.
    #[arg(long, value_name = "FILE", requires = "id", conflicts_with = "join")]
    pub config: Option<PathBuf>,
    /// This member's id (in the cluster file, or the id a joining member is added under).
    #[arg(long, value_name = "ID")]
    pub id: Option<u64>,
    /// Join a running cluster (any members' client addresses): wait, as a learner-to-be,
    /// until `raftfs admin add-member` adds this node. Needs --id, --peer and --client;
    /// started again the same way, it resumes from its data directory.
    #[arg(long, value_name = "ADDR,...", value_delimiter = ',', requires_all = ["id", "peer", "client"])]
    pub join: Vec<String>,
    /// Peer address (Raft traffic) of a joining member or of a single-node store [default for
    /// a single node: the client port + 1000].
    #[arg(long, value_name = "HOST:PORT", conflicts_with = "config")]
    pub peer: Option<String>,
    /// Listen for peers here instead of at the advertised peer address (behind a proxy or NAT).
    #[arg(long, value_name = "HOST:PORT")]
    pub peer_listen: Option<String>,
    /// Make outgoing peer connections from this local IP address (a multi-homed host, or
    /// firewall rules that match members by source address).
    #[arg(long, value_name = "IP")]
    pub peer_dial_from: Option<std::net::IpAddr>,
    /// Directory of TLS material as `raftfs certs` writes it (ca.pem, member-ID.pem,
    /// member-ID-key.pem): members authenticate each other with it [default with --config: the
    /// cluster file's [tls] table]. A single-node store without it has no peer port.
    #[arg(long, value_name = "DIR")]
    pub certs: Option<PathBuf>,
    /// Peer links in plaintext and unauthenticated: any process that reaches the peer port can
    /// speak Raft. Only on a trusted network [default with --config: the cluster file's
    /// insecure_peers].
    #[arg(long)]
    pub insecure_peers: bool,
    /// The cluster's id, in every hello and certificate name [default: raftfs, or the cluster
    /// file's cluster_id].
    #[arg(long, value_name = "ID")]
    pub cluster_id: Option<String>,
    /// Clients must speak TLS (the member's certificate, from --certs or [tls]) [default with
    /// --config: the cluster file's client_tls].
    #[arg(long)]
    pub client_tls: bool,
    /// Client address of a joining member.
    #[arg(long, value_name = "HOST:PORT", conflicts_with_all = ["config", "listen"])]
    pub client: Option<String>,
    /// Client address of a single-node store (with --config, the file gives it).
    #[arg(long, value_name = "HOST:PORT", conflicts_with = "config")]
    pub listen: Option<String>,
    /// Status and metrics address of a single-node store or a joining member (HTTP: /status,
    /// /metrics, /health).
    #[arg(long, value_name = "HOST:PORT", conflicts_with = "config")]
    pub http: Option<String>,
    /// Data directory [default: ./raftfs-data, or ./raftfs-data-ID with --config].
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Largest file accepted, in bytes [default: 1048576, or the cluster file's max_file_size].
    #[arg(long, value_name = "BYTES")]
    pub max_file_size: Option<u64>,
    /// Snapshot the store once this many log entries were applied since the last snapshot
    /// [default: 10000, or the cluster file's snapshot_entries].
    #[arg(long, value_name = "N")]
    pub snapshot_entries: Option<u64>,
    /// ... or once the commands applied since then add up to this many bytes [default:
    /// 67108864, or the cluster file's snapshot_bytes].
    #[arg(long, value_name = "BYTES")]
    pub snapshot_bytes: Option<u64>,
    /// Log entries kept behind a snapshot, so followers slightly behind catch up from the log
    /// [default: 1000, or the cluster file's snapshot_trailing_entries].
    #[arg(long, value_name = "N")]
    pub snapshot_trailing_entries: Option<u64>,
    /// Threads of the member's async runtime (connections, peer links, the node task); the
    /// log writer has its own [default: one per core]. Members sharing a machine (as in
    /// `raftfs cluster`) spend less CPU per write with fewer each: waking a thread of a
    /// multi-threaded runtime to run a task costs more than running it on the thread at hand.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    pub worker_threads: Option<u16>,
    /// Client connection budgets (each overrides the cluster file's [client_limits]); last, so
    /// their help heading covers only them.
    #[command(flatten)]
    pub client_limits: ClientLimitArgs,
}

/// The `raftfs serve` flags of the client limits; each overrides the cluster file's value.
#[derive(Debug, Clone, Default, Args)]
#[command(next_help_heading = "Client budgets (each overrides the cluster file's [client_limits])")]
pub struct ClientLimitArgs {
    /// Client connections served at once; one more is answered ERR_INTERNAL and closed
    /// [default: half the descriptor limit left after reserving 1024 for the log, snapshots,
    /// peers and HTTP, at most 100000; or the cluster file's client_limits.max_connections].
    #[arg(long, value_name = "N")]
    pub max_client_connections: Option<usize>,
    /// Bytes of replies a connection may have waiting to be sent before its commands are no
    /// longer read (a client that never reads cannot grow the server's memory) [default:
    /// 2097152, or client_limits.reply_buffer_bytes].
    #[arg(long, value_name = "BYTES")]
    pub reply_buffer_bytes: Option<usize>,
    /// Bytes of commands a connection may have read but not yet answered before more are not
    /// read [default: 2097152, or client_limits.pipeline_bytes].
    #[arg(long, value_name = "BYTES")]
    pub pipeline_bytes: Option<usize>,
    /// Bytes all client connections together may hold in unanswered commands and unsent
    /// replies; while they do, a connection with something in flight reads no more commands
    /// (one with nothing in flight is still served) [default: 268435456, or
    /// client_limits.total_bytes].
    #[arg(long, value_name = "BYTES")]
    pub client_total_bytes: Option<usize>,
    /// Seconds a command may take to arrive, from its first byte (a line without its end,
    /// content not yet complete), before its connection is closed [default: 120, or
    /// client_limits.partial_command_timeout_s].
    #[arg(long, value_name = "SECONDS")]
    pub partial_command_timeout: Option<u64>,
    /// Seconds a connection with nothing in flight (or whose client reads none of its replies)
    /// stays open [default: 3600, or client_limits.idle_timeout_s].
    #[arg(long, value_name = "SECONDS")]
    pub idle_timeout: Option<u64>,
}

impl ClientLimitArgs {
    /// The limits with every flag given applied over `limits`, validated.
    pub fn apply(&self, mut limits: ClientLimits) -> Result<ClientLimits, LimitsError> {
        if let Some(n) = self.max_client_connections {
            limits.max_connections = Some(n);
        }
        if let Some(n) = self.reply_buffer_bytes {
            limits.reply_buffer_bytes = n;
        }
        if let Some(n) = self.pipeline_bytes {
            limits.pipeline_bytes = n;
        }
        if let Some(n) = self.client_total_bytes {
            limits.total_bytes = n;
        }
        if let Some(s) = self.partial_command_timeout {
            limits.partial_command_timeout_s = s;
        }
        if let Some(s) = self.idle_timeout {
            limits.idle_timeout_s = s;
        }
        limits.validate()?;
        Ok(limits)
    }
}

/// Arguments of `raftfs cluster`.
#[derive(Debug, Args)]
pub struct ClusterArgs {
    /// Number of members (odd, 1 or more).
    #[arg(long, default_value_t = 5)]
    pub nodes: u64,
    /// Client port of the first member; member i listens on base-port + i - 1.
    #[arg(long, default_value_t = 8080)]
    pub base_port: u16,
    /// Directory holding every member's data directory and the generated cluster file.
    #[arg(long, value_name = "DIR", default_value = "raftfs-cluster")]
    pub data_dir: PathBuf,
}

/// The error and its causes on one line, each cause once: library errors often name their
/// source in their own message too, and saying "No such file or directory" twice helps nobody.
pub fn one_line(err: &(dyn std::error::Error + 'static)) -> String {
    let mut line = String::new();
    for cause in std::iter::successors(Some(err), |cause| cause.source()) {
        let text = cause.to_string().replace('\n', " ");
        if line.ends_with(&text) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&text);
    }
    line
}

/// Logs go to stderr, filtered by RUST_LOG (default: info).
pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        // The ZooKeeper client of `raftfs bench --target zookeeper` logs every session at info.
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,zookeeper_client=warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
}

/// Runs the parsed command to completion.
pub fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve(args) => {
            let workers = args.worker_threads;
            let config = serve_config(*args)?;
            let mut builder = tokio::runtime::Builder::new_multi_thread();
            builder.enable_all();
            if let Some(n) = workers {
                builder.worker_threads(usize::from(n));
            }
            let runtime = builder.build().context("cannot start the runtime")?;
            runtime.block_on(server::run_until_signal(config))
        }
        Command::Cluster(args) => crate::local_cluster::run(args),
        Command::Bench(args) => crate::bench::run(args),
        Command::Admin(args) => crate::admin::run(args).map_err(|err| {
            eprintln!("raftfs admin: {}", one_line(&err));
            std::process::exit(err.exit_code())
        }),
        Command::Certs(args) => crate::certs::run(args),
        Command::Client(args) => match crate::client_cmd::run(args) {
            0 => Ok(()),
            code => std::process::exit(code),
        },
        Command::Config(args) => crate::config_cmd::run(args),
        Command::Restore(args) => crate::restore::run(args),
        Command::Status(args) => match crate::status::run(args) {
            0 => Ok(()),
            code => std::process::exit(code),
        },
    }
}

fn serve_config(args: ServeArgs) -> anyhow::Result<NodeConfig> {
    let mut config = match (args.config, args.id) {
        (None, Some(id)) if !args.join.is_empty() => {
            let client = args.client.context("--join needs --client")?;
            let peer = args.peer.context("--join needs --peer")?;
            let dir = args
                .data_dir
                .unwrap_or_else(|| PathBuf::from(format!("raftfs-data-{id}")));
            let mut joining = NodeConfig::single(client, dir, config::FILE_BYTES_MAX_DEFAULT);
            joining.id = id;
            joining.joining = true;
            joining.join = args.join.clone();
            joining.members[0] = config::Member {
                id,
                peer,
                client: joining.members[0].client.clone(),
                http: args.http,
            };
            joining
        }
        (None, Some(_)) => anyhow::bail!("--id needs --config FILE or --join ADDR,..."),
        (Some(path), Some(id)) => {
            let file = ClusterFile::load(&path)?;
            let dir = args
                .data_dir
                .unwrap_or_else(|| PathBuf::from(format!("raftfs-data-{id}")));
            NodeConfig::member_of(&file, id, dir)?
        }
        _ => {
            let mut single = NodeConfig::single(
                args.listen.unwrap_or_else(|| "127.0.0.1:8080".into()),
                args.data_dir
                    .unwrap_or_else(|| PathBuf::from("raftfs-data")),
                config::FILE_BYTES_MAX_DEFAULT,
            );
            single.members[0].http = args.http;
            if let Some(peer) = args.peer {
                single.members[0].peer = peer;
            }
            single
        }
    };
    if let Some(cluster) = args.cluster_id {
        server::tls::check_cluster_id(&cluster)?;
        config.cluster_id = cluster;
    }
    if let Some(dir) = &args.certs {
        let (cert, key) = crate::certs::member_paths(dir, config.id);
        config.tls = Some(server::tls::TlsFiles {
            ca: crate::certs::ca_path(dir),
            cert,
            key,
        });
    }
    config.insecure_peers |= args.insecure_peers;
    config.client_tls |= args.client_tls;
    anyhow::ensure!(
        !config.joining || config.tls.is_some() || config.insecure_peers,
        "--join needs --certs DIR (this member's certificate from the cluster's CA), or \
         --insecure-peers if the cluster runs without peer authentication"
    );
    anyhow::ensure!(
        !config.client_tls || config.tls.is_some(),
        "--client-tls needs the member's certificate: --certs DIR"
    );
    config.peer_listen = args.peer_listen;
    config.peer_dial_from = args.peer_dial_from;
    if let Some(bytes) = args.max_file_size {
        config.file_bytes_max = bytes;
    }
    config.client_limits = args.client_limits.apply(config.client_limits)?;
    if let Some(n) = args.snapshot_entries {
        config.snapshot.entries = n;
    }
    if let Some(n) = args.snapshot_bytes {
        config.snapshot.bytes = n;
    }
    if let Some(n) = args.snapshot_trailing_entries {
        config.snapshot.trailing_entries = n;
    }
    config::check_snapshot(&config.snapshot)?;
    config::check_timing(
        config.election_timeout_ms,
        config.heartbeat_interval_ms,
        config.file_bytes_max,
    )?;
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_limit_flags_override_the_file_and_are_validated() {
        let args = ClientLimitArgs {
            pipeline_bytes: Some(4096),
            idle_timeout: Some(5),
            ..ClientLimitArgs::default()
        };
        let limits = args.apply(ClientLimits::default()).unwrap_or_default();
        assert_eq!(limits.pipeline_bytes, 4096);
        assert_eq!(limits.idle_timeout(), std::time::Duration::from_secs(5));
        assert_eq!(
            limits.reply_buffer_bytes,
            server::limits::REPLY_BUFFER_BYTES_DEFAULT
        );
        let zero = ClientLimitArgs {
            max_client_connections: Some(0),
            ..ClientLimitArgs::default()
        };
        assert!(zero.apply(ClientLimits::default()).is_err());
    }
}

//! `raftfs config`: print a commented example cluster file, or check one.
//!
//! `raftfs config example` prints every key of the cluster file with its default and a
//! one-line meaning, and three members on loopback; the output loads as it is (a test loads
//! it). `raftfs config check FILE` loads and validates a file the way `raftfs serve --config`
//! does and prints a summary, so a mistake is found before a member starts with it.

use std::path::PathBuf;

use clap::{Args, Subcommand};
use server::config::ClusterFile;

/// Arguments of `raftfs config`.
#[derive(Debug, Args)]
pub struct ConfigArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: ConfigCommand,
}

/// The config subcommands.
#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Print a commented cluster file: every key, its default, three members on loopback.
    Example,
    /// Load and validate a cluster file (as `serve --config` would) and summarise it.
    Check {
        /// The cluster file.
        file: PathBuf,
    },
}

/// Runs `raftfs config`, printing on stdout.
pub fn run(args: ConfigArgs) -> anyhow::Result<()> {
    match args.command {
        ConfigCommand::Example => print!("{}", server::config::example()),
        ConfigCommand::Check { file } => {
            let loaded = ClusterFile::load(&file)?;
            println!("{}", summary(&loaded));
        }
    }
    Ok(())
}

/// What a checked file configures, one setting a line, then the members and what their
/// certificates would be (missing ones are named: `serve` would refuse to start without them).
pub fn summary(file: &ClusterFile) -> String {
    let mut out = vec![
        format!("ok: {} members", file.member.len()),
        format!("cluster_id = {:?}", file.cluster_id),
        format!(
            "election_timeout_ms = {}, heartbeat_interval_ms = {}",
            file.election_timeout_ms, file.heartbeat_interval_ms
        ),
        format!("max_file_size = {}", file.max_file_size),
        format!(
            "snapshot_entries = {}, snapshot_bytes = {}, snapshot_trailing_entries = {}",
            file.snapshot_entries, file.snapshot_bytes, file.snapshot_trailing_entries
        ),
        format!(
            "read_mode = {:?}, follower_reads = {}",
            match file.read_mode {
                server::config::ReadMode::Index => "index",
                server::config::ReadMode::Lease => "lease",
            },
            file.follower_reads
        ),
        format!(
            "insecure_peers = {}, client_tls = {}",
            file.insecure_peers, file.client_tls
        ),
        {
            let limits = &file.client_limits;
            format!(
                "[client_limits] max_connections = {}, reply_buffer_bytes = {}, \
                 pipeline_bytes = {}, total_bytes = {}, partial_command_timeout_s = {}, \
                 idle_timeout_s = {}",
                limits
                    .max_connections
                    .map_or("(from the descriptor limit)".to_owned(), |n| n.to_string()),
                limits.reply_buffer_bytes,
                limits.pipeline_bytes,
                limits.total_bytes,
                limits.partial_command_timeout_s,
                limits.idle_timeout_s
            )
        },
    ];
    let needs_certs = !file.insecure_peers || file.client_tls;
    let mut missing = std::collections::BTreeSet::new();
    for m in &file.member {
        out.push(format!(
            "member {}: peer {} client {} http {}",
            m.id,
            m.peer,
            m.client,
            m.http.as_deref().unwrap_or("-")
        ));
        if needs_certs {
            let files = file.tls.files(&file.dir, m.id);
            missing.extend(
                [files.ca, files.cert, files.key]
                    .into_iter()
                    .filter(|path| !path.exists()),
            );
        }
    }
    for path in missing {
        out.push(format!(
            "warning: {} does not exist (`raftfs certs` makes it; serve needs it)",
            path.display()
        ));
    }
    out.join("\n")
}

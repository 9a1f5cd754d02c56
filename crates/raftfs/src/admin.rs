//! `raftfs admin`: membership changes and leadership transfer, against any member (the
//! command is redirected to the leader), and backups (`admin snapshot save|inspect`).
//!
//! `add-member` adds a learner, then (unless `--learner`) promotes it once it has caught up,
//! retrying while the leader says it is behind. Exit status: 0 on success, 1 when the cluster
//! refused the change (`ERR_MEMBER`), 2 for any other failure.

use std::time::Duration;

use anyhow::Context;
use clap::{Args, Subcommand};
use fs::{Admin, MemberInfo, Reply};
use tokio::time::Instant;

use client::Client;

/// How long `add-member` waits for a new learner to catch up before promoting it.
const CATCH_UP_WAIT: Duration = Duration::from_secs(120);

/// Pause between promotion attempts while the learner catches up.
const CATCH_UP_POLL: Duration = Duration::from_millis(200);

/// Arguments of `raftfs admin`.
#[derive(Debug, Args)]
pub struct AdminArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: AdminCommand,
}

/// Where to send an admin command. (Its argument group has an id of its own: the default, the
/// struct's name, is also the `members` subcommand's, which clap's debug assertions refuse.)
#[derive(Debug, Args)]
#[group(id = "target")]
pub struct Members {
    /// Client addresses of members (any one is enough; comma-separated).
    #[arg(
        long,
        value_name = "ADDR,...",
        value_delimiter = ',',
        default_value = "127.0.0.1:8080"
    )]
    pub members: Vec<String>,
    /// Speak TLS to the members (they run with client_tls), trusting this CA certificate.
    #[arg(long, value_name = "FILE")]
    pub ca: Option<std::path::PathBuf>,
}

impl Members {
    /// A cluster client for these members.
    fn client(self) -> Result<Client, AdminError> {
        let client = Client::new(self.members);
        Ok(match self.ca {
            None => client,
            Some(ca) => {
                client.with_tls(server::tls::client_connector(&ca).map_err(anyhow::Error::from)?)
            }
        })
    }
}

/// The admin subcommands.
#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Add a member: as a learner, promoted to voter once it has caught up (unless --learner).
    AddMember {
        #[command(flatten)]
        /// Where to send the command.
        target: Members,
        /// The new member's id.
        #[arg(long)]
        id: u64,
        /// Its peer address.
        #[arg(long, value_name = "HOST:PORT")]
        peer: String,
        /// Its client address.
        #[arg(long, value_name = "HOST:PORT")]
        client: String,
        /// Its status and metrics address.
        #[arg(long, value_name = "HOST:PORT")]
        http: Option<String>,
        /// Leave it a learner (a non-voter); `promote` makes it a voter later.
        #[arg(long)]
        learner: bool,
    },
    /// Make a learner that has caught up a voter.
    Promote {
        #[command(flatten)]
        /// Where to send the command.
        target: Members,
        /// The learner's id.
        #[arg(long)]
        id: u64,
    },
    /// Remove a member (a leader that removes itself hands over first).
    RemoveMember {
        #[command(flatten)]
        /// Where to send the command.
        target: Members,
        /// The member's id.
        #[arg(long)]
        id: u64,
    },
    /// List the members: id, voter or learner, leader or follower, addresses.
    Members {
        #[command(flatten)]
        /// Where to send the command.
        target: Members,
        /// The configuration as the first member that answers sees it, leader or not (`members
        /// local`: answers even with no leader), instead of the leader's.
        #[arg(long)]
        local: bool,
    },
    /// Hand leadership to another voter (by default the most up-to-date one).
    TransferLeader {
        #[command(flatten)]
        /// Where to send the command.
        target: Members,
        /// The voter to hand over to.
        #[arg(long)]
        to: Option<u64>,
    },
    /// Backups: save one from the cluster's leader or a stopped member's data directory, or
    /// check one (docs/backup.md).
    Snapshot {
        /// What to do.
        #[command(subcommand)]
        command: SnapshotCommand,
    },
}

/// The `admin snapshot` subcommands.
#[derive(Debug, Subcommand)]
pub enum SnapshotCommand {
    /// Save a backup to FILE (written atomically): from the leader, after a read barrier, so
    /// it holds every write acknowledged before; or, with --data-dir, from a stopped member's
    /// data directory (its snapshot and its whole log, for the disaster procedure).
    Save {
        /// Where to write the backup.
        file: std::path::PathBuf,
        #[command(flatten)]
        /// Where to send the command (unless --data-dir).
        target: Members,
        /// Export offline from this stopped member's data directory instead of asking the
        /// cluster; prints the last log index and term it holds.
        #[arg(long, value_name = "DIR")]
        data_dir: Option<std::path::PathBuf>,
    },
    /// Verify a backup (checksum, store image) and print what it holds.
    Inspect {
        /// The backup.
        file: std::path::PathBuf,
    },
}

/// Why an admin command failed: the cluster refused it, or something else went wrong.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// `ERR_MEMBER`: the change was refused (exit status 1).
    #[error("refused: {0}")]
    Refused(String),
    /// Anything else (exit status 2).
    #[error(transparent)]
    Other(#[from] anyhow::Error),
}

impl AdminError {
    /// The process exit status for this error.
    pub fn exit_code(&self) -> i32 {
        match self {
            AdminError::Refused(_) => 1,
            AdminError::Other(_) => 2,
        }
    }
}

/// Runs `raftfs admin`, printing the outcome on stdout.
pub fn run(args: AdminArgs) -> Result<(), AdminError> {
    let runtime = tokio::runtime::Runtime::new().context("cannot start the runtime")?;
    runtime.block_on(async {
        let out = execute(args.command).await?;
        // Not println!, which panics when the reader has gone (`raftfs admin members | head`):
        // the change is done either way, and a closed pipe is the reader's choice.
        use std::io::Write;
        match writeln!(std::io::stdout(), "{out}") {
            Err(err) if err.kind() != std::io::ErrorKind::BrokenPipe => {
                Err(anyhow::Error::new(err)
                    .context("cannot write to stdout")
                    .into())
            }
            _ => Ok(()),
        }
    })
}

/// Carries out one admin command; returns what to print.
pub async fn execute(command: AdminCommand) -> Result<String, AdminError> {
    match command {
        AdminCommand::AddMember {
            target,
            id,
            peer,
            client,
            http,
            learner,
        } => {
            let mut c = target.client()?;
            let add = Admin::AddMember {
                id,
                peer,
                client,
                http,
            };
            let index = done(c.admin(&add).await)?;
            if learner {
                return Ok(format!(
                    "added member {id} as a learner (log index {index})"
                ));
            }
            let index = promote_when_caught_up(&mut c, id).await?;
            Ok(format!("added member {id} as a voter (log index {index})"))
        }
        AdminCommand::Promote { target, id } => {
            let mut c = target.client()?;
            let index = done(c.admin(&Admin::Promote { id }).await)?;
            Ok(format!("promoted member {id} to voter (log index {index})"))
        }
        AdminCommand::RemoveMember { target, id } => {
            let mut c = target.client()?;
            let index = done(c.admin(&Admin::RemoveMember { id }).await)?;
            Ok(format!("removed member {id} (log index {index})"))
        }
        AdminCommand::Members { target, local } => {
            let mut c = target.client()?;
            let admin = if local {
                Admin::MembersLocal
            } else {
                Admin::Members
            };
            match c.admin(&admin).await.map_err(anyhow::Error::from)? {
                Reply::Members(members) => Ok(table(&members)),
                other => Err(unexpected(&other)),
            }
        }
        AdminCommand::TransferLeader { target, to } => {
            let mut c = target.client()?;
            let leader = done(c.admin(&Admin::TransferLeader { to }).await)?;
            Ok(format!("member {leader} leads now"))
        }
        AdminCommand::Snapshot { command } => snapshot(command).await,
    }
}

/// `admin snapshot save|inspect`.
async fn snapshot(command: SnapshotCommand) -> Result<String, AdminError> {
    use server::backup::{self, Backup};
    match command {
        SnapshotCommand::Save {
            file,
            data_dir: Some(dir),
            ..
        } => {
            // Reading a data directory is blocking file work: off the runtime's threads.
            let exported = tokio::task::spawn_blocking(move || backup::export(&dir))
                .await
                .context("export task failed")?
                .map_err(anyhow::Error::from)?;
            exported.backup.write(&file).map_err(anyhow::Error::from)?;
            Ok(format!(
                "saved {}: {} commit {} (exported offline)",
                file.display(),
                exported.backup.summary(),
                exported.commit
            ))
        }
        SnapshotCommand::Save {
            file,
            target,
            data_dir: None,
        } => {
            let mut c = target.client()?;
            let reply = c
                .admin(&Admin::Snapshot)
                .await
                .map_err(anyhow::Error::from)?;
            let Reply::Snapshot { file: bytes, .. } = reply else {
                return Err(unexpected(&reply));
            };
            let from = c.connected_to().unwrap_or("?").to_owned();
            let path = file.clone();
            let saved = tokio::task::spawn_blocking(move || {
                // Verified before it is written: a damaged transfer never becomes a backup.
                let backup = Backup::verify(&path, bytes)?;
                backup.write(&path)?;
                Ok::<_, backup::BackupError>(backup)
            })
            .await
            .context("save task failed")?
            .map_err(anyhow::Error::from)?;
            Ok(format!(
                "saved {}: {} (from the leader at {from})",
                file.display(),
                saved.summary()
            ))
        }
        SnapshotCommand::Inspect { file } => {
            let backup = Backup::read(&file).map_err(anyhow::Error::from)?;
            let members = backup.membership.as_ref().map_or_else(
                || "none".to_owned(),
                |m| {
                    m.members()
                        .keys()
                        .map(|id| id.0.to_string())
                        .collect::<Vec<_>>()
                        .join(",")
                },
            );
            Ok(format!(
                "{}: ok, {} members {members}",
                file.display(),
                backup.summary()
            ))
        }
    }
}

/// Promotes learner `id`, retrying while the leader says it has not caught up (or is busy
/// with the change that added it).
async fn promote_when_caught_up(c: &mut Client, id: u64) -> Result<u64, AdminError> {
    let give_up = Instant::now() + CATCH_UP_WAIT;
    loop {
        match done(c.admin(&Admin::Promote { id }).await) {
            Err(AdminError::Refused(why)) if retryable(&why) && Instant::now() < give_up => {
                tokio::time::sleep(CATCH_UP_POLL).await;
            }
            other => return other,
        }
    }
}

/// Refusals that go away by themselves: the learner catching up, the leader new in its term,
/// the previous change committing.
fn retryable(why: &str) -> bool {
    why.contains("retry") || why.contains("still pending")
}

/// The number in an `OK N` reply, or the refusal.
fn done(reply: Result<Reply, client::ClientError>) -> Result<u64, AdminError> {
    match reply.map_err(anyhow::Error::from)? {
        Reply::Written { version } | Reply::Done(version) => Ok(version),
        Reply::MemberError(why) => Err(AdminError::Refused(why)),
        other => Err(unexpected(&other)),
    }
}

fn unexpected(reply: &Reply) -> AdminError {
    let wire = reply.to_bytes();
    AdminError::Other(anyhow::anyhow!(
        "unexpected reply: {}",
        String::from_utf8_lossy(&wire).trim_end()
    ))
}

/// The members as an aligned table (also the `raftfs client` shell's `members`).
pub(crate) fn table(members: &[MemberInfo]) -> String {
    let mut rows = vec![[
        "ID".to_string(),
        "ROLE".into(),
        "VOTES".into(),
        "PEER".into(),
        "CLIENT".into(),
        "HTTP".into(),
    ]];
    for m in members {
        rows.push([
            m.id.to_string(),
            if m.leader { "leader" } else { "follower" }.into(),
            if m.voter { "voter" } else { "learner" }.into(),
            m.peer.clone(),
            m.client.clone(),
            m.http.clone().unwrap_or_else(|| "-".into()),
        ]);
    }
    crate::status::columns(&rows)
}

//! `raftfs client`: the user's command line to a store, like redis-cli or etcdctl. With a
//! subcommand it runs that one command ([`oneshot`]); without, it is a shell ([`shell`]):
//! interactive with line editing on a terminal, reading commands line by line otherwise.
//!
//! Every command goes through [`client::Client`], which sends it to the leader by following
//! `ERR_REDIRECT`, so any member's client address will do. Exit status (docs/protocol.md,
//! "Command line"): 0 on success, 1 when the store answered `ERR_FILE_NOT_FOUND` or
//! `ERR_VERSION`, 2 for anything else (no member reachable, `ERR_CMD_ERR`, an unknown outcome,
//! a bad argument), with the reason on stderr as one line.

pub mod oneshot;
pub mod shell;
pub mod words;

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use client::{Client, ClientError};
use fs::{Admin, Command, MemberInfo, Reply};
use tokio_rustls::TlsConnector;

/// How much longer than `--timeout` a command may take before it is abandoned: the client
/// library checks its deadline only between attempts (after a connect or a reply), so this
/// covers the attempt in flight at the deadline; beyond it the server is taken to hang.
const HANG_GRACE: Duration = Duration::from_secs(1);

/// Arguments of `raftfs client`.
#[derive(Debug, Args)]
#[command(after_help = shell::SHELL_HELP_FOOTER)]
pub struct ClientArgs {
    /// Where the store is.
    #[command(flatten)]
    pub target: Target,
    /// The command to run; without one, a shell.
    #[command(subcommand)]
    pub command: Option<oneshot::OneShot>,
}

/// Where the store is and how long to try: the options every `raftfs client` command takes
/// (before or after the subcommand).
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Connection")]
pub struct Target {
    /// Client addresses of members (any one is enough: commands follow redirects to the
    /// leader; comma-separated).
    #[arg(
        long,
        global = true,
        value_name = "ADDR,...",
        value_delimiter = ',',
        default_value = "127.0.0.1:8080"
    )]
    pub members: Vec<String>,
    /// Speak TLS to the members (they run with client_tls), trusting this CA certificate.
    #[arg(long, global = true, value_name = "FILE")]
    pub ca: Option<PathBuf>,
    /// Give up on a command after this many seconds (riding out a leader election until
    /// then); a write, cas or delete given up on has an unknown outcome.
    #[arg(long, global = true, value_name = "S", default_value = "15", value_parser = seconds)]
    pub timeout: Duration,
}

/// Parses a positive number of seconds (fractions allowed).
fn seconds(text: &str) -> Result<Duration, String> {
    let secs: f64 = text
        .parse()
        .map_err(|_| format!("{text:?} is not a number of seconds"))?;
    Duration::try_from_secs_f64(secs)
        .ok()
        .filter(|d| !d.is_zero())
        .ok_or_else(|| format!("{text:?} is not a positive number of seconds"))
}

/// Why a command did not succeed. The store's own refusals display as the protocol names
/// them (`ERR_VERSION 7`), everything else as a sentence.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    /// `ERR_FILE_NOT_FOUND`: no such file, or it has expired (exit status 1).
    #[error("ERR_FILE_NOT_FOUND")]
    FileNotFound,
    /// `ERR_VERSION CURRENT`: a cas named another version than the file's (exit status 1).
    #[error("ERR_VERSION {current}")]
    Version {
        /// The file's current version.
        current: u64,
    },
    /// `ERR_CMD_ERR`: the server found the command malformed (content over the store's
    /// maximum file size, most likely, since this client sends only well-formed commands).
    #[error("ERR_CMD_ERR")]
    CmdErr,
    /// The client library gave up: no member reachable, no leader, or an unknown outcome.
    #[error(transparent)]
    Client(#[from] ClientError),
    /// No answer came in time from a member that accepted the connection.
    #[error("no answer within {0:?} (a write, cas or delete may or may not have been applied)")]
    Hung(Duration),
    /// A reply that does not answer the command sent.
    #[error("unexpected reply: {0}")]
    Unexpected(String),
    /// A bad argument or shell line; the text says what is expected.
    #[error("{0}")]
    Usage(String),
    /// A file name the protocol does not allow.
    #[error("bad file name: {0}")]
    Name(#[from] fs::NameError),
    /// Content to send could not be read.
    #[error("cannot read {what}: {source}")]
    Input {
        /// The file or stream.
        what: String,
        /// What the OS said.
        source: std::io::Error,
    },
    /// A reply could not be written out.
    #[error("cannot write to stdout: {0}")]
    Output(#[source] std::io::Error),
    /// `--ca` could not be used.
    #[error("cannot use the CA certificate: {0}")]
    Tls(#[from] server::tls::TlsError),
    /// The async runtime or the line editor could not start.
    #[error("cannot start: {0}")]
    Setup(String),
}

impl CommandError {
    /// The process exit status for this error: 1 for the store's refusals of a read, cas or
    /// delete of a missing file or a stale version, 2 for everything else.
    pub fn exit_code(&self) -> i32 {
        match self {
            CommandError::FileNotFound | CommandError::Version { .. } => 1,
            _ => 2,
        }
    }

    /// Whether this is the store's reply (printed as it is) rather than a local failure
    /// (printed after `error: `).
    pub fn is_reply(&self) -> bool {
        matches!(
            self,
            CommandError::FileNotFound | CommandError::Version { .. } | CommandError::CmdErr
        )
    }
}

/// A connection to the store that outlives commands: the shell's, or a one-shot's.
pub struct Session {
    target: Target,
    tls: Option<TlsConnector>,
    client: Client,
    runtime: tokio::runtime::Runtime,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("target", &self.target)
            .field("client", &self.client)
            .finish_non_exhaustive()
    }
}

impl Session {
    /// A session with the members of `target` (it connects at the first command).
    pub fn new(target: Target) -> Result<Session, CommandError> {
        let tls = match &target.ca {
            Some(ca) => Some(server::tls::client_connector(ca)?),
            None => None,
        };
        // One thread: the CLI runs one command at a time.
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|err| CommandError::Setup(format!("async runtime: {err}")))?;
        let client = new_client(&target, tls.as_ref());
        Ok(Session {
            target,
            tls,
            client,
            runtime,
        })
    }

    /// The member the session is connected to now (the leader after a command succeeded).
    pub fn connected_to(&self) -> Option<&str> {
        self.client.connected_to()
    }

    /// Runs `command` on the leader. Only success comes back as `Ok`: a read's `CONTENTS`,
    /// a write's or cas's `OK VERSION`, a delete's `OK`.
    pub fn call(&mut self, command: &Command) -> Result<Reply, CommandError> {
        let limit = self.limit();
        let client = &mut self.client;
        let result = self
            .runtime
            .block_on(async { tokio::time::timeout(limit, client.call(command)).await });
        match (command, self.settle(result)?) {
            (_, Reply::FileNotFound) => Err(CommandError::FileNotFound),
            (_, Reply::VersionMismatch { current }) => Err(CommandError::Version { current }),
            (_, Reply::CmdErr) => Err(CommandError::CmdErr),
            (Command::Read { .. }, reply @ Reply::Contents { .. })
            | (Command::Write { .. } | Command::Cas { .. }, reply @ Reply::Written { .. })
            | (Command::Delete { .. }, reply @ Reply::Deleted) => Ok(reply),
            (_, other) => Err(unexpected(&other)),
        }
    }

    /// Lists the members (the `members` administrative command).
    pub fn members(&mut self) -> Result<Vec<MemberInfo>, CommandError> {
        let limit = self.limit();
        let client = &mut self.client;
        let result = self
            .runtime
            .block_on(async { tokio::time::timeout(limit, client.admin(&Admin::Members)).await });
        match self.settle(result)? {
            Reply::Members(members) => Ok(members),
            other => Err(unexpected(&other)),
        }
    }

    /// How long one call may take before it is abandoned.
    fn limit(&self) -> Duration {
        self.target.timeout + HANG_GRACE
    }

    /// The reply of a call, or why there is none. An abandoned call may have left a reply on
    /// its way on the connection, so the client is then replaced by a fresh one: a later
    /// command must never read an earlier command's reply.
    fn settle(
        &mut self,
        result: Result<Result<Reply, ClientError>, tokio::time::error::Elapsed>,
    ) -> Result<Reply, CommandError> {
        match result {
            Ok(reply) => Ok(reply?),
            Err(_elapsed) => {
                self.client = new_client(&self.target, self.tls.as_ref());
                Err(CommandError::Hung(self.limit()))
            }
        }
    }
}

/// A cluster client for `target`, whose calls give up at its timeout.
fn new_client(target: &Target, tls: Option<&TlsConnector>) -> Client {
    let client = Client::new(target.members.clone()).with_deadline(target.timeout);
    match tls {
        Some(tls) => client.with_tls(tls.clone()),
        None => client,
    }
}

/// The error for a reply that does not answer the command, showing its wire form.
fn unexpected(reply: &Reply) -> CommandError {
    let wire = reply.to_bytes();
    CommandError::Unexpected(String::from_utf8_lossy(&wire).trim_end().to_owned())
}

/// Runs `raftfs client`; returns the process exit status. Errors are printed here (one-shot:
/// one line on stderr; shell: after each command), so the caller only exits with the status.
pub fn run(args: ClientArgs) -> i32 {
    let code = match Session::new(args.target) {
        Err(err) => {
            eprintln!("raftfs client: {}", one_line(&err));
            err.exit_code()
        }
        Ok(session) => match args.command {
            Some(command) => match oneshot::run(session, command) {
                Ok(()) => 0,
                Err(err) => {
                    eprintln!("raftfs client: {}", one_line(&err));
                    err.exit_code()
                }
            },
            None => shell::run(session),
        },
    };
    // The caller may exit the process at once, which flushes nothing.
    let _ = std::io::Write::flush(&mut std::io::stdout());
    code
}

/// The error on one line (a server's text or an OS message could hold a newline).
pub fn one_line(err: &CommandError) -> String {
    err.to_string().replace(['\r', '\n'], " ")
}

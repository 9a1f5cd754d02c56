//! Reading members' status over HTTP (`/status`), for `raftfs status`, local clusters,
//! benchmarks and tests.
//!
//! `raftfs status` learns the configuration from the leader: it asks the members given
//! (`--members`, client addresses) with `members`, following redirects, for up to
//! [`MEMBERS_TIMEOUT`]. If no leader answers in that time (there may be none: no quorum, an
//! election that cannot finish), it asks every given address `members local` directly, which any
//! member answers at once with the configuration in force on it, and takes the answer of the
//! first address, in `--members` order, that gives one (a note on stderr says whose view it
//! is; members' views differ only while a membership change is under way). Then it fetches
//! every member's `/status` from the HTTP address the configuration gives it, and prints one row
//! per member:
//!
//! - id, client address, role, term, the leader it knows, commit, applied, last log index and
//!   newest snapshot index;
//! - **lag**: entries the member is behind, `leader's commit_index - member's applied_index`
//!   (0 if it reads ahead, the readings being a few milliseconds apart): what it has still to
//!   apply of what the cluster committed. Unknown (`-`) when no member answers as leader;
//! - **contact**: milliseconds since it last heard from the leader; on the leader itself, the
//!   age of the oldest acknowledgement among the freshest quorum of voters;
//! - **healthy**: it answered, knows a leader, lags by at most [`LAG_HEALTHY_MAX`] entries, and
//!   its contact is at most its election timeout.
//!
//! A member that does not answer gets a row saying `unreachable`. Exit status: 0 if every
//! member is healthy, 1 if some member is unhealthy or unreachable (with no leader, every row is
//! unhealthy: 1), 2 only if no member could be reached at all (none gave the configuration, or
//! none of those it lists answered `/status`). `--json` prints the rows as a JSON array of
//! objects; `--watch S` prints a reading every S seconds until Ctrl-C (with `--json`, one
//! array per line).

use std::time::Duration;

use clap::Args;
use fs::{Admin, MemberInfo, Reply};
use serde::Serialize;
use serde_json::Value;
use tokio_rustls::TlsConnector;

/// A member whose applied index is more than this many entries behind the leader's commit is
/// not healthy: at ~17,000 writes/s a follower keeping up trails by a few hundred at most
/// between two readings; more means it is catching up, or stuck.
pub const LAG_HEALTHY_MAX: u64 = 1_000;

/// How long a member's `/status` may take to answer before its row says unreachable.
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(3);

/// How long asking the leader for the configuration may take, redirects and retries included:
/// enough to ride out a quick election (about a second), short enough that with no leader at
/// all the members' own views ([`LOCAL_MEMBERS_TIMEOUT`]) come without keeping an operator
/// waiting.
pub const MEMBERS_TIMEOUT: Duration = Duration::from_secs(2);

/// How long a member may take to answer `members local`, once no leader gave the
/// configuration (the members are asked all at once).
pub const LOCAL_MEMBERS_TIMEOUT: Duration = Duration::from_secs(2);

pub use client::status::fetch;

/// Arguments of `raftfs status`.
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// The members to ask for the configuration (any one is enough), and TLS.
    #[command(flatten)]
    pub target: crate::admin::Members,
    /// Print a JSON array, one object per member, instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Print a new reading every SECONDS until Ctrl-C.
    #[arg(long, value_name = "SECONDS")]
    pub watch: Option<f64>,
}

/// One member's row.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Row {
    /// The member's id.
    pub id: u64,
    /// Its client address.
    pub client: String,
    /// Its HTTP address, if it has one.
    pub http: Option<String>,
    /// Whether it votes.
    pub voter: bool,
    /// Whether its `/status` answered.
    pub reachable: bool,
    /// Its role (`leader`, `follower`, `candidate`, `precandidate`), if it answered.
    pub role: Option<String>,
    /// Its term.
    pub term: Option<u64>,
    /// The leader it knows.
    pub leader: Option<u64>,
    /// Its commit index.
    pub commit_index: Option<u64>,
    /// Its applied index.
    pub applied_index: Option<u64>,
    /// Its last log index.
    pub last_index: Option<u64>,
    /// Its newest snapshot's index.
    pub snapshot_index: Option<u64>,
    /// Entries behind: the leader's commit index minus its applied index (module doc).
    pub lag: Option<u64>,
    /// Milliseconds since it last heard from the leader (the leader: from a quorum).
    pub last_contact_ms: Option<u64>,
    /// Its election timeout, milliseconds.
    pub election_timeout_ms: Option<u64>,
    /// Answers, knows a leader, lag and contact small (module doc).
    pub healthy: bool,
}

/// Where a reading's configuration came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// The leader (`members`).
    Leader,
    /// No leader answered: the member at this client address gave its own view
    /// (`members local`).
    Member {
        /// The member's client address.
        addr: String,
        /// Why the leader's configuration could not be had.
        why: String,
    },
}

/// What one reading found.
#[derive(Debug, Clone)]
pub struct Reading {
    /// One row per member of the configuration, by id.
    pub rows: Vec<Row>,
    /// Whose configuration the rows follow.
    pub source: Source,
}

impl Reading {
    /// The exit status this reading calls for (module doc).
    pub fn exit_code(&self) -> i32 {
        if self.rows.iter().all(|r| r.healthy) {
            0
        } else if self.rows.iter().any(|r| r.reachable) {
            1
        } else {
            2
        }
    }
}

/// Runs `raftfs status`; returns the process exit status (module doc).
pub fn run(args: StatusArgs) -> i32 {
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("raftfs status: cannot start the runtime: {err}");
            return 2;
        }
    };
    runtime.block_on(run_async(args))
}

async fn run_async(args: StatusArgs) -> i32 {
    let Some(seconds) = args.watch else {
        return print_reading(&args).await;
    };
    let every = Duration::from_secs_f64(seconds.max(0.1));
    loop {
        if std::io::IsTerminal::is_terminal(&std::io::stdout()) && !args.json {
            // Redraw in place on a terminal; piped, readings follow one another.
            print!("\x1b[2J\x1b[H");
            println!("every {seconds} s; Ctrl-C stops");
        }
        let code = print_reading(&args).await;
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = tokio::signal::ctrl_c() => return code,
        }
    }
}

/// Takes one reading and prints it; returns its exit status.
async fn print_reading(args: &StatusArgs) -> i32 {
    match read(args.target.members.clone(), args.target.ca.as_deref()).await {
        Ok(reading) => {
            if let Source::Member { addr, why } = &reading.source {
                eprintln!(
                    "raftfs status: no leader gave the configuration ({why}); \
                     showing the configuration as the member at {addr} sees it"
                );
            }
            let text = if args.json {
                let json = if args.watch.is_some() {
                    serde_json::to_string(&reading.rows)
                } else {
                    serde_json::to_string_pretty(&reading.rows)
                };
                json.unwrap_or_else(|err| format!("{{\"error\": \"{err}\"}}"))
            } else {
                table(&reading.rows)
            };
            println!("{text}");
            reading.exit_code()
        }
        Err(err) => {
            eprintln!("raftfs status: {err:#}");
            2
        }
    }
}

/// One reading: the configuration from the leader, or else from the first of `members` to
/// give its own (module doc; over TLS trusting `ca`, if given), then every member's `/status`.
pub async fn read(members: Vec<String>, ca: Option<&std::path::Path>) -> anyhow::Result<Reading> {
    let tls = match ca {
        Some(ca) => Some(server::tls::client_connector(ca)?),
        None => None,
    };
    let (config, source) = configuration(members, tls).await?;
    let fetches: Vec<_> = config
        .iter()
        .map(|m| {
            let http = m.http.clone();
            tokio::spawn(async move {
                let http = http?;
                tokio::time::timeout(FETCH_TIMEOUT, fetch(&http))
                    .await
                    .ok()
                    .flatten()
            })
        })
        .collect();
    let mut statuses = Vec::with_capacity(fetches.len());
    for fetch in fetches {
        statuses.push(fetch.await.ok().flatten());
    }
    Ok(Reading {
        rows: rows(&config, &statuses),
        source,
    })
}

/// The configuration: the leader's, asked through any of `members` within [`MEMBERS_TIMEOUT`];
/// failing that, the first of `members` (in their order) to answer `members local` within
/// [`LOCAL_MEMBERS_TIMEOUT`].
async fn configuration(
    members: Vec<String>,
    tls: Option<TlsConnector>,
) -> anyhow::Result<(Vec<MemberInfo>, Source)> {
    let mut client = client::Client::new(members.clone()).with_deadline(MEMBERS_TIMEOUT);
    if let Some(tls) = &tls {
        client = client.with_tls(tls.clone());
    }
    let attempt = tokio::time::timeout(MEMBERS_TIMEOUT, client.admin(&Admin::Members)).await;
    let why = match attempt {
        Ok(Ok(Reply::Members(config))) => return Ok((config, Source::Leader)),
        Ok(Ok(other)) => format!("a member answered {}", reply_line(&other)),
        Ok(Err(err)) => err.to_string(),
        Err(_elapsed) => format!("no answer within {MEMBERS_TIMEOUT:?}"),
    };
    let asks: Vec<_> = members
        .iter()
        .map(|addr| {
            let (addr, tls) = (addr.clone(), tls.clone());
            tokio::spawn(async move {
                let ask = async {
                    let mut conn = client::Connection::connect_with(&addr, tls.as_ref()).await?;
                    conn.admin(&Admin::MembersLocal).await
                };
                match tokio::time::timeout(LOCAL_MEMBERS_TIMEOUT, ask).await {
                    Ok(Ok(Reply::Members(config))) => Ok((config, addr)),
                    Ok(Ok(other)) => Err(format!("{addr} answered {}", reply_line(&other))),
                    Ok(Err(err)) => Err(err.to_string()),
                    Err(_elapsed) => Err(format!(
                        "{addr}: no answer within {LOCAL_MEMBERS_TIMEOUT:?}"
                    )),
                }
            })
        })
        .collect();
    let mut problems = Vec::new();
    for ask in asks {
        match ask.await {
            Ok(Ok((config, addr))) => return Ok((config, Source::Member { addr, why })),
            Ok(Err(problem)) => problems.push(problem),
            Err(err) => problems.push(err.to_string()),
        }
    }
    anyhow::bail!(
        "cannot learn the configuration: no leader ({why}), and no member gave its own ({})",
        if problems.is_empty() {
            "no member addresses".to_string()
        } else {
            problems.join("; ")
        }
    )
}

/// A reply as one line of text, for messages.
fn reply_line(reply: &Reply) -> String {
    String::from_utf8_lossy(&reply.to_bytes())
        .lines()
        .next()
        .unwrap_or_default()
        .to_string()
}

/// The rows of a reading: `config[i]`'s status is `statuses[i]` (`None`: it did not answer).
pub fn rows(config: &[MemberInfo], statuses: &[Option<Value>]) -> Vec<Row> {
    // The leader's reading: of those that say they lead, the one in the highest term.
    let leader = statuses
        .iter()
        .flatten()
        .filter(|s| s["role"] == "leader")
        .max_by_key(|s| s["term"].as_u64());
    let leader_commit = leader.and_then(|s| s["commit_index"].as_u64());
    let mut rows: Vec<Row> = config
        .iter()
        .zip(statuses)
        .map(|(member, status)| row(member, status.as_ref(), leader_commit))
        .collect();
    rows.sort_by_key(|r| r.id);
    rows
}

fn row(member: &MemberInfo, status: Option<&Value>, leader_commit: Option<u64>) -> Row {
    let field = |name: &str| status.and_then(|s| s[name].as_u64());
    let applied_index = field("applied_index");
    let lag = match (leader_commit, applied_index) {
        (Some(commit), Some(applied)) => Some(commit.saturating_sub(applied)),
        _ => None,
    };
    let last_contact_ms = field("last_contact_ms");
    let election_timeout_ms = field("election_timeout_ms");
    let leader = field("leader");
    let healthy = status.is_some()
        && leader.is_some()
        && lag.is_some_and(|lag| lag <= LAG_HEALTHY_MAX)
        && match (last_contact_ms, election_timeout_ms) {
            (Some(contact), Some(timeout)) => contact <= timeout,
            _ => false,
        };
    Row {
        id: member.id,
        client: member.client.clone(),
        http: member.http.clone(),
        voter: member.voter,
        reachable: status.is_some(),
        role: status.and_then(|s| s["role"].as_str().map(str::to_owned)),
        term: field("term"),
        leader,
        commit_index: field("commit_index"),
        applied_index,
        last_index: field("last_index"),
        snapshot_index: field("snapshot_index"),
        lag,
        last_contact_ms,
        election_timeout_ms,
        healthy,
    }
}

/// The header of the table (tests look for it to count readings).
pub const TABLE_HEADER: [&str; 12] = [
    "ID", "CLIENT", "ROLE", "TERM", "LEADER", "COMMIT", "APPLIED", "LAST", "SNAPSHOT", "LAG",
    "CONTACT", "HEALTHY",
];

/// The rows as an aligned table.
pub fn table(rows: &[Row]) -> String {
    let dash = |v: Option<u64>| v.map_or_else(|| "-".to_string(), |v| v.to_string());
    let mut cells: Vec<Vec<String>> = vec![TABLE_HEADER.iter().map(|h| h.to_string()).collect()];
    for r in rows {
        let role = match (&r.role, r.voter) {
            (None, _) => "unreachable".to_string(),
            (Some(role), true) => role.clone(),
            (Some(role), false) => format!("{role} (learner)"),
        };
        cells.push(vec![
            r.id.to_string(),
            r.client.clone(),
            role,
            dash(r.term),
            dash(r.leader),
            dash(r.commit_index),
            dash(r.applied_index),
            dash(r.last_index),
            dash(r.snapshot_index),
            dash(r.lag),
            r.last_contact_ms
                .map_or_else(|| "-".to_string(), |ms| format!("{ms}ms")),
            if r.healthy { "yes" } else { "no" }.to_string(),
        ]);
    }
    columns(&cells)
}

/// Rows of cells as left-aligned columns two spaces apart, a line each (trailing spaces cut):
/// the tables of `raftfs status` and `raftfs admin members`.
pub fn columns<R: AsRef<[String]>>(rows: &[R]) -> String {
    let mut widths: Vec<usize> = Vec::new();
    for row in rows {
        for (k, cell) in row.as_ref().iter().enumerate() {
            if k == widths.len() {
                widths.push(0);
            }
            widths[k] = widths[k].max(cell.len());
        }
    }
    rows.iter()
        .map(|row| {
            row.as_ref()
                .iter()
                .zip(&widths)
                .map(|(cell, w)| format!("{cell:<w$}"))
                .collect::<Vec<_>>()
                .join("  ")
                .trim_end()
                .to_string()
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)] // Tests fail loudly on purpose.

    use super::*;
    use serde_json::json;

    fn member(id: u64) -> MemberInfo {
        MemberInfo {
            id,
            voter: true,
            leader: false,
            peer: format!("p{id}"),
            client: format!("c{id}"),
            http: Some(format!("h{id}")),
        }
    }

    fn status(role: &str, commit: u64, applied: u64, contact: Option<u64>) -> Option<Value> {
        Some(json!({
            "role": role, "term": 3, "leader": 1, "commit_index": commit,
            "applied_index": applied, "last_index": commit, "snapshot_index": 0,
            "last_contact_ms": contact, "election_timeout_ms": 500,
        }))
    }

    /// Lag is the leader's commit minus the member's applied index, never negative; health
    /// needs an answer, a leader, a small lag and recent contact; the exit status follows.
    #[test]
    fn rows_judge_lag_contact_and_reachability() {
        let config: Vec<MemberInfo> = (1..=4).map(member).collect();
        let statuses = vec![
            status("leader", 5_000, 5_000, Some(3)),
            status("follower", 5_010, 4_990, Some(20)),
            status("follower", 3_000, 3_000, Some(20)),
            None,
        ];
        let rows = rows(&config, &statuses);
        let lags: Vec<Option<u64>> = rows.iter().map(|r| r.lag).collect();
        assert_eq!(lags, [Some(0), Some(10), Some(2_000), None]);
        let healthy: Vec<bool> = rows.iter().map(|r| r.healthy).collect();
        assert_eq!(healthy, [true, true, false, false]);
        assert!(!rows[3].reachable);
        let reading = Reading {
            rows,
            source: Source::Leader,
        };
        assert_eq!(reading.exit_code(), 1);
        assert!(table(&reading.rows).contains("unreachable"));

        let stale = rows_of(&[
            status("leader", 10, 10, Some(3)),
            status("follower", 10, 10, Some(900)),
        ]);
        assert_eq!(
            stale.iter().map(|r| r.healthy).collect::<Vec<_>>(),
            [true, false]
        );
        let all = Reading {
            rows: rows_of(&[status("leader", 10, 10, Some(0))]),
            source: Source::Leader,
        };
        assert_eq!(all.exit_code(), 0);
        let none = Reading {
            rows: rows_of(&[None, None]),
            source: Source::Leader,
        };
        assert_eq!(none.exit_code(), 2);
    }

    fn rows_of(statuses: &[Option<Value>]) -> Vec<Row> {
        let config: Vec<MemberInfo> = (1..=statuses.len() as u64).map(member).collect();
        rows(&config, statuses)
    }
}

//! `raftfs bench failover`: how long a cluster takes to acknowledge a write after its leader is
//! killed with SIGKILL, over repeated kills, with client load running throughout.

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{Context, bail};
use bytes::Bytes;
use clap::Args;
use tokio::time::Instant;

use crate::local_cluster::{self, LocalCluster};
use client::{Client, Connection};

/// Arguments of `raftfs bench failover`.
#[derive(Debug, Args)]
pub struct FailoverArgs {
    /// Leader kills to measure.
    #[arg(long, default_value_t = 20)]
    pub kills: usize,
    /// Cluster size.
    #[arg(long, default_value_t = 5)]
    pub nodes: u64,
    /// First client port of the cluster the benchmark starts (it needs a free range).
    #[arg(long, default_value_t = 18080)]
    pub base_port: u16,
    /// Clients writing in the background throughout.
    #[arg(long, default_value_t = 8)]
    pub writers: usize,
    /// Keep each member's log in DIR/node-ID.log (appended to across its restarts), to see
    /// what a slow failover did; each kill is logged on stderr with the same clock.
    #[arg(long, value_name = "DIR")]
    pub logs: Option<PathBuf>,
}

/// How long one probe attempt may wait for an answer before trying another member.
const PROBE_ATTEMPT_TIMEOUT: Duration = Duration::from_secs(2);
/// Pause between rounds of probes while no member accepts the write.
const PROBE_PAUSE: Duration = Duration::from_millis(5);
/// How long the cluster may take to become healthy between kills.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(60);

/// Runs the benchmark and prints every measurement, the median and the worst.
pub async fn run(args: FailoverArgs) -> anyhow::Result<()> {
    let dir = std::env::temp_dir().join(format!("raftfs-failover-{}", std::process::id()));
    let mut cluster = LocalCluster::create(&dir, args.nodes, args.base_port)?;
    if let Some(logs) = &args.logs {
        std::fs::create_dir_all(logs)
            .with_context(|| format!("cannot create {}", logs.display()))?;
    }
    let result = async {
        for i in 1..=args.nodes {
            cluster.start(i, member_stderr(&args, i)?)?;
        }
        measure(&args, &mut cluster).await
    }
    .await;
    cluster.stop_all();
    let _ = std::fs::remove_dir_all(&dir);
    let (mut times, elections) = result?;
    times.sort();
    let median = times[times.len() / 2];
    let worst = times[times.len() - 1];
    println!(
        "failover over {} leader kills ({} members, {} writers): median {:.0} ms, worst {:.0} ms, \
         {} elections ({} during the failovers)",
        times.len(),
        args.nodes,
        args.writers,
        median.as_secs_f64() * 1e3,
        worst.as_secs_f64() * 1e3,
        elections.total,
        elections.during,
    );
    Ok(())
}

/// Where member `id`'s log goes: its file under `--logs`, or nowhere.
fn member_stderr(args: &FailoverArgs, id: u64) -> anyhow::Result<Stdio> {
    match &args.logs {
        Some(dir) => local_cluster::member_log(dir, id),
        None => Ok(Stdio::null()),
    }
}

/// The highest term any running member reports: each election (a candidacy after a
/// successful prevote) raises it by one.
async fn highest_term(cluster: &LocalCluster) -> anyhow::Result<u64> {
    let mut highest = None;
    for id in cluster.running() {
        if let Some(status) = client::status::fetch(cluster.http(id)?).await {
            highest = highest.max(status["term"].as_u64());
        }
    }
    highest.context("no member reported its term")
}

/// Elections over a whole run: one per kill when nothing else disturbs the cluster.
struct Elections {
    /// Over the whole run.
    total: u64,
    /// Between a kill and the write acknowledged after it: more than one in a failover is a
    /// split vote or a candidate that could not win.
    during: u64,
}

/// Kills the leader `args.kills` times; returns the time to each recovery and the elections
/// held.
async fn measure(
    args: &FailoverArgs,
    cluster: &mut LocalCluster,
) -> anyhow::Result<(Vec<Duration>, Elections)> {
    let clients = cluster.clients.clone();
    let stop = Arc::new(AtomicBool::new(false));
    let mut writers = Vec::new();
    for w in 0..args.writers {
        let stop = stop.clone();
        let mut client = Client::new(clients.clone());
        writers.push(tokio::spawn(async move {
            let mut seq = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let name = format!("load-{w}-{}", seq % 100);
                seq += 1;
                if let Ok(name) = fs::Name::new(Bytes::from(name)) {
                    let _ = client
                        .call(&fs::Command::Write {
                            name,
                            content: Bytes::from_static(&[b'x'; 256]),
                            exptime_s: 0,
                        })
                        .await;
                }
            }
        }));
    }
    let mut times = Vec::new();
    let mut during = 0;
    cluster.settled_leader().await?;
    let first_term = highest_term(cluster).await?;
    for kill in 1..=args.kills {
        let leader = cluster.settled_leader().await?;
        let term_before = highest_term(cluster).await?;
        tracing::info!(kill, member = leader, "killing the leader");
        cluster.kill(leader).context("cannot kill the leader")?;
        let killed_at = Instant::now();
        probe_write(&clients, kill).await?;
        let took = killed_at.elapsed();
        // Read after the probe, so the term the probe's write committed in is counted; an
        // election after the write (none is expected) counts in the run's total only.
        let held = highest_term(cluster).await?.saturating_sub(term_before);
        println!(
            "kill {kill:>2}: member {leader} killed; a write was acknowledged after {:.0} ms, \
             {held} election{}",
            took.as_secs_f64() * 1e3,
            if held == 1 { "" } else { "s" }
        );
        times.push(took);
        during += held;
        cluster.start(leader, member_stderr(args, leader)?)?;
    }
    cluster.settled_leader().await?;
    let elections = highest_term(cluster).await?.saturating_sub(first_term);
    stop.store(true, Ordering::Relaxed);
    for writer in writers {
        let _ = writer.await;
    }
    Ok((
        times,
        Elections {
            total: elections,
            during,
        },
    ))
}

/// Tries a write on every member in turn, following redirects at once, until one is
/// acknowledged.
async fn probe_write(clients: &[String], kill: usize) -> anyhow::Result<()> {
    let name = fs::Name::new(Bytes::from(format!("failover-probe-{kill}")))?;
    let command = fs::Command::Write {
        name,
        content: Bytes::from_static(b"probe"),
        exptime_s: 0,
    };
    let deadline = Instant::now() + SETTLE_TIMEOUT;
    let mut next: Option<String> = None;
    let mut turn = 0;
    while Instant::now() < deadline {
        let addr = next.take().unwrap_or_else(|| {
            turn += 1;
            clients[turn % clients.len()].clone()
        });
        let attempt = tokio::time::timeout(PROBE_ATTEMPT_TIMEOUT, async {
            let mut conn = Connection::connect(&addr).await.ok()?;
            conn.call(&command).await.ok()
        })
        .await;
        match attempt {
            Ok(Some(fs::Reply::Written { .. })) => return Ok(()),
            Ok(Some(fs::Reply::Redirect(leader))) => next = Some(leader),
            _ => tokio::time::sleep(PROBE_PAUSE).await,
        }
    }
    bail!("no write was acknowledged within {SETTLE_TIMEOUT:?} of the kill")
}

//! `raftfs bench failover`: how long a cluster takes to acknowledge a write after its leader is
//! killed with SIGKILL, over repeated kills, with client load running throughout.

use std::process::{Child, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{Context, bail};
use bytes::Bytes;
use clap::Args;
use tokio::time::Instant;

use crate::client::{Client, Connection};
use crate::local_cluster::{cluster_toml, member_ports, spawn_member, stop_all};

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
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let config = dir.join("cluster.toml");
    std::fs::write(&config, cluster_toml(args.nodes, args.base_port)?)?;
    let exe = std::env::current_exe()?;
    let mut clients = Vec::new();
    let mut https = Vec::new();
    for i in 1..=args.nodes {
        let (client, _, http) = member_ports(args.base_port, i)?;
        clients.push(format!("127.0.0.1:{client}"));
        https.push(format!("127.0.0.1:{http}"));
    }
    let mut members: Vec<Child> = Vec::new();
    for i in 1..=args.nodes {
        members.push(spawn_member(&exe, &config, &dir, i, Stdio::null())?);
    }
    let result = measure(&args, &exe, &config, &dir, &clients, &https, &mut members).await;
    stop_all(&mut members);
    let _ = std::fs::remove_dir_all(&dir);
    let mut times = result?;
    times.sort();
    let median = times[times.len() / 2];
    let worst = times[times.len() - 1];
    println!(
        "failover over {} leader kills ({} members, {} writers): median {:.0} ms, worst {:.0} ms",
        times.len(),
        args.nodes,
        args.writers,
        median.as_secs_f64() * 1e3,
        worst.as_secs_f64() * 1e3
    );
    Ok(())
}

async fn measure(
    args: &FailoverArgs,
    exe: &std::path::Path,
    config: &std::path::Path,
    dir: &std::path::Path,
    clients: &[String],
    https: &[String],
    members: &mut [Child],
) -> anyhow::Result<Vec<Duration>> {
    let stop = Arc::new(AtomicBool::new(false));
    let mut writers = Vec::new();
    for w in 0..args.writers {
        let stop = stop.clone();
        let mut client = Client::new(clients.to_vec());
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
    for kill in 1..=args.kills {
        let leader = settled_leader(https).await?;
        let index = usize::try_from(leader - 1)?;
        members[index].kill().context("cannot kill the leader")?;
        let _ = members[index].wait();
        let killed_at = Instant::now();
        probe_write(clients, kill).await?;
        let took = killed_at.elapsed();
        println!(
            "kill {kill:>2}: member {leader} killed; a write was acknowledged after {:.0} ms",
            took.as_secs_f64() * 1e3
        );
        times.push(took);
        members[index] = spawn_member(exe, config, dir, leader, Stdio::null())?;
    }
    stop.store(true, Ordering::Relaxed);
    for writer in writers {
        let _ = writer.await;
    }
    Ok(times)
}

/// Waits until every member is up and names the same leader, and returns it.
async fn settled_leader(https: &[String]) -> anyhow::Result<u64> {
    let deadline = Instant::now() + SETTLE_TIMEOUT;
    loop {
        let mut leaders = Vec::new();
        for http in https {
            leaders.push(status_leader(http).await);
        }
        if let Some(Some(first)) = leaders.first()
            && leaders.iter().all(|l| *l == Some(*first))
        {
            return Ok(*first);
        }
        if Instant::now() > deadline {
            bail!("the cluster did not settle on a leader: {leaders:?}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The leader a member's `/status` names, if it answers and knows one.
async fn status_leader(http: &str) -> Option<u64> {
    crate::status::fetch(http).await?["leader"].as_u64()
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

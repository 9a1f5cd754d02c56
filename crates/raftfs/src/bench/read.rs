//! `raftfs bench reads`: linearizable reads/s of a local cluster in each read mode, in one run:
//! ReadIndex (the default), lease reads (`read_mode = "lease"`), follower reads
//! (`follower_reads = true`), and both. Connections start at the members in turn; where a member
//! redirects, a client follows to the leader, so only follower reads spread the load.

use std::process::Stdio;

use bytes::Bytes;
use clap::Args;
use hdrhistogram::Histogram;

use crate::local_cluster::LocalCluster;
use client::Client;

/// Arguments of `raftfs bench reads`.
#[derive(Debug, Args)]
pub struct ReadsArgs {
    /// Cluster size.
    #[arg(long, default_value_t = 5)]
    pub nodes: u64,
    /// Concurrent connections, each reading in a closed loop.
    #[arg(long, default_value_t = 64)]
    pub connections: usize,
    /// Seconds per mode.
    #[arg(long, default_value_t = 5)]
    pub seconds: u64,
    /// Files read (written once before the reads start).
    #[arg(long, default_value_t = 1000)]
    pub files: usize,
    /// File size in bytes.
    #[arg(long, default_value_t = 256)]
    pub size: usize,
    /// First client port of the clusters the benchmark starts (it needs a free range).
    #[arg(long, default_value_t = 18080)]
    pub base_port: u16,
}

/// The modes measured, with the settings that select each.
const MODES: [(&str, &str); 4] = [
    ("ReadIndex", ""),
    ("lease reads", "read_mode = \"lease\""),
    ("follower reads", "follower_reads = true"),
    (
        "follower+lease",
        "follower_reads = true\nread_mode = \"lease\"",
    ),
];

/// Runs every mode on a fresh cluster and prints reads/s and latency for each.
pub async fn run(args: ReadsArgs) -> anyhow::Result<()> {
    println!(
        "{:>15} {:>10} {:>10} {:>9} {:>9} {:>9}",
        "mode", "reads", "reads/s", "p50 us", "p99 us", "max us"
    );
    for (mode, settings) in MODES {
        let dir = std::env::temp_dir().join(format!("raftfs-reads-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let mut cluster = LocalCluster::create_with(&dir, args.nodes, args.base_port, settings)?;
        let result = async {
            for i in 1..=args.nodes {
                cluster.start(i, Stdio::null())?;
            }
            cluster.settled_leader().await?;
            measure(&args, &cluster.clients).await
        }
        .await;
        cluster.stop_all();
        let _ = std::fs::remove_dir_all(&dir);
        let (reads, per_second, all) = result?;
        println!(
            "{mode:>15} {reads:>10} {per_second:>10.0} {:>9} {:>9} {:>9}",
            all.value_at_quantile(0.5),
            all.value_at_quantile(0.99),
            all.max()
        );
    }
    Ok(())
}

/// Writes the files, then reads them from `connections` clients for the set time.
async fn measure(args: &ReadsArgs, addrs: &[String]) -> anyhow::Result<(u64, f64, Histogram<u64>)> {
    let files = args.files.max(1);
    let name = |i: usize| fs::Name::new(Bytes::from(format!("read-{i}")));
    let mut writer = Client::new(addrs.to_vec());
    let content = Bytes::from(vec![b'r'; args.size]);
    for i in 0..files {
        let reply = writer
            .call(&fs::Command::Write {
                name: name(i)?,
                content: content.clone(),
                exptime_s: 0,
            })
            .await?;
        anyhow::ensure!(
            matches!(reply, fs::Reply::Written { .. }),
            "prefill got {reply:?}"
        );
    }
    // Start client c at member c: a member that serves reads keeps the connection.
    let clients = (0..args.connections)
        .map(|c| {
            let mut order = addrs.to_vec();
            order.rotate_left(c % addrs.len());
            Client::new(order)
        })
        .collect();
    // Client c reads files c, c + 7, c + 14, ... (mod the file count).
    let read = move |c: usize, n: usize| {
        Ok(fs::Command::Read {
            name: name((c + 7 * n) % files)?,
        })
    };
    let contents = |reply: &fs::Reply| matches!(reply, fs::Reply::Contents { .. });
    let (all, elapsed) = crate::bench::closed_loop(clients, args.seconds, read, contents).await?;
    Ok((all.len(), all.len() as f64 / elapsed, all))
}

//! Local 5-member clusters of etcd, ZooKeeper and raftfs on 127.0.0.1, each with its data on
//! disk under one directory and each member's output in a log file: start, wait until healthy,
//! stop (SIGTERM, SIGKILL after a grace period) and delete the data.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::bench::load::Target;
use crate::local_cluster::{LocalCluster, stop_all};

/// Members per cluster.
pub const MEMBERS: u16 = 5;

/// How often a starting cluster is asked whether it is healthy.
const HEALTH_POLL: Duration = Duration::from_millis(100);

/// How long one health probe (an etcdctl run, a ZooKeeper `srvr`) may take.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// Where and how to start the clusters.
#[derive(Debug, Clone)]
pub struct Setup {
    /// Each system's data go in a directory of its own under this one.
    pub work_dir: PathBuf,
    /// Member logs, `<system>-<id>.log`; kept after the data are deleted.
    pub log_dir: PathBuf,
    /// First port; each system has its own range above it (see [`ports`]).
    pub base_port: u16,
    /// The etcd server.
    pub etcd: PathBuf,
    /// etcd's client, for health checks and to find the leader (stopped last).
    pub etcdctl: PathBuf,
    /// The Java runtime for ZooKeeper.
    pub java: PathBuf,
    /// ZooKeeper's class path.
    pub zookeeper_classpath: String,
    /// ZooKeeper's maximum heap, as `-Xmx` takes it (`512m`).
    pub zookeeper_heap: String,
    /// How long a cluster may take to become healthy.
    pub start_timeout: Duration,
}

/// A system's ports for member `id` (1-based): client, peer, and a third (ZooKeeper's election
/// port, raftfs's status port; 0 for etcd).
///
/// etcd uses base+0.. (clients) and base+10.. (peers); ZooKeeper base+100.., base+110..
/// (quorum) and base+120.. (election); raftfs's local cluster starts its clients at base+2000,
/// so its peers sit at base+3000.. and its status ports at base+1000...
pub fn ports(system: Target, base: u16, id: u16) -> anyhow::Result<(u16, u16, u16)> {
    let offset = |n: u16| {
        base.checked_add(n + id - 1)
            .context("port out of range: lower --base-port")
    };
    match system {
        Target::Etcd => Ok((offset(0)?, offset(10)?, 0)),
        Target::Zookeeper => Ok((offset(100)?, offset(110)?, offset(120)?)),
        Target::Raftfs => crate::local_cluster::member_ports(raftfs_base(base)?, u64::from(id)),
    }
}

/// raftfs's first client port: the base of its local cluster.
fn raftfs_base(base: u16) -> anyhow::Result<u16> {
    base.checked_add(RAFTFS_OFFSET)
        .context("port out of range: lower --base-port")
}

/// raftfs's first client port above the base.
const RAFTFS_OFFSET: u16 = 2000;

/// The name of `system` in file names and reports.
pub fn name(system: Target) -> &'static str {
    match system {
        Target::Raftfs => "raftfs",
        Target::Etcd => "etcd",
        Target::Zookeeper => "zookeeper",
    }
}

/// A running cluster. Dropping it stops the members and deletes their data.
#[derive(Debug)]
pub struct Cluster {
    /// The system.
    pub system: Target,
    /// Client endpoints (`127.0.0.1:PORT`), member 1 first.
    pub endpoints: Vec<String>,
    /// How long it took from the first spawn until the cluster was healthy.
    pub start_time: Duration,
    /// etcd's client, to find the leader when stopping.
    etcdctl: PathBuf,
    data_dir: PathBuf,
    members: Members,
}

#[derive(Debug)]
enum Members {
    /// etcd or ZooKeeper: one child process per member.
    Processes(Vec<Child>),
    /// raftfs: the local cluster of `raftfs cluster` and the other benchmarks.
    Raftfs(LocalCluster),
}

impl Cluster {
    /// The members' process ids.
    pub fn pids(&self) -> Vec<u32> {
        match &self.members {
            Members::Processes(children) => children.iter().map(Child::id).collect(),
            Members::Raftfs(local) => (1..=u64::from(MEMBERS))
                .filter_map(|id| local.pid(id))
                .collect(),
        }
    }

    /// Checks that every member still runs (a member that exited makes every figure after it
    /// meaningless).
    pub fn check_running(&mut self, log_dir: &Path) -> anyhow::Result<()> {
        let exited = match &mut self.members {
            Members::Processes(children) => children
                .iter_mut()
                .position(|child| matches!(child.try_wait(), Ok(Some(_)))),
            // LocalCluster keeps its children to itself; an exited one is a zombie until reaped.
            Members::Raftfs(local) => (1..=u64::from(MEMBERS))
                .position(|id| !local.pid(id).is_some_and(super::proc::is_running)),
        };
        match exited {
            Some(i) => bail!(
                "{} member {} exited; see {}",
                name(self.system),
                i + 1,
                log_path(log_dir, self.system, i as u16 + 1).display()
            ),
            None => Ok(()),
        }
    }

    /// Stops the members (SIGTERM, then SIGKILL after a grace period) and deletes their data.
    pub fn stop(mut self) -> anyhow::Result<()> {
        self.shutdown()
    }

    fn shutdown(&mut self) -> anyhow::Result<()> {
        match &mut self.members {
            // Stopped already (by `stop`, before the drop).
            Members::Processes(children) if children.is_empty() => {}
            Members::Processes(children) => {
                // The leader last: an etcd leader asked to stop first hands its leadership to a
                // live follower, and when the others stop at the same time it waits for a
                // successor that cannot win, until it is killed. Alone, it has nobody to hand
                // over to and stops at once.
                let leader = match self.system {
                    Target::Etcd => etcd_leader(&self.etcdctl, &self.endpoints),
                    _ => None,
                };
                let mut last = leader
                    .filter(|&i| i < children.len())
                    .map(|i| children.remove(i));
                stop_all(children);
                stop_all(last.as_mut().map(std::slice::from_mut).unwrap_or_default());
                children.clear();
            }
            Members::Raftfs(local) => local.stop_all(),
        }
        match std::fs::remove_dir_all(&self.data_dir) {
            Err(err) if err.kind() != std::io::ErrorKind::NotFound => {
                Err(err).with_context(|| format!("cannot delete {}", self.data_dir.display()))
            }
            _ => Ok(()),
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if let Err(err) = self.shutdown() {
            eprintln!("raftfs bench compare: {err:#}");
        }
    }
}

/// Member `id`'s log file.
pub fn log_path(log_dir: &Path, system: Target, id: u16) -> PathBuf {
    log_dir.join(format!("{}-{id}.log", name(system)))
}

/// Opens member `id`'s log file, for both its stdout and its stderr.
fn log_files(log_dir: &Path, system: Target, id: u16) -> anyhow::Result<(Stdio, Stdio)> {
    let path = log_path(log_dir, system, id);
    let file = File::create(&path).with_context(|| format!("cannot create {}", path.display()))?;
    let copy = file
        .try_clone()
        .with_context(|| format!("cannot reopen {}", path.display()))?;
    Ok((Stdio::from(file), Stdio::from(copy)))
}

/// Starts a 5-member cluster of `system` and waits until it is healthy.
pub async fn start(system: Target, setup: &Setup) -> anyhow::Result<Cluster> {
    let data_dir = setup.work_dir.join(name(system));
    // A previous run killed before it cleaned up leaves its data; start afresh.
    let _ = std::fs::remove_dir_all(&data_dir);
    std::fs::create_dir_all(&data_dir)
        .with_context(|| format!("cannot create {}", data_dir.display()))?;
    std::fs::create_dir_all(&setup.log_dir)
        .with_context(|| format!("cannot create {}", setup.log_dir.display()))?;
    let started = Instant::now();
    let mut endpoints = Vec::new();
    for id in 1..=MEMBERS {
        endpoints.push(format!(
            "127.0.0.1:{}",
            ports(system, setup.base_port, id)?.0
        ));
    }
    let members = match system {
        Target::Raftfs => {
            let base = raftfs_base(setup.base_port)?;
            let mut local = LocalCluster::create(&data_dir, u64::from(MEMBERS), base)?;
            for id in 1..=MEMBERS {
                local.start(u64::from(id), log_files(&setup.log_dir, system, id)?.1)?;
            }
            Members::Raftfs(local)
        }
        Target::Etcd | Target::Zookeeper => Members::Processes(Vec::new()),
    };
    // From here on, the guard stops whatever has started if anything below fails.
    let mut cluster = Cluster {
        system,
        endpoints,
        start_time: Duration::ZERO,
        etcdctl: setup.etcdctl.clone(),
        data_dir,
        members,
    };
    for id in 1..=MEMBERS {
        let child = match system {
            Target::Etcd => spawn_etcd(setup, &cluster.data_dir, id)?,
            Target::Zookeeper => spawn_zookeeper(setup, &cluster.data_dir, id)?,
            Target::Raftfs => break,
        };
        if let Members::Processes(children) = &mut cluster.members {
            children.push(child);
        }
    }
    let logs = || {
        format!(
            "member logs: {}",
            log_path(&setup.log_dir, system, 1)
                .with_file_name(format!("{}-*.log", name(system)))
                .display()
        )
    };
    wait_healthy(&mut cluster, setup)
        .await
        .with_context(|| format!("{} did not come up ({})", name(system), logs()))?;
    cluster.start_time = started.elapsed();
    Ok(cluster)
}

/// Polls the cluster's health until it is healthy or the start timeout passes.
async fn wait_healthy(cluster: &mut Cluster, setup: &Setup) -> anyhow::Result<()> {
    if let Members::Raftfs(local) = &cluster.members {
        // settled_leader has its own deadline and poll.
        local.settled_leader().await?;
        return Ok(());
    }
    let deadline = Instant::now() + setup.start_timeout;
    loop {
        cluster.check_running(&setup.log_dir)?;
        let healthy = match cluster.system {
            Target::Etcd => etcd_healthy(setup, &cluster.endpoints).await,
            _ => zookeeper_healthy(&cluster.endpoints).await,
        };
        let Err(err) = healthy else {
            return Ok(());
        };
        if Instant::now() > deadline {
            bail!("not healthy after {:?}: {err:#}", setup.start_timeout);
        }
        tokio::time::sleep(HEALTH_POLL).await;
    }
}

/// Starts etcd member `id` with etcd's defaults, but for the addresses and the data directory.
fn spawn_etcd(setup: &Setup, data_dir: &Path, id: u16) -> anyhow::Result<Child> {
    let (client, peer, _) = ports(Target::Etcd, setup.base_port, id)?;
    let mut initial = Vec::new();
    for other in 1..=MEMBERS {
        let (_, peer, _) = ports(Target::Etcd, setup.base_port, other)?;
        initial.push(format!("m{other}=http://127.0.0.1:{peer}"));
    }
    let (stdout, stderr) = log_files(&setup.log_dir, Target::Etcd, id)?;
    Command::new(&setup.etcd)
        .arg(format!("--name=m{id}"))
        .arg(format!(
            "--data-dir={}",
            data_dir.join(format!("m{id}")).display()
        ))
        .arg(format!("--listen-client-urls=http://127.0.0.1:{client}"))
        .arg(format!("--advertise-client-urls=http://127.0.0.1:{client}"))
        .arg(format!("--listen-peer-urls=http://127.0.0.1:{peer}"))
        .arg(format!(
            "--initial-advertise-peer-urls=http://127.0.0.1:{peer}"
        ))
        .arg(format!("--initial-cluster={}", initial.join(",")))
        .arg("--initial-cluster-token=raftfs-bench-compare")
        .arg("--initial-cluster-state=new")
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(stderr)
        .spawn()
        .with_context(|| {
            format!(
                "cannot run {} (Debian's etcd-server; bench/compare.sh installs it)",
                setup.etcd.display()
            )
        })
}

/// Whether every etcd member answers `etcdctl endpoint health` (a quorum read through each).
async fn etcd_healthy(setup: &Setup, endpoints: &[String]) -> anyhow::Result<()> {
    let mut command = tokio::process::Command::new(&setup.etcdctl);
    command
        .env("ETCDCTL_API", "3")
        .arg(format!("--endpoints={}", endpoints.join(",")))
        .arg(format!("--command-timeout={}ms", PROBE_TIMEOUT.as_millis()))
        .arg("endpoint")
        .arg("health")
        .stdin(Stdio::null())
        .kill_on_drop(true);
    let output = tokio::time::timeout(PROBE_TIMEOUT * 2, command.output())
        .await
        .context("etcdctl endpoint health hung")?
        .with_context(|| {
            format!(
                "cannot run {} (Debian's etcd-client; bench/compare.sh installs it)",
                setup.etcdctl.display()
            )
        })?;
    if output.status.success() {
        return Ok(());
    }
    let text = String::from_utf8_lossy(&output.stderr);
    bail!(
        "etcdctl endpoint health: {}",
        text.lines().last().unwrap_or("failed")
    )
}

/// The index in `endpoints` of the etcd member that leads now, by `etcdctl endpoint status`.
fn etcd_leader(etcdctl: &Path, endpoints: &[String]) -> Option<usize> {
    let output = Command::new(etcdctl)
        .env("ETCDCTL_API", "3")
        .arg(format!("--endpoints={}", endpoints.join(",")))
        .arg(format!("--command-timeout={}ms", PROBE_TIMEOUT.as_millis()))
        .args(["endpoint", "status", "--write-out=json"])
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()?;
    etcd_leader_in(&String::from_utf8_lossy(&output.stdout), endpoints)
}

/// The index in `endpoints` of the leader in `etcdctl endpoint status --write-out=json`'s
/// answer: the endpoint whose member id is the leader's.
pub fn etcd_leader_in(status: &str, endpoints: &[String]) -> Option<usize> {
    let status: serde_json::Value = serde_json::from_str(status).ok()?;
    let leader = status.as_array()?.iter().find(|member| {
        let id = member["Status"]["header"]["member_id"].as_u64();
        id.is_some() && id == member["Status"]["leader"].as_u64()
    })?;
    let endpoint = leader["Endpoint"].as_str()?;
    endpoints.iter().position(|e| e == endpoint)
}

/// The configuration of ZooKeeper member `id`: ZooKeeper's defaults (forceSync=yes,
/// tickTime 2000, initLimit 10, syncLimit 5) in a quorum of five, with loopback addresses.
pub fn zookeeper_config(base: u16, data_dir: &Path, id: u16) -> anyhow::Result<String> {
    let (client, _, _) = ports(Target::Zookeeper, base, id)?;
    let mut text = format!(
        "# Written by `raftfs bench compare`.\n\
         tickTime=2000\n\
         initLimit=10\n\
         syncLimit=5\n\
         dataDir={}\n\
         clientPort={client}\n\
         clientPortAddress=127.0.0.1\n\
         standaloneEnabled=false\n\
         # The admin server's port (8080) would collide between members; srvr is all the\n\
         # benchmark asks, and it is on the four-letter-word list by default.\n\
         admin.enableServer=false\n\
         # Every client connects from 127.0.0.1, so the default of 60 connections per address\n\
         # would cap the test at 60 clients per member, a limit of the loopback set-up only.\n\
         maxClientCnxns=0\n",
        data_dir.display()
    );
    for other in 1..=MEMBERS {
        let (_, quorum, election) = ports(Target::Zookeeper, base, other)?;
        text.push_str(&format!("server.{other}=127.0.0.1:{quorum}:{election}\n"));
    }
    Ok(text)
}

/// Writes ZooKeeper member `id`'s configuration and myid file and starts its JVM.
fn spawn_zookeeper(setup: &Setup, data_dir: &Path, id: u16) -> anyhow::Result<Child> {
    let dir = data_dir.join(format!("m{id}"));
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let myid = dir.join("myid");
    std::fs::write(&myid, format!("{id}\n"))
        .with_context(|| format!("cannot write {}", myid.display()))?;
    let config = dir.join("zoo.cfg");
    std::fs::write(&config, zookeeper_config(setup.base_port, &dir, id)?)
        .with_context(|| format!("cannot write {}", config.display()))?;
    let (stdout, stderr) = log_files(&setup.log_dir, Target::Zookeeper, id)?;
    Command::new(&setup.java)
        .arg(format!("-Xmx{}", setup.zookeeper_heap))
        .arg("-cp")
        .arg(&setup.zookeeper_classpath)
        .arg("org.apache.zookeeper.server.quorum.QuorumPeerMain")
        .arg(&config)
        .current_dir(&dir)
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(stderr)
        .spawn()
        .with_context(|| {
            format!(
                "cannot run {} for ZooKeeper (bench/compare.sh installs Debian's zookeeper)",
                setup.java.display()
            )
        })
}

/// Whether every ZooKeeper member serves, as leader or follower, with exactly one leader.
async fn zookeeper_healthy(endpoints: &[String]) -> anyhow::Result<()> {
    let mut leaders = 0;
    for endpoint in endpoints {
        let answer = tokio::time::timeout(PROBE_TIMEOUT, four_letter_word(endpoint, b"srvr"))
            .await
            .with_context(|| format!("{endpoint}: srvr timed out"))??;
        match zookeeper_mode(&answer) {
            Some("leader") => leaders += 1,
            Some("follower") => {}
            _ => bail!(
                "{endpoint}: {}",
                answer.lines().next().unwrap_or("no answer to srvr")
            ),
        }
    }
    if leaders != 1 {
        bail!("{leaders} leaders");
    }
    Ok(())
}

/// The `Mode:` line of a `srvr` answer.
pub fn zookeeper_mode(srvr: &str) -> Option<&str> {
    srvr.lines()
        .find_map(|line| line.strip_prefix("Mode:"))
        .map(str::trim)
}

/// Sends a four-letter word and reads the answer until the server closes the connection.
async fn four_letter_word(endpoint: &str, word: &[u8]) -> anyhow::Result<String> {
    let mut stream = tokio::net::TcpStream::connect(endpoint)
        .await
        .with_context(|| format!("cannot connect to {endpoint}"))?;
    stream.write_all(word).await?;
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).await?;
    Ok(String::from_utf8_lossy(&answer).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_port_ranges_do_not_overlap() {
        let mut all = std::collections::BTreeSet::new();
        for system in [Target::Etcd, Target::Zookeeper, Target::Raftfs] {
            for id in 1..=MEMBERS {
                let (a, b, c) = ports(system, 23000, id).unwrap();
                for port in [a, b, c].into_iter().filter(|&p| p != 0) {
                    assert!(all.insert(port), "{port} twice");
                }
            }
        }
        assert_eq!(all.len(), 5 * 2 + 5 * 3 + 5 * 3);
        assert!(ports(Target::Raftfs, 64000, 1).is_err());
    }

    #[test]
    fn zookeeper_config_names_every_member() {
        let text = zookeeper_config(23000, Path::new("/d/m2"), 2).unwrap();
        assert!(text.contains("dataDir=/d/m2\n"));
        assert!(text.contains("clientPort=23101\n"));
        assert!(text.contains("server.1=127.0.0.1:23110:23120\n"));
        assert!(text.contains("server.5=127.0.0.1:23114:23124\n"));
        assert!(!text.contains("forceSync"), "ZooKeeper's default fsync");
    }

    #[test]
    fn the_etcd_leader_is_the_member_whose_id_it_names() {
        let status = r#"[
            {"Endpoint":"127.0.0.1:23000","Status":{"header":{"member_id":9514856499961949633},"leader":17}},
            {"Endpoint":"127.0.0.1:23001","Status":{"header":{"member_id":17},"leader":17}}
        ]"#;
        let endpoints = ["127.0.0.1:23000".to_owned(), "127.0.0.1:23001".to_owned()];
        assert_eq!(etcd_leader_in(status, &endpoints), Some(1));
        assert_eq!(etcd_leader_in("", &endpoints), None);
        assert_eq!(etcd_leader_in(status, &endpoints[..1]), None);
    }

    #[test]
    fn srvr_mode() {
        let srvr = "Zookeeper version: 3.8.0\nLatency min/avg/max: 0/0.0/0\nMode: follower\nNode count: 5\n";
        assert_eq!(zookeeper_mode(srvr), Some("follower"));
        assert_eq!(
            zookeeper_mode("This ZooKeeper instance is not currently serving requests\n"),
            None
        );
    }
}

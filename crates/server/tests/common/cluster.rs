//! A cluster of real `raftfs serve` processes on loopback, with a fault-injecting proxy on every
//! directed peer link so a test can cut a member off from the others.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Child;
use std::time::Duration;

use bytes::Bytes;
use fs::Reply;
use server::client::Connection;
use tokio::net::TcpListener;

use super::proxy::LinkProxy;
use super::{free_port, name, spawn_raftfs_serve};

/// How long a cluster may take to elect a leader in tests: generous, CI machines are busy.
pub const LEADER_TIMEOUT: Duration = Duration::from_secs(30);

/// One member process and where it lives.
pub struct Member {
    child: Option<Child>,
    /// Client address (the text protocol).
    pub client: String,
    /// Status address (HTTP).
    pub http: String,
    /// Data directory.
    pub data_dir: PathBuf,
    config: PathBuf,
    id: usize,
}

/// A running cluster; members are numbered from 1.
pub struct TestCluster {
    _dir: tempfile::TempDir,
    members: BTreeMap<usize, Member>,
    proxies: BTreeMap<(usize, usize), LinkProxy>,
}

impl TestCluster {
    /// Starts `n` members and waits until each serves clients (not for a leader).
    pub async fn start(n: usize) -> TestCluster {
        TestCluster::start_with(n, "").await
    }

    /// Like [`TestCluster::start`], with `settings` (TOML top-level keys) added to the file.
    pub async fn start_with(n: usize, settings: &str) -> TestCluster {
        let dir = tempfile::tempdir().unwrap();
        let mut clients = BTreeMap::new();
        let mut peers = BTreeMap::new();
        let mut https = BTreeMap::new();
        for i in 1..=n {
            clients.insert(i, free_port());
            peers.insert(i, free_port());
            https.insert(i, free_port());
        }
        // A proxy for every directed link a -> b: a dials b through it.
        let mut proxies = BTreeMap::new();
        for a in 1..=n {
            for b in 1..=n {
                if a != b {
                    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
                    proxies.insert((a, b), LinkProxy::start(listener, peers[&b].clone()));
                }
            }
        }
        let mut members = BTreeMap::new();
        for i in 1..=n {
            // Member i's own entry names its real peer address (it binds it); every other
            // member's entry names the proxy of the link i -> j.
            let mut text = String::from("election_timeout_ms = 500\nheartbeat_interval_ms = 50\n");
            text.push_str(settings);
            for j in 1..=n {
                let peer = if i == j {
                    peers[&j].clone()
                } else {
                    proxies[&(i, j)].listen_addr.clone()
                };
                text.push_str(&format!(
                    "[[member]]\nid = {j}\npeer = \"{peer}\"\nclient = \"{}\"\nhttp = \"{}\"\n",
                    clients[&j], https[&j]
                ));
            }
            let config = dir.path().join(format!("member-{i}.toml"));
            std::fs::write(&config, text).unwrap();
            let mut member = Member {
                child: None,
                client: clients[&i].clone(),
                http: https[&i].clone(),
                data_dir: dir.path().join(format!("data-{i}")),
                config,
                id: i,
            };
            member.spawn();
            members.insert(i, member);
        }
        TestCluster {
            _dir: dir,
            members,
            proxies,
        }
    }

    /// Member ids.
    pub fn ids(&self) -> Vec<usize> {
        self.members.keys().copied().collect()
    }

    /// Every member's client address.
    pub fn client_addrs(&self) -> Vec<String> {
        self.members.values().map(|m| m.client.clone()).collect()
    }

    /// Member `i`'s client address.
    pub fn client_addr(&self, i: usize) -> String {
        self.members[&i].client.clone()
    }

    /// The member whose client address is `addr`.
    pub fn member_at(&self, addr: &str) -> Option<usize> {
        self.members
            .iter()
            .find(|(_, m)| m.client == addr)
            .map(|(i, _)| *i)
    }

    /// Waits until some running member answers as leader, and returns it.
    pub async fn leader(&self) -> usize {
        self.leader_among(&self.ids()).await
    }

    /// Waits until one of `candidates` answers a read itself (it leads).
    pub async fn leader_among(&self, candidates: &[usize]) -> usize {
        let deadline = tokio::time::Instant::now() + LEADER_TIMEOUT;
        loop {
            for &i in candidates {
                if !self.members[&i].is_running() {
                    continue;
                }
                if let Ok(Ok(mut conn)) = tokio::time::timeout(
                    Duration::from_secs(2),
                    Connection::connect(&self.members[&i].client),
                )
                .await
                {
                    let probe = fs::Command::Read {
                        name: name("leader-probe"),
                    };
                    if let Ok(Ok(Reply::FileNotFound | Reply::Contents { .. })) =
                        tokio::time::timeout(Duration::from_secs(3), conn.call(&probe)).await
                    {
                        return i;
                    }
                }
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "no leader among {candidates:?} within {LEADER_TIMEOUT:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until every member in `members` has applied the same index with the same store
    /// digest (and everything committed); returns their statuses, in `members` order.
    pub async fn wait_converged(&self, members: &[usize]) -> Vec<serde_json::Value> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            let mut statuses = Vec::new();
            for &i in members {
                statuses.push(self.status(i).await);
            }
            let first = &statuses[0];
            let same = statuses.iter().all(|s| {
                s["applied_index"] == first["applied_index"]
                    && s["store_digest"] == first["store_digest"]
                    && s["commit_index"] == s["applied_index"]
            });
            if same {
                return statuses;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "members did not converge: {statuses:#?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Member `i`'s `/status`, as JSON.
    pub async fn status(&self, i: usize) -> serde_json::Value {
        super::http_status(&self.members[&i].http).await
    }

    /// SIGKILLs member `i`.
    pub fn kill9(&mut self, i: usize) {
        self.members.get_mut(&i).unwrap().kill9();
    }

    /// Restarts member `i` on its data directory and waits until it serves clients.
    pub fn restart(&mut self, i: usize) {
        self.members.get_mut(&i).unwrap().spawn();
    }

    /// Whether member `i` is running.
    pub fn is_running(&self, i: usize) -> bool {
        self.members[&i].is_running()
    }

    /// Cuts member `i` off from every other member, both directions.
    pub fn isolate(&self, i: usize) {
        for ((a, b), proxy) in &self.proxies {
            if *a == i || *b == i {
                proxy.cut();
            }
        }
    }

    /// Restores every link.
    pub fn heal_all(&self) {
        for proxy in self.proxies.values() {
            proxy.heal();
        }
    }

    /// Reads `file` directly from member `i` (which must lead), for checks.
    pub async fn read_from(&self, i: usize, file: &str) -> Reply {
        let mut conn = Connection::connect(&self.members[&i].client).await.unwrap();
        conn.call(&fs::Command::Read { name: name(file) })
            .await
            .unwrap()
    }
}

impl Member {
    fn spawn(&mut self) {
        assert!(self.child.is_none(), "member {} already running", self.id);
        let args: Vec<std::ffi::OsString> = vec![
            "--config".into(),
            self.config.clone().into(),
            "--id".into(),
            self.id.to_string().into(),
            "--data-dir".into(),
            self.data_dir.clone().into(),
        ];
        let (child, _) = spawn_raftfs_serve(&args);
        self.child = Some(child);
    }

    fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn is_running(&self) -> bool {
        self.child.is_some()
    }
}

impl Drop for Member {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// Content that names the file it was written to, so a read proves which write it saw.
pub fn content_for(file: &str, seq: u64) -> Bytes {
    Bytes::from(format!("{file}#{seq}"))
}

//! A cluster of real `raftfs serve` processes on loopback, with a fault-injecting proxy in front
//! of every member's peer port (the address the configuration names for it; the member itself
//! listens behind it, `--peer-listen`) so a test can cut a member off from the others.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Child;
use std::time::Duration;

use bytes::Bytes;
use client::Connection;
use fs::Reply;
use tokio::net::TcpListener;

use super::proxy::IngressProxy;
use super::{free_port, name, spawn_raftfs_serve_skewed};

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
    /// Where it listens for peers (behind its proxy).
    peer_listen: String,
    /// Its clocks' offset from the machine's, in seconds (libfaketime).
    skew_s: i64,
    /// The members' client addresses to `--join`, for a member added after the start.
    join: Option<String>,
    /// The peer address a joining member advertises (its proxy's).
    advertised_peer: Option<String>,
    /// More `raftfs serve` flags, from [`TestCluster::set_serve_args`].
    extra_args: Vec<String>,
    id: usize,
}

/// A running cluster; members are numbered from 1.
pub struct TestCluster {
    _dir: tempfile::TempDir,
    members: BTreeMap<usize, Member>,
    proxies: BTreeMap<usize, IngressProxy>,
}

impl TestCluster {
    /// Starts `n` members and waits until each serves clients (not for a leader).
    pub async fn start(n: usize) -> TestCluster {
        TestCluster::start_with(n, "").await
    }

    /// Like [`TestCluster::start`], with `settings` (TOML top-level keys) added to the file; if
    /// they set `election_timeout_ms` they must set `heartbeat_interval_ms` too.
    pub async fn start_with(n: usize, settings: &str) -> TestCluster {
        TestCluster::start_skewed(n, settings, &[]).await
    }

    /// Like [`TestCluster::start_with`], member `i`'s clocks `skews[i - 1]` seconds off (0
    /// past the end of `skews`).
    pub async fn start_skewed(n: usize, settings: &str, skews: &[i64]) -> TestCluster {
        let dir = tempfile::tempdir().unwrap();
        let mut clients = BTreeMap::new();
        let mut peers = BTreeMap::new();
        let mut https = BTreeMap::new();
        for i in 1..=n {
            clients.insert(i, free_port());
            peers.insert(i, free_port());
            https.insert(i, free_port());
        }
        // A proxy in front of every member: the others dial it through that.
        let mut proxies = BTreeMap::new();
        for j in 1..=n {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            proxies.insert(j, IngressProxy::start(listener, peers[&j].clone()));
        }
        // One cluster file for all (as in production): each member's peer address is its
        // proxy's; the member listens on its real address behind it.
        // Fast elections unless `settings` chooses its own timing.
        let mut text = String::new();
        if !settings.contains("election_timeout_ms") {
            text.push_str("election_timeout_ms = 500\nheartbeat_interval_ms = 50\n");
        }
        text.push_str(settings);
        for j in 1..=n {
            text.push_str(&format!(
                "[[member]]\nid = {j}\npeer = \"{}\"\nclient = \"{}\"\nhttp = \"{}\"\n",
                proxies[&j].listen_addr, clients[&j], https[&j]
            ));
        }
        let config = dir.path().join("cluster.toml");
        std::fs::write(&config, text).unwrap();
        // The default [tls] table names certs/ beside the cluster file.
        let ids: Vec<u64> = (1..=n as u64).collect();
        raftfs::certs::ensure(&dir.path().join("certs"), &ids, "raftfs").unwrap();
        let mut members = BTreeMap::new();
        for i in 1..=n {
            let mut member = Member {
                child: None,
                client: clients[&i].clone(),
                http: https[&i].clone(),
                data_dir: dir.path().join(format!("data-{i}")),
                config: config.clone(),
                peer_listen: peers[&i].clone(),
                skew_s: skews.get(i - 1).copied().unwrap_or(0),
                join: None,
                advertised_peer: None,
                extra_args: Vec::new(),
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

    /// Starts member `id`, not in the cluster file, with `serve --join`: it waits until a
    /// membership change adds it. Returns its (peer, client, http) addresses to add it with.
    pub async fn start_joiner(&mut self, id: usize) -> (String, String, String) {
        let (peer, client, http) = (free_port(), free_port(), free_port());
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let proxy = IngressProxy::start(listener, peer.clone());
        let advertised = proxy.listen_addr.clone();
        self.proxies.insert(id, proxy);
        let dir = self._dir.path();
        raftfs::certs::ensure(&dir.join("certs"), &[id as u64], "raftfs").unwrap();
        let mut member = Member {
            child: None,
            client: client.clone(),
            http: http.clone(),
            data_dir: dir.join(format!("data-{id}")),
            config: dir.join("cluster.toml"),
            peer_listen: peer,
            skew_s: 0,
            join: Some(self.client_addrs().join(",")),
            advertised_peer: Some(advertised.clone()),
            extra_args: Vec::new(),
            id,
        };
        member.spawn();
        self.members.insert(id, member);
        (advertised, client, http)
    }

    /// Stops member `i` with SIGTERM (a graceful stop) and waits for it to exit.
    pub fn terminate(&mut self, i: usize) {
        self.members.get_mut(&i).unwrap().terminate();
    }

    /// Where member `i` really listens for peers (behind its proxy).
    pub fn peer_listen(&self, i: usize) -> String {
        self.members[&i].peer_listen.clone()
    }

    /// Member `i`'s process id, while it runs.
    pub fn pid(&self, i: usize) -> Option<u32> {
        self.members[&i].child.as_ref().map(Child::id)
    }

    /// The cluster's CA and member certificates.
    pub fn certs_dir(&self) -> PathBuf {
        self._dir.path().join("certs")
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

    /// Member `i`'s status address (HTTP).
    pub fn http_addr(&self, i: usize) -> String {
        self.members[&i].http.clone()
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

    /// Member `i`'s data directory.
    pub fn data_dir(&self, i: usize) -> PathBuf {
        self.members[&i].data_dir.clone()
    }

    /// Flags added to member `i`'s `raftfs serve` from its next (re)start on.
    pub fn set_serve_args(&mut self, i: usize, args: &[&str]) {
        self.members.get_mut(&i).unwrap().extra_args = args.iter().map(|a| a.to_string()).collect();
    }

    /// Whether member `i` is running.
    pub fn is_running(&self, i: usize) -> bool {
        self.members[&i].is_running()
    }

    /// Cuts member `i` off from every other member, both directions.
    pub fn isolate(&self, i: usize) {
        for (&j, proxy) in &self.proxies {
            if j == i {
                for &k in self.proxies.keys() {
                    proxy.cut_from(k as u64);
                }
            } else {
                proxy.cut_from(i as u64);
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
        let mut args: Vec<std::ffi::OsString> = match &self.join {
            None => vec!["--config".into(), self.config.clone().into()],
            Some(join) => vec![
                "--join".into(),
                join.into(),
                "--peer".into(),
                self.advertised_peer.clone().unwrap_or_default().into(),
                "--client".into(),
                self.client.clone().into(),
                "--http".into(),
                self.http.clone().into(),
                "--certs".into(),
                self.config.with_file_name("certs").into(),
            ],
        };
        args.extend([
            "--id".into(),
            self.id.to_string().into(),
            "--data-dir".into(),
            self.data_dir.clone().into(),
            "--peer-listen".into(),
            self.peer_listen.clone().into(),
            "--peer-dial-from".into(),
            super::proxy::dial_from(self.id).into(),
        ]);
        args.extend(self.extra_args.iter().map(Into::into));
        let (child, _) = spawn_raftfs_serve_skewed(&args, self.skew_s);
        self.child = Some(child);
    }

    fn terminate(&mut self) {
        if let Some(mut child) = self.child.take() {
            let pid = nix::unistd::Pid::from_raw(child.id() as i32);
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
            let _ = child.wait();
        }
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

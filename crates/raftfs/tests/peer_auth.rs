//! Peer authentication: a process that reaches a member's peer port without a certificate of
//! the cluster, or with another member's, is refused before any Raft message it sends reaches
//! the core, however well-formed: the forged heartbeat of term u64::MAX that would brick a
//! cluster without authentication changes nothing.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests fail loudly on purpose.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::cluster::TestCluster;
use common::name;
use raft::{LogIndex, NodeId, Term};
use replica::PeerMessage;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

/// How long a refused connection may take to be closed by the member.
const REFUSAL_TIMEOUT: Duration = Duration::from_secs(10);

/// A hello as member `id` of cluster `cluster` says it, then a heartbeat of term u64::MAX
/// claiming `id` leads, framed as the transport frames messages.
fn forged_hello_and_heartbeat(id: u64, cluster: &str) -> Vec<u8> {
    let mut out = b"RAFTFS04".to_vec();
    out.extend_from_slice(&id.to_be_bytes());
    out.push(cluster.len() as u8);
    out.extend_from_slice(cluster.as_bytes());
    let addr = b"127.0.0.1:1";
    out.extend_from_slice(&(addr.len() as u16).to_be_bytes());
    out.extend_from_slice(addr);
    let msg = PeerMessage::Raft(raft::Message::Heartbeat(raft::Heartbeat {
        term: Term(u64::MAX),
        leader: NodeId(id),
        commit: LogIndex(u64::MAX),
        read_round: 0,
    }))
    .encode();
    for _ in 0..10 {
        out.extend_from_slice(&(msg.len() as u32).to_be_bytes());
        out.extend_from_slice(&msg);
    }
    out
}

/// Sends `bytes` and waits for the member to close the connection (an error counts: a TLS
/// alert, a reset), failing if it stays open.
async fn expect_closed<S: AsyncRead + AsyncWrite + Unpin>(mut stream: S, bytes: &[u8]) {
    let _ = stream.write_all(bytes).await;
    let _ = stream.flush().await;
    let mut buf = [0u8; 256];
    let closed = tokio::time::timeout(REFUSAL_TIMEOUT, async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {} // The member never writes on an inbound peer link; keep reading.
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "the member kept the forged connection open");
}

/// A TLS client trusting the cluster CA (an attacker can read it; it is public), presenting
/// `cert` and `key` from `dir`.
fn tls_connector(
    ca: &std::path::Path,
    cert: &std::path::Path,
    key: &std::path::Path,
) -> tokio_rustls::TlsConnector {
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(ca).unwrap() {
        roots.add(c.unwrap()).unwrap();
    }
    let chain: Vec<_> = CertificateDer::pem_file_iter(cert)
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let key = PrivateKeyDer::from_pem_file(key).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key)
        .unwrap();
    tokio_rustls::TlsConnector::from(Arc::new(config))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_peers_without_the_right_certificate_are_refused_and_change_nothing() {
    let cluster = TestCluster::start(3).await;
    let leader = cluster.leader().await;
    let mut client = client::Client::new(cluster.client_addrs());
    let before = write(&mut client, "before").await;
    let terms_before: Vec<u64> = terms(&cluster).await;
    let target = 1;
    let peer_port = cluster.peer_listen(target);
    let certs = cluster.certs_dir();

    // 1. Plaintext, as a process without any certificate would speak: no TLS, no entry.
    let tcp = TcpStream::connect(&peer_port).await.unwrap();
    expect_closed(tcp, &forged_hello_and_heartbeat(2, "raftfs")).await;

    // 2. A certificate for "member 2" from another CA (an impostor's own CA).
    let other = tempfile::tempdir().unwrap();
    raftfs::certs::generate(other.path(), &[2], "raftfs", &["localhost".into()]).unwrap();
    let (cert, key) = raftfs::certs::member_paths(other.path(), 2);
    let connector = tls_connector(&raftfs::certs::ca_path(&certs), &cert, &key);
    let server_name = ServerName::try_from(server::tls::member_name("raftfs", NodeId(1))).unwrap();
    let tcp = TcpStream::connect(&peer_port).await.unwrap();
    // (An error here is a refusal in the handshake itself.)
    if let Ok(tls) = connector.connect(server_name.clone(), tcp).await {
        expect_closed(tls, &forged_hello_and_heartbeat(2, "raftfs")).await;
    }

    // 3. Member 3's genuine certificate, claiming to be member 2.
    let (cert, key) = raftfs::certs::member_paths(&certs, 3);
    let connector = tls_connector(&raftfs::certs::ca_path(&certs), &cert, &key);
    let tcp = TcpStream::connect(&peer_port).await.unwrap();
    let tls = connector.connect(server_name.clone(), tcp).await.unwrap();
    expect_closed(tls, &forged_hello_and_heartbeat(2, "raftfs")).await;

    // 4. Member 3's certificate, as member 3, but of another cluster.
    let tcp = TcpStream::connect(&peer_port).await.unwrap();
    let tls = connector.connect(server_name, tcp).await.unwrap();
    expect_closed(tls, &forged_hello_and_heartbeat(3, "other")).await;

    // Nothing changed: the terms are what they were (give a forged heartbeat that got through
    // time to be applied), and the cluster still writes through the same leader.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let terms_after = terms(&cluster).await;
    assert_eq!(terms_after, terms_before, "a forged message moved a term");
    assert_eq!(cluster.leader().await, leader);
    let after = write(&mut client, "after").await;
    assert!(after > before);
}

/// Writes `content` to file `f` and returns its version.
async fn write(client: &mut client::Client, content: &str) -> u64 {
    let command = fs::Command::Write {
        name: name("f"),
        content: bytes::Bytes::from(content.to_owned()),
        exptime_s: 0,
    };
    match client.call(&command).await.unwrap() {
        fs::Reply::Written { version } => version,
        other => panic!("write answered {other:?}"),
    }
}

/// Every member's current term.
async fn terms(cluster: &TestCluster) -> Vec<u64> {
    let mut terms = Vec::new();
    for i in cluster.ids() {
        terms.push(cluster.status(i).await["term"].as_u64().unwrap());
    }
    terms
}

/// Connections a flood opens against one member's peer port.
const FLOOD_CONNECTIONS: usize = 2_000;

/// What a member may hold in memory (resident) while flooded: the store here is tiny, so this
/// is the runtime, the TLS state of the handshakes in flight and the socket buffers.
const FLOODED_RSS_BYTES_MAX: u64 = 256 << 20;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_peer_connections_costs_bounded_memory_and_clients_keep_being_served() {
    let cluster = TestCluster::start(3).await;
    let leader = cluster.leader().await;
    let mut client = client::Client::new(cluster.client_addrs());
    write(&mut client, "before").await;
    let peer_port = cluster.peer_listen(leader);
    // Half send nothing (a handshake that never starts), half send a few bytes of garbage.
    let mut flood = Vec::new();
    for i in 0..FLOOD_CONNECTIONS {
        match TcpStream::connect(&peer_port).await {
            Ok(mut tcp) => {
                if i % 2 == 1 {
                    let _ = tcp.write_all(b"\x16\x03\x01garbage").await;
                }
                flood.push(tcp);
            }
            Err(_) => break, // Our own descriptors ran out: the flood is as big as it gets.
        }
        if i % 200 == 0 {
            // Clients are served while the flood goes on.
            write(&mut client, &format!("during-{i}")).await;
        }
    }
    let rss = raftfs::bench::proc_status_kib(cluster.pid(leader).unwrap(), "VmRSS").unwrap() * 1024;
    eprintln!(
        "flooded leader: {} connections open against it, {} MiB resident",
        flood.len(),
        rss >> 20
    );
    assert!(
        rss < FLOODED_RSS_BYTES_MAX,
        "the flooded member holds {rss} bytes resident"
    );
    // The flood neither stopped a member nor moved the leader.
    write(&mut client, "after").await;
    assert_eq!(cluster.leader().await, leader);
    for i in cluster.ids() {
        assert!(cluster.pid(i).is_some() && cluster.status(i).await["term"].as_u64().is_some());
    }
    drop(flood);
}

//! TLS for peers (mutual, under the cluster's CA) and, optionally, for clients.
//!
//! Every member holds a certificate issued by the cluster CA for the name
//! `member-ID.CLUSTER.raftfs` (see [`member_name`]), made by `raftfs certs`. A member dialling
//! member 3 checks that the server's certificate is valid for member 3's name, and a member
//! accepting a connection checks that the client's certificate is valid for the id its hello
//! claims: a certificate proves one id of one cluster, and nothing else gets a connection
//! through. The same certificate, which also names the member's hosts, serves clients when
//! `client_tls` is on.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use raft::NodeId;
use rustls::RootCertStore;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::server::WebPkiClientVerifier;
use tokio::net::TcpStream;
use tokio_rustls::{TlsAcceptor, TlsConnector};

/// Cluster id used when none is given.
pub const CLUSTER_ID_DEFAULT: &str = "raftfs";

/// The TLS name a member's certificate carries: member `id` of cluster `cluster`.
pub fn member_name(cluster: &str, id: NodeId) -> String {
    format!("member-{}.{cluster}.raftfs", id.0)
}

/// Longest cluster id (one DNS label).
pub const CLUSTER_ID_BYTES_MAX: usize = 63;

/// Checks that `cluster` can be a cluster id: one DNS label of lowercase letters, digits and
/// inner hyphens, since it is part of every member's certificate name.
pub fn check_cluster_id(cluster: &str) -> Result<(), TlsError> {
    let ok = !cluster.is_empty()
        && cluster.len() <= CLUSTER_ID_BYTES_MAX
        && cluster
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !cluster.starts_with('-')
        && !cluster.ends_with('-');
    if ok {
        Ok(())
    } else {
        Err(TlsError::ClusterId(cluster.to_owned()))
    }
}

/// Why TLS could not be set up, or a peer was refused.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A PEM file could not be read or holds nothing usable.
    #[error("cannot read {what} from {path}: {message}")]
    File {
        /// What the file should hold.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// rustls refused the certificates or key.
    #[error("TLS setup: {0}")]
    Setup(String),
    /// Not a usable cluster id.
    #[error(
        "cluster id {0:?} must be 1 to 63 lowercase letters, digits and inner hyphens \
         (it is part of the members' certificate names)"
    )]
    ClusterId(String),
    /// The peer's certificate does not prove the id it claims.
    #[error("the certificate presented is not member {id}'s of cluster {cluster}")]
    NotThatMember {
        /// The id the peer claimed.
        id: u64,
        /// This node's cluster.
        cluster: String,
    },
}

/// Where a member's TLS material lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// The cluster CA's certificate (PEM).
    pub ca: PathBuf,
    /// This member's certificate (PEM), issued by the CA.
    pub cert: PathBuf,
    /// This member's private key (PEM).
    pub key: PathBuf,
}

/// The crypto provider: ring, the one rustls is built with here.
fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn setup(err: impl std::fmt::Display) -> TlsError {
    TlsError::Setup(err.to_string())
}

/// Reads every certificate in a PEM file.
pub fn read_certs(
    path: &Path,
    what: &'static str,
) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let file_error = |message: String| TlsError::File {
        what,
        path: path.to_owned(),
        message,
    };
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|err| file_error(err.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|err| file_error(err.to_string()))?;
    if certs.is_empty() {
        return Err(file_error("no certificate in the file".into()));
    }
    Ok(certs)
}

fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_file(path).map_err(|err| TlsError::File {
        what: "a private key",
        path: path.to_owned(),
        message: err.to_string(),
    })
}

/// Root store holding the CA certificates of `path`.
pub fn read_roots(path: &Path) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    for cert in read_certs(path, "the CA certificate")? {
        roots.add(cert).map_err(setup)?;
    }
    Ok(roots)
}

/// Mutual TLS between the members of one cluster.
#[derive(Clone)]
pub struct PeerTls {
    cluster: String,
    connector: TlsConnector,
    acceptor: TlsAcceptor,
}

impl std::fmt::Debug for PeerTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PeerTls")
            .field("cluster", &self.cluster)
            .finish_non_exhaustive()
    }
}

impl PeerTls {
    /// Loads the CA, this member's certificate and key. TLS 1.3 only: every member runs this
    /// code, so there is nothing older to talk to.
    pub fn load(files: &TlsFiles, cluster: &str) -> Result<PeerTls, TlsError> {
        check_cluster_id(cluster)?;
        let roots = Arc::new(read_roots(&files.ca)?);
        let chain = read_certs(&files.cert, "this member's certificate")?;
        let key = read_key(&files.key)?;
        let versions = &[&rustls::version::TLS13];
        let verifier = WebPkiClientVerifier::builder_with_provider(roots.clone(), provider())
            .build()
            .map_err(setup)?;
        let server = rustls::ServerConfig::builder_with_provider(provider())
            .with_protocol_versions(versions)
            .map_err(setup)?
            .with_client_cert_verifier(verifier)
            .with_single_cert(chain.clone(), key.clone_key())
            .map_err(setup)?;
        let client = rustls::ClientConfig::builder_with_provider(provider())
            .with_protocol_versions(versions)
            .map_err(setup)?
            .with_root_certificates(roots)
            .with_client_auth_cert(chain, key)
            .map_err(setup)?;
        Ok(PeerTls {
            cluster: cluster.to_owned(),
            connector: TlsConnector::from(Arc::new(client)),
            acceptor: TlsAcceptor::from(Arc::new(server)),
        })
    }

    /// Opens TLS to member `peer` over `tcp`, checking that the other end holds `peer`'s
    /// certificate.
    pub async fn connect(
        &self,
        tcp: TcpStream,
        peer: NodeId,
    ) -> std::io::Result<tokio_rustls::client::TlsStream<TcpStream>> {
        let name = ServerName::try_from(member_name(&self.cluster, peer))
            .map_err(|err| std::io::Error::new(std::io::ErrorKind::InvalidInput, err))?;
        self.connector.connect(name, tcp).await
    }

    /// Accepts TLS on `tcp`: the handshake fails unless the other end holds a certificate of
    /// the cluster CA (which member it proves is checked once its hello names one, by
    /// [`PeerTls::check_member`]).
    pub async fn accept(
        &self,
        tcp: TcpStream,
    ) -> std::io::Result<tokio_rustls::server::TlsStream<TcpStream>> {
        self.acceptor.accept(tcp).await
    }

    /// Checks that the client certificate of an accepted connection is member `id`'s.
    pub fn check_member(
        &self,
        stream: &tokio_rustls::server::TlsStream<TcpStream>,
        id: NodeId,
    ) -> Result<(), TlsError> {
        let refused = || TlsError::NotThatMember {
            id: id.0,
            cluster: self.cluster.clone(),
        };
        let (_, connection) = stream.get_ref();
        let cert = connection
            .peer_certificates()
            .and_then(|chain| chain.first())
            .ok_or_else(refused)?;
        let cert = webpki::EndEntityCert::try_from(cert).map_err(|_| refused())?;
        let name = ServerName::try_from(member_name(&self.cluster, id)).map_err(|_| refused())?;
        cert.verify_is_valid_for_subject_name(&name)
            .map_err(|_| refused())
    }
}

/// TLS for a member's client port: the member's certificate, no client certificates.
pub fn client_acceptor(files: &TlsFiles) -> Result<TlsAcceptor, TlsError> {
    let chain = read_certs(&files.cert, "this member's certificate")?;
    let key = read_key(&files.key)?;
    let config = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(setup)?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(setup)?;
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// TLS for a client of raftfs (the admin and bench tools, tests) trusting the CA in `ca`.
pub fn client_connector(ca: &Path) -> Result<TlsConnector, TlsError> {
    let config = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(setup)?
        .with_root_certificates(read_roots(ca)?)
        .with_no_client_auth();
    Ok(TlsConnector::from(Arc::new(config)))
}

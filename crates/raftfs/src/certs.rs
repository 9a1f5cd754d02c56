//! `raftfs certs`: a cluster CA and member certificates for mutual TLS between members.
//!
//! The directory it writes holds `ca.pem` and `ca-key.pem` (the cluster CA) and, per member,
//! `member-ID.pem` and `member-ID-key.pem`. A directory that already holds a CA keeps it, so
//! certificates for members added later come from the same CA: `raftfs certs --out DIR
//! --members 6`. Keep `ca-key.pem` off the members in production; they need only `ca.pem` and
//! their own pair.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Args;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};

use server::tls::{CLUSTER_ID_DEFAULT, check_cluster_id, member_name};

/// Hosts the member certificates name besides the member name, when none are given.
pub const HOSTS_DEFAULT: &str = "localhost,127.0.0.1";

/// Arguments of `raftfs certs`.
#[derive(Debug, Args)]
pub struct CertsArgs {
    /// Directory for the CA and member certificates (created if missing; a CA already in it is
    /// reused).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Ids of the members to issue certificates for.
    #[arg(long, value_name = "ID,...", value_delimiter = ',', required = true)]
    pub members: Vec<u64>,
    /// The cluster's id (the cluster file's `cluster_id`): part of every certificate's name,
    /// so a certificate of one cluster is refused by another even under a shared CA.
    #[arg(long, value_name = "ID", default_value = CLUSTER_ID_DEFAULT)]
    pub cluster_id: String,
    /// Host names and IP addresses the member certificates also name, for clients that speak
    /// TLS to the members (client_tls).
    #[arg(
        long,
        value_name = "HOST,...",
        value_delimiter = ',',
        default_value = HOSTS_DEFAULT
    )]
    pub hosts: Vec<String>,
}

/// Runs `raftfs certs`.
pub fn run(args: CertsArgs) -> anyhow::Result<()> {
    let written = generate(&args.out, &args.members, &args.cluster_id, &args.hosts)?;
    for path in written {
        println!("wrote {}", path.display());
    }
    Ok(())
}

/// Makes sure `dir` holds the CA and certificates of `members` of cluster `cluster` for
/// [`HOSTS_DEFAULT`], issuing only the missing ones (local clusters and tests).
pub fn ensure(dir: &Path, members: &[u64], cluster: &str) -> anyhow::Result<()> {
    let missing: Vec<u64> = members
        .iter()
        .copied()
        .filter(|&id| {
            let (cert, key) = member_paths(dir, id);
            !cert.exists() || !key.exists()
        })
        .collect();
    if missing.is_empty() && ca_path(dir).exists() {
        return Ok(());
    }
    let hosts: Vec<String> = HOSTS_DEFAULT.split(',').map(str::to_owned).collect();
    generate(dir, &missing, cluster, &hosts).map(drop)
}

/// The CA certificate's file in `dir`.
pub fn ca_path(dir: &Path) -> PathBuf {
    dir.join("ca.pem")
}

/// Member `id`'s certificate and key files in `dir`.
pub fn member_paths(dir: &Path, id: u64) -> (PathBuf, PathBuf) {
    (
        dir.join(format!("member-{id}.pem")),
        dir.join(format!("member-{id}-key.pem")),
    )
}

/// Writes (or reuses) the CA in `dir` and certificates for `members` of cluster `cluster`;
/// returns the files written.
pub fn generate(
    dir: &Path,
    members: &[u64],
    cluster: &str,
    hosts: &[String],
) -> anyhow::Result<Vec<PathBuf>> {
    check_cluster_id(cluster)?;
    anyhow::ensure!(
        !members.contains(&0),
        "member id 0 is reserved; ids start at 1"
    );
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let mut written = Vec::new();
    let ca_cert = ca_path(dir);
    let ca_key = dir.join("ca-key.pem");
    let ca_key_pair = if ca_cert.exists() && ca_key.exists() {
        KeyPair::from_pem(&read(&ca_key)?)
            .with_context(|| format!("{} is not a private key", ca_key.display()))?
    } else {
        let key = KeyPair::generate().context("cannot generate the CA key")?;
        let cert = ca_params()
            .self_signed(&key)
            .context("cannot sign the CA")?;
        write(&ca_cert, &cert.pem(), false)?;
        write(&ca_key, &key.serialize_pem(), true)?;
        written.extend([ca_cert.clone(), ca_key.clone()]);
        key
    };
    // The issuer is the CA's name and key: certificates signed by the same key under the same
    // name chain to the `ca.pem` written the first time.
    let issuer = Issuer::new(ca_params(), ca_key_pair);
    for &id in members {
        let name = member_name(cluster, raft::NodeId(id));
        let mut params = CertificateParams::default();
        params.distinguished_name.push(DnType::CommonName, &name);
        params.subject_alt_names.push(SanType::DnsName(
            name.clone().try_into().context("member name")?,
        ));
        for host in hosts {
            params.subject_alt_names.push(match host.parse::<IpAddr>() {
                Ok(ip) => SanType::IpAddress(ip),
                Err(_) => SanType::DnsName(
                    host.clone()
                        .try_into()
                        .with_context(|| format!("{host:?} is not a host name"))?,
                ),
            });
        }
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        let key = KeyPair::generate().context("cannot generate a member key")?;
        let cert = params
            .signed_by(&key, &issuer)
            .with_context(|| format!("cannot sign member {id}'s certificate"))?;
        let (cert_path, key_path) = member_paths(dir, id);
        write(&cert_path, &cert.pem(), false)?;
        write(&key_path, &key.serialize_pem(), true)?;
        written.extend([cert_path, key_path]);
    }
    Ok(written)
}

/// The CA's certificate parameters, the same every time (see [`generate`]).
fn ca_params() -> CertificateParams {
    let mut params = CertificateParams::default();
    params
        .distinguished_name
        .push(DnType::CommonName, "raftfs cluster CA");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params
}

fn read(path: &Path) -> anyhow::Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))
}

/// Writes `text` to `path`, readable by the owner only when it is a key.
fn write(path: &Path, text: &str, secret: bool) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mode = if secret { 0o600 } else { 0o644 };
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    file.write_all(text.as_bytes())
        .and_then(|()| file.sync_all())
        .with_context(|| format!("cannot write {}", path.display()))
}

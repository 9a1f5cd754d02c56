//! Clients over TLS (`--client-tls`): a client trusting the cluster CA is served; one that
//! speaks plaintext gets nothing and is closed, and the server goes on serving.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests fail loudly on purpose.

mod common;

use client::Connection;
use common::{Server, name};
use fs::{Command, Reply};

#[tokio::test]
async fn a_tls_client_is_served_and_a_plaintext_one_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let certs = dir.path().join("certs");
    let hosts = ["localhost".to_owned(), "127.0.0.1".to_owned()];
    raftfs::certs::generate(&certs, &[1], "raftfs", &hosts).unwrap();
    let certs_arg = certs.to_str().unwrap();
    let server = Server::start_with(
        &dir.path().join("data"),
        &["--certs", certs_arg, "--client-tls"],
    );
    let tls = server::tls::client_connector(&raftfs::certs::ca_path(&certs)).unwrap();

    let mut conn = Connection::connect_with(&server.addr, Some(&tls))
        .await
        .unwrap();
    let write = Command::Write {
        name: name("secret"),
        content: bytes::Bytes::from_static(b"over tls"),
        exptime_s: 0,
    };
    assert!(matches!(
        conn.call(&write).await.unwrap(),
        Reply::Written { .. }
    ));

    // Plaintext to a TLS port: the handshake fails, the connection closes, nothing is read.
    let mut plain = Connection::connect(&server.addr).await.unwrap();
    let read = Command::Read {
        name: name("secret"),
    };
    assert!(plain.call(&read).await.is_err());

    // The TLS client is still served, and sees its write.
    match conn.call(&read).await.unwrap() {
        Reply::Contents { content, .. } => assert_eq!(&content[..], b"over tls"),
        other => panic!("read answered {other:?}"),
    }
}

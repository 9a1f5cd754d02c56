//! etcd's side of the load generator: its v3 KV API through the etcd-client crate. Reads are
//! etcd's default linearizable ranges, cas a transaction comparing the key's mod revision, and
//! a file's version its mod revision.

use etcd_client::{Compare, CompareOp, KvClient, Txn, TxnOp, TxnOpResponse};

use super::slots::Backend;
use super::{Op, OpKind, Outcome};

/// One gRPC channel to the cluster (balanced over its endpoints).
#[derive(Clone)]
pub(super) struct Etcd {
    kv: KvClient,
}

fn failure(err: &etcd_client::Error) -> &'static str {
    match err {
        // gRPC's status codes (etcd-client does not re-export tonic's names).
        etcd_client::Error::GRpcStatus(status) => match status.code() as i32 {
            14 => "unavailable",
            4 => "timeout",
            _ => "grpc error",
        },
        etcd_client::Error::TransportError(_) | etcd_client::Error::IoError(_) => "io",
        _ => "etcd error",
    }
}

impl Backend for Etcd {
    async fn connect(endpoints: &[String]) -> anyhow::Result<Etcd> {
        let client = etcd_client::Client::connect(endpoints, None).await?;
        Ok(Etcd {
            kv: client.kv_client(),
        })
    }

    async fn run(
        &self,
        op: Op,
        key: &str,
        value: &[u8],
        _create: bool,
    ) -> Result<Outcome, &'static str> {
        let mut kv = self.kv.clone();
        let revision =
            |header: Option<&etcd_client::ResponseHeader>| header.map(|h| h.revision() as u64);
        match op.kind {
            OpKind::Write => {
                let put = kv.put(key, value, None).await.map_err(|e| failure(&e))?;
                Ok(Outcome::Ok(revision(put.header())))
            }
            OpKind::Read => {
                let got = kv.get(key, None).await.map_err(|e| failure(&e))?;
                Ok(match got.kvs().first() {
                    Some(found) => Outcome::Ok(Some(found.mod_revision() as u64)),
                    None => Outcome::NotFound,
                })
            }
            OpKind::Cas => {
                let txn = Txn::new()
                    .when([Compare::mod_revision(
                        key,
                        CompareOp::Equal,
                        op.version as i64,
                    )])
                    .and_then([TxnOp::put(key, value, None)])
                    .or_else([TxnOp::get(key, None)]);
                let done = kv.txn(txn).await.map_err(|e| failure(&e))?;
                if done.succeeded() {
                    return Ok(Outcome::Ok(revision(done.header())));
                }
                let current = done.op_responses().into_iter().find_map(|r| match r {
                    TxnOpResponse::Get(got) => {
                        Some(got.kvs().first().map(|kv| kv.mod_revision() as u64))
                    }
                    _ => None,
                });
                Ok(match current {
                    Some(Some(current)) => Outcome::Conflict(Some(current)),
                    _ => Outcome::NotFound,
                })
            }
            OpKind::Delete => {
                let deleted = kv.delete(key, None).await.map_err(|e| failure(&e))?;
                Ok(if deleted.deleted() > 0 {
                    Outcome::Ok(None)
                } else {
                    Outcome::NotFound
                })
            }
        }
    }
}

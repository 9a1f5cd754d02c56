//! ZooKeeper's side of the load generator, through the zookeeper-client crate: a file is the
//! znode `/KEY`, its version the znode's data version. A linearizable read is `sync` then
//! `getData` (ZooKeeper serves plain reads from the member's possibly stale copy); cas is
//! `setData` with the expected version; a write is `setData`, or `create` when the znode is
//! absent.

use zookeeper_client as zk;

use super::slots::Backend;
use super::{Op, OpKind, Outcome};

/// One ZooKeeper session (its requests are pipelined on one connection).
#[derive(Clone)]
pub(super) struct Zookeeper {
    client: zk::Client,
}

fn failure(err: &zk::Error) -> &'static str {
    match err {
        zk::Error::ConnectionLoss => "connection loss",
        zk::Error::SessionExpired => "session expired",
        zk::Error::Timeout => "timeout",
        _ => "zookeeper error",
    }
}

impl Zookeeper {
    async fn create(&self, path: &str, value: &[u8]) -> Result<Outcome, zk::Error> {
        let options = zk::CreateMode::Persistent.with_acls(zk::Acls::anyone_all());
        let (stat, _) = self.client.create(path, value, &options).await?;
        Ok(Outcome::Ok(Some(stat.version as u64)))
    }

    async fn write(&self, path: &str, value: &[u8], create: bool) -> Result<Outcome, zk::Error> {
        if create {
            match self.create(path, value).await {
                Err(zk::Error::NodeExists) => {}
                other => return other,
            }
        }
        match self.client.set_data(path, value, None).await {
            Ok(stat) => Ok(Outcome::Ok(Some(stat.version as u64))),
            Err(zk::Error::NoNode) => match self.create(path, value).await {
                // Another connection created it meanwhile: write over it.
                Err(zk::Error::NodeExists) => {
                    let stat = self.client.set_data(path, value, None).await?;
                    Ok(Outcome::Ok(Some(stat.version as u64)))
                }
                other => other,
            },
            Err(err) => Err(err),
        }
    }
}

impl Backend for Zookeeper {
    async fn connect(endpoints: &[String]) -> anyhow::Result<Zookeeper> {
        let client = zk::Client::connect(&endpoints.join(",")).await?;
        Ok(Zookeeper { client })
    }

    async fn run(
        &self,
        op: Op,
        key: &str,
        value: &[u8],
        create: bool,
    ) -> Result<Outcome, &'static str> {
        let path = format!("/{key}");
        let result = match op.kind {
            OpKind::Write => self.write(&path, value, create).await,
            OpKind::Read => match self.client.sync(&path).await {
                Ok(()) => match self.client.get_data(&path).await {
                    Ok((_, stat)) => Ok(Outcome::Ok(Some(stat.version as u64))),
                    Err(zk::Error::NoNode) => Ok(Outcome::NotFound),
                    Err(err) => Err(err),
                },
                Err(zk::Error::NoNode) => Ok(Outcome::NotFound),
                Err(err) => Err(err),
            },
            OpKind::Cas => {
                match self
                    .client
                    .set_data(&path, value, Some(op.version as i32))
                    .await
                {
                    Ok(stat) => Ok(Outcome::Ok(Some(stat.version as u64))),
                    // ZooKeeper does not say the current version: learn it with a read, as
                    // a client would before trying again.
                    Err(zk::Error::BadVersion) => match self.client.get_data(&path).await {
                        Ok((_, stat)) => Ok(Outcome::Conflict(Some(stat.version as u64))),
                        Err(zk::Error::NoNode) => Ok(Outcome::NotFound),
                        Err(err) => Err(err),
                    },
                    Err(zk::Error::NoNode) => Ok(Outcome::NotFound),
                    Err(err) => Err(err),
                }
            }
            OpKind::Delete => match self.client.delete(&path, None).await {
                Ok(()) => Ok(Outcome::Ok(None)),
                Err(zk::Error::NoNode) => Ok(Outcome::NotFound),
                Err(err) => Err(err),
            },
        };
        result.map_err(|err| failure(&err))
    }
}

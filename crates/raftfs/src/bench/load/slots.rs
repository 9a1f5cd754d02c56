//! The load generator's shape for systems with a multiplexing client library (etcd,
//! ZooKeeper): one client per connection, shared by `--pipeline` tasks that each run one
//! operation at a time, so a connection has that many operations in flight.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use anyhow::Context;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::{LoadArgs, Op, OpKind, Outcome, Shared};

/// Tasks that prefill the files together.
const PREFILL_TASKS: usize = 16;

/// A client of one system: one connection (session) and the operations on it.
pub(super) trait Backend: Clone + Send + Sync + 'static {
    /// Opens one connection to the cluster at `endpoints`.
    fn connect(endpoints: &[String]) -> impl Future<Output = anyhow::Result<Self>> + Send;

    /// Runs `op` on the file named `key` with `value` for writes. Where `create` is set, the
    /// file is known to be absent (the write before a delete). An error is the kind of failure.
    fn run(
        &self,
        op: Op,
        key: &str,
        value: &[u8],
        create: bool,
    ) -> impl Future<Output = Result<Outcome, &'static str>> + Send;
}

/// Connects, prefills the files if asked, and starts `connections x pipeline` tasks that wait
/// for the schedule to begin.
pub(super) async fn start<B: Backend>(
    shared: &Arc<Shared>,
    args: &LoadArgs,
    prefill: bool,
) -> anyhow::Result<Vec<JoinHandle<anyhow::Result<()>>>> {
    let keys: Arc<Vec<String>> = Arc::new((0..args.files).map(Shared::key).collect());
    let mut clients = Vec::with_capacity(args.connections);
    for _ in 0..args.connections {
        clients.push(B::connect(&args.endpoints).await.with_context(|| {
            format!(
                "cannot connect to {} at {}",
                args.target.name(),
                args.endpoints.join(",")
            )
        })?);
    }
    if prefill {
        let mut fills = Vec::new();
        for task in 0..PREFILL_TASKS.min(args.files) {
            let client = clients[task % clients.len()].clone();
            let (shared, keys) = (shared.clone(), keys.clone());
            fills.push(tokio::spawn(async move {
                for file in (task..keys.len()).step_by(PREFILL_TASKS) {
                    let op = Op {
                        kind: OpKind::Write,
                        file,
                        version: 0,
                    };
                    match client.run(op, &keys[file], &shared.value, false).await {
                        Ok(Outcome::Ok(version)) => {
                            shared.versions[file].store(version.unwrap_or(0), Ordering::Relaxed)
                        }
                        other => anyhow::bail!("prefilling {} got {other:?}", keys[file]),
                    }
                }
                anyhow::Ok(())
            }));
        }
        for fill in fills {
            fill.await.context("a prefill task panicked")??;
        }
    }
    let mut tasks = Vec::new();
    for (c, client) in clients.into_iter().enumerate() {
        for slot in 0..args.pipeline {
            let (shared, keys, client) = (shared.clone(), keys.clone(), client.clone());
            let worker = c * args.pipeline + slot;
            tasks.push(tokio::spawn(run_slot(shared, keys, client, worker)));
        }
    }
    Ok(tasks)
}

/// One operation at a time until the schedule ends.
async fn run_slot<B: Backend>(
    shared: Arc<Shared>,
    keys: Arc<Vec<String>>,
    client: B,
    worker: usize,
) -> anyhow::Result<()> {
    let mut chooser = shared.chooser(worker);
    shared.schedule.begun().await;
    while let Some(ticket) = shared.schedule.next() {
        tokio::time::sleep_until(ticket.intended).await;
        let op = shared.next_op(&mut chooser);
        let key = &keys[op.file];
        if op.kind == OpKind::Delete {
            let write = Op {
                kind: OpKind::Write,
                ..op
            };
            if let Err(kind) = client.run(write, key, &shared.value, true).await {
                shared.error(ticket, kind);
                continue;
            }
        }
        let sent = Instant::now();
        match client.run(op, key, &shared.value, false).await {
            Ok(outcome) => shared.answer(op, ticket, sent, outcome),
            Err(kind) => shared.error(ticket, kind),
        }
    }
    Ok(())
}

//! The raftfs server runtime: the node task that drives the pure Raft core and file store, the
//! client listener, the peer transport and the status/metrics HTTP endpoint. The `raftfs`
//! binary (crates/raftfs) holds the command line and the tools; the client library is
//! crates/client.
//!
//! - [`node`]: the task that owns the Raft core and the store, and its storage.
//! - [`connection`] and [`listener`]: the client side of the text protocol, bounded by
//!   [`limits`].
//! - [`transport`] and [`tls`]: members' links, mutually authenticated.
//! - [`status`]: `/status`, `/metrics` and `/health`; [`metrics`]: what `/metrics` counts.
//! - [`config`] and [`server`]: settings and process lifecycle.
//! - [`backup`]: backups (snapshot files) saved, exported offline and restored.

pub mod backup;
pub mod client_budget;
pub mod config;
pub mod connection;
pub mod deadline;
pub mod limits;
pub mod listener;
pub mod mailbox;
pub mod metrics;
pub mod node;
pub mod server;
pub mod shutdown;
pub mod status;
pub mod tls;
pub mod transport;

pub use crate::server::{run, run_until_signal, stop_signal};

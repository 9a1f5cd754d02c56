//! The raftfs server: the node runtime that drives the pure Raft core and file store, the client
//! listener, the command line, and a client library.
//!
//! - [`node`]: the task that owns the Raft core and the store, and its storage.
//! - [`connection`] and [`listener`]: the client side of the text protocol, bounded by
//!   [`limits`].
//! - [`client`]: a Rust client that follows redirects (used by tests, the CLI and benchmarks).
//! - [`transport`] and [`tls`]: members' links, mutually authenticated; [`certs`] makes the
//!   certificates.
//! - [`config`], [`cli`], [`server`], [`local_cluster`]: settings, commands and process lifecycle.

pub mod admin;
pub mod bench;
pub mod certs;
pub mod cli;
pub mod client;
pub mod config;
pub mod connection;
pub mod deadline;
pub mod failover;
pub mod limits;
pub mod listener;
pub mod local_cluster;
pub mod node;
pub mod read_bench;
pub mod server;
pub mod shutdown;
pub mod snapshot_bench;
pub mod status;
pub mod tls;
pub mod transport;

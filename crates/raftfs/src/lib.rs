//! The `raftfs` command line and its tools, on top of the server runtime (crates/server) and the
//! client library (crates/client).
//!
//! - [`cli`]: the commands and `raftfs serve`'s settings.
//! - [`admin`]: membership and leadership changes.
//! - [`bench`](mod@bench): load, fsync, failover, read and snapshot benchmarks.
//! - [`certs`]: the cluster CA and member certificates.
//! - [`client_cmd`]: `raftfs client`, the user's shell and one-shot commands.
//! - [`config_cmd`]: `raftfs config example|check`.
//! - [`restore`]: `raftfs restore`, a new cluster's member seeded from a backup.
//! - [`local_cluster`]: `raftfs cluster`, member processes on loopback.
//! - [`status`]: members' `/status` over HTTP.

pub mod admin;
pub mod bench;
pub mod certs;
pub mod cli;
pub mod client_cmd;
pub mod config_cmd;
pub mod local_cluster;
pub mod restore;
pub mod status;

//! The properties raftfs's fuzz targets check, as plain functions of arbitrary bytes.
//!
//! Each function drives product code that reads untrusted input (from a client, a peer or the
//! disk) and panics if a property fails: the code under test panicked, answered with something
//! other than its typed error, let a buffer grow past its byte budget, or decoded something that
//! does not survive a round trip through its encoder. The cargo-fuzz targets in `fuzz/` call
//! these functions, and `tests/replay.rs` replays every corpus and regression input through them
//! on the stable toolchain, so each crash ever found stays a test.
//!
//! | function | input | code under test |
//! |---|---|---|
//! | [`client_command`] | bytes a client sends | [`fs::Decoder`] (commands and admin commands) |
//! | [`client_reply`] | bytes a server sends | [`fs::ReplyDecoder`] |
//! | [`peer_message`] | one peer frame's payload | [`replica::PeerMessage::decode`], raft messages, entries, memberships, logged commands |
//! | [`wal_recovery`] | a segment file | [`wal::Log::open`] |
//! | [`snapshot`] | a snapshot file, or a store image | [`wal::load_latest_snapshot`], [`fs::Store::restore`], [`raft::Membership::decode`] |

#![allow(
    clippy::expect_used,
    reason = "a harness reports a property failure or a broken environment by panicking"
)]

mod chunks;
mod client;
mod peer;
mod snapshot;
mod wal_log;

pub use client::{client_command, client_reply};
pub use peer::peer_message;
pub use snapshot::snapshot;
pub use wal_log::wal_recovery;

/// A fuzz target's property: panics if it fails for the input.
pub type Target = fn(&[u8]);

/// The targets by name, as `fuzz/` and the corpus directories name them.
pub const TARGETS: &[(&str, Target)] = &[
    ("client_command", client_command),
    ("client_reply", client_reply),
    ("peer_message", peer_message),
    ("wal_recovery", wal_recovery),
    ("snapshot", snapshot),
];

/// A scratch directory for the file-based targets: on tmpfs when there is one, since recovery
/// fsyncs and a real disk would make each execution cost milliseconds.
fn scratch_dir() -> tempfile::TempDir {
    let shm = std::path::Path::new("/dev/shm");
    let mut builder = tempfile::Builder::new();
    builder.prefix("raftfs-fuzz-");
    let dir = if shm.is_dir() {
        builder.tempdir_in(shm)
    } else {
        builder.tempdir()
    };
    dir.expect("a scratch directory for the fuzz target")
}

//! The raftfs file store and its client protocol, with no I/O of their own.
//!
//! - [`command`]: the four commands and file names, as typed values.
//! - [`reply`]: what a command answers, and its wire form.
//! - [`store`]: the deterministic state machine every replica applies in log order.
//! - [`codec`]: the incremental, sans-IO parser of the text protocol (both directions).
//! - [`stamped`]: the form a command takes in the Raft log (command + leader clock).
//!
//! Nothing here reads a clock, a socket or a file: the caller passes clock readings in and moves
//! bytes in and out, so the same code runs in the server and in the deterministic simulator.

pub mod admin;
mod binary;
pub mod codec;
pub mod command;
pub mod reply;
pub mod stamped;
pub mod store;

pub use admin::{Admin, MemberInfo};
pub use codec::{Decoded, Decoder, Limits, ParseError, ReplyDecoder, ReplyError};
pub use command::{Command, Name, NameError};
pub use reply::Reply;
pub use stamped::StampedCommand;
pub use store::{SNAPSHOT_MAGIC, SnapshotError, Store};

//! The raftfs cluster simulator and its linearizability checker.
//!
//! - [`history`]: what clients asked and were told, recorded as the simulator runs.
//! - [`linearizability`]: decides whether a history could come from one copy of the store
//!   applying each command atomically between its invocation and its reply.

pub mod history;
pub mod linearizability;

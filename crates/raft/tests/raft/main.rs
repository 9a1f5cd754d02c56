//! Behaviour tests of the Raft core, grouped by the section of the Raft paper or thesis they
//! check; each module says what it guards against.

// Tests may unwrap: a panic is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod cluster;
mod commit;
mod common;
mod election;
mod membership;
mod persistence;
mod read_index;
mod reads;
mod replication;
mod robustness;
mod smoke;
mod snapshot;
#[path = "../support/strategies.rs"]
mod strategies;

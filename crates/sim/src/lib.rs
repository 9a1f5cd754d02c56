//! The raftfs cluster simulator and its linearizability checker.
//!
//! One seed drives a whole cluster: real `raft::Node`s and `fs::Store`s on simulated disks and
//! a simulated network, with concurrent clients and a nemesis that crashes, partitions, stalls
//! and pauses. Safety is checked after every step, the client history for linearizability at
//! the end, and liveness once every fault has healed. The same seed replays the same run byte
//! for byte (`cargo run --release -p sim -- --seed S --trace`). TigerBeetle's VOPR and
//! FoundationDB's simulation are the models.
//!
//! - [`simulation`]: one run: the event loop and the driver of each node.
//! - [`runner`]: many seeds over several threads, with totals.
//! - [`scenario`]: a run's parameters drawn from its seed, under a [`scenario::Profile`].
//! - [`invariants`]: the per-step safety checks.
//! - [`replica`]: a node's runtime (core, store, client commands in flight).
//! - [`client`]: the simulated clients.
//! - [`network`], [`disk`], [`clock`]: the simulated world.
//! - [`event_queue`], [`random`]: the agenda and the single seeded generator.
//! - [`chain`]: prefix fingerprints of logs, which make the checks O(1).
//! - [`trace`], [`failure`], [`stats`]: what a run tells.
//! - [`history`]: what clients asked and were told, recorded as the simulator runs.
//! - [`linearizability`]: decides whether a history could come from one copy of the store
//!   applying each command atomically between its invocation and its reply.

pub mod chain;
pub mod client;
pub mod clock;
pub mod disk;
pub mod event_queue;
pub mod failure;
pub mod history;
pub mod invariants;
pub mod linearizability;
pub mod network;
pub mod random;
pub mod replica;
pub mod runner;
pub mod scenario;
pub mod simulation;
pub mod stats;
pub mod trace;

pub use failure::{Check, Failure, Violation};
pub use runner::{Totals, run_seeds};
pub use scenario::{Profile, Sabotage, Scenario};
pub use simulation::{RunOptions, RunReport, run};
pub use stats::{FaultKind, RunStats};

//! The raftfs cluster simulator and its linearizability checker.
//!
//! One seed drives a whole cluster: real `raft::Node`s and `fs::Store`s on simulated disks and
//! a simulated network, with concurrent clients and a nemesis that crashes, partitions, stalls
//! and pauses. Safety is checked after every step, the client history for linearizability at
//! the end, and liveness once every fault has healed. The same seed replays the same run byte
//! for byte. TigerBeetle's VOPR and FoundationDB's simulation are the models.
//!
//! # Running
//! Campaigns run under the `sim` cargo profile: release speed with debug assertions and
//! overflow checks on, because the assertions in the core, the driver and the store are checks
//! too. A build without debug assertions refuses to run unless given `--without-assertions`.
//! - `cargo run --profile sim -p sim -- --seeds 1000 [--start S] [--profile P]`: many seeds on
//!   every core; prints totals (runs, client commands, faults by kind, the most events and
//!   simulated time of one run) and every failure; exits non-zero if any run failed.
//! - `cargo run --profile sim -p sim -- --profile P --seed S --trace`: replays one run, one
//!   line per event (time, node or client, what happened). A failure report prints this
//!   command line.
//! - `--sabotage forged-acks|lying-disk` breaks the cluster on purpose; `--black-box` turns the
//!   white-box checks off (the durability of the committed prefix on disks, and truncations of
//!   committed entries: see [`invariants`]), leaving client-visible outcomes and Raft's
//!   published safety properties; `--wal-order` makes crashes keep what the production WAL
//!   writer's batch order allows instead of a prefix of the writes in flight.
//!
//! Every run has an event budget ([`simulation::EVENTS_PER_COMMAND_MAX`] per client command
//! plus [`simulation::EVENTS_BASE`], about five times what the busiest healthy run needs): a run
//! that keeps scheduling events without ending fails with [`Check::Budget`] instead of running
//! (and growing) forever. Simulated time needs no bound of its own: the fault phase ends when
//! the clients' commands are spent, each within its timeout, and the final phase has deadlines.
//!
//! # Determinism
//! Every random choice comes from one ChaCha generator seeded by the run's seed (the scenario
//! from a second stream derived from the same seed), in the order the run makes them. Events
//! are ordered by (time, scheduling order); no hash-map order reaches behaviour; the nodes'
//! clocks are functions of simulated time. Nothing else varies.
//!
//! # The world
//! - Network: per-message delay (mostly sub-millisecond to a few ms, sometimes up to three
//!   election timeouts), loss, duplication, and so reordering; partitions that come and go
//!   (symmetric split, one-way, leader isolated, bridge). Messages travel encoded.
//! - Disks: writes become durable in order after a random fsync latency, in groups; a crash
//!   keeps a random prefix of what was in flight; disks stall.
//! - Leader strikes (profile `figure8`): a leader is cut off with at most one follower,
//!   isolated or crashed moments after it appends client commands or its no-op, or after a
//!   follower takes an older-term entry from it, so that figure 8's interleaving of three
//!   terms (an entry on a minority, a newer leader appending at its index and losing office,
//!   the old entry spread to a majority by a third leader deposed before its no-op commits)
//!   is common rather than a one-in-thousands accident.
//! - Processes: crash and restart from their disk (fresh core, new seed, empty store rebuilt
//!   from commits), pause, drift (clock rate within 500 ppm), fire timers late or spuriously.
//! - Wall clocks (what a leader stamps commands with, so what expiry is judged by): set up to
//!   2 s ahead of or behind true time, drifting with the node's clock rate, kept across
//!   restarts as a machine's. The checker is told how far they could read from true time over
//!   the run ([`clock::NodeClock::wall_deviation_ms`], [`history::ClockBound`]).
//! - Clients: read, write, cas, delete over a few names with unique contents, in most runs some
//!   writes and cas with an exptime of 1 to 3 s, so that files expire among reads, cas and
//!   deletes; redirects followed; timeouts and `ERR_INTERNAL` are unknown outcomes. Most have one command
//!   outstanding; in half the runs one or two pipeline (two to four commands in flight on one
//!   connection whose replies come back in command order, as the server writes them) and
//!   read a private file right behind their own writes of it: such a read must see those writes
//!   ([`Check::SessionOrder`]), the guarantee the driver's read barrier exists for.
//!
//! # Modules
//! - [`simulation`]: one run: the event loop and the driver of each node.
//! - [`runner`]: many seeds over several threads, with totals.
//! - [`scenario`]: a run's parameters drawn from its seed, under a [`scenario::Profile`].
//! - [`invariants`]: the per-step safety checks.
//! - [`process`]: a running node: the production replica driver and its simulated runtime state.
//! - [`client`]: the simulated clients; [`connection`]: a pipelining client's connection.
//! - [`network`], [`disk`], [`clock`]: the simulated world; [`snapfile`]: its snapshot files.
//! - [`event_queue`], [`random`]: the agenda and the single seeded generator.
//! - [`chain`]: prefix fingerprints of logs, which make the checks O(1).
//! - [`trace`], [`failure`], [`stats`]: what a run tells.
//! - [`history`]: what clients asked and were told, recorded as the simulator runs.
//! - [`linearizability`]: decides whether a history could come from one copy of the store
//!   applying each command atomically between its invocation and its reply.

pub mod chain;
pub mod client;
pub mod clock;
pub mod connection;
pub mod disk;
pub mod event_queue;
pub mod failure;
pub mod history;
pub mod invariants;
pub mod linearizability;
pub mod network;
pub mod process;
pub mod random;
pub mod runner;
pub mod scenario;
pub mod simulation;
pub mod snapfile;
pub mod stats;
pub mod trace;

pub use failure::{Check, Failure, Violation};
pub use runner::{Totals, run_seeds};
pub use scenario::{Profile, Sabotage, Scenario};
pub use simulation::{RunOptions, RunReport, run};
pub use stats::{FaultKind, RunStats};

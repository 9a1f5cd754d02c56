//! The cluster simulator's tests, in one binary so the harness spreads them over both cores:
//! each module opens with what it guards against.

// Helpers outside `#[test]` functions are test code too.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod budget;
mod checks;
mod common;
mod determinism;
mod liveness;
mod parts;
mod pipelining;
mod regressions;
mod sabotage;
mod seeds;

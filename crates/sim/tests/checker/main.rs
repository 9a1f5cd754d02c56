//! The linearizability checker's tests, in one binary so the crate links once: each module
//! opens with what it guards against.

// Helpers outside `#[test]` functions are test code too.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod accepts;
mod brute;
mod budget;
mod build;
mod expiry;
mod generate;
mod history;
mod performance;
mod properties;
mod rejects;
mod relaxations;

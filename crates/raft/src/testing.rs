//! A small deterministic harness wiring N nodes (being written).

//! Throughput of the Raft core alone (being written).
fn main() {}

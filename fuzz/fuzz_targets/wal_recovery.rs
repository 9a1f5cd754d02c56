//! cargo-fuzz target: the property is `fuzzing::wal_recovery` (see crates/fuzzing).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| fuzzing::wal_recovery(data));

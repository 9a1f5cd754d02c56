//! cargo-fuzz target: the property is `fuzzing::snapshot` (see crates/fuzzing).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| fuzzing::snapshot(data));

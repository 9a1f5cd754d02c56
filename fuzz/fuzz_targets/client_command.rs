//! cargo-fuzz target: the property is `fuzzing::client_command` (see crates/fuzzing).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| fuzzing::client_command(data));

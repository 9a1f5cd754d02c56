//! cargo-fuzz target: the property is `fuzzing::peer_message` (see crates/fuzzing).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| fuzzing::peer_message(data));

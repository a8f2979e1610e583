#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| stylecam::fuzzing::engine_manifest(data));

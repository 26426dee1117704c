//! libFuzzer entry point of the `method_checkpoint` target (see `crates/ept-fuzz`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ept_fuzz::run("method_checkpoint", data));

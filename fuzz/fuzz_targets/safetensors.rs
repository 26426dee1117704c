//! libFuzzer entry point of the `safetensors` target (see `crates/ept-fuzz`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ept_fuzz::run("safetensors", data));

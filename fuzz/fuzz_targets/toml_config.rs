//! libFuzzer entry point of the `toml_config` target (see `crates/ept-fuzz`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ept_fuzz::run("toml_config", data));

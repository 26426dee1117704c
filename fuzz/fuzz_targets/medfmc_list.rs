//! libFuzzer entry point of the `medfmc_list` target (see `crates/ept-fuzz`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ept_fuzz::run("medfmc_list", data));

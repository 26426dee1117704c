//! libFuzzer entry point of the `nifti_gz` target (see `crates/ept-fuzz`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ept_fuzz::run("nifti_gz", data));

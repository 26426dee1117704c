//! `ept-backend` — the one crate that knows which tensor backends exist.
//!
//! Everything above it asks for a [`DeviceSpec`] (parsed from the user's `--device`
//! string), turns it into a burn [`Device`] here, and never names a backend itself.
//! The crate also owns process-wide run settings that backends care about: the
//! CPU thread count, the global seed and the matmul compute precision ([`precision`]).
//! Numeric helpers that every layer shares (pixel/grid resampling) live in
//! [`resample`]; atomic file output in [`fs`]; the out-of-memory report binaries
//! install as their allocator in [`memory`].

pub mod device;
pub mod fs;
pub mod memory;
pub mod precision;
pub mod progress;
pub mod resample;
pub mod rng;
pub mod runtime;

pub use burn::tensor::Device;
pub use device::{BackendKind, DeviceError, DeviceSpec};
pub use precision::{Precision, PrecisionError, set_precision};
pub use rng::Rng;
pub use runtime::{seed_everything, set_cpu_threads, worker_threads};

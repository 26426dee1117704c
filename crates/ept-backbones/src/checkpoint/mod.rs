//! Foreign checkpoints: reading tensors from `.safetensors` and PyTorch `.pth` files
//! into named `f32` data ([`read`]), and the typed errors and load reports every
//! backbone loader shares ([`report`]), and ept's own weight files ([`store`]).

pub mod read;
pub mod report;
pub mod store;

pub use read::{CheckpointFormat, RawCheckpoint, read_checkpoint};
pub use report::{CheckpointError, KeyMismatch, LoadReport, ShapeMismatch};

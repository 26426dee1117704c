//! Segmentation with PUNet: run configuration ([`config`]), the training loop
//! ([`engine`]), losses ([`loss`]), per-volume Dice ([`dice`]), sliding-window inference
//! over whole volumes ([`sliding`]), evaluation with NIfTI/PNG outputs ([`evaluate`]) and
//! the run report ([`report`]).

pub mod config;
pub mod dice;
pub mod engine;
pub mod evaluate;
pub mod loss;
pub mod report;
pub mod sliding;

pub use config::SegRunConfig;
pub use engine::{SegRunSummary, train_segmentation};

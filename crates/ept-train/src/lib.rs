//! `ept-train` — the engine that turns a [`RunConfig`] into a trained, evaluated,
//! reported run: the loop for single- and multi-label classification ([`engine`]),
//! learning-rate schedules ([`schedule`]), metrics ([`metrics`]) and evaluation
//! ([`evaluate`]), data-parallel and micro-batched gradients ([`parallel`]), crash-safe checkpoints with exact resume ([`checkpoint`]), and the
//! feature-distribution analysis and plots of the run report ([`analysis`], [`plot`]).

pub mod analysis;
pub mod checkpoint;
pub mod config;
pub mod engine;
pub mod error;
pub mod evaluate;
pub mod groups;
pub mod metrics;
mod optimizer_file;
pub mod parallel;
pub mod plot;
pub mod schedule;
pub mod seg;

pub use config::RunConfig;
pub use engine::{RunSummary, TrainOptions, train};
pub use error::TrainError;
pub use evaluate::EvalResult;

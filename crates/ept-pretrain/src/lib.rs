//! `ept-pretrain` — self-supervised pre-training of PUNet by contrastive prototype
//! assignment (CPA, Fischer et al. 2022): an EMA teacher's decoder embeddings are
//! clustered into prototypes by spatially weighted soft k-means ([`kmeans`]); student
//! crops of the same slice are matched to teacher positions by their coordinates in the
//! original image ([`matching`]) and trained to reproduce the teacher's prototype
//! assignments ([`loss`]) next to a focal segmentation loss on base classes; the teacher
//! follows the student by EMA ([`ema`]).

pub mod config;
pub mod ema;
pub mod engine;
pub mod kmeans;
pub mod loss;
pub mod matching;
pub mod report;
pub mod views;

pub use config::PretrainConfig;
pub use engine::{PretrainSummary, pretrain};

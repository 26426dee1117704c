//! Layers shared by the backbones. Each exposes its intermediate steps as methods so a
//! tuning method can intervene between them (see `ept-tuning`) without the layer
//! knowing which method runs.

pub mod attention;
pub mod mlp;

pub use attention::{Attention, AttentionConfig, HeadSplit};
pub use mlp::{Mlp, MlpConfig};

use burn::nn::Initializer;

/// timm's default weight init for transformer linears: normal, std 0.02
/// (timm `trunc_normal_(std=.02)`; truncation at ±2 std is immaterial at this scale).
pub(crate) fn timm_linear_init() -> Initializer {
    Initializer::Normal { mean: 0.0, std: 0.02 }
}

//! Vision Transformer (ViT) matching timm's `VisionTransformer` with a class token,
//! learned absolute position embeddings, pre-norm blocks, a final LayerNorm and a
//! linear head on the CLS token.
//!
//! - [`config`]: named presets (`vit_base_patch16_224`, …) and validation.
//! - [`model`]: the module tree (paths equal timm keys) and the forward passes.
//! - [`hooks`]: the points where tuning methods intervene ([`VitHooks`]).
//! - [`load`]: applying a timm or mmcls checkpoint, with pos-embed interpolation.
//! - [`export`]: writing the weights back as a timm `.safetensors` file.

pub mod config;
pub mod export;
pub mod hooks;
pub mod load;
pub mod model;

pub use config::{VitConfig, VitError};
pub use hooks::{AttentionWeights, NoHooks, VitHooks};
pub use model::{Block, PatchEmbed, Vit};

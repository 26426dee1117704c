//! `ept-backbones` — the frozen models that tuning methods adapt, and their weights.
//!
//! - [`vit`]: a Vision Transformer numerically equal to timm's `VisionTransformer`,
//!   with module paths that equal timm's checkpoint keys.
//! - [`unet`]: PUNet, the prompt-able UNet for segmentation (2-D and 3-D).
//! - [`layers`]: building blocks shared by the backbones (attention, MLP).
//! - [`checkpoint`]: reading `.safetensors` / `.pth` files (pickle is parsed, never
//!   run), recognising timm and mmcls key naming, and reporting mismatches.

pub mod checkpoint;
pub mod layers;
pub mod unet;
pub mod vit;

pub use checkpoint::{CheckpointError, KeyMismatch, LoadReport};
pub use vit::{AttentionWeights, NoHooks, Vit, VitConfig, VitError, VitHooks};

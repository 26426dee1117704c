//! PUNet — the prompt-able UNet of Fischer et al. (arXiv 2211.09233, reference
//! `marcdcfischer/PUNet`): a residual-conv + windowed-attention UNet whose attention
//! windows also see learned class-prompt tokens, so that new classes are learned by
//! prompts alone on a frozen body. One implementation for 2-D slices and 3-D patches
//! (`spatial_dims`).
//!
//! Module map: [`config`] → [`conv`] (conv/norm/up-sampling for both dims) →
//! [`window`] (window geometry, shift mask, relative indices) → [`attention`] (window
//! attention, prompt pools, attention biases) → [`blocks`] (stem, encoder, decoder,
//! SIA) → [`model`] (the network, heads, parameter counts); [`hooks`] is the seam for
//! tuning methods.

pub mod attention;
pub mod blocks;
pub mod config;
pub mod conv;
pub mod hooks;
pub mod io;
pub mod model;
pub mod window;

pub use config::{HeadKind, PunetConfig, WindowLayout};
pub use hooks::{NoUnetHooks, UnetHooks};
pub use model::{Punet, PunetCounts, is_prompt_path};

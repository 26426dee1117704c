//! The seam between PUNet and the tuning methods, as [`crate::VitHooks`] is for the ViT:
//! fixed points in every window-attention sub-block where a method may intervene.
//! Sub-blocks are numbered `0..2·(2·stages − 1)` in forward order (encoder, then decoder;
//! the plain window sub-block before the shifted one).
//!
//! | hook | called with | used by |
//! | --- | --- | --- |
//! | [`UnetHooks::attention_weights`] | scaled, biased, masked logits `[B·P, H, N, prompts + N]` | EPT for segmentation |
//! | [`UnetHooks::block_output`] | tokens `[B·P, N, C]` leaving a sub-block | Adapter |

use burn::tensor::{Tensor, activation::softmax};

pub trait UnetHooks {
    /// Attention weights from logits. `rows[q]` is query `q`'s position in the configured
    /// window's token order (a method may keep one parameter row per window position).
    fn attention_weights(&self, _block: usize, logits: Tensor<4>, _rows: &[usize]) -> Tensor<4> {
        softmax(logits, 3)
    }

    /// Transform the tokens leaving sub-block `block`.
    fn block_output(&self, _block: usize, tokens: Tensor<3>) -> Tensor<3> {
        tokens
    }
}

/// The plain forward pass.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoUnetHooks;

impl UnetHooks for NoUnetHooks {}

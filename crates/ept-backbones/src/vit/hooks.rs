//! The seam between the ViT and the tuning methods: fixed points in the forward pass
//! where a method may intervene. The backbone calls these hooks and never knows which
//! method runs; a method implements the ones it needs (defaults leave the computation
//! unchanged, so [`NoHooks`] runs the plain timm forward).
//!
//! | hook | called with | used by |
//! | --- | --- | --- |
//! | [`VitHooks::pixels`] | images before the patch embedding | VP (padding prompt) |
//! | [`VitHooks::block_input`] | tokens entering block *i* | VPT (shallow / deep) |
//! | [`VitHooks::qkv_delta`] | `norm1(x)` of block *i*, added to the fused `qkv` output | LoRA |
//! | [`VitHooks::attention_weights`] | scaled logits `[B, H, Nq, N]` of block *i* → [`AttentionWeights`] | EPT and its ablations |
//! | [`VitHooks::mlp_parallel`] | residual stream `x` before `norm2` of block *i* | Adapter (AdaptFormer) |

use burn::tensor::{Tensor, activation::softmax};

/// The attention weights a method hands back to a block.
#[derive(Debug, Clone)]
pub enum AttentionWeights {
    /// `[B, H, Nq, Nk]`: one weight per key.
    Keys(Tensor<4>),
    /// `[B, H, Nq, 1 + Nk]`: column 0 weighs an extra key whose value is zero (a sink
    /// that absorbs attention mass without contributing to the output), the other
    /// columns weigh the keys. Returning the sink column instead of narrowing it away
    /// spares the narrow's copy and its backward's zero-filled scatter; the block mixes
    /// these weights with the values behind one zero row
    /// ([`crate::layers::attention::Attention::merge_with_sink`]).
    SinkThenKeys(Tensor<4>),
}

/// Interventions a tuning method may make in a ViT forward pass.
pub trait VitHooks {
    /// Transform the input images `[B, C, H, W]`.
    fn pixels(&self, images: Tensor<4>) -> Tensor<4> {
        images
    }

    /// Transform the tokens `[B, N', D]` entering block `block` (token count may change).
    fn block_input(&self, _block: usize, tokens: Tensor<3>) -> Tensor<3> {
        tokens
    }

    /// A term added to block `block`'s fused `qkv` projection output `[B, N', 3D]`,
    /// computed from `normed = norm1(x)`.
    fn qkv_delta(&self, _block: usize, _normed: &Tensor<3>) -> Option<Tensor<3>> {
        None
    }

    /// Turn block `block`'s scaled attention logits `[B, H, Nq, Nk]` into attention
    /// weights (plain attention: softmax over keys). The query rows are the block's first
    /// `Nq` tokens: `Nq = Nk`, except in a last block that computes the CLS row alone
    /// (`Nq = 1`, [`crate::vit::Block::forward_cls_with`]).
    fn attention_weights(&self, _block: usize, logits: Tensor<4>) -> AttentionWeights {
        AttentionWeights::Keys(softmax(logits, 3))
    }

    /// A term added beside block `block`'s MLP, computed from the residual stream `x`
    /// that enters `norm2`: the block output becomes `x + mlp(norm2(x)) + term`. Like the
    /// attention weights, `x` may hold only the first (CLS) row of a last block.
    fn mlp_parallel(&self, _block: usize, _residual: &Tensor<3>) -> Option<Tensor<3>> {
        None
    }
}

/// The plain forward pass.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoHooks;

impl VitHooks for NoHooks {}

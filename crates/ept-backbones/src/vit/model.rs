//! The ViT module tree and its forward passes. Field names equal timm's state-dict
//! keys (`patch_embed.proj`, `cls_token`, `pos_embed`, `blocks.N.{norm1,attn,norm2,mlp}`,
//! `norm`, `head`), so loading a checkpoint is a rename at most, never glue code.
//!
//! The forward pass is split the way timm splits it: [`Vit::embed`] (patches + CLS +
//! position), the blocks, [`Vit::forward_features`] (all tokens after the final norm)
//! and [`Vit::forward_head`] (CLS token → linear head). [`Vit::forward`] and
//! [`Vit::forward_cls_with`] skip what a CLS-pooled output does not need: the last block
//! runs its queries, MLP and final norm on the CLS row only.

use burn::module::{Module, Param};
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{LayerNorm, LayerNormConfig, Linear, LinearConfig};
use burn::tensor::{Device, Distribution, Tensor};

use super::config::{VitConfig, VitError};
use super::hooks::{AttentionWeights, NoHooks, VitHooks};
use crate::layers::{Attention, AttentionConfig, HeadSplit, Mlp, MlpConfig, timm_linear_init};

/// Non-overlapping patch projection: a conv with kernel = stride = patch size.
#[derive(Module, Debug)]
pub struct PatchEmbed {
    pub proj: Conv2d,
}

impl PatchEmbed {
    /// `[B, C, H, W]` images → `[B, grid², D]` patch tokens (row-major over the grid).
    pub fn forward(&self, images: Tensor<4>) -> Tensor<3> {
        self.proj.forward(images).flatten::<3>(2, 3).swap_dims(1, 2)
    }
}

/// One pre-norm transformer block: `x + attn(norm1(x))`, then `x + mlp(norm2(x))`.
#[derive(Module, Debug)]
pub struct Block {
    pub norm1: LayerNorm,
    pub attn: Attention,
    pub norm2: LayerNorm,
    pub mlp: Mlp,
}

impl Block {
    /// The plain block.
    pub fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        self.forward_with(0, x, &NoHooks)
    }

    /// The block with a tuning method's hooks applied; `index` is this block's position.
    pub fn forward_with<H: VitHooks + ?Sized>(&self, index: usize, x: Tensor<3>, hooks: &H) -> Tensor<3> {
        let tokens = x.dims()[1];
        self.forward_first_rows(index, x, tokens, hooks)
    }

    /// Only the CLS token's output `[B, 1, D]` of [`Block::forward_with`]: keys and values
    /// still come from every token, but the attention output, projection, MLP and adapter
    /// run on one row instead of `N`. Exact for the last block of a CLS-pooled model,
    /// where no other row reaches the output.
    pub fn forward_cls_with<H: VitHooks + ?Sized>(&self, index: usize, x: Tensor<3>, hooks: &H) -> Tensor<3> {
        self.forward_first_rows(index, x, 1, hooks)
    }

    /// The block's output for the first `rows` tokens (queries), attending to all tokens.
    fn forward_first_rows<H: VitHooks + ?Sized>(
        &self,
        index: usize,
        x: Tensor<3>,
        rows: usize,
        hooks: &H,
    ) -> Tensor<3> {
        let all_rows = rows == x.dims()[1];
        let normed = self.norm1.forward(x.clone());
        let delta = hooks.qkv_delta(index, &normed);
        let HeadSplit { q, k, v } = self.attn.split_heads_first_rows(normed, delta, rows);
        let mixed = match hooks.attention_weights(index, self.attn.logits(q, k)) {
            AttentionWeights::Keys(weights) => self.attn.merge(weights, v),
            AttentionWeights::SinkThenKeys(weights) => self.attn.merge_with_sink(weights, v),
        };
        let x = if all_rows { x } else { x.narrow(1, 0, rows) };
        let x = x + mixed;
        let mlp = self.mlp.forward(self.norm2.forward(x.clone()));
        match hooks.mlp_parallel(index, &x) {
            Some(extra) => x + mlp + extra,
            None => x + mlp,
        }
    }
}

/// A Vision Transformer with a class token and a (possibly absent) linear head.
#[derive(Module, Debug)]
pub struct Vit {
    pub patch_embed: PatchEmbed,
    /// `[1, 1, D]`
    pub cls_token: Param<Tensor<3>>,
    /// `[1, tokens, D]`, CLS position first.
    pub pos_embed: Param<Tensor<3>>,
    pub blocks: Vec<Block>,
    pub norm: LayerNorm,
    pub head: Option<Linear>,
    /// Expected input side length in pixels.
    pub img_size: usize,
    pub in_chans: usize,
}

impl VitConfig {
    /// Allocate a randomly initialised ViT (timm's init scheme) on `device`.
    pub fn init(&self, device: &Device) -> Result<Vit, VitError> {
        self.validate()?;
        let dim = self.embed_dim;
        let norm = || {
            LayerNormConfig::new(dim)
                .with_epsilon(self.layer_norm_eps)
                .init(device)
        };
        let blocks = (0..self.depth)
            .map(|_| Block {
                norm1: norm(),
                attn: AttentionConfig::new(dim, self.num_heads)
                    .with_qkv_bias(self.qkv_bias)
                    .init(device),
                norm2: norm(),
                mlp: MlpConfig::new(dim, self.mlp_hidden()).init(device),
            })
            .collect();
        let patch = self.patch_size;
        let head = (self.num_classes > 0).then(|| {
            LinearConfig::new(dim, self.num_classes)
                .with_initializer(timm_linear_init())
                .init(device)
        });
        Ok(Vit {
            patch_embed: PatchEmbed {
                proj: Conv2dConfig::new([self.in_chans, dim], [patch, patch])
                    .with_stride([patch, patch])
                    .init(device),
            },
            cls_token: Param::from_tensor(Tensor::random(
                [1, 1, dim],
                Distribution::Normal(0.0, 1e-6),
                device,
            )),
            pos_embed: Param::from_tensor(Tensor::random(
                [1, self.num_tokens(), dim],
                Distribution::Normal(0.0, 0.02),
                device,
            )),
            blocks,
            norm: norm(),
            head,
            img_size: self.img_size,
            in_chans: self.in_chans,
        })
    }
}

impl Vit {
    /// Token width.
    pub fn embed_dim(&self) -> usize {
        self.pos_embed.dims()[2]
    }

    /// Tokens per image including CLS (197 for ViT-B/16 at 224 px).
    pub fn num_tokens(&self) -> usize {
        self.pos_embed.dims()[1]
    }

    /// Output size of the head, 0 without one.
    pub fn num_classes(&self) -> usize {
        self.head.as_ref().map_or(0, |h| h.weight.dims()[1])
    }

    /// Check an input batch shape before running; the forward passes assume it.
    pub fn check_input(&self, dims: [usize; 4]) -> Result<(), VitError> {
        let [_, c, h, w] = dims;
        if c != self.in_chans || h != self.img_size || w != self.img_size {
            return Err(VitError::InputShape {
                found: dims.to_vec(),
                channels: self.in_chans,
                size: self.img_size,
            });
        }
        Ok(())
    }

    /// Patch tokens with the CLS token prepended and position embeddings added: `[B, N, D]`.
    pub fn embed(&self, images: Tensor<4>) -> Tensor<3> {
        let tokens = self.patch_embed.forward(images);
        let [batch, _, dim] = tokens.dims();
        let cls = self.cls_token.val().expand([batch, 1, dim]);
        Tensor::cat(vec![cls, tokens], 1) + self.pos_embed.val()
    }

    /// All tokens after the blocks and the final norm: `[B, N, D]` (timm `forward_features`).
    pub fn forward_features(&self, images: Tensor<4>) -> Tensor<3> {
        self.forward_features_with(images, &NoHooks)
    }

    /// [`Vit::forward_features`] with a tuning method's hooks.
    pub fn forward_features_with<H: VitHooks + ?Sized>(&self, images: Tensor<4>, hooks: &H) -> Tensor<3> {
        let tokens = self.through_blocks(images, self.blocks.len(), hooks);
        self.norm.forward(tokens)
    }

    /// The embedded images through blocks `0..count` (each after its `block_input` hook).
    fn through_blocks<H: VitHooks + ?Sized>(&self, images: Tensor<4>, count: usize, hooks: &H) -> Tensor<3> {
        let x = self.embed(hooks.pixels(images));
        self.blocks[..count]
            .iter()
            .enumerate()
            .fold(x, |x, (index, block)| {
                block.forward_with(index, hooks.block_input(index, x), hooks)
            })
    }

    /// The CLS token of normalised features: `[B, D]` (timm `forward_head(pre_logits=True)`).
    pub fn pre_logits(features: Tensor<3>) -> Tensor<2> {
        features.narrow(1, 0, 1).squeeze_dim::<2>(1)
    }

    /// `pre_logits(forward_features_with(images, hooks))` without the work no output
    /// needs: the last block computes only the CLS row (see [`Block::forward_cls_with`])
    /// and the final norm runs on that row alone. `[B, D]`.
    pub fn forward_cls_with<H: VitHooks + ?Sized>(&self, images: Tensor<4>, hooks: &H) -> Tensor<2> {
        let Some(last) = self.blocks.len().checked_sub(1) else {
            return Self::pre_logits(self.forward_features_with(images, hooks));
        };
        let x = self.through_blocks(images, last, hooks);
        let cls = self.blocks[last].forward_cls_with(last, hooks.block_input(last, x), hooks);
        self.norm.forward(cls).squeeze_dim::<2>(1)
    }

    /// CLS token → head: `[B, classes]`, or the CLS features when the model has no head.
    pub fn forward_head(&self, features: Tensor<3>) -> Tensor<2> {
        self.head_of(Self::pre_logits(features))
    }

    /// The head applied to CLS features `[B, D]` (identity without a head).
    fn head_of(&self, cls: Tensor<2>) -> Tensor<2> {
        match &self.head {
            Some(head) => head.forward(cls),
            None => cls,
        }
    }

    /// Images → logits.
    pub fn forward(&self, images: Tensor<4>) -> Tensor<2> {
        self.head_of(self.forward_cls_with(images, &NoHooks))
    }
}

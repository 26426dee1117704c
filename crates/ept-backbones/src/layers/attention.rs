//! Multi-head self-attention with a fused `qkv` projection, as timm's `Attention`.
//!
//! The forward pass is split into [`Attention::split_heads`] (q, k, v per head),
//! [`Attention::logits`] (scaled `q·kᵀ`) and [`Attention::merge`] (weights · v, heads
//! merged, output projection) so that methods acting on attention logits (EPT) or on
//! the projections (LoRA) compose with it. The plain matmul/softmax path is used on
//! purpose: on the flex backend it is faster than burn's fused `attention` op
//! (measured in shared/BURN.md).

use burn::config::Config;
use burn::module::Module;
use burn::nn::{Linear, LinearConfig};
use burn::tensor::{Device, Tensor, activation::softmax, module::linear};

use super::timm_linear_init;

/// Shape of one attention layer.
#[derive(Config, Debug)]
pub struct AttentionConfig {
    /// Token width (embedding dimension).
    pub dim: usize,
    /// Number of heads; must divide `dim`.
    pub num_heads: usize,
    /// Whether `qkv` has a bias (timm ViTs: yes).
    #[config(default = true)]
    pub qkv_bias: bool,
}

/// `q`, `k` and `v`, each `[batch, heads, tokens, head_dim]`.
#[derive(Debug, Clone)]
pub struct HeadSplit {
    pub q: Tensor<4>,
    pub k: Tensor<4>,
    pub v: Tensor<4>,
}

/// timm-compatible attention; field names equal timm's keys (`qkv`, `proj`).
#[derive(Module, Debug)]
pub struct Attention {
    pub qkv: Linear,
    pub proj: Linear,
    pub num_heads: usize,
}

impl AttentionConfig {
    pub fn init(&self, device: &Device) -> Attention {
        assert!(
            self.num_heads > 0 && self.dim.is_multiple_of(self.num_heads),
            "attention: dim {} is not divisible by {} heads (checked by VitConfig::validate)",
            self.dim,
            self.num_heads
        );
        Attention {
            qkv: LinearConfig::new(self.dim, 3 * self.dim)
                .with_bias(self.qkv_bias)
                .with_initializer(timm_linear_init())
                .init(device),
            proj: LinearConfig::new(self.dim, self.dim)
                .with_initializer(timm_linear_init())
                .init(device),
            num_heads: self.num_heads,
        }
    }
}

impl Attention {
    /// Width of one head.
    pub fn head_dim(&self) -> usize {
        self.proj.weight.dims()[0] / self.num_heads
    }

    /// The softmax temperature, `head_dim^-0.5`.
    pub fn scale(&self) -> f64 {
        (self.head_dim() as f64).powf(-0.5)
    }

    /// Project `[B, N, C]` tokens to per-head q, k, v. `qkv_extra`, when given, is added
    /// to the fused projection output `[B, N, 3C]` first (LoRA's low-rank update).
    pub fn split_heads(&self, x: Tensor<3>, qkv_extra: Option<Tensor<3>>) -> HeadSplit {
        let heads = self.num_heads;
        let mut qkv = self.qkv.forward(x);
        if let Some(extra) = qkv_extra {
            qkv = qkv + extra;
        }
        // timm reshapes to (B, N, 3, H, hd): the q/k/v index is outer to the head index.
        let qkv = self.to_heads(qkv);
        HeadSplit {
            q: qkv.clone().narrow(1, 0, heads),
            k: qkv.clone().narrow(1, heads, heads),
            v: qkv.narrow(1, 2 * heads, heads),
        }
    }

    /// As [`Attention::split_heads`], with q for the first `rows` tokens only (k and v
    /// for all): the q third of the fused projection runs on those rows alone. A
    /// CLS-pooled model's last block needs nothing more (ViT-B/16: a third of that
    /// block's `qkv` work).
    pub fn split_heads_first_rows(
        &self,
        x: Tensor<3>,
        qkv_extra: Option<Tensor<3>>,
        rows: usize,
    ) -> HeadSplit {
        let [_, tokens, dim] = x.dims();
        if rows == tokens {
            return self.split_heads(x, qkv_extra);
        }
        let heads = self.num_heads;
        let weight = self.qkv.weight.val();
        let bias = self.qkv.bias.as_ref().map(|b| b.val());
        // Columns [start, start + width) of the fused projection (q | k | v, each `dim`).
        let project = |input: Tensor<3>, start: usize, width: usize| {
            linear(
                input,
                weight.clone().narrow(1, start, width),
                bias.clone().map(|b| b.narrow(0, start, width)),
            )
        };
        let mut q = project(x.clone().narrow(1, 0, rows), 0, dim);
        let mut kv = project(x, dim, 2 * dim);
        if let Some(extra) = qkv_extra {
            q = q + extra.clone().narrow(1, 0, rows).narrow(2, 0, dim);
            kv = kv + extra.narrow(2, dim, 2 * dim);
        }
        let kv = self.to_heads(kv);
        HeadSplit {
            q: self.to_heads(q),
            k: kv.clone().narrow(1, 0, heads),
            v: kv.narrow(1, heads, heads),
        }
    }

    /// Projection outputs `[B, N, G·hd]` as `G` head slices `[B, G, N, hd]` (a view).
    fn to_heads(&self, projected: Tensor<3>) -> Tensor<4> {
        let [batch, tokens, width] = projected.dims();
        let head_dim = self.head_dim();
        projected
            .reshape([batch, tokens, width / head_dim, head_dim])
            .swap_dims(1, 2)
    }

    /// Scaled attention logits `(q · scale)·kᵀ`, `[B, H, Nq, Nk]`. The scale goes on q
    /// as in timm: `head_dim` values per row instead of `Nk`, forward and backward.
    pub fn logits(&self, q: Tensor<4>, k: Tensor<4>) -> Tensor<4> {
        q.mul_scalar(self.scale()).matmul(k.swap_dims(2, 3))
    }

    /// Apply attention weights `[B, H, Nq, Nk]` to `v`, merge heads, project: `[B, Nq, C]`.
    pub fn merge(&self, weights: Tensor<4>, v: Tensor<4>) -> Tensor<3> {
        let mixed = weights.matmul(v); // [B, H, Nq, hd]
        let [batch, heads, tokens, head_dim] = mixed.dims();
        let merged = mixed.swap_dims(1, 2).reshape([batch, tokens, heads * head_dim]);
        self.proj.forward(merged)
    }

    /// [`Attention::merge`] for weights `[B, H, Nq, 1 + Nk]` whose column 0 weighs an
    /// extra key of value zero (a sink): `v` gains a leading zero row, so the sink's
    /// weight multiplies nothing. Exactly `merge(weights.narrow(3, 1, Nk), v)`, without
    /// materialising the narrowed weights or, backward, scattering their gradient into a
    /// zero-filled `[B, H, Nq, 1 + Nk]` buffer (the one extra row of `v` costs far less).
    pub fn merge_with_sink(&self, weights: Tensor<4>, v: Tensor<4>) -> Tensor<3> {
        let [batch, heads, _, head_dim] = v.dims();
        let zero = Tensor::zeros([batch, heads, 1, head_dim], &v.device());
        self.merge(weights, Tensor::cat(vec![zero, v], 2))
    }

    /// Plain self-attention: `merge(softmax(logits(q, k)), v)`.
    pub fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        let HeadSplit { q, k, v } = self.split_heads(x, None);
        let weights = softmax(self.logits(q, k), 3);
        self.merge(weights, v)
    }
}

#[cfg(test)]
mod tests {
    use burn::tensor::{Distribution, Tensor};
    use ept_backend::DeviceSpec;

    use super::AttentionConfig;

    #[test]
    fn merge_with_sink_equals_merge_of_the_key_columns() {
        let device = DeviceSpec::default().device();
        let attn = AttentionConfig::new(8, 2).init(&device);
        let (b, h, nq, nk, hd) = (2, 2, 3, 5, 4);
        let weights = Tensor::<4>::random([b, h, nq, 1 + nk], Distribution::Uniform(0.0, 1.0), &device);
        let v = Tensor::<4>::random([b, h, nk, hd], Distribution::Normal(0.0, 1.0), &device);
        let with_sink = attn.merge_with_sink(weights.clone(), v.clone());
        let narrowed = attn.merge(weights.narrow(3, 1, nk), v);
        with_sink
            .into_data()
            .assert_approx_eq::<f32>(&narrowed.into_data(), burn::tensor::Tolerance::absolute(1e-6));
    }
}

//! PUNet's attention: window multi-head self-attention whose keys include the active
//! classes' prompt tokens ([`PromptPool`]), with a heterogeneous learned bias
//! ([`AttentionBias`]): relative position for image→image pairs and a per-class,
//! per-token bias for image→prompt pairs. Prompt tokens act only as keys and values —
//! their outputs would be dropped, so their queries are never computed, and their
//! keys/values are computed once per batch, not once per window.
//!
//! One sub-block ([`WindowAttention`]) is pre-norm attention then a single `Linear`
//! ("MLP" without activation, as the reference), each with a residual.

use burn::module::{Module, Param};
use burn::nn::{LayerNorm, LayerNormConfig, Linear, LinearConfig};
use burn::tensor::{Device, Distribution, Int, Tensor, TensorData};

use super::hooks::UnetHooks;
use super::window::WindowGeometry;

/// Xavier-uniform (gain 1) for a `[rows, cols]` table, as the reference initialises
/// every prompt and bias table (PyTorch fans: in = cols, out = rows).
pub fn xavier_table(rows: usize, cols: usize, device: &Device) -> Param<Tensor<2>> {
    let bound = (6.0 / (rows + cols) as f64).sqrt();
    Param::from_tensor(Tensor::random(
        [rows, cols],
        Distribution::Uniform(-bound, bound),
        device,
    ))
}

/// One pool of class prompts at one width: `slots[k]` holds class `k`'s tokens `[T, C]`.
/// Each slot is its own parameter so that a run can train one class and leave the
/// others bit-identical (weight decay included).
#[derive(Module, Debug)]
pub struct PromptPool {
    pub slots: Vec<Param<Tensor<2>>>,
}

impl PromptPool {
    pub fn new(slots: usize, tokens: usize, width: usize, device: &Device) -> Self {
        PromptPool {
            slots: (0..slots).map(|_| xavier_table(tokens, width, device)).collect(),
        }
    }

    /// The tokens of `classes`, concatenated: `[classes · T, C]`.
    pub fn tokens(&self, classes: &[usize]) -> Tensor<2> {
        Tensor::cat(classes.iter().map(|&k| self.slots[k].val()).collect(), 0)
    }
}

/// The learned attention bias of one sub-block.
#[derive(Module, Debug)]
pub struct AttentionBias {
    /// Relative-position embeddings `[2W − 1, E]` per axis, and per-head weights `[H, E]`.
    pub content_x: Param<Tensor<2>>,
    pub content_y: Param<Tensor<2>>,
    pub content_z: Param<Tensor<2>>,
    pub weights_x: Param<Tensor<2>>,
    pub weights_y: Param<Tensor<2>>,
    pub weights_z: Param<Tensor<2>>,
    pub window: [usize; 3],
}

/// The image→prompt bias of one sub-block: per class slot and token an embedding `[T, E]`,
/// and per-head weights `[H, E]` shared by the classes.
#[derive(Module, Debug)]
pub struct PromptBias {
    pub slots: Vec<Param<Tensor<2>>>,
    pub weights: Param<Tensor<2>>,
}

impl AttentionBias {
    pub fn new(window: [usize; 3], heads: usize, dim: usize, device: &Device) -> Self {
        let table = |w: usize| xavier_table(2 * w - 1, dim, device);
        AttentionBias {
            content_x: table(window[0]),
            content_y: table(window[1]),
            content_z: table(window[2]),
            weights_x: xavier_table(heads, dim, device),
            weights_y: xavier_table(heads, dim, device),
            weights_z: xavier_table(heads, dim, device),
            window,
        }
    }

    /// Image→image bias `[H, N, N]`: the mean over axes of `w_a[h] · E_a[key − query]`,
    /// scaled by `E^−½` as the reference does.
    pub fn content(&self, geometry: &WindowGeometry, device: &Device) -> Tensor<3> {
        let n = geometry.tokens();
        let dim = self.content_x.dims()[1];
        let axes = [
            (&self.content_x, &self.weights_x),
            (&self.content_y, &self.weights_y),
            (&self.content_z, &self.weights_z),
        ];
        let mut total: Option<Tensor<2>> = None;
        for (a, (table, weights)) in axes.into_iter().enumerate() {
            let per_offset = table.val().matmul(weights.val().transpose()); // [2W−1, H]
            let index = geometry.relative_indices(a, self.window[a]);
            let index = Tensor::<1, Int>::from_data(TensorData::new(index, [n * n]), device);
            let term = per_offset.select(0, index); // [N·N, H]
            total = Some(match total {
                Some(t) => t + term,
                None => term,
            });
        }
        let heads = self.weights_x.dims()[0];
        let scale = 1.0 / (3.0 * (dim as f64).sqrt());
        total
            .expect("three axes")
            .mul_scalar(scale)
            .reshape([n, n, heads])
            .permute([2, 0, 1])
    }
}

impl PromptBias {
    pub fn new(slots: usize, tokens: usize, heads: usize, dim: usize, device: &Device) -> Self {
        PromptBias {
            slots: (0..slots).map(|_| xavier_table(tokens, dim, device)).collect(),
            weights: xavier_table(heads, dim, device),
        }
    }

    /// Image→prompt bias `[H, classes · T]` for the active classes, scaled by `E^−½`.
    pub fn bias(&self, classes: &[usize]) -> Tensor<2> {
        let dim = self.weights.dims()[1];
        let tokens = Tensor::cat(classes.iter().map(|&k| self.slots[k].val()).collect(), 0);
        self.weights
            .val()
            .matmul(tokens.transpose())
            .mul_scalar(1.0 / (dim as f64).sqrt())
    }
}

/// Pre-norm window attention + single-linear "MLP", both residual.
#[derive(Module, Debug)]
pub struct WindowAttention {
    pub attention_norm: LayerNorm,
    pub to_q: Linear,
    pub to_k: Linear,
    pub to_v: Linear,
    pub to_out: Linear,
    pub mlp_norm: LayerNorm,
    pub mlp: Linear,
    pub heads: usize,
    pub kv_from_queries: bool,
}

/// Prompt keys and values of one sub-block and their image→prompt bias.
pub struct PromptKeys {
    /// `[1, n, C]` each.
    pub keys: Tensor<3>,
    pub values: Tensor<3>,
    /// `[H, n]`.
    pub bias: Tensor<2>,
}

impl WindowAttention {
    pub fn new(dim: usize, heads: usize, kv_from_queries: bool, device: &Device) -> Self {
        let square = |bias: bool| LinearConfig::new(dim, dim).with_bias(bias).init(device);
        WindowAttention {
            attention_norm: LayerNormConfig::new(dim).init(device),
            to_q: square(false),
            to_k: square(false),
            to_v: square(false),
            to_out: square(true),
            mlp_norm: LayerNormConfig::new(dim).init(device),
            mlp: square(true),
            heads,
            kv_from_queries,
        }
    }

    /// Keys and values of the prompt tokens `[n, C]` (computed once, shared by windows).
    pub fn prompt_keys(&self, prompts: Tensor<2>, bias: Tensor<2>) -> PromptKeys {
        let normed = self.attention_norm.forward(prompts.unsqueeze::<3>());
        let source = if self.kv_from_queries {
            self.to_q.forward(normed)
        } else {
            normed
        };
        PromptKeys {
            keys: self.to_k.forward(source.clone()),
            values: self.to_v.forward(source),
            bias,
        }
    }

    /// One sub-block on window tokens `[B·P, N, C]` of `windows` windows per image.
    #[allow(clippy::too_many_arguments)]
    pub fn forward(
        &self,
        tokens: Tensor<3>,
        windows: usize,
        content_bias: Tensor<3>,
        prompts: Option<&PromptKeys>,
        mask: Option<Tensor<3>>,
        hooks: &dyn UnetHooks,
        block: usize,
        rows: &[usize],
    ) -> Tensor<3> {
        let [bp, n, c] = tokens.dims();
        let (h, d) = (self.heads, c / self.heads);
        let normed = self.attention_norm.forward(tokens.clone());
        let q = self.to_q.forward(normed.clone());
        let source = if self.kv_from_queries { q.clone() } else { normed };
        let mut k = self.to_k.forward(source.clone());
        let mut v = self.to_v.forward(source);
        let mut bias = content_bias; // [H, N, N]
        if let Some(p) = prompts {
            let np = p.keys.dims()[1];
            k = Tensor::cat(vec![p.keys.clone().expand([bp, np, c]), k], 1);
            v = Tensor::cat(vec![p.values.clone().expand([bp, np, c]), v], 1);
            let prompt_bias = p.bias.clone().unsqueeze_dim::<3>(1).expand([h, n, np]);
            bias = Tensor::cat(vec![prompt_bias, bias], 2);
        }
        let keys = k.dims()[1];
        let split = |t: Tensor<3>, len: usize| t.reshape([bp, len, h, d]).swap_dims(1, 2);
        let (q, k, v) = (split(q, n), split(k, keys), split(v, keys));
        let mut logits =
            q.matmul(k.swap_dims(2, 3)).mul_scalar((d as f64).powf(-0.5)) + bias.unsqueeze::<4>();
        if let Some(mask) = mask {
            let batch = bp / windows;
            logits = (logits.reshape([batch, windows, h, n, keys])
                + mask.unsqueeze_dim::<4>(1).unsqueeze::<5>())
            .reshape([bp, h, n, keys]);
        }
        let weights = hooks.attention_weights(block, logits, rows);
        let attended = weights.matmul(v).swap_dims(1, 2).reshape([bp, n, c]);
        let x = tokens + self.to_out.forward(attended);
        let x = x.clone() + self.mlp.forward(self.mlp_norm.forward(x));
        hooks.block_output(block, x)
    }
}

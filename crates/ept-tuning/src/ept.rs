//! Embedded Prompt Tuning (Zu et al. 2024; reference `medfmc/models/ept.py`).
//!
//! A trainable prompt `P` of shape `[n_prompt_layers, N, L]` (N = tokens incl. CLS)
//! meets each prompted block's scaled attention logits `S` (`[B, H, N, N]`). Ways
//! (paper Fig. 5): `pure_cat` — `softmax(cat[P, S])` with P's columns dropped (the
//! reference); `multi_cat` — the same with P scaled per query row by
//! α = max − min of that row of S (α not detached); `add` — `softmax(S + P)`;
//! `multi` — `softmax(S ⊙ P)` (P of shape `[N, N]` for the last two).
//!
//! **Fast exact form.** In the concatenated forms only `lse = logsumexp_l P[n, l]`
//! reaches the output: dropping P's columns after the softmax equals ordinary attention
//! with one extra zero-value key of logit `lse`, i.e. weights
//! `exp(S − m) / (Σ exp(S − m) + exp(lse − m))`. For `pure_cat` the lse is computed
//! once per block (`[N]`, O(N·L)) instead of a `[B, H, N, L + N]` softmax; `multi_cat`
//! needs a per-row lse of α·P (`[B, H, N, L]`) but still no concatenation. The sink's
//! weight column is handed back with the others
//! ([`AttentionWeights::SinkThenKeys`]); the block gives the sink a zero value row.
//! [`EptForm::Reference`] keeps the literal computation for tests and bit-for-bit
//! reproduction of the paper.

use burn::module::{Module, Param};
use burn::tensor::{Device, Distribution, Tensor, activation::softmax};
use ept_backbones::AttentionWeights;

use crate::config::{EmbedWay, EptConfig, EptForm, PromptInit};
use crate::model::TuningError;

/// Which blocks carry a prompt row, and how the prompt is applied.
#[derive(Debug, Clone)]
pub struct EptLayout {
    /// `rows[block]` = row of the prompt tensor for that block, if prompted.
    pub rows: Vec<Option<usize>>,
    pub way: EmbedWay,
    pub form: EptForm,
}

/// The EPT prompt of one model.
#[derive(Module, Debug)]
pub struct EptPrompt {
    /// `[n_prompt_layers, N, L]` (`[.., N, N]` for `add` / `multi`).
    pub prompt: Param<Tensor<3>>,
    #[module(skip)]
    pub layout: EptLayout,
}

impl EptPrompt {
    /// Build a prompt for a backbone with `depth` blocks and `tokens` tokens (incl. CLS).
    pub fn new(
        config: &EptConfig,
        form: EptForm,
        depth: usize,
        tokens: usize,
        device: &Device,
    ) -> Result<Self, TuningError> {
        let layers: Vec<usize> = match &config.layers {
            None => (0..depth).collect(),
            Some(list) => list.clone(),
        };
        if layers.is_empty() {
            return Err(TuningError::Invalid(
                "ept: `layers` is empty; omit it to prompt every block".into(),
            ));
        }
        let mut rows = vec![None; depth];
        for (row, &block) in layers.iter().enumerate() {
            if block >= depth {
                return Err(TuningError::Invalid(format!(
                    "ept: layer {block} does not exist (the backbone has blocks 0..{})",
                    depth - 1
                )));
            }
            if rows[block].replace(row).is_some() {
                return Err(TuningError::Invalid(format!(
                    "ept: layer {block} is listed twice"
                )));
            }
        }
        if config.length == 0 {
            return Err(TuningError::Invalid("ept: `length` must be at least 1".into()));
        }
        let columns = match config.way {
            EmbedWay::PureCat | EmbedWay::MultiCat => config.length,
            EmbedWay::Add | EmbedWay::Multi => tokens,
        };
        let shape = [layers.len(), tokens, columns];
        let prompt = match config.init {
            PromptInit::Normal => Tensor::random(shape, Distribution::Normal(0.0, 0.02), device),
            PromptInit::Uniform => Tensor::random(shape, Distribution::Uniform(-0.08, 0.08), device),
            PromptInit::Zero => Tensor::zeros(shape, device),
            PromptInit::Kaiming => {
                // torch.nn.init.kaiming_uniform_(a=√5): bound = 1/√fan_in, fan_in = N·L.
                let bound = 1.0 / ((tokens * columns) as f64).sqrt();
                Tensor::random(shape, Distribution::Uniform(-bound, bound), device)
            }
            PromptInit::Token => {
                return Err(TuningError::Invalid(
                    "ept: init = \"token\" is not supported: the reference (ept.py) adds a [D] mean \
                     token embedding to a [layers, N, L] prompt, which only broadcasts when L = D or \
                     L = 1 and crashes at the paper's L = 100, D = 768; use normal, uniform, zero or kaiming"
                        .into(),
                ));
            }
        };
        let prompt = match config.way {
            // Neutral start for the multiplicative ablation: zero would erase the logits.
            EmbedWay::Multi => prompt.add_scalar(1.0),
            _ => prompt,
        };
        Ok(EptPrompt {
            prompt: Param::from_tensor(prompt),
            layout: EptLayout {
                rows,
                way: config.way,
                form,
            },
        })
    }

    /// Tokens the prompt was sized for.
    pub fn num_tokens(&self) -> usize {
        self.prompt.dims()[1]
    }

    /// Attention weights of block `block` from its scaled logits `s` `[B, H, Nq, N]`,
    /// whose query rows are the first `Nq` tokens (all of them, or the CLS row alone).
    pub fn attention_weights(&self, block: usize, s: Tensor<4>) -> AttentionWeights {
        let Some(row) = self.layout.rows.get(block).copied().flatten() else {
            return AttentionWeights::Keys(softmax(s, 3));
        };
        let [b, h, n, _] = s.dims();
        let p = self.prompt.val().narrow(0, row, 1).narrow(1, 0, n); // [1, Nq, C]
        let columns = p.dims()[2];
        let p = p.unsqueeze_dim::<4>(0); // [1, 1, Nq, C]
        match (self.layout.way, self.layout.form) {
            (EmbedWay::Add, _) => AttentionWeights::Keys(softmax(s + p, 3)),
            (EmbedWay::Multi, _) => AttentionWeights::Keys(softmax(s * p, 3)),
            (EmbedWay::PureCat, EptForm::Reference) => {
                AttentionWeights::Keys(concat_softmax(p.expand([b, h, n, columns]), s, columns))
            }
            (EmbedWay::PureCat, EptForm::Fast) => {
                AttentionWeights::SinkThenKeys(sink_then_keys(s, logsumexp_last(p).expand([b, h, n, 1])))
            }
            (EmbedWay::MultiCat, form) => {
                let alpha = s.clone().max_dim(3) - s.clone().min_dim(3); // [B, H, N, 1]
                let scaled = p * alpha; // [B, H, N, C]
                match form {
                    EptForm::Reference => AttentionWeights::Keys(concat_softmax(scaled, s, columns)),
                    EptForm::Fast => {
                        AttentionWeights::SinkThenKeys(sink_then_keys(s, logsumexp_last(scaled)))
                    }
                }
            }
        }
    }
}

/// `log Σ exp(x)` over the last axis, kept as a size-1 axis.
pub(crate) fn logsumexp_last(x: Tensor<4>) -> Tensor<4> {
    let max = x.clone().max_dim(3).detach();
    max.clone() + (x - max).exp().sum_dim(3).log()
}

/// The reference: softmax over `[prompt, s]` along keys, prompt columns dropped.
fn concat_softmax(prompt: Tensor<4>, s: Tensor<4>, columns: usize) -> Tensor<4> {
    let n = s.dims()[3];
    softmax(Tensor::cat(vec![prompt, s], 3), 3).narrow(3, columns, n)
}

/// Softmax over `s` with one extra zero-value key of logit `sink` (`[B, H, N, 1]`),
/// that key first: `[B, H, N, 1 + N]`. One copy in, but the backend's fused softmax and
/// its one-pass backward (measured faster than composing max / exp / sum / divide with
/// their backward ops).
pub(crate) fn sink_then_keys(s: Tensor<4>, sink: Tensor<4>) -> Tensor<4> {
    softmax(Tensor::cat(vec![sink, s], 3), 3)
}

/// [`sink_then_keys`] with the sink's column dropped: the weights of the keys alone.
pub(crate) fn sink_softmax(s: Tensor<4>, sink: Tensor<4>) -> Tensor<4> {
    let n = s.dims()[3];
    sink_then_keys(s, sink).narrow(3, 1, n)
}

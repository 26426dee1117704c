//! The whole PUNet: stem → encoder stages (skips kept) → decoder stages → head, and its
//! parameter accounting (body vs. one class's prompts).
//!
//! The similarity head compares every decoder feature (half resolution, `channels[0]`
//! wide) with the tokens of each active class in the final prompt pool:
//! `s = cos(f, p_t)`, `a_t = softmax_t(stopgrad(s) / σ)`, `logit = Σ_t a_t · s_t`, then ×2
//! linear up-sampling to the input size. (The reference adds 0.5 to `s`; as the weights
//! sum to one this shifts every class's logit equally and changes no softmax, so it is
//! left out.)

use burn::module::Module;
use burn::nn::BatchNorm;
use burn::tensor::{Device, Tensor, activation::softmax};

use super::attention::PromptPool;
use super::blocks::{DecoderBlock, EncoderBlock, ResStem, crop_to};
use super::config::{HeadKind, PunetConfig};
use super::conv::{ConvNd, batch_norm, lrelu, upsample2};
use super::hooks::UnetHooks;

/// Whether `path` (relative to a [`Punet`]) names a prompt parameter: a pool slot or an
/// image→prompt bias of an attention sub-block, or a slot of the head's final pool.
pub fn is_prompt_path(path: &str) -> bool {
    path.contains(".prompts.") || path.starts_with("head_prompts.")
}

/// BatchNorm → LeakyReLU → 1×1 conv: the fixed (non-prompt-able) head.
#[derive(Module, Debug)]
pub struct FixedHead {
    pub norm: BatchNorm,
    pub conv: ConvNd,
}

#[derive(Module, Debug)]
pub struct Punet {
    pub stem: ResStem,
    pub encoder: Vec<EncoderBlock>,
    pub decoder: Vec<DecoderBlock>,
    /// Final prompt pool (`channels[0]` wide) of the similarity head.
    pub head_prompts: Option<PromptPool>,
    pub fixed_head: Option<FixedHead>,
    #[module(skip)]
    pub config: PunetConfig,
}

/// Parameter counts: the body (stem, encoder, decoder incl. relative-position tables),
/// the prompt parameters of one class, and everything prompt-related in total.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PunetCounts {
    pub body: usize,
    pub prompts_per_class: usize,
    pub prompts_total: usize,
    pub fixed_head: usize,
    pub total: usize,
}

fn running_statistics(norm: &BatchNorm) -> usize {
    2 * norm.gamma.dims()[0]
}

impl PunetConfig {
    pub fn init(&self, device: &Device) -> Result<Punet, String> {
        self.validate()?;
        let c = &self.channels;
        let stride = self.stride();
        let encoder = (0..c.len())
            .map(|i| {
                let c_in = if i == 0 { c[0] } else { c[i - 1] };
                let s = if i == 0 { [1, 1, 1] } else { stride };
                EncoderBlock::new(self, c_in, c[i], s, device)
            })
            .collect();
        let decoder = (0..c.len() - 1)
            .rev()
            .map(|j| DecoderBlock::new(self, c[j + 1], c[j], device))
            .collect();
        let (head_prompts, fixed_head) = match self.head {
            HeadKind::Similarity => (
                Some(PromptPool::new(
                    self.class_slots,
                    self.tokens_per_class,
                    c[0],
                    device,
                )),
                None,
            ),
            HeadKind::Fixed => (
                None,
                Some(FixedHead {
                    norm: batch_norm(c[0], device),
                    conv: ConvNd::new(c[0], self.fixed_outputs, [1, 1, 1], [1, 1, 1], true, device),
                }),
            ),
        };
        Ok(Punet {
            stem: ResStem::new(self, device),
            encoder,
            decoder,
            head_prompts,
            fixed_head,
            config: self.clone(),
        })
    }
}

impl Punet {
    /// Check an input batch `[B, C, X, Y, Z]` and a class list; the message says what is wrong.
    pub fn check_input(&self, dims: [usize; 5], classes: &[usize]) -> Result<(), String> {
        let [_, c, x, y, z] = dims;
        if c != self.config.in_channels {
            return Err(format!(
                "the model takes {} input channel(s), the batch has {c}",
                self.config.in_channels
            ));
        }
        if self.config.spatial_dims == 2 && z != 1 {
            return Err(format!("a 2-D PUNet takes slices [B, C, X, Y, 1]; got depth {z}"));
        }
        let min = if self.config.spatial_dims == 2 {
            [2, 2, 1]
        } else {
            [2, 2, 2]
        };
        if x < min[0] || y < min[1] || z < min[2] {
            return Err(format!("input {x}×{y}×{z} is too small"));
        }
        match self.config.head {
            HeadKind::Similarity => {
                if classes.is_empty() {
                    return Err("the similarity head needs at least one foreground class".into());
                }
                if let Some(k) = classes
                    .iter()
                    .find(|k| **k == 0 || **k >= self.config.class_slots)
                {
                    return Err(format!(
                        "class slot {k} does not exist: foreground slots are 1..{} (0 is background)",
                        self.config.class_slots - 1
                    ));
                }
            }
            HeadKind::Fixed => {}
        }
        Ok(())
    }

    /// Class logits `[B, K, X, Y, Z]`. With the similarity head `K = 1 + classes.len()`
    /// (background slot 0, then `classes` in the given order) and the classes' prompts
    /// join every attention window; with the fixed head `K = fixed_outputs` and
    /// `classes` is ignored.
    pub fn forward(&self, images: Tensor<5>, classes: &[usize], hooks: &dyn UnetHooks) -> Tensor<5> {
        self.forward_with_features(images, classes, hooks).0
    }

    /// Logits and the decoder features `[B, channels[0], X/2, Y/2, Z']` they come from
    /// (what CPA clusters), from one pass.
    pub fn forward_with_features(
        &self,
        images: Tensor<5>,
        classes: &[usize],
        hooks: &dyn UnetHooks,
    ) -> (Tensor<5>, Tensor<5>) {
        let input_dims = images.dims();
        let features = self.features(images, classes, hooks);
        let logits = match (&self.head_prompts, &self.fixed_head) {
            (Some(pool), _) => self.similarity(features.clone(), pool, classes),
            (None, Some(head)) => head.conv.forward(lrelu(head.norm.forward(features.clone()))),
            (None, None) => unreachable!("a PUNet has one head (built by PunetConfig::init)"),
        };
        (
            crop_to(upsample2(logits, self.config.stride()), input_dims),
            features,
        )
    }

    /// Decoder features `[B, channels[0], …]` at half resolution, before the head.
    pub fn features(&self, images: Tensor<5>, classes: &[usize], hooks: &dyn UnetHooks) -> Tensor<5> {
        let prompt_classes: &[usize] = if self.head_prompts.is_some() { classes } else { &[] };
        let mut x = self.stem.forward(images);
        let mut skips = Vec::with_capacity(self.encoder.len());
        let mut block = 0;
        for (i, stage) in self.encoder.iter().enumerate() {
            x = stage.forward(x, prompt_classes, hooks, block);
            block += 2;
            if i + 1 < self.encoder.len() {
                skips.push(x.clone());
            }
        }
        for stage in &self.decoder {
            let skip = skips.pop().expect("one skip per decoder stage");
            x = stage.forward(x, skip, prompt_classes, hooks, block);
            block += 2;
        }
        x
    }

    fn similarity(&self, features: Tensor<5>, pool: &PromptPool, classes: &[usize]) -> Tensor<5> {
        let [b, c, x, y, z] = features.dims();
        let slots: Vec<usize> = std::iter::once(0).chain(classes.iter().copied()).collect();
        let tokens = self.config.tokens_per_class;
        let f = features.reshape([b, c, x * y * z]); // [B, C, M]
        let f = f.clone() / (f.powf_scalar(2.0).sum_dim(1).sqrt().clamp_min(1e-12));
        let p = pool.tokens(&slots); // [K·T, C]
        let p = p.clone() / (p.powf_scalar(2.0).sum_dim(1).sqrt().clamp_min(1e-12));
        let cos = p
            .unsqueeze::<3>()
            .matmul(f)
            .reshape([b, slots.len(), tokens, x * y * z]);
        let weights = softmax(cos.clone().detach().div_scalar(self.config.sigma), 2);
        (weights * cos).sum_dim(2).reshape([b, slots.len(), x, y, z])
    }

    /// BatchNorm running means and variances: buffers, which burn's `num_params` counts
    /// but PyTorch's parameter count (and the paper's) does not.
    fn running_statistics(&self) -> usize {
        let stem = [&self.stem.norm1, &self.stem.norm2, &self.stem.norm3];
        let encoder = self.encoder.iter().flat_map(|e| [&e.norm, &e.norm_res]);
        let decoder = self.decoder.iter().map(|d| &d.norm_concat);
        let head = self.fixed_head.iter().map(|h| &h.norm);
        stem.into_iter()
            .chain(encoder)
            .chain(decoder)
            .chain(head)
            .map(running_statistics)
            .sum()
    }

    /// Parameter counts (see [`PunetCounts`]), without BatchNorm buffers.
    pub fn counts(&self) -> PunetCounts {
        let sia_blocks = self
            .encoder
            .iter()
            .map(|e| &e.sia)
            .chain(self.decoder.iter().map(|d| &d.sia));
        let (mut prompts_total, mut per_class) = (0, 0);
        for sia in sia_blocks {
            if let Some(p) = &sia.prompts {
                prompts_total += p.num_params();
                per_class += p
                    .pools
                    .iter()
                    .map(|pool| pool.slots[1].num_params())
                    .sum::<usize>();
                per_class += p
                    .bias
                    .iter()
                    .map(|b| b.slots[1].num_params() + b.weights.num_params())
                    .sum::<usize>();
            }
        }
        if let Some(pool) = &self.head_prompts {
            prompts_total += pool.num_params();
            per_class += pool.slots[1].num_params();
        }
        let fixed_head = self
            .fixed_head
            .as_ref()
            .map_or(0, |h| h.num_params() - running_statistics(&h.norm));
        let total = self.num_params() - self.running_statistics();
        PunetCounts {
            body: total - prompts_total - fixed_head,
            prompts_per_class: per_class,
            prompts_total,
            fixed_head,
            total,
        }
    }
}

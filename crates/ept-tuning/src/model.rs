//! [`TunedVit`]: a frozen ViT backbone, the tensors of one tuning method, and a
//! classification head, joined through the backbone's [`VitHooks`] seam. The method
//! decides which parameters train ([`TunedVit::is_trainable`]); the backbone code never
//! learns which method runs.

use burn::module::Module;
use burn::tensor::{Device, Tensor};
use ept_backbones::{AttentionWeights, Vit, VitHooks};

use crate::adapter::AdapterSet;
use crate::config::{EptForm, MethodConfig};
use crate::ept::EptPrompt;
use crate::head::ClassHead;
use crate::lora::LoraSet;
use crate::trainable::{ParamCount, count_params, set_trainable};
use crate::vp::PadPrompt;
use crate::vpt::VptPrompt;

/// Why a method could not be built, saved or loaded.
#[derive(Debug, thiserror::Error)]
pub enum TuningError {
    #[error("invalid method configuration: {0}")]
    Invalid(String),
    #[error("method checkpoint {path}: {reason}")]
    Checkpoint { path: String, reason: String },
    /// Writing a method checkpoint failed (the error names the file).
    #[error(transparent)]
    Write(#[from] ept_backbones::checkpoint::store::WriteError),
}

impl TuningError {
    /// The method checkpoint at `path` cannot be read or does not fit, because of `reason`.
    pub fn checkpoint(path: &std::path::Path, reason: impl std::fmt::Display) -> Self {
        TuningError::Checkpoint {
            path: path.display().to_string(),
            reason: reason.to_string(),
        }
    }
}

/// A backbone adapted by one tuning method, with its classification head.
#[derive(Module, Debug)]
pub struct TunedVit {
    pub backbone: Vit,
    pub vp: Option<PadPrompt>,
    pub vpt: Option<VptPrompt>,
    pub ept: Option<EptPrompt>,
    pub lora: Option<LoraSet>,
    pub adapter: Option<AdapterSet>,
    pub head: ClassHead,
    #[module(skip)]
    pub method: MethodConfig,
}

impl TunedVit {
    /// Attach `method` and a fresh `num_classes` head to `backbone` (its own head is
    /// dropped), and set which parameters train.
    pub fn new(
        mut backbone: Vit,
        method: &MethodConfig,
        num_classes: usize,
        device: &Device,
    ) -> Result<Self, TuningError> {
        if num_classes == 0 {
            return Err(TuningError::Invalid("the head needs at least one class".into()));
        }
        backbone.head = None;
        let depth = backbone.blocks.len();
        let dim = backbone.embed_dim();
        let tokens = backbone.num_tokens();
        let head_depth = if matches!(method, MethodConfig::Mlp3) {
            3
        } else {
            1
        };
        let mut tuned = TunedVit {
            vp: None,
            vpt: None,
            ept: None,
            lora: None,
            adapter: None,
            head: ClassHead::new(dim, num_classes, head_depth, device),
            method: method.clone(),
            backbone,
        };
        match method {
            MethodConfig::Full | MethodConfig::Linear | MethodConfig::Mlp3 | MethodConfig::Bitfit => {}
            MethodConfig::Partial { blocks } => {
                if *blocks == 0 || *blocks > depth {
                    return Err(TuningError::Invalid(format!(
                        "partial: blocks = {blocks}, but the backbone has {depth} blocks"
                    )));
                }
            }
            MethodConfig::Lora { rank, alpha, dropout } => {
                if *rank == 0 || *rank > dim {
                    return Err(TuningError::Invalid(format!(
                        "lora: rank {rank} must be in 1..={dim}"
                    )));
                }
                check_probability("lora: dropout", *dropout)?;
                let alpha = alpha.unwrap_or(*rank as f64);
                tuned.lora = Some(LoraSet::new(depth, dim, *rank, alpha, *dropout, device));
            }
            MethodConfig::Adapter {
                reduction,
                scale,
                dropout,
            } => {
                if *reduction == 0 || !dim.is_multiple_of(*reduction) {
                    return Err(TuningError::Invalid(format!(
                        "adapter: reduction {reduction} must divide the width {dim}"
                    )));
                }
                check_probability("adapter: dropout", *dropout)?;
                tuned.adapter = Some(AdapterSet::new(
                    depth,
                    dim,
                    dim / reduction,
                    *scale,
                    *dropout,
                    device,
                ));
            }
            MethodConfig::Vp { pad } => {
                let backbone = &tuned.backbone;
                tuned.vp = Some(PadPrompt::new(
                    *pad,
                    backbone.in_chans,
                    backbone.img_size,
                    device,
                )?);
            }
            MethodConfig::Vpt { length, deep } => {
                if *length == 0 {
                    return Err(TuningError::Invalid("vpt: length must be at least 1".into()));
                }
                let patch = tuned.backbone.patch_embed.proj.weight.dims()[2];
                tuned.vpt = Some(VptPrompt::new(*length, *deep, depth, dim, patch, device));
            }
            MethodConfig::Ept(config) => {
                tuned.ept = Some(EptPrompt::new(config, EptForm::Fast, depth, tokens, device)?);
            }
            MethodConfig::EptReference(config) => {
                tuned.ept = Some(EptPrompt::new(config, EptForm::Reference, depth, tokens, device)?);
            }
        }
        Ok(tuned.apply_trainability())
    }

    /// Whether the parameter at `path` (module path, e.g. `backbone.blocks.11.mlp.fc1.weight`)
    /// is trained by this method.
    pub fn is_trainable(&self, path: &str) -> bool {
        trainable_for(&self.method, self.backbone.blocks.len(), path)
    }

    /// Set `require_grad` of every parameter from [`TunedVit::is_trainable`] (call again
    /// after replacing a part, e.g. the head).
    pub fn apply_trainability(self) -> Self {
        let method = self.method.clone();
        let depth = self.backbone.blocks.len();
        set_trainable(self, &|path: &str| trainable_for(&method, depth, path))
    }

    /// Trainable and frozen parameter counts.
    pub fn param_count(&self) -> ParamCount {
        count_params(self, &|path: &str| self.is_trainable(path))
    }

    /// Normalised tokens `[B, N', D]` with the method applied.
    pub fn forward_features(&self, images: Tensor<4>) -> Tensor<3> {
        self.backbone.forward_features_with(images, self)
    }

    /// The CLS feature after the final norm, `[B, D]`.
    pub fn pre_logits(&self, images: Tensor<4>) -> Tensor<2> {
        self.backbone.forward_cls_with(images, self)
    }

    /// Images → class logits.
    pub fn forward(&self, images: Tensor<4>) -> Tensor<2> {
        self.head.forward(self.pre_logits(images))
    }
}

fn check_probability(what: &str, p: f64) -> Result<(), TuningError> {
    if (0.0..1.0).contains(&p) {
        Ok(())
    } else {
        Err(TuningError::Invalid(format!("{what} = {p} must be in [0, 1)")))
    }
}

/// The single definition of which parameters a method trains.
pub fn trainable_for(method: &MethodConfig, depth: usize, path: &str) -> bool {
    let Some(inner) = path.strip_prefix("backbone.") else {
        // Method tensors and the head always train.
        return true;
    };
    match method {
        MethodConfig::Full => true,
        MethodConfig::Bitfit => inner.ends_with(".bias") || inner.ends_with(".beta"),
        MethodConfig::Partial { blocks } => {
            if inner.starts_with("norm.") {
                return true;
            }
            inner
                .strip_prefix("blocks.")
                .and_then(|rest| rest.split('.').next())
                .and_then(|index| index.parse::<usize>().ok())
                .is_some_and(|index| index + blocks >= depth)
        }
        _ => false,
    }
}

impl VitHooks for TunedVit {
    fn pixels(&self, images: Tensor<4>) -> Tensor<4> {
        match &self.vp {
            Some(vp) => vp.pixels(images),
            None => images,
        }
    }

    fn block_input(&self, block: usize, tokens: Tensor<3>) -> Tensor<3> {
        match &self.vpt {
            Some(vpt) => vpt.block_input(block, tokens),
            None => tokens,
        }
    }

    fn qkv_delta(&self, block: usize, normed: &Tensor<3>) -> Option<Tensor<3>> {
        self.lora.as_ref()?.qkv_delta(block, normed)
    }

    fn attention_weights(&self, block: usize, logits: Tensor<4>) -> AttentionWeights {
        match &self.ept {
            Some(ept) => ept.attention_weights(block, logits),
            None => AttentionWeights::Keys(burn::tensor::activation::softmax(logits, 3)),
        }
    }

    fn mlp_parallel(&self, block: usize, residual: &Tensor<3>) -> Option<Tensor<3>> {
        self.adapter.as_ref()?.mlp_parallel(block, residual)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partial_trains_the_last_blocks_and_final_norm() {
        let m = MethodConfig::Partial { blocks: 1 };
        assert!(trainable_for(&m, 12, "backbone.blocks.11.attn.qkv.weight"));
        assert!(!trainable_for(&m, 12, "backbone.blocks.10.attn.qkv.weight"));
        assert!(!trainable_for(&m, 12, "backbone.blocks.1.attn.qkv.weight"));
        assert!(trainable_for(&m, 12, "backbone.norm.gamma"));
        assert!(trainable_for(&m, 12, "head.layers.0.weight"));
    }

    #[test]
    fn bitfit_trains_only_biases() {
        let m = MethodConfig::Bitfit;
        assert!(trainable_for(&m, 12, "backbone.blocks.3.mlp.fc1.bias"));
        assert!(trainable_for(&m, 12, "backbone.norm.beta"));
        assert!(!trainable_for(&m, 12, "backbone.norm.gamma"));
        assert!(!trainable_for(&m, 12, "backbone.pos_embed"));
    }
}

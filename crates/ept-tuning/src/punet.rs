//! Adapting a frozen PUNet to new classes: the reference's downstream variants and EPT
//! for segmentation, through PUNet's hook seam ([`UnetHooks`]) exactly as the ViT
//! methods go through `VitHooks`.
//!
//! | variant | head | trains |
//! | --- | --- | --- |
//! | `prompting` | similarity | the new classes' prompt slots in every pool and image→prompt bias, and the bias's shared head weights (57,344 per class at the reference size) |
//! | `bias_prompting` | similarity | `prompting` + every bias of the body (conv, linear, norm shifts) |
//! | `ept` | similarity | `prompting` + EPT logit prompts `[window tokens, L]` in every attention sub-block (a zero-value "sink" key of logit `logsumexp(P[row])` per query) |
//! | `full` | similarity | everything |
//! | `fixed` | fixed 1×1 | the fixed head |
//! | `decoder` | fixed 1×1 | the decoder and the fixed head |
//! | `bias` | fixed 1×1 | the body's biases and the fixed head |
//! | `adapter` | fixed 1×1 | `x + up(LeakyReLU(down(x)))` after every attention sub-block (`C → C/r → C`, `up` zero-initialised) and the fixed head |
//!
//! Differences to the reference: `bias` trains every bias and norm shift but no norm
//! scale (the reference's name rule also picks the stem's BatchNorm scales, 96 more
//! parameters); the adapter's up-projection starts at zero so the frozen body's output
//! is unchanged at step 0. BatchNorm running statistics are buffers and never train.

use burn::module::{Module, Param};
use burn::nn::{Linear, LinearConfig};
use burn::tensor::{
    Device, Distribution, Int, Tensor, TensorData, activation::leaky_relu, activation::softmax,
};
use ept_backbones::unet::{HeadKind, Punet, PunetConfig, UnetHooks};
use serde::{Deserialize, Serialize};

use crate::ept::{logsumexp_last, sink_softmax};
use crate::model::TuningError;
use crate::trainable::{ParamCount, count_params, set_trainable};

/// A PUNet adaptation variant and its options.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "method", rename_all = "snake_case", deny_unknown_fields)]
pub enum SegMethodConfig {
    Prompting,
    BiasPrompting,
    Ept {
        /// Logit-prompt columns per window position.
        #[serde(default = "default_ept_length")]
        length: usize,
    },
    Full,
    Fixed,
    Decoder,
    Bias,
    Adapter {
        /// Bottleneck = width / reduction (reference: 4).
        #[serde(default = "default_reduction")]
        reduction: usize,
    },
}

fn default_ept_length() -> usize {
    16
}
fn default_reduction() -> usize {
    4
}

impl SegMethodConfig {
    pub fn name(&self) -> &'static str {
        match self {
            SegMethodConfig::Prompting => "prompting",
            SegMethodConfig::BiasPrompting => "bias_prompting",
            SegMethodConfig::Ept { .. } => "ept",
            SegMethodConfig::Full => "full",
            SegMethodConfig::Fixed => "fixed",
            SegMethodConfig::Decoder => "decoder",
            SegMethodConfig::Bias => "bias",
            SegMethodConfig::Adapter { .. } => "adapter",
        }
    }

    /// The head the variant needs.
    pub fn head(&self) -> HeadKind {
        match self {
            SegMethodConfig::Fixed
            | SegMethodConfig::Decoder
            | SegMethodConfig::Bias
            | SegMethodConfig::Adapter { .. } => HeadKind::Fixed,
            _ => HeadKind::Similarity,
        }
    }
}

/// One bottleneck adapter per attention sub-block.
#[derive(Module, Debug)]
pub struct SegAdapter {
    pub down: Linear,
    pub up: Linear,
}

/// EPT logit prompts: `prompt[block]` is `[window tokens, L]`.
#[derive(Module, Debug)]
pub struct WindowEpt {
    pub prompt: Vec<Param<Tensor<2>>>,
}

/// A PUNet with one adaptation variant, predicting background + `classes`.
#[derive(Module, Debug)]
pub struct TunedPunet {
    pub punet: Punet,
    pub adapters: Vec<SegAdapter>,
    pub ept: Option<WindowEpt>,
    #[module(skip)]
    pub method: SegMethodConfig,
    /// Foreground class slots this model predicts (output channels 1..).
    #[module(skip)]
    pub classes: Vec<usize>,
}

/// Every sub-block's width, in forward order.
fn block_widths(config: &PunetConfig) -> Vec<usize> {
    let c = &config.channels;
    let encoder = c.iter().copied();
    let decoder = c[..c.len() - 1].iter().rev().copied();
    encoder.chain(decoder).flat_map(|w| [w, w]).collect()
}

impl TunedPunet {
    /// Attach `method` to `punet`, which must have the head the method needs (build it
    /// with `PunetConfig { head: method.head(), .. }`).
    pub fn new(
        punet: Punet,
        method: &SegMethodConfig,
        classes: Vec<usize>,
        device: &Device,
    ) -> Result<Self, TuningError> {
        let config = punet.config.clone();
        if config.head != method.head() {
            return Err(TuningError::Invalid(format!(
                "method {} needs a PUNet with the {:?} head, the model has {:?}",
                method.name(),
                method.head(),
                config.head
            )));
        }
        if classes.is_empty() {
            return Err(TuningError::Invalid(
                "a segmentation run needs at least one foreground class".into(),
            ));
        }
        if config.head == HeadKind::Fixed && classes.len() + 1 != config.fixed_outputs {
            return Err(TuningError::Invalid(format!(
                "the fixed head has {} outputs but the run has {} classes + background",
                config.fixed_outputs,
                classes.len()
            )));
        }
        if let Some(k) = classes.iter().find(|k| **k == 0 || **k >= config.class_slots) {
            return Err(TuningError::Invalid(format!(
                "class {k} has no prompt slot (slots 1..{})",
                config.class_slots - 1
            )));
        }
        let adapters = match method {
            SegMethodConfig::Adapter { reduction } => {
                if *reduction == 0 || config.channels.iter().any(|c| c % reduction != 0) {
                    return Err(TuningError::Invalid(format!(
                        "adapter: reduction {reduction} must divide every width {:?}",
                        config.channels
                    )));
                }
                block_widths(&config)
                    .into_iter()
                    .map(|w| SegAdapter {
                        down: LinearConfig::new(w, w / reduction).init(device),
                        up: LinearConfig::new(w / reduction, w)
                            .with_initializer(burn::nn::Initializer::Zeros)
                            .init(device),
                    })
                    .collect()
            }
            _ => Vec::new(),
        };
        let ept = match method {
            SegMethodConfig::Ept { length } => {
                if *length == 0 {
                    return Err(TuningError::Invalid("ept: `length` must be at least 1".into()));
                }
                let tokens: usize = config.window().iter().product();
                Some(WindowEpt {
                    prompt: (0..config.attention_blocks())
                        .map(|_| {
                            Param::from_tensor(Tensor::random(
                                [tokens, *length],
                                Distribution::Normal(0.0, 0.02),
                                device,
                            ))
                        })
                        .collect(),
                })
            }
            _ => None,
        };
        let tuned = TunedPunet {
            punet,
            adapters,
            ept,
            method: method.clone(),
            classes,
        };
        Ok(tuned.apply_trainability())
    }

    /// Whether the parameter at `path` trains under this variant.
    pub fn is_trainable(&self, path: &str) -> bool {
        seg_trainable(&self.method, &self.classes, path)
    }

    pub fn apply_trainability(self) -> Self {
        let (method, classes) = (self.method.clone(), self.classes.clone());
        set_trainable(self, &|path: &str| seg_trainable(&method, &classes, path))
    }

    /// Trainable and frozen parameters (BatchNorm running statistics excluded).
    pub fn param_count(&self) -> ParamCount {
        let mut count = count_params(self, &|path: &str| self.is_trainable(path));
        let buffers = count_params(self, &|path: &str| is_running_statistic(path)).trainable;
        count.frozen -= buffers;
        count
    }

    /// Images `[B, C, X, Y, Z]` → logits `[B, 1 + classes, X, Y, Z]`.
    pub fn forward(&self, images: Tensor<5>) -> Tensor<5> {
        self.punet.forward(images, &self.classes, self)
    }
}

fn is_running_statistic(path: &str) -> bool {
    path.ends_with(".running_mean") || path.ends_with(".running_var")
}

/// Whether `path` names one of `classes`' prompt tensors (pool or image→prompt slot) or
/// the image→prompt bias's shared head weights.
fn is_class_prompt(classes: &[usize], path: &str) -> bool {
    if path.contains(".prompts.bias.") && path.ends_with(".weights") {
        return true;
    }
    let in_pool = path.contains(".prompts.pools.")
        || path.contains(".prompts.bias.")
        || path.starts_with("punet.head_prompts.");
    in_pool
        && path
            .rsplit_once(".slots.")
            .and_then(|(_, slot)| slot.parse::<usize>().ok())
            .is_some_and(|slot| classes.contains(&slot))
}

/// Biases of the body: conv and linear biases, norm shifts (`beta`).
fn is_body_bias(path: &str) -> bool {
    path.starts_with("punet.")
        && !path.contains(".prompts.")
        && !path.starts_with("punet.head_prompts")
        && !path.starts_with("punet.fixed_head")
        && (path.ends_with(".bias") || path.ends_with(".beta"))
}

fn seg_trainable(method: &SegMethodConfig, classes: &[usize], path: &str) -> bool {
    if is_running_statistic(path) {
        return false;
    }
    let fixed_head = path.starts_with("punet.fixed_head.");
    match method {
        SegMethodConfig::Prompting => is_class_prompt(classes, path),
        SegMethodConfig::BiasPrompting => is_class_prompt(classes, path) || is_body_bias(path),
        SegMethodConfig::Ept { .. } => is_class_prompt(classes, path) || path.starts_with("ept."),
        SegMethodConfig::Full => true,
        SegMethodConfig::Fixed => fixed_head,
        SegMethodConfig::Decoder => fixed_head || path.starts_with("punet.decoder."),
        SegMethodConfig::Bias => fixed_head || is_body_bias(path),
        SegMethodConfig::Adapter { .. } => fixed_head || path.starts_with("adapters."),
    }
}

impl UnetHooks for TunedPunet {
    fn attention_weights(&self, block: usize, logits: Tensor<4>, rows: &[usize]) -> Tensor<4> {
        let Some(prompt) = self.ept.as_ref().and_then(|e| e.prompt.get(block)) else {
            return softmax(logits, 3);
        };
        let [bp, h, n, _] = logits.dims();
        let device = logits.device();
        let index = Tensor::<1, Int>::from_data(
            TensorData::new(rows.iter().map(|r| *r as i64).collect::<Vec<_>>(), [rows.len()]),
            &device,
        );
        let p = prompt.val().select(0, index).unsqueeze::<4>(); // [1, 1, N, L]
        let sink = logsumexp_last(p).expand([bp, h, n, 1]);
        sink_softmax(logits, sink)
    }

    fn block_output(&self, block: usize, tokens: Tensor<3>) -> Tensor<3> {
        match self.adapters.get(block) {
            Some(a) => tokens.clone() + a.up.forward(leaky_relu(a.down.forward(tokens), 0.01)),
            None => tokens,
        }
    }
}

/// Metadata key of a segmentation method checkpoint.
const SEG_META: &str = "ept.seg_method";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct SegMethodMeta {
    method: SegMethodConfig,
    classes: Vec<usize>,
    punet: PunetConfig,
}

/// Save the tensors `model`'s variant trains (with their parameter ids) to `path`.
pub fn save_seg_method(model: &TunedPunet, path: &std::path::Path) -> Result<u64, TuningError> {
    let meta = SegMethodMeta {
        method: model.method.clone(),
        classes: model.classes.clone(),
        punet: model.punet.config.clone(),
    };
    let json = serde_json::to_string(&meta)
        .map_err(|e| ept_backbones::checkpoint::store::WriteError::encode(path, e))?;
    let metadata = std::collections::HashMap::from([(SEG_META.to_string(), json)]);
    Ok(ept_backbones::checkpoint::store::write_module_tensors(
        model,
        &|name| model.is_trainable(name),
        metadata,
        path,
    )?)
}

/// Load a file written by [`save_seg_method`] into a model built the same way.
pub fn load_seg_method(mut model: TunedPunet, path: &std::path::Path) -> Result<TunedPunet, TuningError> {
    use burn_store::ModuleSnapshot;
    let bytes = std::fs::read(path).map_err(|e| TuningError::checkpoint(path, e))?;
    let store = ept_backbones::checkpoint::store::metadata_entry(&bytes, SEG_META)
        .map_err(|e| TuningError::checkpoint(path, e))?;
    let meta: SegMethodMeta = store
        .ok_or_else(|| TuningError::checkpoint(path, "not a segmentation method checkpoint written by ept"))
        .and_then(|t| {
            serde_json::from_str(&t).map_err(|e| TuningError::checkpoint(path, format!("bad metadata: {e}")))
        })?;
    if meta.method != model.method || meta.classes != model.classes {
        return Err(TuningError::checkpoint(
            path,
            format!(
                "holds {} for classes {:?}, but the model is {} for classes {:?}",
                meta.method.name(),
                meta.classes,
                model.method.name(),
                model.classes
            ),
        ));
    }
    if meta.punet != model.punet.config {
        return Err(TuningError::checkpoint(
            path,
            format!(
                "was made with another PUNet architecture: {}",
                model.punet.config.differences(&meta.punet).join(", ")
            ),
        ));
    }
    let snapshots = ept_backbones::checkpoint::store::read_module_tensors(&bytes)
        .map_err(|e| TuningError::checkpoint(path, e))?;
    let result = model.apply(snapshots, None, None, false);
    if let Some(error) = result.errors.first() {
        return Err(TuningError::checkpoint(path, error));
    }
    let missing: Vec<&String> = result
        .missing
        .iter()
        .map(|(n, _)| n)
        .filter(|n| model.is_trainable(n))
        .collect();
    if !missing.is_empty() || !result.unused.is_empty() {
        return Err(TuningError::checkpoint(
            path,
            format!(
                "missing trained tensors {missing:?}, unexpected tensors {:?}",
                result.unused
            ),
        ));
    }
    Ok(model.apply_trainability())
}

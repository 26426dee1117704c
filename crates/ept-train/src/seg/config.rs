//! Segmentation run configuration (`task = "segmentation"` at the top of a run TOML):
//! the PUNet and its optional pretrained body, the adaptation variant, the volume data
//! set with crop sampling and augmentation, the loss, sliding-window evaluation and the
//! optimizer/schedule shared with classification runs. Unknown keys are errors.

use std::path::{Path, PathBuf};

use ept_backbones::unet::PunetConfig;
use ept_data::{AugmentConfig, PatchShape, SamplingConfig, VolumeSource};
use ept_tuning::SegMethodConfig;
use serde::{Deserialize, Serialize};

use super::sliding::Blend;
use crate::config::{OptimizerConfig, OutputConfig, Range, ScheduleConfig, check_ranges, optimizer_checks};
use crate::error::TrainError;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SegRunConfig {
    /// Always `"segmentation"`.
    pub task: String,
    pub model: SegModelConfig,
    pub method: SegMethodConfig,
    pub data: SegDataConfig,
    pub train: SegTrainConfig,
    #[serde(default)]
    pub eval: SegEvalConfig,
    pub output: OutputConfig,
    /// The file this config was read from, named by errors found once the data is known.
    #[serde(skip)]
    pub config_file: std::path::PathBuf,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SegModelConfig {
    /// Architecture (defaults: the reference 2-D PUNet). Its `head` follows the method.
    #[serde(default)]
    pub punet: PunetConfig,
    /// A PUNet weight file (e.g. from `ept-cli pretrain`) whose body is loaded.
    #[serde(default)]
    pub checkpoint: Option<PathBuf>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SegDataConfig {
    pub source: VolumeSource,
    pub sampling: SamplingConfig,
    #[serde(default)]
    pub augment: AugmentConfig,
    /// Foreground classes (label indices) this run learns; default all. Output channel
    /// `i + 1` is `classes[i]`; other labels count as background. One class = the
    /// reference's per-class binary run.
    #[serde(default)]
    pub classes: Option<Vec<usize>>,
    #[serde(default)]
    pub workers: Option<usize>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SegTrainConfig {
    pub epochs: usize,
    pub batch_size: usize,
    #[serde(default)]
    pub seed: u64,
    pub optimizer: OptimizerConfig,
    /// Learning rate of the prompt tensors (class prompts, image→prompt biases, EPT
    /// prompts) when it should differ from the optimizer's (reference: 5e-3 vs 5e-4).
    /// Follows the same schedule.
    #[serde(default)]
    pub lr_prompts: Option<f64>,
    #[serde(default)]
    pub schedule: ScheduleConfig,
    #[serde(default)]
    pub grad_clip_norm: Option<f32>,
    /// Focal-loss γ (reference: 4).
    #[serde(default = "four")]
    pub focal_gamma: f64,
    /// Weight of an added soft Dice loss (reference: 0, focal only).
    #[serde(default)]
    pub dice_weight: f64,
    /// Validate every this many epochs (0 = never).
    #[serde(default = "one")]
    pub eval_every: usize,
}

fn four() -> f64 {
    4.0
}
fn one() -> usize {
    1
}
fn half() -> f64 {
    0.5
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SegEvalConfig {
    /// Sliding-window overlap (reference: 0.5).
    #[serde(default = "half")]
    pub overlap: f64,
    #[serde(default)]
    pub blend: Blend,
    /// Write test predictions as NIfTI on the source grid, with the source header.
    #[serde(default = "yes")]
    pub write_predictions: bool,
}

fn yes() -> bool {
    true
}

impl Default for SegEvalConfig {
    fn default() -> Self {
        SegEvalConfig {
            overlap: 0.5,
            blend: Blend::Gaussian,
            write_predictions: true,
        }
    }
}

impl SegRunConfig {
    /// Parse a resolved TOML table (see `crate::config::RunConfig::load` for includes and
    /// overrides, which happen before).
    pub fn from_table(table: toml::Table, path: &Path) -> Result<Self, TrainError> {
        let mut config: SegRunConfig = crate::config::parse_as(table, path, "segmentation")?;
        config.config_file = path.to_path_buf();
        if !(0.0..1.0).contains(&config.eval.overlap) {
            return Err(TrainError::config(
                path,
                format!("eval.overlap = {} must be in [0, 1)", config.eval.overlap),
            ));
        }
        if config.train.batch_size == 0 || config.train.epochs == 0 {
            return Err(TrainError::config(
                path,
                "train.epochs and train.batch_size must be at least 1",
            ));
        }
        let train = &config.train;
        let mut checks = optimizer_checks(&train.optimizer, train.grad_clip_norm);
        checks.extend([
            ("train.lr_prompts".into(), train.lr_prompts, Range::Positive),
            (
                "train.focal_gamma".into(),
                Some(train.focal_gamma),
                Range::NonNegative,
            ),
            (
                "train.dice_weight".into(),
                Some(train.dice_weight),
                Range::NonNegative,
            ),
        ]);
        check_ranges(path, checks)?;
        config
            .data
            .sampling
            .validate()
            .and_then(|()| config.data.augment.validate())
            .map_err(|e| TrainError::config(path, format!("data.{e}")))?;
        check_volume_model(&config.model.punet, path)?;
        let (dims, shape) = match config.data.sampling.shape {
            PatchShape::Slice2d { .. } => (2, "slice2d"),
            PatchShape::Patch3d { .. } => (3, "patch3d"),
        };
        if config.model.punet.spatial_dims != dims {
            return Err(TrainError::config(
                path,
                format!(
                    "data.sampling takes {shape} crops but model.punet.spatial_dims = {}: \
                     a {dims}-D network is needed (set model.punet.spatial_dims = {dims})",
                    config.model.punet.spatial_dims
                ),
            ));
        }
        Ok(config)
    }

    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).unwrap_or_default()
    }
}

/// What every volume run asks of `model.punet` beyond its own validation (done when it
/// is built): one input channel, as the volume loaders produce (CT intensities).
pub fn check_volume_model(punet: &PunetConfig, path: &Path) -> Result<(), TrainError> {
    if punet.in_channels != 1 {
        return Err(TrainError::config(
            path,
            format!(
                "model.punet.in_channels = {}: volumes are read as one channel, so it must be 1",
                punet.in_channels
            ),
        ));
    }
    Ok(())
}

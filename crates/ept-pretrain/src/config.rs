//! Pre-training configuration (`task = "pretrain"`): PUNet architecture, volume data
//! with teacher/student crop sizes, CPA options and the optimizer with separate body and
//! prompt learning rates. Unknown keys are errors naming the key.

use std::path::Path;

use ept_backbones::unet::PunetConfig;
use ept_data::{AugmentConfig, VolumeSource};
use ept_train::TrainError;
use ept_train::config::{OutputConfig, Range, ScheduleConfig, check_ranges};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PretrainConfig {
    /// Always `"pretrain"`.
    pub task: String,
    #[serde(default)]
    pub model: PretrainModel,
    pub data: PretrainData,
    pub cpa: CpaConfig,
    pub train: PretrainTrain,
    pub output: OutputConfig,
    /// The file this config was read from, named by errors found once the data is known.
    #[serde(skip)]
    pub config_file: std::path::PathBuf,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PretrainModel {
    #[serde(default)]
    pub punet: PunetConfig,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PretrainData {
    pub source: VolumeSource,
    /// Teacher crop (the slice region all views come from), reference 256 × 256.
    pub teacher_size: [usize; 2],
    /// Student crops inside it, reference 224 × 224 and 160 × 160.
    pub student_sizes: Vec<[usize; 2]>,
    #[serde(default = "half")]
    pub p_fg: f64,
    #[serde(default = "one")]
    pub samples_per_volume: usize,
    /// Geometric augmentation of the teacher crop (all views share it).
    #[serde(default)]
    pub augment: AugmentConfig,
    /// Student intensity augmentation: scale in `[1 − a, 1 + a]`, shift in `[−b, b]`, noise σ.
    #[serde(default = "student_intensity")]
    pub student_intensity: [f64; 3],
    #[serde(default)]
    pub workers: Option<usize>,
}

fn half() -> f64 {
    0.5
}
fn one() -> usize {
    1
}
fn student_intensity() -> [f64; 3] {
    [0.25, 0.1, 0.05]
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CpaConfig {
    /// Labelled classes of the pre-training data (the focal loss picks one per batch);
    /// classes left out here are the "new" ones adapted later by prompts.
    pub base_classes: Vec<usize>,
    #[serde(default = "cpa_weight")]
    pub weight: f64,
    #[serde(default = "teacher_temperature")]
    pub teacher_temperature: f64,
    #[serde(default = "student_temperature")]
    pub student_temperature: f64,
    #[serde(default = "three")]
    pub kmeans_iterations: usize,
    /// FWHM (voxels) of the spatial weighting in k-means.
    #[serde(default = "fwhm")]
    pub fwhm: f64,
    /// Student positions farther than this (voxels) from every teacher position are dropped.
    #[serde(default = "four")]
    pub max_match_distance: f32,
    #[serde(default = "tau")]
    pub ema_body: f64,
    #[serde(default = "tau")]
    pub ema_prompts: f64,
    #[serde(default = "gamma")]
    pub focal_gamma: f64,
}

fn cpa_weight() -> f64 {
    0.01
}
fn teacher_temperature() -> f64 {
    0.033
}
fn student_temperature() -> f64 {
    0.066
}
fn three() -> usize {
    3
}
fn fwhm() -> f64 {
    128.0
}
fn four() -> f32 {
    4.0
}
fn tau() -> f64 {
    0.99
}
fn gamma() -> f64 {
    4.0
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PretrainTrain {
    pub epochs: usize,
    pub batch_size: usize,
    #[serde(default)]
    pub seed: u64,
    /// AdamW learning rates (reference: 1e-4 body, 1e-3 prompts) and weight decay (1e-2).
    pub lr_body: f64,
    pub lr_prompts: f64,
    #[serde(default = "decay")]
    pub weight_decay: f64,
    #[serde(default)]
    pub grad_clip_norm: Option<f32>,
    #[serde(default)]
    pub schedule: ScheduleConfig,
}

fn decay() -> f64 {
    1e-2
}

impl PretrainConfig {
    pub fn from_table(table: toml::Table, path: &Path) -> Result<Self, TrainError> {
        let mut config: PretrainConfig = ept_train::config::parse_as(table, path, "pretrain")?;
        config.config_file = path.to_path_buf();
        let [tx, ty] = config.data.teacher_size;
        if config.data.student_sizes.is_empty()
            || config
                .data
                .student_sizes
                .iter()
                .any(|[x, y]| *x > tx || *y > ty || *x < 8 || *y < 8)
        {
            return Err(TrainError::config(
                path,
                "data.student_sizes: one or more crops, each at least 8 and at most data.teacher_size",
            ));
        }
        ept_train::seg::config::check_volume_model(&config.model.punet, path)?;
        if config.model.punet.spatial_dims != 2 {
            return Err(TrainError::config(
                path,
                format!(
                    "model.punet.spatial_dims = {}: CPA pre-training runs on 2-D slices \
                     (data.teacher_size), so it must be 2",
                    config.model.punet.spatial_dims
                ),
            ));
        }
        let base = &config.cpa.base_classes;
        if base.is_empty() {
            return Err(TrainError::config(path, "cpa.base_classes is empty"));
        }
        if let Some(twice) = ept_data::first_repeat(base) {
            return Err(TrainError::config(
                path,
                format!("cpa.base_classes names class {twice} twice"),
            ));
        }
        if config.train.epochs == 0 || config.train.batch_size == 0 {
            return Err(TrainError::config(
                path,
                "train.epochs and train.batch_size must be at least 1",
            ));
        }
        if config.cpa.kmeans_iterations == 0 || config.data.samples_per_volume == 0 {
            return Err(TrainError::config(
                path,
                "cpa.kmeans_iterations and data.samples_per_volume must be at least 1",
            ));
        }
        let (cpa, train) = (&config.cpa, &config.train);
        let key = |k: &str| k.to_string();
        check_ranges(
            path,
            [
                (key("data.p_fg"), Some(config.data.p_fg), Range::Fraction),
                (key("cpa.weight"), Some(cpa.weight), Range::NonNegative),
                (
                    key("cpa.teacher_temperature"),
                    Some(cpa.teacher_temperature),
                    Range::Positive,
                ),
                (
                    key("cpa.student_temperature"),
                    Some(cpa.student_temperature),
                    Range::Positive,
                ),
                (key("cpa.fwhm"), Some(cpa.fwhm), Range::Positive),
                (
                    key("cpa.max_match_distance"),
                    Some(f64::from(cpa.max_match_distance)),
                    Range::NonNegative,
                ),
                (key("cpa.ema_body"), Some(cpa.ema_body), Range::Fraction),
                (key("cpa.ema_prompts"), Some(cpa.ema_prompts), Range::Fraction),
                (key("cpa.focal_gamma"), Some(cpa.focal_gamma), Range::NonNegative),
                (key("train.lr_body"), Some(train.lr_body), Range::Positive),
                (key("train.lr_prompts"), Some(train.lr_prompts), Range::Positive),
                (
                    key("train.weight_decay"),
                    Some(train.weight_decay),
                    Range::NonNegative,
                ),
                (
                    key("train.grad_clip_norm"),
                    train.grad_clip_norm.map(f64::from),
                    Range::Positive,
                ),
            ],
        )?;
        config
            .data
            .augment
            .validate()
            .map_err(|e| TrainError::config(path, format!("data.{e}")))?;
        Ok(config)
    }

    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).unwrap_or_default()
    }
}

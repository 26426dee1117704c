//! PUNet's shape: the reference's defaults (Fischer et al., `marcdcfischer/PUNet`) with
//! a `spatial_dims` switch, so one implementation serves 2-D slices (`[B, C, X, Y, 1]`,
//! kernels `3×3×1`, strides `2×2×1`) and 3-D patches (kernels `3×3×3`, strides `2×2×2`).

use serde::{Deserialize, Serialize};

/// How a feature map is cut into attention windows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WindowLayout {
    /// Swin-style: each window is a contiguous block of `window` voxels.
    #[default]
    Contiguous,
    /// The reference's layout: window `p` holds the voxels `p, p + P, p + 2P, …` along
    /// each axis (`P` = number of windows), i.e. a strided sub-grid spanning the image.
    Strided,
}

/// Which segmentation head turns decoder features into class logits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HeadKind {
    /// Cosine similarity to the final prompt pool's class tokens, aggregated per class
    /// by a softmax with temperature σ (the prompt-able head). Needs the prompt pools.
    #[default]
    Similarity,
    /// BatchNorm → LeakyReLU → 1×1 conv to a fixed number of outputs; no prompt pools
    /// anywhere (the reference's `fixed_output` variants).
    Fixed,
}

/// Architecture of a PUNet.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PunetConfig {
    /// 2 (slices, the reference default) or 3 (volumes).
    #[serde(default = "two")]
    pub spatial_dims: usize,
    #[serde(default = "one")]
    pub in_channels: usize,
    /// Stage widths; the first is also the stem's and the final prompt pool's width.
    #[serde(default = "default_channels")]
    pub channels: Vec<usize>,
    #[serde(default = "eight")]
    pub heads: usize,
    /// Attention window in voxels `[X, Y, Z]` (default `[8, 8, 1]` in 2-D, `[8, 8, 4]` in 3-D).
    #[serde(default)]
    pub window: Option<[usize; 3]>,
    #[serde(default)]
    pub window_layout: WindowLayout,
    /// Prompt tokens per class.
    #[serde(default = "sixteen")]
    pub tokens_per_class: usize,
    /// Class slots per prompt pool (background included).
    #[serde(default = "ten")]
    pub class_slots: usize,
    /// Width of the learned attention-bias embeddings.
    #[serde(default = "thirty_two")]
    pub bias_dim: usize,
    /// Temperature of the similarity head's softmax over a class's tokens.
    #[serde(default = "sigma")]
    pub sigma: f64,
    #[serde(default)]
    pub head: HeadKind,
    /// Outputs of the fixed head (background + classes of one run).
    #[serde(default = "two")]
    pub fixed_outputs: usize,
    /// The reference computes keys and values from the projected queries
    /// (`k = W_k W_q x`) instead of from `x`; off by default (parameter counts equal).
    #[serde(default)]
    pub kv_from_queries: bool,
}

fn one() -> usize {
    1
}
fn two() -> usize {
    2
}
fn eight() -> usize {
    8
}
fn ten() -> usize {
    10
}
fn sixteen() -> usize {
    16
}
fn thirty_two() -> usize {
    32
}
fn sigma() -> f64 {
    0.1
}
fn default_channels() -> Vec<usize> {
    vec![32, 64, 128, 256, 384]
}

impl Default for PunetConfig {
    fn default() -> Self {
        PunetConfig {
            spatial_dims: 2,
            in_channels: 1,
            channels: default_channels(),
            heads: 8,
            window: None,
            window_layout: WindowLayout::Contiguous,
            tokens_per_class: 16,
            class_slots: 10,
            bias_dim: 32,
            sigma: sigma(),
            head: HeadKind::Similarity,
            fixed_outputs: 2,
            kv_from_queries: false,
        }
    }
}

impl PunetConfig {
    /// `model.punet.<key>: file's … model's` for each field where `file` (a weight
    /// file's architecture) differs from `self` (the model's).
    pub fn differences(&self, file: &PunetConfig) -> Vec<String> {
        let fields = |config: &PunetConfig| match serde_json::to_value(config) {
            Ok(serde_json::Value::Object(map)) => map,
            _ => serde_json::Map::new(),
        };
        let (file, model) = (fields(file), fields(self));
        file.iter()
            .filter(|(key, value)| model.get(*key) != Some(*value))
            .map(|(key, value)| {
                let now = model.get(key).map_or("(unset)".to_string(), ToString::to_string);
                format!("model.punet.{key}: {value} in the file, {now} in the model")
            })
            .collect()
    }

    /// The reference 2-D configuration.
    pub fn reference_2d() -> Self {
        Self::default()
    }

    /// Attention window, defaulted by `spatial_dims`.
    pub fn window(&self) -> [usize; 3] {
        self.window.unwrap_or(if self.spatial_dims == 3 {
            [8, 8, 4]
        } else {
            [8, 8, 1]
        })
    }

    /// Convolution kernel `[X, Y, Z]`.
    pub fn kernel(&self) -> [usize; 3] {
        if self.spatial_dims == 3 {
            [3, 3, 3]
        } else {
            [3, 3, 1]
        }
    }

    /// Down-sampling stride (and up-sampling factor) `[X, Y, Z]`.
    pub fn stride(&self) -> [usize; 3] {
        if self.spatial_dims == 3 {
            [2, 2, 2]
        } else {
            [2, 2, 1]
        }
    }

    /// Number of window-attention sub-blocks (two per encoder and decoder stage).
    pub fn attention_blocks(&self) -> usize {
        2 * (2 * self.channels.len() - 1)
    }

    /// The input side must be divisible by this (stem + encoder strides).
    pub fn size_multiple(&self) -> usize {
        1 << self.channels.len()
    }

    /// Check the configuration; the message names the field.
    pub fn validate(&self) -> Result<(), String> {
        if !matches!(self.spatial_dims, 2 | 3) {
            return Err(format!("spatial_dims must be 2 or 3, not {}", self.spatial_dims));
        }
        if self.channels.len() < 2 {
            return Err("channels: at least two stages are needed".into());
        }
        if self.heads == 0 {
            return Err("heads must be ≥ 1".into());
        }
        if let Some(c) = self.channels.iter().find(|c| **c == 0 || **c % self.heads != 0) {
            return Err(format!(
                "channels: {c} is not a positive multiple of heads = {}",
                self.heads
            ));
        }
        let window = self.window();
        if window.contains(&0) || (self.spatial_dims == 2 && window[2] != 1) {
            return Err(format!("window {window:?}: sides must be ≥ 1 (and Z = 1 in 2-D)"));
        }
        if self.tokens_per_class == 0 || self.class_slots < 2 {
            return Err("tokens_per_class must be ≥ 1 and class_slots ≥ 2".into());
        }
        if self.sigma.is_nan() || self.sigma <= 0.0 {
            return Err(format!("sigma must be positive, not {}", self.sigma));
        }
        if self.bias_dim == 0 {
            return Err("bias_dim must be ≥ 1".into());
        }
        if self.in_channels == 0 || self.fixed_outputs < 2 {
            return Err("in_channels must be ≥ 1 and fixed_outputs ≥ 2".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_the_reference() {
        let c = PunetConfig::reference_2d();
        assert_eq!(c.channels, vec![32, 64, 128, 256, 384]);
        assert_eq!(
            (c.heads, c.window(), c.tokens_per_class, c.class_slots),
            (8, [8, 8, 1], 16, 10)
        );
        assert_eq!(c.attention_blocks(), 18);
        assert!(c.validate().is_ok());
    }

    #[test]
    fn unknown_keys_and_bad_values_are_named() {
        let err = toml::from_str::<PunetConfig>("chanels = [8]")
            .unwrap_err()
            .to_string();
        assert!(err.contains("chanels"), "{err}");
        let bad = PunetConfig {
            channels: vec![16, 20],
            ..PunetConfig::default()
        };
        assert!(bad.validate().unwrap_err().contains("20"));
    }
}

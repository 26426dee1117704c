//! ViT configurations: named timm-style presets (`vit_{micro,tiny,small,base,large}_patch{4,8,14,16,32}_{size}`)
//! and custom shapes, validated before any weight is allocated.

use serde::{Deserialize, Serialize};

/// Why a ViT could not be configured or run.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum VitError {
    #[error(
        "unknown model '{0}': expected vit_{{micro,tiny,small,base,large}}_patch{{4,8,14,16,32}}_{{image size}}, \
         e.g. vit_base_patch16_224"
    )]
    UnknownModel(String),
    #[error("invalid ViT config: {0}")]
    Invalid(String),
    #[error("input of shape {found:?} does not fit this model: expected [batch, {channels}, {size}, {size}]")]
    InputShape {
        found: Vec<usize>,
        channels: usize,
        size: usize,
    },
}

/// Shape of a Vision Transformer. Field names follow timm's constructor arguments.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VitConfig {
    /// timm-style name, kept for reports and method-checkpoint identity.
    pub name: String,
    pub img_size: usize,
    pub patch_size: usize,
    #[serde(default = "default_in_chans")]
    pub in_chans: usize,
    pub embed_dim: usize,
    pub depth: usize,
    pub num_heads: usize,
    #[serde(default = "default_mlp_ratio")]
    pub mlp_ratio: f64,
    /// Size of the linear head on the CLS token; 0 = no head (features only).
    #[serde(default)]
    pub num_classes: usize,
    #[serde(default = "default_true")]
    pub qkv_bias: bool,
    /// LayerNorm epsilon; timm ViTs use 1e-6.
    #[serde(default = "default_eps")]
    pub layer_norm_eps: f64,
}

fn default_in_chans() -> usize {
    3
}
fn default_mlp_ratio() -> f64 {
    4.0
}
fn default_true() -> bool {
    true
}
fn default_eps() -> f64 {
    1e-6
}

/// (width, depth, heads) of the standard sizes (Dosovitskiy et al.; timm), plus ept's
/// own `micro` size for CPU demos and tests (not a timm model).
fn size_preset(size: &str) -> Option<(usize, usize, usize)> {
    match size {
        "micro" => Some((96, 6, 3)),
        "tiny" => Some((192, 12, 3)),
        "small" => Some((384, 12, 6)),
        "base" => Some((768, 12, 12)),
        "large" => Some((1024, 24, 16)),
        _ => None,
    }
}

impl VitConfig {
    /// A preset by timm name, e.g. `vit_base_patch16_224` (1000-class head, as timm).
    pub fn from_name(name: &str) -> Result<Self, VitError> {
        let unknown = || VitError::UnknownModel(name.to_string());
        let parts: Vec<&str> = name.split('_').collect();
        let [prefix, size, patch, img] = parts[..] else {
            return Err(unknown());
        };
        if prefix != "vit" {
            return Err(unknown());
        }
        let (embed_dim, depth, num_heads) = size_preset(size).ok_or_else(unknown)?;
        let patch_size: usize = patch
            .strip_prefix("patch")
            .and_then(|p| p.parse().ok())
            .filter(|p| [4, 8, 14, 16, 32].contains(p))
            .ok_or_else(unknown)?;
        let img_size: usize = img.parse().map_err(|_| unknown())?;
        let config = VitConfig {
            name: name.to_string(),
            img_size,
            patch_size,
            in_chans: 3,
            embed_dim,
            depth,
            num_heads,
            mlp_ratio: 4.0,
            num_classes: 1000,
            qkv_bias: true,
            layer_norm_eps: 1e-6,
        };
        config.validate()?;
        Ok(config)
    }

    /// The architecture of the committed golden fixtures (`tests/fixtures/vit_tiny`, made
    /// by `tools/golden/make_vit_golden.py` with timm): width 48, depth 2, 3 heads, patch
    /// 8, a 5-class head; `img_size` 32 as generated, or another size to test resampling.
    pub fn golden_tiny(img_size: usize) -> Self {
        VitConfig {
            name: "vit_golden_tiny".into(),
            img_size,
            patch_size: 8,
            in_chans: 3,
            embed_dim: 48,
            depth: 2,
            num_heads: 3,
            mlp_ratio: 4.0,
            num_classes: 5,
            qkv_bias: true,
            layer_norm_eps: 1e-6,
        }
    }

    /// Same architecture at another input size (the position grid changes).
    pub fn with_img_size(mut self, img_size: usize) -> Self {
        self.img_size = img_size;
        self
    }

    /// Same architecture with another head size (0 = none).
    pub fn with_num_classes(mut self, num_classes: usize) -> Self {
        self.num_classes = num_classes;
        self
    }

    /// Check that the numbers describe a buildable model.
    pub fn validate(&self) -> Result<(), VitError> {
        let fail = |m: String| Err(VitError::Invalid(m));
        if self.patch_size == 0 || self.img_size == 0 || !self.img_size.is_multiple_of(self.patch_size) {
            return fail(format!(
                "img_size {} must be a positive multiple of patch_size {}",
                self.img_size, self.patch_size
            ));
        }
        if self.num_heads == 0 || !self.embed_dim.is_multiple_of(self.num_heads) {
            return fail(format!(
                "embed_dim {} must be divisible by num_heads {}",
                self.embed_dim, self.num_heads
            ));
        }
        if self.depth == 0 || self.in_chans == 0 {
            return fail("depth and in_chans must be at least 1".into());
        }
        if self.mlp_ratio.is_nan() || self.mlp_ratio <= 0.0 {
            return fail(format!("mlp_ratio {} must be positive", self.mlp_ratio));
        }
        // The largest tensors (position table, one image's attention scores, an MLP
        // weight) must have a countable size; whether they fit in memory is the
        // allocator's question.
        let grid = self.img_size / self.patch_size;
        let tokens = grid.checked_mul(grid).and_then(|patches| patches.checked_add(1));
        let countable = |elements: Option<usize>| elements.is_some_and(|n| n <= isize::MAX as usize);
        let table = tokens.and_then(|t| t.checked_mul(self.embed_dim));
        let scores = tokens
            .and_then(|t| t.checked_mul(t))
            .and_then(|s| s.checked_mul(self.num_heads));
        let mlp = (self.embed_dim as f64 * self.mlp_ratio * self.embed_dim as f64) < isize::MAX as f64;
        if !countable(table) || !countable(scores) || !mlp {
            return fail(format!(
                "img_size {} / patch_size {} with embed_dim {} (mlp_ratio {}) is too large a model to describe",
                self.img_size, self.patch_size, self.embed_dim, self.mlp_ratio
            ));
        }
        Ok(())
    }

    /// Patches per side.
    pub fn grid_size(&self) -> usize {
        self.img_size / self.patch_size
    }

    /// Tokens including the CLS token (197 for 224 px / patch 16).
    pub fn num_tokens(&self) -> usize {
        self.grid_size() * self.grid_size() + 1
    }

    /// MLP hidden width.
    pub fn mlp_hidden(&self) -> usize {
        (self.embed_dim as f64 * self.mlp_ratio) as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_preset_has_paper_shape() {
        let c = VitConfig::from_name("vit_base_patch16_224").unwrap();
        assert_eq!(
            (c.embed_dim, c.depth, c.num_heads, c.num_tokens()),
            (768, 12, 12, 197)
        );
        let c = VitConfig::from_name("vit_small_patch32_384").unwrap();
        assert_eq!((c.embed_dim, c.grid_size()), (384, 12));
    }

    #[test]
    fn unknown_names_are_rejected() {
        for bad in [
            "resnet50",
            "vit_huge_patch16_224",
            "vit_base_patch15_224",
            "vit_base_patch16",
            "vit_base_patch16_abc",
        ] {
            assert!(
                matches!(VitConfig::from_name(bad), Err(VitError::UnknownModel(_))),
                "{bad}"
            );
        }
        assert!(matches!(
            VitConfig::from_name("vit_base_patch16_100"),
            Err(VitError::Invalid(_))
        ));
    }

    #[test]
    fn sizes_past_counting_are_refused_not_panicked_on() {
        let base = VitConfig::from_name("vit_base_patch16_224").unwrap();
        for img_size in [4_000_000_000usize, 1 << 40, usize::MAX / 16 * 16] {
            let config = VitConfig {
                img_size,
                ..base.clone()
            };
            let err = config.validate().unwrap_err().to_string();
            assert!(
                err.contains("too large") && err.contains(&img_size.to_string()),
                "{err}"
            );
        }
        assert!(
            VitConfig {
                img_size: 4096,
                ..base
            }
            .validate()
            .is_ok()
        );
    }

    #[test]
    fn toml_typo_is_an_error_naming_the_key() {
        let text = "name='x'\nimg_size=32\npatch_size=8\nembed_dim=48\ndepth=2\nnum_heads=3\nnum_head=3\n";
        let err = toml::from_str::<VitConfig>(text).unwrap_err().to_string();
        assert!(err.contains("num_head"), "{err}");
    }
}

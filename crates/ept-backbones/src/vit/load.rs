//! Loading timm- or mmcls-named checkpoints into a [`Vit`].
//!
//! 1. Wrapper prefixes are stripped (`state_dict.`, `model.`, `module.`).
//! 2. The naming is detected: mmcls/MedFM ViTs (`backbone.layers.N.ln1`,
//!    `patch_embed.projection`, `ffn.layers.0.0`, final norm `ln1`, head
//!    `head.layers.head` or — in MedFM/EPT configs — `head.fc`) are renamed to timm's
//!    keys, which are this model's paths. An EPT prompt (`backbone.prompt`) is a
//!    method tensor, not a backbone one: it is set aside and reported.
//! 3. Keys are reconciled with the model: the position grid is resampled when the
//!    image size differs, the way the checkpoint's own framework does it (timm:
//!    antialiased bicubic, `resample_abs_pos_embed`; mmcls: plain bicubic,
//!    `resize_pos_embed`); a head that is
//!    absent or of another size is left freshly initialised, and the report says so.
//!    Anything else missing, unexpected or mis-shaped is a [`CheckpointError::Mismatch`]
//!    listing every key.
//! 4. Tensors are applied through burn-store's PyTorch adapter (linear weights
//!    transposed, norm `weight/bias` → `gamma/beta`).

use std::collections::BTreeMap;
use std::path::Path;

use burn::tensor::TensorData;
use burn_store::{BurnToPyTorchAdapter, ModuleSnapshot, PyTorchToBurnAdapter, bridge};
use ept_backend::resample::{ResizeMode, resize_planes};

use super::model::Vit;
use crate::checkpoint::{
    CheckpointError, KeyMismatch, LoadReport, RawCheckpoint, ShapeMismatch, read_checkpoint,
};

/// Key naming convention of a ViT checkpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Naming {
    Timm,
    Mmcls,
}

impl Naming {
    fn as_str(self) -> &'static str {
        match self {
            Naming::Timm => "timm",
            Naming::Mmcls => "mmcls",
        }
    }

    /// How the checkpoint's framework resamples position grids for another image size:
    /// timm 1.0 `resample_abs_pos_embed` (bicubic, antialias=True); mmcls 0.25
    /// `resize_pos_embed` (bicubic, align_corners=False, no antialias).
    pub fn pos_embed_resize(self) -> ResizeMode {
        match self {
            Naming::Timm => ResizeMode::BicubicAntialias,
            Naming::Mmcls => ResizeMode::Bicubic,
        }
    }
}

/// Checkpoint keys that belong to a tuning method, not to the backbone (EPT's prompt).
const METHOD_KEYS: [&str; 1] = ["prompt"];

const WRAPPERS: [&str; 3] = ["state_dict.", "model.", "module."];

fn strip_wrappers(mut key: &str) -> &str {
    while let Some(rest) = WRAPPERS.iter().find_map(|w| key.strip_prefix(w)) {
        key = rest;
    }
    key
}

fn detect_naming<'a>(keys: impl Iterator<Item = &'a String>) -> Naming {
    let mut mmcls = false;
    for key in keys {
        let key = strip_wrappers(key);
        if key.starts_with("backbone.")
            || key.contains("patch_embed.projection")
            || key.starts_with("layers.")
        {
            mmcls = true;
        }
    }
    if mmcls { Naming::Mmcls } else { Naming::Timm }
}

/// mmcls key (after `backbone.` is removed) → timm key. Unknown keys pass unchanged
/// so that they surface as "unexpected" with their original spelling.
fn mmcls_to_timm(key: &str) -> String {
    let key = key.strip_prefix("backbone.").unwrap_or(key);
    if let Some(rest) = key.strip_prefix("patch_embed.projection.") {
        return format!("patch_embed.proj.{rest}");
    }
    if let Some(rest) = key.strip_prefix("ln1.") {
        return format!("norm.{rest}");
    }
    for head in ["head.layers.head.", "head.fc."] {
        if let Some(rest) = key.strip_prefix(head) {
            return format!("head.{rest}");
        }
    }
    if let Some(rest) = key.strip_prefix("layers.")
        && let Some((index, inner)) = rest.split_once('.')
    {
        let renamed = [
            ("ln1.", "norm1."),
            ("ln2.", "norm2."),
            ("attn.qkv.", "attn.qkv."),
            ("attn.proj.", "attn.proj."),
            ("ffn.layers.0.0.", "mlp.fc1."),
            ("ffn.layers.1.", "mlp.fc2."),
        ]
        .iter()
        .find_map(|(from, to)| inner.strip_prefix(from).map(|p| format!("{to}{p}")));
        if let Some(inner) = renamed {
            return format!("blocks.{index}.{inner}");
        }
    }
    key.to_string()
}

/// Rename a raw checkpoint's keys to this model's (timm) keys.
pub fn normalize_keys(raw: RawCheckpoint) -> (Naming, BTreeMap<String, TensorData>) {
    let naming = detect_naming(raw.tensors.keys());
    let tensors = raw
        .tensors
        .into_iter()
        .map(|(key, data)| {
            let key = strip_wrappers(&key);
            let key = match naming {
                Naming::Timm => key.to_string(),
                Naming::Mmcls => mmcls_to_timm(key),
            };
            (key, data)
        })
        .collect();
    (naming, tensors)
}

/// Resample a `[1, 1 + g², D]` position table to `[1, 1 + new_g², D]` (CLS row kept).
fn resample_pos_embed(data: &TensorData, new_grid: usize, mode: ResizeMode) -> Option<TensorData> {
    let shape = data.shape();
    let (tokens, dim) = (shape[1], shape[2]);
    // Not a CLS row plus a non-empty square grid: left to the shape check that follows.
    let patches = tokens.checked_sub(1).filter(|&p| p > 0)?;
    let old_grid = (patches as f64).sqrt().round() as usize;
    if old_grid * old_grid != patches {
        return None;
    }
    let values = data.try_to_vec::<f32>().ok()?;
    // [tokens, D] → planes [D, g, g]
    let mut planes = vec![0f32; dim * old_grid * old_grid];
    for t in 0..old_grid * old_grid {
        for d in 0..dim {
            planes[d * old_grid * old_grid + t] = values[(1 + t) * dim + d];
        }
    }
    let resized = resize_planes(&planes, dim, (old_grid, old_grid), (new_grid, new_grid), mode);
    let new_tokens = new_grid * new_grid;
    let mut out = values[..dim].to_vec();
    out.resize((1 + new_tokens) * dim, 0.0);
    for t in 0..new_tokens {
        for d in 0..dim {
            out[(1 + t) * dim + d] = resized[d * new_tokens + t];
        }
    }
    Some(TensorData::new(out, [1, 1 + new_tokens, dim]))
}

impl Vit {
    /// The model's parameter shapes under their timm/PyTorch key names.
    pub fn expected_keys(&self) -> BTreeMap<String, Vec<usize>> {
        self.collect(None, Some(Box::new(BurnToPyTorchAdapter)), false)
            .into_iter()
            .map(|t| (t.name.clone(), t.shape.to_vec()))
            .collect()
    }

    /// Load a timm or mmcls checkpoint (`.safetensors` or `.pth`) into this model.
    pub fn load_checkpoint(&mut self, path: &Path, model_name: &str) -> Result<LoadReport, CheckpointError> {
        let (naming, mut tensors) = normalize_keys(read_checkpoint(path)?);
        let expected = self.expected_keys();
        let mut notes = Vec::new();

        // Position grid of another image size: resample like timm.
        if let (Some(found), Some(want)) = (tensors.get("pos_embed"), expected.get("pos_embed")) {
            let found_shape = found.shape().to_vec();
            if found_shape.len() == 3 && found_shape[2] == want[2] && found_shape[1] != want[1] {
                let new_grid = ((want[1] - 1) as f64).sqrt().round() as usize;
                if let Some(resized) = resample_pos_embed(found, new_grid, naming.pos_embed_resize()) {
                    notes.push(format!(
                        "pos_embed resampled from {} to {} tokens ({:?}, as {} does)",
                        found_shape[1],
                        want[1],
                        naming.pos_embed_resize(),
                        naming.as_str()
                    ));
                    tensors.insert("pos_embed".into(), resized);
                }
            }
        }

        // Head: absent, of another size, or not wanted — the model keeps its own.
        let head_keys = ["head.weight", "head.bias"];
        let head_fits = head_keys
            .iter()
            .all(|k| match (tensors.get(*k), expected.get(*k)) {
                (Some(found), Some(want)) => found.shape().to_vec() == *want,
                _ => false,
            });
        if !head_fits {
            let had_head = head_keys.iter().any(|k| tensors.contains_key(*k));
            for key in head_keys {
                tensors.remove(key);
            }
            if expected.contains_key("head.weight") {
                notes.push(if had_head {
                    "the checkpoint's head has another number of classes: head initialised randomly".into()
                } else {
                    "the checkpoint has no classification head: head initialised randomly".into()
                });
            } else if had_head {
                notes.push("the checkpoint's head is not used (model built without a head)".into());
            }
        }

        for key in METHOD_KEYS {
            if let Some(data) = tensors.remove(key) {
                notes.push(format!(
                    "'{key}' {:?} is a tuning-method tensor (EPT prompt), not loaded into the backbone",
                    data.shape().to_vec()
                ));
            }
        }

        let missing: Vec<String> = expected
            .keys()
            .filter(|k| !tensors.contains_key(*k) && !head_keys.contains(&k.as_str()))
            .cloned()
            .collect();
        let unexpected: Vec<String> = tensors
            .keys()
            .filter(|k| !expected.contains_key(*k))
            .cloned()
            .collect();
        let mismatched: Vec<ShapeMismatch> = tensors
            .iter()
            .filter_map(|(key, data)| {
                let want = expected.get(key)?;
                let found = data.shape().to_vec();
                (found != *want).then(|| ShapeMismatch {
                    key: key.clone(),
                    expected: want.clone(),
                    found,
                })
            })
            .collect();
        if !missing.is_empty() || !unexpected.is_empty() || !mismatched.is_empty() {
            return Err(CheckpointError::Mismatch(Box::new(KeyMismatch {
                path: path.to_path_buf(),
                model: model_name.to_string(),
                naming: naming.as_str().to_string(),
                missing,
                unexpected,
                mismatched,
            })));
        }

        let loaded: Vec<String> = tensors.keys().cloned().collect();
        let snapshots = tensors
            .into_iter()
            .map(|(key, data)| bridge::from_data(data, key, None))
            .collect();
        let result = self.apply(snapshots, None, Some(Box::new(PyTorchToBurnAdapter)), false);
        if let Some(error) = result.errors.first() {
            return Err(CheckpointError::Corrupt {
                path: path.to_path_buf(),
                reason: format!("applying tensors failed: {error}"),
            });
        }
        Ok(LoadReport {
            path: path.to_path_buf(),
            naming: naming.as_str().to_string(),
            loaded,
            notes,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mmcls_keys_map_to_timm_keys() {
        let cases = [
            ("backbone.cls_token", "cls_token"),
            (
                "backbone.patch_embed.projection.weight",
                "patch_embed.proj.weight",
            ),
            ("backbone.layers.3.ln1.bias", "blocks.3.norm1.bias"),
            (
                "backbone.layers.11.ffn.layers.0.0.weight",
                "blocks.11.mlp.fc1.weight",
            ),
            ("backbone.layers.0.ffn.layers.1.bias", "blocks.0.mlp.fc2.bias"),
            ("backbone.layers.2.attn.qkv.weight", "blocks.2.attn.qkv.weight"),
            ("backbone.ln1.weight", "norm.weight"),
            ("head.layers.head.weight", "head.weight"),
            ("head.fc.bias", "head.bias"),
            ("backbone.something.else", "something.else"),
        ];
        for (from, to) in cases {
            assert_eq!(mmcls_to_timm(from), to, "{from}");
        }
    }

    #[test]
    fn wrappers_and_naming_are_detected() {
        assert_eq!(
            strip_wrappers("state_dict.module.blocks.0.norm1.weight"),
            "blocks.0.norm1.weight"
        );
        let timm = ["blocks.0.norm1.weight".to_string()];
        assert_eq!(detect_naming(timm.iter()), Naming::Timm);
        let mm = ["state_dict.backbone.layers.0.ln1.weight".to_string()];
        assert_eq!(detect_naming(mm.iter()), Naming::Mmcls);
    }

    #[test]
    fn pos_embed_resample_keeps_cls_row_and_size() {
        let dim = 2;
        let data: Vec<f32> = (0..(1 + 4) * dim).map(|v| v as f32).collect();
        let out = resample_pos_embed(
            &TensorData::new(data.clone(), [1, 5, dim]),
            3,
            ResizeMode::Bicubic,
        )
        .unwrap();
        assert_eq!(out.shape().to_vec(), vec![1, 10, dim]);
        let values = out.try_to_vec::<f32>().unwrap();
        assert_eq!(&values[..dim], &data[..dim]);
    }

    #[test]
    fn pos_embed_without_a_square_grid_is_not_resampled() {
        for tokens in [0, 1, 3] {
            let data = TensorData::new(vec![0f32; tokens * 2], [1, tokens, 2]);
            assert!(
                resample_pos_embed(&data, 3, ResizeMode::Bicubic).is_none(),
                "{tokens} tokens"
            );
        }
    }
}

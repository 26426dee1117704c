//! Method-only checkpoints, like peft adapters: just the tensors a method trains
//! (its prompts/low-rank factors/adapters, the head, and for Partial/BitFit/Full the
//! unfrozen backbone tensors), plus the method config and the backbone's identity, in
//! one `.safetensors` file written atomically. Loading refuses a backbone of another
//! name or shape — in particular an EPT prompt made for another token count (image size).
//! The parameters' ids are stored too, so optimizer state saved beside the file (keyed by
//! parameter id) applies again after loading: that is what makes resume exact.

use std::collections::HashMap;
use std::path::Path;

use burn_store::ModuleSnapshot;
use ept_backbones::checkpoint::store;
use serde::{Deserialize, Serialize};

use crate::config::MethodConfig;
use crate::model::{TunedVit, TuningError};

/// Identifies the file kind and layout version.
pub const FORMAT: &str = "ept-method/1";

/// What a method checkpoint says about itself (the safetensors metadata).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MethodMeta {
    pub format: String,
    pub method: MethodConfig,
    /// Backbone identity: the model name plus the shape facts the tensors depend on.
    pub backbone: String,
    pub embed_dim: usize,
    pub depth: usize,
    pub num_tokens: usize,
    pub num_classes: usize,
}

impl MethodMeta {
    pub fn of(model: &TunedVit, backbone_name: &str) -> Self {
        MethodMeta {
            format: FORMAT.into(),
            method: model.method.clone(),
            backbone: backbone_name.to_string(),
            embed_dim: model.backbone.embed_dim(),
            depth: model.backbone.blocks.len(),
            num_tokens: model.backbone.num_tokens(),
            num_classes: model.head.num_classes(),
        }
    }
}

/// A method as its config table reads, e.g. `{ method = "ept", length = 4 }`.
fn as_config(method: &MethodConfig) -> String {
    match toml::Value::try_from(method) {
        Ok(toml::Value::Table(table)) => {
            let fields: Vec<String> = table.iter().map(|(k, v)| format!("{k} = {v}")).collect();
            format!("{{ {} }}", fields.join(", "))
        }
        _ => method.name().to_string(),
    }
}

/// Save the trained tensors of `model` to `path`; returns the file size in bytes.
pub fn save_method(model: &TunedVit, backbone_name: &str, path: &Path) -> Result<u64, TuningError> {
    let meta = MethodMeta::of(model, backbone_name);
    let metadata = HashMap::from([(
        "ept".to_string(),
        serde_json::to_string(&meta).map_err(|e| store::WriteError::encode(path, e))?,
    )]);
    Ok(store::write_module_tensors(
        model,
        &|name| model.is_trainable(name),
        metadata,
        path,
    )?)
}

/// Read just the metadata of a method checkpoint (to build the right [`TunedVit`]).
pub fn read_method_meta(path: &Path) -> Result<MethodMeta, TuningError> {
    let bytes = std::fs::read(path).map_err(|e| TuningError::checkpoint(path, e))?;
    meta_from_bytes(path, &bytes)
}

fn meta_from_bytes(path: &Path, bytes: &[u8]) -> Result<MethodMeta, TuningError> {
    let text = store::metadata_entry(bytes, "ept")
        .map_err(|e| TuningError::checkpoint(path, format!("not a method checkpoint: {e}")))?
        .ok_or_else(|| {
            TuningError::checkpoint(path, "no `ept` metadata: not a method checkpoint written by ept")
        })?;
    let meta: MethodMeta = serde_json::from_str(&text)
        .map_err(|e| TuningError::checkpoint(path, format!("bad metadata: {e}")))?;
    if meta.format != FORMAT {
        return Err(TuningError::checkpoint(
            path,
            format!("format {} is not {FORMAT}", meta.format),
        ));
    }
    Ok(meta)
}

/// Load a method checkpoint into `model`, which must carry the same method, backbone
/// and head size (build it from [`read_method_meta`]). Returns the model with the
/// loaded tensors and its trainable flags restored.
pub fn load_method(
    mut model: TunedVit,
    backbone_name: &str,
    path: &Path,
) -> Result<(TunedVit, MethodMeta), TuningError> {
    let bytes = std::fs::read(path).map_err(|e| TuningError::checkpoint(path, e))?;
    let meta = meta_from_bytes(path, &bytes)?;
    let here = MethodMeta::of(&model, backbone_name);
    if meta.backbone != here.backbone
        || meta.embed_dim != here.embed_dim
        || meta.depth != here.depth
        || meta.num_tokens != here.num_tokens
    {
        return Err(TuningError::checkpoint(
            path,
            format!(
                "made for backbone {} (width {}, depth {}, {} tokens), but the model is {} (width {}, depth {}, {} tokens); \
                 a prompt sized for one image size cannot run at another",
                meta.backbone,
                meta.embed_dim,
                meta.depth,
                meta.num_tokens,
                here.backbone,
                here.embed_dim,
                here.depth,
                here.num_tokens
            ),
        ));
    }
    if meta.method != here.method || meta.num_classes != here.num_classes {
        return Err(TuningError::checkpoint(
            path,
            format!(
                "holds method {} with {} classes, but the model was built for {} with {} classes",
                as_config(&meta.method),
                meta.num_classes,
                as_config(&here.method),
                here.num_classes
            ),
        ));
    }
    let snapshots = store::read_module_tensors(&bytes).map_err(|e| TuningError::checkpoint(path, e))?;
    let result = model.apply(snapshots, None, None, false);
    if let Some(error) = result.errors.first() {
        return Err(TuningError::checkpoint(path, error));
    }
    let missing: Vec<&String> = result
        .missing
        .iter()
        .map(|(name, _)| name)
        .filter(|name| model.is_trainable(name))
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
    Ok((model.apply_trainability(), meta))
}

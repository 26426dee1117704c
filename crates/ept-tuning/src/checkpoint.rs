//! Method-only checkpoints, like peft adapters: just the tensors a method trains
//! (its prompts/low-rank factors/adapters, the head, and for Partial/BitFit/Full the
//! unfrozen backbone tensors), plus the method config and the backbone's identity, in
//! one `.safetensors` file written atomically. Loading refuses a backbone of another
//! name or shape — in particular an EPT prompt made for another token count (image size).
//! The parameters' ids are stored too, so optimizer state saved beside the file (keyed by
//! parameter id) applies again after loading: that is what makes resume exact.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use burn::tensor::{DType, TensorData};
use burn_store::{ModuleSnapshot, bridge};
use safetensors::{Dtype, SafeTensors, tensor::TensorView};
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

fn checkpoint_error(path: &Path, reason: impl std::fmt::Display) -> TuningError {
    TuningError::Checkpoint {
        path: path.display().to_string(),
        reason: reason.to_string(),
    }
}

/// Save the trained tensors of `model` to `path`; returns the file size in bytes.
pub fn save_method(model: &TunedVit, backbone_name: &str, path: &Path) -> Result<u64, TuningError> {
    let meta = MethodMeta::of(model, backbone_name);
    let mut tensors: Vec<(String, Vec<usize>, Vec<u8>)> = Vec::new();
    let mut param_ids = BTreeMap::new();
    for snapshot in model.collect(None, None, false) {
        if !model.is_trainable(&snapshot.name) {
            continue;
        }
        let name = snapshot.name.clone();
        if let Some(id) = snapshot.param_id {
            param_ids.insert(name.clone(), id);
        }
        let data = bridge::into_data(snapshot)
            .map_err(|e| checkpoint_error(path, format!("reading tensor {name}: {e}")))?
            .convert_dtype(DType::F32);
        let shape = data.shape().to_vec();
        tensors.push((name, shape, data.into_bytes().to_vec()));
    }
    let views = tensors
        .iter()
        .map(|(name, shape, bytes)| {
            TensorView::new(Dtype::F32, shape.clone(), bytes).map(|view| (name.clone(), view))
        })
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| checkpoint_error(path, e))?;
    let metadata = HashMap::from([
        (
            "ept".to_string(),
            serde_json::to_string(&meta).map_err(|e| checkpoint_error(path, e))?,
        ),
        (
            "ept.param_ids".to_string(),
            serde_json::to_string(&param_ids).map_err(|e| checkpoint_error(path, e))?,
        ),
    ]);
    let bytes = safetensors::serialize(views, Some(metadata)).map_err(|e| checkpoint_error(path, e))?;
    ept_backend::fs::write_atomic(path, &bytes).map_err(|e| checkpoint_error(path, e))?;
    Ok(bytes.len() as u64)
}

/// Read just the metadata of a method checkpoint (to build the right [`TunedVit`]).
pub fn read_method_meta(path: &Path) -> Result<MethodMeta, TuningError> {
    let bytes = std::fs::read(path).map_err(|e| checkpoint_error(path, e))?;
    meta_from_bytes(path, &bytes)
}

fn meta_from_bytes(path: &Path, bytes: &[u8]) -> Result<MethodMeta, TuningError> {
    let (_, metadata) = SafeTensors::read_metadata(bytes)
        .map_err(|e| checkpoint_error(path, format!("not a method checkpoint ({e})")))?;
    let text = metadata
        .metadata()
        .as_ref()
        .and_then(|m| m.get("ept"))
        .ok_or_else(|| checkpoint_error(path, "no `ept` metadata: not a method checkpoint written by ept"))?;
    let meta: MethodMeta =
        serde_json::from_str(text).map_err(|e| checkpoint_error(path, format!("bad metadata: {e}")))?;
    if meta.format != FORMAT {
        return Err(checkpoint_error(
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
    let bytes = std::fs::read(path).map_err(|e| checkpoint_error(path, e))?;
    let meta = meta_from_bytes(path, &bytes)?;
    let here = MethodMeta::of(&model, backbone_name);
    if meta.backbone != here.backbone
        || meta.embed_dim != here.embed_dim
        || meta.depth != here.depth
        || meta.num_tokens != here.num_tokens
    {
        return Err(checkpoint_error(
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
        return Err(checkpoint_error(
            path,
            format!(
                "holds method {:?} with {} classes, but the model was built for {:?} with {} classes",
                meta.method, meta.num_classes, here.method, here.num_classes
            ),
        ));
    }
    let file = SafeTensors::deserialize(&bytes).map_err(|e| checkpoint_error(path, e))?;
    let (_, header) = SafeTensors::read_metadata(&bytes).map_err(|e| checkpoint_error(path, e))?;
    let param_ids: BTreeMap<String, u64> = header
        .metadata()
        .as_ref()
        .and_then(|m| m.get("ept.param_ids"))
        .map(|text| serde_json::from_str(text))
        .transpose()
        .map_err(|e| checkpoint_error(path, format!("bad parameter ids: {e}")))?
        .unwrap_or_default();
    let mut snapshots = Vec::new();
    for (name, view) in file.tensors() {
        if view.dtype() != Dtype::F32 {
            return Err(checkpoint_error(
                path,
                format!("tensor {name} is {:?}, expected F32", view.dtype()),
            ));
        }
        let data = TensorData::try_from_bytes_vec(view.data().to_vec(), view.shape().to_vec(), DType::F32)
            .map_err(|e| checkpoint_error(path, format!("tensor {name}: {e:?}")))?;
        let id = param_ids.get(&name).copied();
        snapshots.push(bridge::from_data(data, name, id));
    }
    let result = model.apply(snapshots, None, None, false);
    if let Some(error) = result.errors.first() {
        return Err(checkpoint_error(path, error));
    }
    let missing: Vec<&String> = result
        .missing
        .iter()
        .map(|(name, _)| name)
        .filter(|name| model.is_trainable(name))
        .collect();
    if !missing.is_empty() || !result.unused.is_empty() {
        return Err(checkpoint_error(
            path,
            format!(
                "missing trained tensors {missing:?}, unexpected tensors {:?}",
                result.unused
            ),
        ));
    }
    Ok((model.apply_trainability(), meta))
}

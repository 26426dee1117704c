//! ept's own weight files: the `f32` tensors of a burn module (all, or those a predicate
//! keeps) with their parameter ids and a JSON metadata string, as one `.safetensors` file
//! written atomically. Method-only checkpoints, PUNet bodies and segmentation runs all
//! use it; the caller owns the metadata's meaning.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use burn::tensor::{DType, TensorData};
use burn_store::burn_pack::Tensor as TensorSnapshot;
use burn_store::{ModuleSnapshot, bridge};
use safetensors::{Dtype, SafeTensors, tensor::TensorView};

/// Metadata key holding the parameter ids (so optimizer state keyed by id applies again).
const PARAM_IDS: &str = "ept.param_ids";

/// Why a weight file could not be written. Both kinds name the file once.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// The file system refused the write; `source` reads "writing PATH: why" and, for a
    /// full disk, says what to do (see `ept_backend::fs::explain`).
    #[error("{source}")]
    Io { path: PathBuf, source: std::io::Error },
    /// A tensor or the metadata could not be encoded (nothing was written).
    #[error("encoding {}: {reason}", path.display())]
    Encode { path: PathBuf, reason: String },
}

impl WriteError {
    pub fn encode(path: &Path, reason: impl std::fmt::Display) -> Self {
        WriteError::Encode {
            path: path.to_path_buf(),
            reason: reason.to_string(),
        }
    }
}

/// Write the tensors of `module` whose path `keep` accepts, with `metadata` (key → JSON
/// text), to `path` atomically. Returns the file size.
pub fn write_module_tensors<M: ModuleSnapshot>(
    module: &M,
    keep: &dyn Fn(&str) -> bool,
    metadata: HashMap<String, String>,
    path: &Path,
) -> Result<u64, WriteError> {
    let mut tensors: Vec<(String, Vec<usize>, Vec<u8>)> = Vec::new();
    let mut param_ids = BTreeMap::new();
    for snapshot in module.collect(None, None, false) {
        if !keep(&snapshot.name) {
            continue;
        }
        let name = snapshot.name.clone();
        if let Some(id) = snapshot.param_id {
            param_ids.insert(name.clone(), id);
        }
        let data = bridge::into_data(snapshot)
            .map_err(|e| WriteError::encode(path, format!("reading tensor {name}: {e}")))?
            .convert_dtype(DType::F32);
        let shape = data.shape().to_vec();
        tensors.push((name, shape, data.into_bytes().to_vec()));
    }
    let views = tensors
        .iter()
        .map(|(name, shape, bytes)| {
            TensorView::new(Dtype::F32, shape.clone(), bytes).map(|v| (name.clone(), v))
        })
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| WriteError::encode(path, e))?;
    let mut metadata = metadata;
    metadata.insert(
        PARAM_IDS.to_string(),
        serde_json::to_string(&param_ids).map_err(|e| WriteError::encode(path, e))?,
    );
    let bytes = safetensors::serialize(views, Some(metadata)).map_err(|e| WriteError::encode(path, e))?;
    ept_backend::fs::write_atomic(path, &bytes).map_err(|source| WriteError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    Ok(bytes.len() as u64)
}

/// The metadata entry `key` of a safetensors file's bytes (`None` when absent).
pub fn metadata_entry(bytes: &[u8], key: &str) -> Result<Option<String>, String> {
    let (_, header) =
        SafeTensors::read_metadata(bytes).map_err(|e| format!("not a safetensors file ({e})"))?;
    Ok(header.metadata().as_ref().and_then(|m| m.get(key)).cloned())
}

/// The tensors of a file written by [`write_module_tensors`], as snapshots to `apply`
/// to a module. Only `f32` tensors are accepted; shapes are checked against byte counts
/// by the safetensors parser before anything is allocated.
pub fn read_module_tensors(bytes: &[u8]) -> Result<Vec<TensorSnapshot>, String> {
    let file = SafeTensors::deserialize(bytes).map_err(|e| format!("not a safetensors file ({e})"))?;
    let param_ids: BTreeMap<String, u64> = metadata_entry(bytes, PARAM_IDS)?
        .map(|text| serde_json::from_str(&text))
        .transpose()
        .map_err(|e| format!("bad parameter ids: {e}"))?
        .unwrap_or_default();
    let mut snapshots = Vec::new();
    for (name, view) in file.tensors() {
        if view.dtype() != Dtype::F32 {
            return Err(format!("tensor {name} is {:?}, expected F32", view.dtype()));
        }
        let data = TensorData::try_from_bytes_vec(view.data().to_vec(), view.shape().to_vec(), DType::F32)
            .map_err(|e| format!("tensor {name}: {e:?}"))?;
        let id = param_ids.get(&name).copied();
        snapshots.push(bridge::from_data(data, name, id));
    }
    Ok(snapshots)
}

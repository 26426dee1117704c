//! Writing a [`Vit`]'s weights as a timm-named `.safetensors` file (PyTorch layout,
//! optionally f16), so a backbone trained with ept loads in timm — and back into ept
//! through the same loader as any other timm checkpoint.

use std::collections::HashMap;
use std::path::Path;

use burn::tensor::DType;
use burn_store::{BurnToPyTorchAdapter, ModuleSnapshot, bridge};
use safetensors::{Dtype, tensor::TensorView};

use super::model::Vit;
use crate::checkpoint::CheckpointError;

impl Vit {
    /// Save all weights under timm keys; `half` stores f16 (half the size). Atomic.
    pub fn save_timm(
        &self,
        path: &Path,
        half: bool,
        metadata: HashMap<String, String>,
    ) -> Result<u64, CheckpointError> {
        let corrupt = |reason: String| CheckpointError::Corrupt {
            path: path.to_path_buf(),
            reason,
        };
        let dtype = if half { DType::F16 } else { DType::F32 };
        let mut tensors = Vec::new();
        for snapshot in self.collect(None, Some(Box::new(BurnToPyTorchAdapter)), false) {
            let name = snapshot.name.clone();
            let data = bridge::into_data(snapshot)
                .map_err(|e| corrupt(format!("reading {name}: {e}")))?
                .convert_dtype(dtype);
            tensors.push((name, data.shape().to_vec(), data.into_bytes().to_vec()));
        }
        let st_dtype = if half { Dtype::F16 } else { Dtype::F32 };
        let views = tensors
            .iter()
            .map(|(n, s, b)| TensorView::new(st_dtype, s.clone(), b).map(|v| (n.clone(), v)))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| corrupt(e.to_string()))?;
        let bytes = safetensors::serialize(views, Some(metadata)).map_err(|e| corrupt(e.to_string()))?;
        ept_backend::fs::write_atomic(path, &bytes).map_err(|source| CheckpointError::Write {
            path: path.to_path_buf(),
            source,
        })?;
        Ok(bytes.len() as u64)
    }
}

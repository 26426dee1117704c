//! Read every tensor of a checkpoint file into `name → f32 data`.
//!
//! The format is recognised from the file's first bytes, not its extension:
//! safetensors (little-endian header length + JSON), PyTorch zip (`PK\x03\x04`),
//! legacy PyTorch pickle (`\x80` protocol byte). PyTorch files are parsed by burn's
//! `pytorch-reader`, which interprets the pickle stream as data and refuses any
//! object other than tensors and plain containers — no Python code runs.
//! Nested dictionaries (mmcls's `{"meta": …, "state_dict": …}`) come back with
//! dotted names (`state_dict.backbone.cls_token`); key normalisation is the loader's job.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use burn::tensor::{DType, TensorData};
use burn_store::bridge;
use burn_store::pytorch_reader::PytorchReader;
use safetensors::SafeTensors;

use super::report::CheckpointError;

/// Container format of a checkpoint file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckpointFormat {
    Safetensors,
    /// `torch.save` zip archive (PyTorch ≥ 1.6).
    PytorchZip,
    /// `torch.save` legacy pickle stream.
    PytorchLegacy,
}

/// All tensors of one file, converted to `f32`, by their names in the file.
#[derive(Debug, Clone)]
pub struct RawCheckpoint {
    pub path: PathBuf,
    pub format: CheckpointFormat,
    pub tensors: BTreeMap<String, TensorData>,
}

fn corrupt(path: &Path, reason: impl std::fmt::Display) -> CheckpointError {
    CheckpointError::Corrupt {
        path: path.to_path_buf(),
        reason: reason.to_string(),
    }
}

/// Identify the container format from the first bytes of `path`.
pub fn sniff_format(path: &Path) -> Result<CheckpointFormat, CheckpointError> {
    let mut head = [0u8; 9];
    let mut file = std::fs::File::open(path).map_err(|source| CheckpointError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let n = file.read(&mut head).map_err(|source| CheckpointError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    // Safetensors first: its leading 8 bytes are a length whose low byte can be anything,
    // including the zip or pickle magic.
    match &head[..n] {
        [_, _, _, _, _, _, _, _, b'{'] => Ok(CheckpointFormat::Safetensors),
        [b'P', b'K', 3, 4, ..] => Ok(CheckpointFormat::PytorchZip),
        [0x80, ..] => Ok(CheckpointFormat::PytorchLegacy),
        _ => Err(corrupt(
            path,
            "not a checkpoint: expected a .safetensors file or a PyTorch .pth/.pt file \
             (zip or pickle); the file is empty, truncated or of another kind",
        )),
    }
}

/// Read every tensor of `path` as `f32`.
pub fn read_checkpoint(path: &Path) -> Result<RawCheckpoint, CheckpointError> {
    let format = sniff_format(path)?;
    let tensors = match format {
        CheckpointFormat::Safetensors => read_safetensors(path)?,
        CheckpointFormat::PytorchZip | CheckpointFormat::PytorchLegacy => read_pytorch(path)?,
    };
    if tensors.is_empty() {
        return Err(corrupt(path, "the file holds no tensors"));
    }
    Ok(RawCheckpoint {
        path: path.to_path_buf(),
        format,
        tensors,
    })
}

fn to_f32(path: &Path, name: &str, data: TensorData) -> Result<TensorData, CheckpointError> {
    match data.dtype() {
        DType::F32 => Ok(data),
        DType::F64 | DType::F16 | DType::BF16 => Ok(data.convert_dtype(DType::F32)),
        other => Err(corrupt(
            path,
            format!("tensor '{name}' has dtype {other:?}; only floating-point weights are supported"),
        )),
    }
}

fn read_safetensors(path: &Path) -> Result<BTreeMap<String, TensorData>, CheckpointError> {
    let bytes = std::fs::read(path).map_err(|source| CheckpointError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let file = SafeTensors::deserialize(&bytes).map_err(|e| corrupt(path, e))?;
    let mut out = BTreeMap::new();
    for (name, view) in file.tensors() {
        let dtype = match view.dtype() {
            safetensors::Dtype::F32 => DType::F32,
            safetensors::Dtype::F64 => DType::F64,
            safetensors::Dtype::F16 => DType::F16,
            safetensors::Dtype::BF16 => DType::BF16,
            other => {
                return Err(corrupt(
                    path,
                    format!("tensor '{name}' has dtype {other:?}; only floating-point weights are supported"),
                ));
            }
        };
        let data = TensorData::try_from_bytes_vec(view.data().to_vec(), view.shape().to_vec(), dtype)
            .map_err(|e| corrupt(path, format!("tensor '{name}': {e:?}")))?;
        let data = to_f32(path, &name, data)?;
        out.insert(name, data);
    }
    Ok(out)
}

fn read_pytorch(path: &Path) -> Result<BTreeMap<String, TensorData>, CheckpointError> {
    let reader = PytorchReader::new(path).map_err(|e| corrupt(path, e))?;
    let mut out = BTreeMap::new();
    for (name, tensor) in reader.into_tensors() {
        let data = bridge::into_data(bridge::from_pytorch(tensor))
            .map_err(|e| corrupt(path, format!("tensor '{name}': {e}")))?;
        let data = to_f32(path, &name, data)?;
        out.insert(name, data);
    }
    Ok(out)
}

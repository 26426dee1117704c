//! Shared helpers for the tuning tests: the tiny golden ViT with timm's weights,
//! fixtures from `tools/golden/make_method_golden.py`, and tensor comparisons.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use burn::tensor::{Device, TensorData};
use burn_store::{ModuleSnapshot, PyTorchToBurnAdapter, bridge};
use ept_backbones::VitConfig;
use ept_backbones::checkpoint::read_checkpoint;
use ept_tuning::head::ClassHead;
use ept_tuning::{MethodConfig, TunedVit};

pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures")
}

pub fn tiny_config() -> VitConfig {
    VitConfig::golden_tiny(32)
}

/// The tiny ViT with timm's weights, wrapped with `method`; the checkpoint's head is kept.
pub fn tuned(method: &MethodConfig, device: &Device) -> TunedVit {
    let mut vit = tiny_config().init(device).unwrap();
    vit.load_checkpoint(
        &fixtures().join("vit_tiny/weights_timm.safetensors"),
        "vit_golden_tiny",
    )
    .unwrap();
    let head = vit.head.take().unwrap();
    let mut model = TunedVit::new(vit, method, 5, device).unwrap();
    model.head = ClassHead::from_linear(head);
    model.apply_trainability()
}

pub fn read(path: &Path) -> BTreeMap<String, TensorData> {
    read_checkpoint(path).unwrap().tensors
}

/// Apply tensors given under PyTorch-convention module paths (linear weights `[out, in]`).
pub fn apply_pytorch(model: TunedVit, tensors: Vec<(String, TensorData)>) -> TunedVit {
    let mut model = model;
    let expected = tensors.len();
    let snapshots = tensors
        .into_iter()
        .map(|(n, d)| bridge::from_data(d, n, None))
        .collect();
    let result = model.apply(snapshots, None, Some(Box::new(PyTorchToBurnAdapter)), false);
    assert!(result.errors.is_empty(), "{:?}", result.errors);
    assert_eq!(result.applied.len(), expected, "unused: {:?}", result.unused);
    model.apply_trainability()
}

pub fn max_abs_diff(a: &TensorData, b: &TensorData) -> f32 {
    assert_eq!(a.shape(), b.shape(), "shapes differ");
    let (a, b) = (a.try_to_vec::<f32>().unwrap(), b.try_to_vec::<f32>().unwrap());
    a.iter().zip(&b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

pub fn max_abs(a: &TensorData) -> f32 {
    a.try_to_vec::<f32>()
        .unwrap()
        .iter()
        .fold(0.0, |m, v| m.max(v.abs()))
}

/// Transpose a 2-D tensor's data.
pub fn transpose(data: &TensorData) -> TensorData {
    let shape = data.shape().to_vec();
    let (rows, cols) = (shape[0], shape[1]);
    let v = data.try_to_vec::<f32>().unwrap();
    let mut out = vec![0f32; v.len()];
    for r in 0..rows {
        for c in 0..cols {
            out[c * rows + r] = v[r * cols + c];
        }
    }
    TensorData::new(out, [cols, rows])
}

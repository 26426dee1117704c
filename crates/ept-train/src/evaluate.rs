//! Evaluation of a trained model on a split: probabilities, CLS features, and the
//! metrics the paper reports plus calibration — mAP (multi-label) or accuracy
//! (single-label) as the primary number, macro AUC and F1, ECE.

use std::collections::BTreeMap;

use burn::tensor::Device;
use ept_data::{Loader, Target, Task};
use ept_tuning::TunedVit;
use serde::Serialize;

use crate::engine::{probabilities, split_targets};
use crate::error::TrainError;
use crate::metrics::{self, ReliabilityBin};

/// Predictions and metrics of one split.
#[derive(Debug, Clone, Serialize)]
pub struct EvalResult {
    /// Metric name → value (percent for accuracy/mAP/AUC/F1, fraction for ECE).
    pub metrics: BTreeMap<String, f64>,
    #[serde(skip)]
    pub probs: Vec<Vec<f32>>,
    #[serde(skip)]
    pub targets: Vec<Target>,
    /// CLS features after the final norm (kept when asked, for the feature analysis).
    #[serde(skip)]
    pub features: Vec<Vec<f32>>,
    #[serde(skip)]
    pub reliability: Vec<ReliabilityBin>,
}

impl EvalResult {
    /// The paper's number: accuracy (single-label) or mAP (multi-label).
    pub fn primary(&self) -> (&'static str, f64) {
        for name in ["mAP", "accuracy"] {
            if let Some(v) = self.metrics.get(name) {
                return (name, *v);
            }
        }
        ("none", f64::NAN)
    }
}

fn rows(data: burn::tensor::TensorData, width: usize) -> Result<Vec<Vec<f32>>, TrainError> {
    let values = data
        .try_to_vec::<f32>()
        .map_err(|e| TrainError::run(std::path::Path::new("."), format!("reading predictions: {e:?}")))?;
    Ok(values.chunks(width).map(<[f32]>::to_vec).collect())
}

/// Run `model` (in validation mode, on a plain device) over every batch of `loader`.
pub fn evaluate(
    model: &TunedVit,
    loader: &Loader,
    task: Task,
    device: &Device,
    keep_features: bool,
) -> Result<EvalResult, TrainError> {
    let classes = model.head.num_classes();
    let (mut probs, mut targets, mut features) = (Vec::new(), Vec::new(), Vec::new());
    for batch in loader.epoch(0) {
        let host = batch?;
        targets.extend(host.targets.iter().cloned());
        let batch = host.into_device(device);
        let cls = model.pre_logits(batch.images);
        let dim = cls.dims()[1];
        let logits = model.head.forward(cls.clone());
        probs.extend(rows(probabilities(logits, task).into_data(), classes)?);
        if keep_features {
            features.extend(rows(cls.into_data(), dim)?);
        }
    }
    let (labels, flags) = split_targets(&targets, classes);
    let mut values = BTreeMap::new();
    let reliability = match task {
        Task::SingleLabel => {
            values.insert("accuracy".into(), metrics::accuracy(&probs, &labels));
            let predicted: Vec<Vec<bool>> = probs
                .iter()
                .map(|p| {
                    let top = metrics::argmax(p);
                    (0..classes).map(|k| k == top).collect()
                })
                .collect();
            values.insert("f1_macro".into(), metrics::macro_f1(&predicted, &flags));
            values.insert("auc_macro".into(), metrics::macro_auc(&probs, &flags));
            let (ece, bins) = metrics::expected_calibration_error(&probs, &labels);
            values.insert("ece".into(), ece);
            if keep_features {
                let separation = metrics::scatter(&features, &labels);
                values.insert("scatter_within".into(), separation.within);
                values.insert("scatter_ratio".into(), separation.ratio);
            }
            bins
        }
        Task::MultiLabel => {
            values.insert("mAP".into(), metrics::mean_average_precision(&probs, &flags));
            let predicted: Vec<Vec<bool>> = probs
                .iter()
                .map(|p| p.iter().map(|&v| v >= 0.5).collect())
                .collect();
            values.insert("f1_macro".into(), metrics::macro_f1(&predicted, &flags));
            values.insert("auc_macro".into(), metrics::macro_auc(&probs, &flags));
            values.insert("ece_classwise".into(), metrics::classwise_ece(&probs, &flags));
            Vec::new()
        }
    };
    values.insert("images".into(), targets.len() as f64);
    Ok(EvalResult {
        metrics: values,
        probs,
        targets,
        features,
        reliability,
    })
}

//! Per-volume Dice: `2·|P ∩ G| / (|P| + |G|)` for every foreground class of a label
//! map, computed on hard (arg-max) predictions. A class absent from the ground truth
//! is left out of the volume's mean (MONAI `DiceMetric(ignore_empty=True)`), so a
//! volume is not rewarded for correctly predicting nothing — but a prediction of an
//! absent class is still visible as that class's false-positive voxel count.

use serde::Serialize;

/// Dice of one volume.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VolumeDice {
    /// Per foreground class (index 0 = class 1): `None` when the class is absent from
    /// the ground truth.
    pub per_class: Vec<Option<f64>>,
    /// Voxels predicted as each foreground class where the ground truth has none of it.
    pub false_positive_voxels: Vec<u64>,
}

impl VolumeDice {
    /// Mean over the classes present in the ground truth (`None` if there are none).
    pub fn mean(&self) -> Option<f64> {
        mean(self.per_class.iter().flatten().copied())
    }
}

fn mean(values: impl Iterator<Item = f64>) -> Option<f64> {
    let (sum, n) = values.fold((0.0, 0usize), |(s, n), v| (s + v, n + 1));
    (n > 0).then(|| sum / n as f64)
}

/// Dice of `prediction` against `truth` (same length, labels `0..classes`, 0 = background).
pub fn volume_dice(prediction: &[u8], truth: &[u8], classes: usize) -> VolumeDice {
    assert_eq!(
        prediction.len(),
        truth.len(),
        "prediction and truth cover the same voxels"
    );
    let mut inter = vec![0u64; classes];
    let mut pred = vec![0u64; classes];
    let mut gt = vec![0u64; classes];
    for (&p, &g) in prediction.iter().zip(truth) {
        let (p, g) = (p as usize, g as usize);
        if p < classes {
            pred[p] += 1;
        }
        if g < classes {
            gt[g] += 1;
        }
        if p == g && p < classes {
            inter[p] += 1;
        }
    }
    let per_class = (1..classes)
        .map(|k| (gt[k] > 0).then(|| 2.0 * inter[k] as f64 / (pred[k] + gt[k]) as f64))
        .collect();
    let false_positive_voxels = (1..classes)
        .map(|k| if gt[k] == 0 { pred[k] } else { 0 })
        .collect();
    VolumeDice {
        per_class,
        false_positive_voxels,
    }
}

/// Per-class mean over volumes (classes absent from every volume: `None`) and the mean
/// of the per-volume means — the paper's "mean DSC".
pub fn summarize(volumes: &[VolumeDice]) -> (Vec<Option<f64>>, Option<f64>) {
    let classes = volumes.first().map_or(0, |v| v.per_class.len());
    let per_class = (0..classes)
        .map(|k| mean(volumes.iter().filter_map(|v| v.per_class[k])))
        .collect();
    (per_class, mean(volumes.iter().filter_map(VolumeDice::mean)))
}

/// Arg-max over the class channels of `channels × voxels` scores.
pub fn argmax_labels(scores: &[f32], classes: usize) -> Vec<u8> {
    let voxels = scores.len() / classes;
    (0..voxels)
        .map(|v| {
            let mut best = 0;
            for k in 1..classes {
                if scores[k * voxels + v] > scores[best * voxels + v] {
                    best = k;
                }
            }
            best as u8
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hand_computed_cases() {
        // class 1: truth 4 voxels, prediction 3 of them + 1 extra → 2·3/(4+4) = 0.75
        // class 2: truth 2 voxels, predicted none → 0
        // class 3: absent from truth, predicted once → None, one false-positive voxel
        let truth = [1, 1, 1, 1, 2, 2, 0, 0, 0];
        let pred = [1, 1, 1, 0, 0, 0, 1, 3, 0];
        let dice = volume_dice(&pred, &truth, 4);
        assert_eq!(dice.per_class, vec![Some(0.75), Some(0.0), None]);
        assert_eq!(dice.false_positive_voxels, vec![0, 0, 1]);
        assert_eq!(dice.mean(), Some(0.375));
    }

    #[test]
    fn perfect_and_empty() {
        let truth = [0, 2, 2, 1];
        assert_eq!(volume_dice(&truth, &truth, 3).mean(), Some(1.0));
        let empty = volume_dice(&[0, 0], &[0, 0], 3);
        assert_eq!(empty.mean(), None);
        let (per_class, overall) = summarize(&[volume_dice(&truth, &truth, 3), empty]);
        assert_eq!(per_class, vec![Some(1.0), Some(1.0)]);
        assert_eq!(overall, Some(1.0));
    }

    #[test]
    fn argmax_picks_the_first_maximum() {
        // 3 classes × 2 voxels, class-major
        let scores = [0.1, 0.5, 0.7, 0.5, 0.7, 0.0];
        assert_eq!(argmax_labels(&scores, 3), vec![1, 0]);
    }
}

//! Classification metrics as plain functions of scores and targets — no tensors, no
//! I/O. Definitions follow mmcls 0.25 / MedFMC where the paper's numbers come from
//! (mAP, accuracy, in percent) and scikit-learn where MedFMC has none (AUC); the
//! calibration metrics follow Guo et al. 2017 (15 equal-width bins). Golden values from
//! `tools/golden/make_metric_golden.py` check every function.

/// Top-1 accuracy in percent. `probs` is `[n][C]`.
pub fn accuracy(probs: &[Vec<f32>], labels: &[usize]) -> f64 {
    if labels.is_empty() {
        return 0.0;
    }
    let correct = probs.iter().zip(labels).filter(|(p, y)| argmax(p) == **y).count();
    100.0 * correct as f64 / labels.len() as f64
}

/// Index of the largest value (the first one on ties, as `torch.topk`/`argmax`).
pub fn argmax(values: &[f32]) -> usize {
    let mut best = 0;
    for (i, v) in values.iter().enumerate() {
        if *v > values[best] {
            best = i;
        }
    }
    best
}

/// Average precision of one class (mmcls `average_precision`): scores sorted in
/// descending order (ties in input order), precision taken at every positive, averaged
/// over positives; 0 when the class has no positive (mmcls counts it so).
pub fn average_precision(scores: &[f32], positives: &[bool]) -> f64 {
    let total = positives.iter().filter(|&&p| p).count();
    if total == 0 {
        return 0.0;
    }
    let mut order: Vec<usize> = (0..scores.len()).collect();
    // Stable sort: equal scores keep their input order, like numpy's argsort(kind="stable").
    order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
    let (mut hits, mut sum) = (0usize, 0f64);
    for (rank, &i) in order.iter().enumerate() {
        if positives[i] {
            hits += 1;
            sum += hits as f64 / (rank + 1) as f64;
        }
    }
    sum / total as f64
}

/// Column `c` of a row-major score matrix.
fn column<T: Copy>(rows: &[Vec<T>], c: usize) -> Vec<T> {
    rows.iter().map(|r| r[c]).collect()
}

/// Mean average precision over all classes, in percent (mmcls 0.25 `mAP`, what the
/// paper reports for ChestDR and Endo).
pub fn mean_average_precision(scores: &[Vec<f32>], targets: &[Vec<bool>]) -> f64 {
    let classes = scores.first().map_or(0, Vec::len);
    if classes == 0 {
        return 0.0;
    }
    let total: f64 = (0..classes)
        .map(|c| average_precision(&column(scores, c), &column(targets, c)))
        .sum();
    100.0 * total / classes as f64
}

/// Area under the ROC curve of one binary problem (ties count one half, as
/// scikit-learn's `roc_auc_score`). `None` if only one class is present.
pub fn binary_auc(scores: &[f32], positives: &[bool]) -> Option<f64> {
    let pos = positives.iter().filter(|&&p| p).count();
    let neg = positives.len() - pos;
    if pos == 0 || neg == 0 {
        return None;
    }
    // Mann–Whitney U with mid-ranks for ties.
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]));
    let mut rank_sum_pos = 0f64;
    let mut i = 0;
    while i < order.len() {
        let mut j = i;
        while j + 1 < order.len() && scores[order[j + 1]] == scores[order[i]] {
            j += 1;
        }
        let mid_rank = (i + j) as f64 / 2.0 + 1.0;
        rank_sum_pos += order[i..=j].iter().filter(|&&k| positives[k]).count() as f64 * mid_rank;
        i = j + 1;
    }
    let u = rank_sum_pos - (pos * (pos + 1)) as f64 / 2.0;
    Some(u / (pos * neg) as f64)
}

/// Macro AUC in percent over classes that have both positives and negatives
/// (one-vs-rest for single-label; for two classes, the AUC of class 1); NaN when no
/// class qualifies.
pub fn macro_auc(scores: &[Vec<f32>], targets: &[Vec<bool>]) -> f64 {
    let classes = scores.first().map_or(0, Vec::len);
    if classes == 2 && targets.iter().all(|t| t.iter().filter(|&&x| x).count() == 1) {
        return binary_auc(&column(scores, 1), &column(targets, 1)).map_or(f64::NAN, |a| 100.0 * a);
    }
    let aucs: Vec<f64> = (0..classes)
        .filter_map(|c| binary_auc(&column(scores, c), &column(targets, c)))
        .collect();
    if aucs.is_empty() {
        f64::NAN
    } else {
        100.0 * aucs.iter().sum::<f64>() / aucs.len() as f64
    }
}

/// Macro F1 in percent of hard decisions `predicted` vs `targets` (both `[n][C]` flags);
/// a class with no positive and no prediction contributes 0, as mmcls does.
pub fn macro_f1(predicted: &[Vec<bool>], targets: &[Vec<bool>]) -> f64 {
    let classes = targets.first().map_or(0, Vec::len);
    if classes == 0 {
        return 0.0;
    }
    let mut total = 0f64;
    for c in 0..classes {
        let (mut tp, mut fp, mut fn_) = (0f64, 0f64, 0f64);
        for (p, t) in predicted.iter().zip(targets) {
            match (p[c], t[c]) {
                (true, true) => tp += 1.0,
                (true, false) => fp += 1.0,
                (false, true) => fn_ += 1.0,
                _ => {}
            }
        }
        let precision = if tp + fp > 0.0 { tp / (tp + fp) } else { 0.0 };
        let recall = if tp + fn_ > 0.0 { tp / (tp + fn_) } else { 0.0 };
        if precision + recall > 0.0 {
            total += 2.0 * precision * recall / (precision + recall);
        }
    }
    100.0 * total / classes as f64
}

/// One bin of a reliability diagram.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ReliabilityBin {
    pub count: usize,
    pub mean_confidence: f64,
    pub accuracy: f64,
}

/// Calibration bins: equal width on [0, 1]; bin k holds confidences in (k/B, (k+1)/B],
/// with 0 in the first bin.
pub const ECE_BINS: usize = 15;

/// Bin of a confidence: the number of inner edges `k / bins` (computed in f64) that it
/// exceeds — so a value exactly on an edge belongs to the lower bin.
pub fn bin_of(confidence: f64, bins: usize) -> usize {
    (1..bins).filter(|&k| confidence > k as f64 / bins as f64).count()
}

/// Reliability bins of (confidence, correct) pairs.
pub fn reliability(pairs: &[(f64, bool)], bins: usize) -> Vec<ReliabilityBin> {
    let mut out = vec![ReliabilityBin::default(); bins];
    for &(confidence, correct) in pairs {
        let bin = &mut out[bin_of(confidence, bins)];
        bin.count += 1;
        bin.mean_confidence += confidence;
        bin.accuracy += if correct { 1.0 } else { 0.0 };
    }
    for bin in &mut out {
        if bin.count > 0 {
            bin.mean_confidence /= bin.count as f64;
            bin.accuracy /= bin.count as f64;
        }
    }
    out
}

/// Expected calibration error (fraction, not percent) of reliability bins.
pub fn ece_of_bins(bins: &[ReliabilityBin]) -> f64 {
    let n: usize = bins.iter().map(|b| b.count).sum();
    if n == 0 {
        return 0.0;
    }
    bins.iter()
        .map(|b| (b.accuracy - b.mean_confidence).abs() * b.count as f64 / n as f64)
        .sum()
}

/// Top-label ECE of single-label predictions (15 bins on the max probability).
pub fn expected_calibration_error(probs: &[Vec<f32>], labels: &[usize]) -> (f64, Vec<ReliabilityBin>) {
    let pairs: Vec<(f64, bool)> = probs
        .iter()
        .zip(labels)
        .map(|(p, &y)| {
            let top = argmax(p);
            (p[top] as f64, top == y)
        })
        .collect();
    let bins = reliability(&pairs, ECE_BINS);
    (ece_of_bins(&bins), bins)
}

/// Classwise ECE of multi-label predictions: the mean over classes of each class's
/// binary calibration error (probability of the class vs its 0/1 target).
pub fn classwise_ece(probs: &[Vec<f32>], targets: &[Vec<bool>]) -> f64 {
    let classes = probs.first().map_or(0, Vec::len);
    if classes == 0 {
        return 0.0;
    }
    let total: f64 = (0..classes)
        .map(|c| {
            // The "confidence" is p, the outcome is the target: reliability of p itself.
            let bins = binary_reliability(&column(probs, c), &column(targets, c));
            ece_of_bins(&bins)
        })
        .sum();
    total / classes as f64
}

/// Reliability of probabilities `p` against binary outcomes (accuracy = positive rate).
fn binary_reliability(p: &[f32], outcome: &[bool]) -> Vec<ReliabilityBin> {
    let pairs: Vec<(f64, bool)> = p.iter().zip(outcome).map(|(&p, &o)| (p as f64, o)).collect();
    reliability(&pairs, ECE_BINS)
}

/// Class-separation statistics of features (the paper's feature-distribution analysis).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Scatter {
    /// tr(S_W) = (1/n) Σ_i ‖x_i − μ_{y_i}‖²
    pub within: f64,
    /// tr(S_B) = (1/n) Σ_c n_c ‖μ_c − μ‖²
    pub between: f64,
    /// tr(S_B) / tr(S_W); NaN when tr(S_W) = 0.
    pub ratio: f64,
}

/// Within- and between-class scatter traces of `features` with class `labels`.
pub fn scatter(features: &[Vec<f32>], labels: &[usize]) -> Scatter {
    let n = features.len();
    let dim = features.first().map_or(0, Vec::len);
    let classes = labels.iter().max().map_or(0, |m| m + 1);
    let mut sums = vec![vec![0f64; dim]; classes];
    let mut counts = vec![0usize; classes];
    let mut total = vec![0f64; dim];
    for (x, &y) in features.iter().zip(labels) {
        counts[y] += 1;
        for d in 0..dim {
            sums[y][d] += x[d] as f64;
            total[d] += x[d] as f64;
        }
    }
    let mean: Vec<f64> = total.iter().map(|t| t / n.max(1) as f64).collect();
    let means: Vec<Vec<f64>> = sums
        .iter()
        .zip(&counts)
        .map(|(s, &c)| s.iter().map(|v| v / c.max(1) as f64).collect())
        .collect();
    let within: f64 = features
        .iter()
        .zip(labels)
        .map(|(x, &y)| (0..dim).map(|d| (x[d] as f64 - means[y][d]).powi(2)).sum::<f64>())
        .sum::<f64>()
        / n.max(1) as f64;
    let between: f64 = (0..classes)
        .map(|c| counts[c] as f64 * (0..dim).map(|d| (means[c][d] - mean[d]).powi(2)).sum::<f64>())
        .sum::<f64>()
        / n.max(1) as f64;
    let ratio = if within > 0.0 { between / within } else { f64::NAN };
    Scatter {
        within,
        between,
        ratio,
    }
}

/// The first `k` principal axes of centred `features` (unit vectors) and their
/// explained-variance ratios, by power iteration with deflation on the covariance.
pub fn principal_components(features: &[Vec<f32>], k: usize) -> (Vec<Vec<f64>>, Vec<f64>) {
    let n = features.len();
    let dim = features.first().map_or(0, Vec::len);
    if n < 2 || dim == 0 {
        return (Vec::new(), Vec::new());
    }
    let mean: Vec<f64> = (0..dim)
        .map(|d| features.iter().map(|x| x[d] as f64).sum::<f64>() / n as f64)
        .collect();
    let mut cov = vec![vec![0f64; dim]; dim];
    for x in features {
        let c: Vec<f64> = (0..dim).map(|d| x[d] as f64 - mean[d]).collect();
        for (i, row) in cov.iter_mut().enumerate() {
            for j in i..dim {
                row[j] += c[i] * c[j];
            }
        }
    }
    // Scale the upper triangle and mirror it: both indices address `cov`.
    #[allow(clippy::needless_range_loop)]
    for i in 0..dim {
        for j in i..dim {
            cov[i][j] /= (n - 1) as f64;
            cov[j][i] = cov[i][j];
        }
    }
    let trace: f64 = (0..dim).map(|i| cov[i][i]).sum();
    if trace <= 0.0 {
        return (Vec::new(), Vec::new());
    }
    let (mut axes, mut ratios) = (Vec::new(), Vec::new());
    for component in 0..k.min(dim) {
        // Deterministic start that is not orthogonal to any axis in general.
        let mut v: Vec<f64> = (0..dim)
            .map(|i| 1.0 + ((i * 7 + component * 13) % 11) as f64 / 10.0)
            .collect();
        let mut eigen = 0.0;
        for _ in 0..1000 {
            let mut w: Vec<f64> = (0..dim)
                .map(|i| (0..dim).map(|j| cov[i][j] * v[j]).sum())
                .collect();
            let norm = w.iter().map(|x| x * x).sum::<f64>().sqrt();
            if norm == 0.0 {
                break;
            }
            w.iter_mut().for_each(|x| *x /= norm);
            let change: f64 = w.iter().zip(&v).map(|(a, b)| (a - b).abs()).sum();
            v = w;
            eigen = norm;
            if change < 1e-13 {
                break;
            }
        }
        for i in 0..dim {
            for j in 0..dim {
                cov[i][j] -= eigen * v[i] * v[j];
            }
        }
        ratios.push(eigen / trace);
        axes.push(v);
    }
    (axes, ratios)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hand_computed_cases() {
        // AP: positives at ranks 1 and 3 → (1/1 + 2/3) / 2.
        let ap = average_precision(&[0.9, 0.8, 0.7, 0.1], &[true, false, true, false]);
        assert!((ap - (1.0 + 2.0 / 3.0) / 2.0).abs() < 1e-12);
        assert_eq!(average_precision(&[0.3, 0.2], &[false, false]), 0.0);
        // AUC: one inversion out of 4 pairs; a tie counts one half.
        let auc = binary_auc(&[0.9, 0.4, 0.5, 0.1], &[true, true, false, false]).unwrap();
        assert!((auc - 0.75).abs() < 1e-12);
        let auc = binary_auc(&[0.5, 0.5], &[true, false]).unwrap();
        assert!((auc - 0.5).abs() < 1e-12);
        assert_eq!(accuracy(&[vec![0.2, 0.8], vec![0.6, 0.4]], &[1, 1]), 50.0);
    }

    #[test]
    fn ece_of_a_calibrated_and_an_overconfident_model() {
        // All predictions at confidence 1.0 and right: ECE 0. At 0.9 and half right: 0.4.
        let probs = vec![vec![1.0, 0.0]; 4];
        assert_eq!(expected_calibration_error(&probs, &[0, 0, 0, 0]).0, 0.0);
        let probs = vec![vec![0.9f32, 0.1]; 4];
        let (ece, bins) = expected_calibration_error(&probs, &[0, 0, 1, 1]);
        assert!((ece - 0.4).abs() < 1e-6, "{ece}");
        assert_eq!(bins[13].count, 4); // 0.9 lies in (13/15, 14/15]
    }
}

//! The paper's feature-distribution analysis of CLS features: class separation numbers
//! (intra-class scatter tr(S_W), between/within ratio), the first principal components
//! (histogram per class, 2-D scatter) and a t-SNE map, plus the reliability diagram of
//! the predictions — written as PNGs into a run folder.

use std::path::Path;

use crate::evaluate::EvalResult;
use crate::metrics::principal_components;
use crate::plot;

/// Exact t-SNE (van der Maaten & Hinton 2008) of `points` to 2-D: perplexity-calibrated
/// Gaussian affinities, Student-t map, early exaggeration, momentum gradient descent.
/// O(n²) per iteration — meant for a few thousand points at most. Deterministic.
pub fn tsne(points: &[Vec<f32>], perplexity: f64, iterations: usize) -> Vec<(f64, f64)> {
    let n = points.len();
    if n < 3 {
        return points.iter().map(|_| (0.0, 0.0)).collect();
    }
    let dist = |i: usize, j: usize| -> f64 {
        points[i]
            .iter()
            .zip(&points[j])
            .map(|(a, b)| ((a - b) as f64).powi(2))
            .sum()
    };
    // Conditional affinities with per-point bandwidth found by bisection on entropy.
    let target = perplexity.min((n - 1) as f64 / 3.0).ln();
    let mut p = vec![0f64; n * n];
    for i in 0..n {
        let d: Vec<f64> = (0..n).map(|j| if i == j { 0.0 } else { dist(i, j) }).collect();
        let (mut beta, mut lo, mut hi) = (1.0, 0.0, f64::INFINITY);
        for _ in 0..60 {
            let dmin = d
                .iter()
                .enumerate()
                .filter(|(j, _)| *j != i)
                .map(|(_, v)| *v)
                .fold(f64::MAX, f64::min);
            let w: Vec<f64> = (0..n)
                .map(|j| {
                    if j == i {
                        0.0
                    } else {
                        (-(d[j] - dmin) * beta).exp()
                    }
                })
                .collect();
            let sum: f64 = w.iter().sum();
            let entropy = sum.ln() + beta * (0..n).map(|j| w[j] * (d[j] - dmin)).sum::<f64>() / sum;
            for j in 0..n {
                p[i * n + j] = w[j] / sum;
            }
            if (entropy - target).abs() < 1e-5 {
                break;
            }
            if entropy > target {
                lo = beta;
                beta = if hi.is_finite() {
                    (beta + hi) / 2.0
                } else {
                    beta * 2.0
                };
            } else {
                hi = beta;
                beta = (beta + lo) / 2.0;
            }
        }
    }
    // Symmetrise.
    let mut pij = vec![0f64; n * n];
    for i in 0..n {
        for j in 0..n {
            pij[i * n + j] = ((p[i * n + j] + p[j * n + i]) / (2.0 * n as f64)).max(1e-12);
        }
    }
    let mut rng = ept_backend::Rng::new(7);
    let mut y: Vec<[f64; 2]> = (0..n)
        .map(|_| [1e-4 * rng.normal(), 1e-4 * rng.normal()])
        .collect();
    let mut velocity = vec![[0f64; 2]; n];
    // scikit-learn's learning_rate="auto": max(n / exaggeration / 4, 50).
    let learning_rate = (n as f64 / 12.0 / 4.0).max(50.0);
    for iteration in 0..iterations {
        let exaggeration = if iteration < 100 { 12.0 } else { 1.0 };
        let momentum = if iteration < 100 { 0.5 } else { 0.8 };
        let mut q = vec![0f64; n * n];
        let mut total = 0.0;
        for i in 0..n {
            for j in (i + 1)..n {
                let dx = y[i][0] - y[j][0];
                let dy = y[i][1] - y[j][1];
                let v = 1.0 / (1.0 + dx * dx + dy * dy);
                q[i * n + j] = v;
                q[j * n + i] = v;
                total += 2.0 * v;
            }
        }
        for i in 0..n {
            let mut grad = [0f64; 2];
            for j in 0..n {
                if i == j {
                    continue;
                }
                let w = q[i * n + j];
                let coeff = 4.0 * (exaggeration * pij[i * n + j] - w / total) * w;
                grad[0] += coeff * (y[i][0] - y[j][0]);
                grad[1] += coeff * (y[i][1] - y[j][1]);
            }
            for k in 0..2 {
                velocity[i][k] = momentum * velocity[i][k] - learning_rate * grad[k];
            }
        }
        for i in 0..n {
            y[i][0] += velocity[i][0];
            y[i][1] += velocity[i][1];
        }
    }
    y.into_iter().map(|v| (v[0], v[1])).collect()
}

/// Most points t-SNE is run on (an evenly spaced subsample beyond this): exact t-SNE is
/// O(n²) per iteration.
const TSNE_MAX_POINTS: usize = 1000;

/// The feature plots of a single-label split into `dir`: PC1 histogram per class, PCA
/// scatter, t-SNE map and the reliability diagram.
pub fn write_feature_plots(
    result: &EvalResult,
    labels: &[usize],
    dir: &Path,
    name: &str,
) -> Result<(), String> {
    let features = &result.features;
    let (axes, ratios) = principal_components(features, 2);
    if axes.len() == 2 {
        let mean: Vec<f64> = (0..axes[0].len())
            .map(|d| features.iter().map(|x| x[d] as f64).sum::<f64>() / features.len() as f64)
            .collect();
        let project = |x: &Vec<f32>, axis: &Vec<f64>| -> f64 {
            x.iter()
                .zip(axis)
                .zip(&mean)
                .map(|((v, a), m)| (*v as f64 - m) * a)
                .sum()
        };
        let pcs: Vec<(f64, f64)> = features
            .iter()
            .map(|x| (project(x, &axes[0]), project(x, &axes[1])))
            .collect();
        let first: Vec<f64> = pcs.iter().map(|p| p.0).collect();
        plot::class_histograms(
            &first,
            labels,
            30,
            &format!("{name} PC1 ({:.0}%)", 100.0 * ratios[0]),
        )
        .save(&dir.join("pca_pc1_histogram.png"))?;
        plot::scatter(&pcs, labels, &format!("{name} PCA"), "PC1", "PC2")
            .save(&dir.join("pca_scatter.png"))?;
    }
    let step = features.len().div_ceil(TSNE_MAX_POINTS).max(1);
    let sub: Vec<Vec<f32>> = features.iter().step_by(step).cloned().collect();
    let sub_labels: Vec<usize> = labels.iter().step_by(step).copied().collect();
    let map = tsne(&sub, 30.0, 500);
    plot::scatter(&map, &sub_labels, &format!("{name} T-SNE"), "", "").save(&dir.join("tsne.png"))?;
    if !result.reliability.is_empty() {
        plot::reliability_diagram(&result.reliability, &format!("{name} RELIABILITY"))
            .save(&dir.join("reliability.png"))?;
    }
    Ok(())
}

/// `report.md` of a finished run: what ran, the test metrics, and (single-label) the plots.
pub fn write_run_report(
    dir: &Path,
    method: &str,
    model: &str,
    params: (usize, usize),
    test: &EvalResult,
    labels: Option<&[usize]>,
) -> Result<(), String> {
    let mut report = format!(
        "# Run report\n\nmethod `{method}` on backbone `{model}`: {} trainable of {} parameters.\n\n\
         | test metric | value |\n| --- | ---: |\n",
        params.0, params.1
    );
    for (name, value) in &test.metrics {
        report.push_str(&format!("| {name} | {value:.4} |\n"));
    }
    report.push_str(
        "\nPercentages for accuracy/mAP/AUC/F1; ECE is a fraction (15 bins). scatter_within is\n\
         tr(S_W) of the test CLS features and scatter_ratio tr(S_B)/tr(S_W) (the paper's\n\
         feature-distribution analysis).\n",
    );
    if let Some(labels) = labels {
        write_feature_plots(test, labels, dir, method)?;
        report.push_str(
            "\n![reliability](reliability.png) ![t-SNE](tsne.png)\n\n\
             ![PC1 per class](pca_pc1_histogram.png) ![PCA](pca_scatter.png)\n",
        );
    }
    ept_backend::fs::write_atomic(&dir.join("report.md"), report.as_bytes()).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tsne_keeps_separated_clusters_apart() {
        let mut rng = ept_backend::Rng::new(1);
        let mut points = Vec::new();
        for c in 0..3 {
            for _ in 0..20 {
                points.push(
                    (0..5)
                        .map(|d| (if d == c { 10.0 } else { 0.0 }) + rng.normal() as f32 * 0.3)
                        .collect::<Vec<f32>>(),
                );
            }
        }
        let map = tsne(&points, 10.0, 300);
        let centre = |c: usize| {
            let s = &map[c * 20..(c + 1) * 20];
            (
                s.iter().map(|p| p.0).sum::<f64>() / 20.0,
                s.iter().map(|p| p.1).sum::<f64>() / 20.0,
            )
        };
        let spread = |c: usize| {
            let (mx, my) = centre(c);
            map[c * 20..(c + 1) * 20]
                .iter()
                .map(|p| ((p.0 - mx).powi(2) + (p.1 - my).powi(2)).sqrt())
                .sum::<f64>()
                / 20.0
        };
        for a in 0..3 {
            for b in (a + 1)..3 {
                let (ca, cb) = (centre(a), centre(b));
                let gap = ((ca.0 - cb.0).powi(2) + (ca.1 - cb.1).powi(2)).sqrt();
                assert!(
                    gap > 2.0 * spread(a).max(spread(b)),
                    "clusters {a} and {b} overlap: gap {gap}, spreads {} {}",
                    spread(a),
                    spread(b)
                );
            }
        }
    }
}

//! Segmentation losses on `[B, K, X, Y, Z]` logits and `[B, X, Y, Z]` integer labels:
//! the focal loss (γ = 4 in PUNet) and the soft Dice loss, both over the softmax of the
//! class channels. With two channels (background, one class) — PUNet's per-class binary
//! runs — the softmax equals a sigmoid of the logit difference.

use burn::tensor::{Int, Tensor, activation};

/// `−mean_voxels Σ_k y_k (1 − p_k)^γ log p_k` (Lin et al.; γ = 0 is cross-entropy).
pub fn focal_loss(logits: Tensor<5>, labels: Tensor<4, Int>, gamma: f64) -> Tensor<1> {
    let classes = logits.dims()[1];
    let log_p = activation::log_softmax(logits, 1);
    let target = one_hot(labels, classes);
    let log_p_true = (log_p * target).sum_dim(1); // [B, 1, X, Y, Z]
    let modulating = if gamma == 0.0 {
        log_p_true.ones_like()
    } else {
        (log_p_true.clone().exp().neg() + 1.0)
            .clamp_min(0.0)
            .powf_scalar(gamma)
    };
    (modulating * log_p_true).neg().mean()
}

/// `1 − mean_k (2 Σ p_k y_k + ε) / (Σ p_k + Σ y_k + ε)` over the foreground classes
/// `k ≥ 1`, sums over the batch and all voxels.
pub fn dice_loss(logits: Tensor<5>, labels: Tensor<4, Int>) -> Tensor<1> {
    const SMOOTH: f64 = 1e-5;
    let [batch, classes, x, y, z] = logits.dims();
    let probs = activation::softmax(logits, 1).slice([0..batch, 1..classes, 0..x, 0..y, 0..z]);
    let target = one_hot(labels, classes).slice([0..batch, 1..classes, 0..x, 0..y, 0..z]);
    let per_class = |t: Tensor<5>| t.swap_dims(0, 1).reshape([classes as i32 - 1, -1]).sum_dim(1);
    let intersection = per_class(probs.clone() * target.clone());
    let denominator = per_class(probs) + per_class(target);
    let dice = (intersection * 2.0 + SMOOTH) / (denominator + SMOOTH);
    dice.mean().neg() + 1.0
}

/// `[B, X, Y, Z]` labels → `[B, K, X, Y, Z]` one-hot floats.
pub fn one_hot(labels: Tensor<4, Int>, classes: usize) -> Tensor<5> {
    let [b, x, y, z] = labels.dims();
    labels
        .reshape([b * x * y * z])
        .one_hot::<2>(classes)
        .float()
        .reshape([b, x, y, z, classes])
        .permute([0, 4, 1, 2, 3])
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{Device, TensorData};

    fn logits(values: Vec<f32>, shape: [usize; 5]) -> Tensor<5> {
        Tensor::from_data(TensorData::new(values, shape), &Device::flex())
    }

    fn labels(values: Vec<i64>, shape: [usize; 4]) -> Tensor<4, Int> {
        Tensor::from_data(TensorData::new(values, shape), &Device::flex())
    }

    #[test]
    fn focal_with_gamma_zero_is_cross_entropy_and_matches_hand_values() {
        // two voxels, two classes: logits (0, ln 3) → p1 = 0.75; (ln 3, 0) → p0 = 0.75
        let l3 = 3f32.ln();
        let x = logits(vec![0.0, l3, l3, 0.0], [1, 2, 2, 1, 1]);
        let y = labels(vec![1, 1], [1, 2, 1, 1]);
        // voxel 0: p_true = 0.75; voxel 1: p_true = 0.25
        let ce = focal_loss(x.clone(), y.clone(), 0.0).into_scalar::<f32>();
        let expected_ce = -(0.75f64.ln() + 0.25f64.ln()) / 2.0;
        assert!((ce as f64 - expected_ce).abs() < 1e-6, "{ce} vs {expected_ce}");
        let focal = focal_loss(x, y, 4.0).into_scalar::<f32>();
        let expected = -(0.25f64.powi(4) * 0.75f64.ln() + 0.75f64.powi(4) * 0.25f64.ln()) / 2.0;
        assert!((focal as f64 - expected).abs() < 1e-6, "{focal} vs {expected}");
    }

    #[test]
    fn dice_loss_hand_values() {
        // 4 voxels, 2 classes; confident logits → probabilities ≈ one-hot
        let big = 30.0;
        let x = logits(vec![big, big, 0.0, 0.0, 0.0, 0.0, big, big], [1, 2, 4, 1, 1]);
        // prediction: class 1 on voxels 2, 3; truth: class 1 on voxels 1, 2, 3
        let y = labels(vec![0, 1, 1, 1], [1, 4, 1, 1]);
        let loss = dice_loss(x, y).into_scalar::<f32>();
        let expected = 1.0 - (2.0 * 2.0 + 1e-5) / (2.0 + 3.0 + 1e-5);
        assert!((loss as f64 - expected).abs() < 1e-5, "{loss} vs {expected}");
    }
}

//! The CPA assignment loss: cross-entropy between the teacher's soft prototype
//! assignments (targets, no gradient; sharp temperature) and the student's (softer
//! temperature), over matched positions.

use burn::tensor::{Tensor, activation::log_softmax};

use crate::kmeans::normalize_rows;

/// `mean_n −Σ_p Q^t[n, p] · log softmax_p(ŝ_n · μ̂_p / τ_s)` for student features
/// `[N, C]`, prototypes `[P, C]` (normalised) and teacher targets `[N, P]`.
pub fn assignment_loss(
    student: Tensor<2>,
    prototypes: Tensor<2>,
    targets: Tensor<2>,
    student_temperature: f64,
) -> Tensor<1> {
    let logits = normalize_rows(student)
        .matmul(prototypes.detach().transpose())
        .div_scalar(student_temperature);
    let log_q = log_softmax(logits, 1).clamp(-1000.0, 0.0);
    (targets.detach() * log_q).sum_dim(1).neg().mean()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kmeans::SoftKMeans;
    use burn::tensor::{Device, Distribution};

    /// With the teacher's targets taken from the same features at the same temperature,
    /// the loss is the targets' entropy — the minimum over all student features (Gibbs):
    /// any perturbed student scores higher.
    #[test]
    fn minimal_when_student_and_teacher_agree() {
        let device = Device::flex();
        let features = Tensor::<2>::random([12, 6], Distribution::Normal(0.0, 1.0), &device);
        let prototypes = normalize_rows(Tensor::<2>::random(
            [5, 6],
            Distribution::Normal(0.0, 1.0),
            &device,
        ));
        let tau = 0.5;
        let targets = SoftKMeans::assign(features.clone(), prototypes.clone(), tau);
        let agree: f32 =
            assignment_loss(features.clone(), prototypes.clone(), targets.clone(), tau).into_scalar();
        let entropy: f32 = (targets.clone() * targets.clone().log())
            .sum_dim(1)
            .neg()
            .mean()
            .into_scalar();
        assert!((agree - entropy).abs() < 1e-4, "{agree} vs {entropy}");
        for _ in 0..5 {
            let other = features.clone() + Tensor::random([12, 6], Distribution::Normal(0.0, 0.5), &device);
            let loss: f32 = assignment_loss(other, prototypes.clone(), targets.clone(), tau).into_scalar();
            assert!(loss > agree, "{loss} ≤ {agree}");
        }
    }
}

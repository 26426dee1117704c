//! ept patch: the default backward of [layer_norm](crate::ops::ModuleOps::layer_norm).
//!
//! With `x̂ = (x − mean) · rstd` over the last dimension, `rstd = 1/√(var + ε)` and
//! `g = dy ⊙ γ`:
//!
//! `dx = rstd · (g − mean(g) − x̂ ⊙ mean(g ⊙ x̂))`, `dγ = Σ_rows dy ⊙ x̂`, `dβ = Σ_rows dy`.
//!
//! The statistics are recomputed from `x`, so the forward pass can stay the backend's
//! fused kernel and save nothing but its input.

use alloc::vec::Vec;

use crate::tensor::FloatTensor;
use crate::{Backend, Scalar, TensorMetadata};
use burn_std::Shape;

/// Gradients of [layer_norm](crate::ops::ModuleOps::layer_norm).
pub struct LayerNormBackward<B: Backend> {
    /// Gradient of the input, its shape.
    pub x_grad: FloatTensor<B>,
    /// Gradient of `gamma`, `[d_model]`; `None` unless asked for.
    pub gamma_grad: Option<FloatTensor<B>>,
    /// Gradient of `beta`, `[d_model]`; `None` unless asked for.
    pub beta_grad: Option<FloatTensor<B>>,
}

/// `layer_norm`'s backward out of tensor operations (the trait's default).
/// `param_grads`: also return the gradients of `gamma` and `beta`.
pub fn layer_norm_backward<B: Backend>(
    x: FloatTensor<B>,
    gamma: FloatTensor<B>,
    output_grad: FloatTensor<B>,
    epsilon: f64,
    param_grads: bool,
) -> LayerNormBackward<B> {
    let shape = x.shape();
    let rank = shape.num_dims();
    let last = rank - 1;
    let d_model = shape[last];
    let row_shape: Vec<usize> = (0..rank).map(|i| if i == last { d_model } else { 1 }).collect();

    let mean = B::float_mean_dim(x.clone(), last);
    let centered = B::float_sub(x, mean);
    let variance = B::float_mean_dim(B::float_mul(centered.clone(), centered.clone()), last);
    let rstd = B::float_recip(B::float_sqrt(B::float_add_scalar(
        variance,
        Scalar::Float(epsilon),
    )));
    let normalized = B::float_mul(centered, rstd.clone());

    let gamma_rows = B::float_reshape(gamma, Shape::from(row_shape));
    let g = B::float_mul(output_grad.clone(), gamma_rows);
    let mean_g = B::float_mean_dim(g.clone(), last);
    let mean_g_normalized = B::float_mean_dim(B::float_mul(g.clone(), normalized.clone()), last);
    let x_grad = B::float_mul(
        B::float_sub(
            B::float_sub(g, mean_g),
            B::float_mul(normalized.clone(), mean_g_normalized),
        ),
        rstd,
    );

    let (gamma_grad, beta_grad) = if param_grads {
        let rows = shape.num_elements() / d_model;
        let flat = |t: FloatTensor<B>| B::float_reshape(t, Shape::new([rows, d_model]));
        let per_column = |t: FloatTensor<B>| B::float_reshape(B::float_sum_dim(t, 0), Shape::new([d_model]));
        let gamma_grad = per_column(flat(B::float_mul(output_grad.clone(), normalized)));
        let beta_grad = per_column(flat(output_grad));
        (Some(gamma_grad), Some(beta_grad))
    } else {
        (None, None)
    };
    LayerNormBackward {
        x_grad,
        gamma_grad,
        beta_grad,
    }
}

//! Fused backward passes of layer normalization and softmax for f32 (ept patch 4).
//!
//! burn-backend's defaults compose both gradients from tensor operations — about a
//! dozen full-size passes with their allocations for layer norm, four for softmax.
//! Here each row is read once from memory and worked on while it sits in L1:
//!
//! * layer norm, with `x̂ = (x − mean)·rstd`, `g = dy ⊙ γ`:
//!   `dx = rstd·(g − mean(g) − x̂·mean(g ⊙ x̂))`, statistics recomputed per row from `x`
//!   (two-pass mean and variance, like the forward kernel); `dγ = Σ_rows dy ⊙ x̂` and
//!   `dβ = Σ_rows dy` in a column pass, only when asked for;
//! * softmax along the last dimension, from its output `y`: `y ⊙ (g − Σ g ⊙ y)`.
//!
//! The result is written into the incoming gradient's buffer when nothing else holds
//! it. Sums run in 16 independent f32 lanes (so the loops vectorise without
//! reassociating a single accumulator); every reduction's order depends only on the
//! row length, never on the thread count, so results are reproducible.

use core::mem::MaybeUninit;

use alloc::vec::Vec;
use burn_backend::ops::layer_norm::LayerNormBackward;
use burn_backend::{DType, TensorMetadata};
use burn_std::{Bytes, Shape};

use super::gelu_simd::writable_in_place;
use super::simd_math::multiversion;
use crate::parallel::{SendPtr, for_each_row_chunk};
use crate::{Flex, FlexTensor, Layout};

/// Independent accumulators per sum.
const LANES: usize = 16;

/// `Σ f(i)` for `i` in `0..len`, in `LANES` interleaved partial sums.
#[inline(always)]
fn lane_sum(len: usize, f: impl Fn(usize) -> f32) -> f32 {
    let mut lanes = [0f32; LANES];
    let full = len - len % LANES;
    for base in (0..full).step_by(LANES) {
        for (lane, acc) in lanes.iter_mut().enumerate() {
            *acc += f(base + lane);
        }
    }
    let mut tail = 0f32;
    for i in full..len {
        tail += f(i);
    }
    // Pairwise across the lanes.
    let mut width = LANES;
    while width > 1 {
        width /= 2;
        for lane in 0..width {
            lanes[lane] += lanes[lane + width];
        }
    }
    lanes[0] + tail
}

/// Mean and `1/√(var + ε)` of one row (two passes over the cached row).
#[inline(always)]
fn row_stats(x: &[f32], epsilon: f32) -> (f32, f32) {
    let len = x.len();
    let mean = lane_sum(len, |i| x[i]) / len as f32;
    let variance = lane_sum(len, |i| {
        let centered = x[i] - mean;
        centered * centered
    }) / len as f32;
    (mean, 1.0 / (variance + epsilon).sqrt())
}

// Rows of `x` (each `gamma.len()` long) with their output gradients in `grad`,
// overwritten by the input gradients.
multiversion!(layer_norm_x_grad_rows(x: &[f32], gamma: &[f32], epsilon: f32, grad: &mut [f32]) {
    let d = gamma.len();
    for (x, grad) in x.chunks_exact(d).zip(grad.chunks_exact_mut(d)) {
        let (mean, rstd) = row_stats(x, epsilon);
        let mean_g = lane_sum(d, |i| grad[i] * gamma[i]) / d as f32;
        let mean_g_normalized = lane_sum(d, |i| grad[i] * gamma[i] * ((x[i] - mean) * rstd)) / d as f32;
        for i in 0..d {
            let normalized = (x[i] - mean) * rstd;
            grad[i] = rstd * (grad[i] * gamma[i] - mean_g - normalized * mean_g_normalized);
        }
    }
});

// Per-row (mean, rstd) of the rows of `x`, `d` long each.
multiversion!(layer_norm_row_stats(x: &[f32], d: usize, epsilon: f32, stats: &mut [MaybeUninit<(f32, f32)>]) {
    for (x, stat) in x.chunks_exact(d).zip(stats.iter_mut()) {
        stat.write(row_stats(x, epsilon));
    }
});

// Columns `[start, end)` of `dγ = Σ_rows dy ⊙ x̂` and `dβ = Σ_rows dy` (row order fixed).
multiversion!(layer_norm_param_grad_columns(x: &[f32], grad: &[f32], stats: &[(f32, f32)], d: usize, start: usize, gamma_grad: &mut [f32], beta_grad: &mut [f32]) {
    gamma_grad.fill(0.0);
    beta_grad.fill(0.0);
    let width = gamma_grad.len();
    for (row, &(mean, rstd)) in stats.iter().enumerate() {
        let x = &x[row * d + start..row * d + start + width];
        let dy = &grad[row * d + start..row * d + start + width];
        for j in 0..width {
            gamma_grad[j] += dy[j] * ((x[j] - mean) * rstd);
            beta_grad[j] += dy[j];
        }
    }
});

// Rows of the softmax output `y` (each `len` long) with their gradients in `grad`,
// overwritten by the input gradients.
multiversion!(softmax_grad_rows(y: &[f32], len: usize, grad: &mut [f32]) {
    for (y, grad) in y.chunks_exact(len).zip(grad.chunks_exact_mut(len)) {
        let total = lane_sum(len, |i| grad[i] * y[i]);
        for i in 0..len {
            grad[i] = y[i] * (grad[i] - total);
        }
    }
});

/// `tensor` as a contiguous f32 buffer this call may overwrite (copied when shared).
fn owned_f32(tensor: FlexTensor) -> FlexTensor {
    let tensor = tensor.into_contiguous();
    if writable_in_place(&tensor) {
        return tensor;
    }
    let values: Vec<f32> = tensor.as_slice::<f32>().expect("contiguous f32").to_vec();
    FlexTensor::new(Bytes::from_elems(values), Layout::contiguous(tensor.shape()), DType::F32)
}

/// Run `kernel(rows [start, end) of x, of grad)` on row chunks across threads.
fn for_each_rows(x: &[f32], grad: &mut [f32], d: usize, kernel: impl Fn(&[f32], &mut [f32]) + Sync + Send) {
    let rows = x.len() / d;
    let grad_ptr = SendPtr(grad.as_mut_ptr());
    for_each_row_chunk(rows, d, |start, end| {
        // SAFETY: row chunks are disjoint ranges of `grad`.
        let grad = unsafe { grad_ptr.slice(start * d, end * d) };
        kernel(&x[start * d..end * d], grad);
    });
}

/// Layer norm's gradients (see the module docs); f32 fused, other dtypes composed.
pub fn layer_norm_backward(
    x: FlexTensor,
    gamma: FlexTensor,
    output_grad: FlexTensor,
    epsilon: f64,
    param_grads: bool,
) -> LayerNormBackward<Flex> {
    let shape = x.shape();
    let d = shape[shape.num_dims() - 1];
    let fused = x.dtype() == DType::F32 && gamma.dtype() == DType::F32 && output_grad.dtype() == DType::F32;
    if !fused || d == 0 || output_grad.shape() != shape || gamma.shape().num_elements() != d {
        return burn_backend::ops::layer_norm::layer_norm_backward::<Flex>(
            x,
            gamma,
            output_grad,
            epsilon,
            param_grads,
        );
    }
    let x = x.into_contiguous();
    let gamma = gamma.into_contiguous();
    let x_values: &[f32] = x.as_slice().expect("contiguous f32");
    let gamma_values: &[f32] = gamma.as_slice().expect("contiguous f32");
    let epsilon = epsilon as f32;
    let mut grad = owned_f32(output_grad);

    let (gamma_grad, beta_grad) = if param_grads {
        let (gamma_grad, beta_grad) = param_grads_f32(x_values, grad.as_slice().expect("contiguous f32"), d, epsilon);
        let vector = |values: Vec<f32>| FlexTensor::new(Bytes::from_elems(values), Layout::contiguous(Shape::new([d])), DType::F32);
        (Some(vector(gamma_grad)), Some(vector(beta_grad)))
    } else {
        (None, None)
    };

    let grad_values: &mut [f32] = grad.storage_mut();
    for_each_rows(x_values, grad_values, d, |x, grad| {
        layer_norm_x_grad_rows(x, gamma_values, epsilon, grad)
    });
    LayerNormBackward {
        x_grad: grad,
        gamma_grad,
        beta_grad,
    }
}

/// `(dγ, dβ)` for rows of `x` and their output gradients `grad`, `d` wide.
fn param_grads_f32(x: &[f32], grad: &[f32], d: usize, epsilon: f32) -> (Vec<f32>, Vec<f32>) {
    let rows = x.len() / d;
    let mut stats: Vec<(f32, f32)> = Vec::with_capacity(rows);
    let stats_ptr = SendPtr(stats.spare_capacity_mut().as_mut_ptr());
    for_each_row_chunk(rows, d, |start, end| {
        // SAFETY: disjoint row ranges of the reserved capacity.
        let out = unsafe { stats_ptr.slice(start, end) };
        layer_norm_row_stats(&x[start * d..end * d], d, epsilon, out);
    });
    // SAFETY: every row's statistics were written above.
    unsafe { stats.set_len(rows) };

    let mut gamma_grad = alloc::vec![0f32; d];
    let mut beta_grad = alloc::vec![0f32; d];
    let (gamma_ptr, beta_ptr) = (SendPtr(gamma_grad.as_mut_ptr()), SendPtr(beta_grad.as_mut_ptr()));
    // Column blocks across threads: each column's sum runs over the rows in order.
    for_each_row_chunk(d, rows, |start, end| {
        // SAFETY: disjoint column ranges of both outputs.
        let (gamma_part, beta_part) = unsafe { (gamma_ptr.slice(start, end), beta_ptr.slice(start, end)) };
        layer_norm_param_grad_columns(x, grad, &stats, d, start, gamma_part, beta_part);
    });
    (gamma_grad, beta_grad)
}

/// Softmax's input gradient from its output and the output's gradient (module docs);
/// f32 along the last dimension fused, everything else composed.
pub fn softmax_backward(output: FlexTensor, grad: FlexTensor, dim: usize) -> FlexTensor {
    let shape = output.shape();
    let last = shape.num_dims() - 1;
    let fused = output.dtype() == DType::F32 && grad.dtype() == DType::F32 && dim == last && grad.shape() == shape;
    if !fused || shape[last] == 0 {
        return burn_backend::ops::softmax_backward_composed::<Flex>(output, grad, dim);
    }
    let len = shape[last];
    let output = output.into_contiguous();
    let y: &[f32] = output.as_slice().expect("contiguous f32");
    let mut grad = owned_f32(grad);
    let grad_values: &mut [f32] = grad.storage_mut();
    for_each_rows(y, grad_values, len, |y, grad| softmax_grad_rows(y, len, grad));
    grad
}

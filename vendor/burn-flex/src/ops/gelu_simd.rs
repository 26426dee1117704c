//! Vectorised exact (erf) GELU and its derivative for f32 (ept patch 3).
//!
//! burn-flex evaluated GELU element by element through libm's scalar `erff` (and
//! `expf` in the backward): 18 ms for one ViT-B/16 MLP activation (8 × 197 × 3072, 2
//! threads) where PyTorch takes 1 ms (`cargo xtask bench --groups layers --compare`);
//! this kernel takes 3 ms. Here the whole function is branch-free f32 arithmetic —
//! polynomials, one division, selects and integer bit tricks — written once and
//! compiled three times (AVX-512F, AVX2 + FMA, baseline) so LLVM vectorises it for the
//! CPU found at run time. Products feeding an addition are fused multiply-adds, which
//! every path rounds once (the baseline through libm's `fmaf`), so every path returns
//! bit-identical results.
//!
//! The evaluation goes through `erfc` of `a = |x|/√2` rather than `1 + erf(x/√2)`, so
//! the negative tail `gelu(x) = x·erfc(a)/2` keeps its relative accuracy instead of
//! cancelling to zero:
//! * `a < 0.75`: `erfc(a) = 1 − a·P(a²)` (degree 5),
//! * `0.75 ≤ a < 9.2`: `erfc(a) = e^{−a²}·Q(t)/a`, `t = 1/(1 + a/2)` (degree 9),
//! * `a ≥ 9.2`: `erfc(a) < 1e-37`, taken as 0,
//!
//! with `e^{−a²}` from a Cody–Waite reduced exponential (degree-6 polynomial) fed the
//! square as an exact high part plus a small low part, and the same `e^{−a²}` reused
//! for the derivative's density term. The coefficients are weighted-least-squares
//! minimax fits (relative error ≤ 1.6e-9 in exact arithmetic) made by
//! `tools/fit_gelu_coefficients.py`; `crates/ept-backend/tests/gelu_simd.rs` measures
//! the f32 result against an f64 reference.

use core::mem::MaybeUninit;

use alloc::vec::Vec;
use burn_backend::DType;

use super::simd_math::{exp_hi_lo, fma, horner, multiversion};
use crate::parallel::{SendPtr, for_each_chunk};
use crate::{FlexTensor, Layout};

/// `erf(a)/a ≈ P(a²)` on `[0, 0.75]`.
const ERF_SMALL: [f32; 6] = [
    1.128_379_2,
    -0.376_126_2,
    0.112_833_77,
    -0.026_834_634,
    0.005_114_362,
    -0.000_674_961_8,
];
/// `a·e^{a²}·erfc(a) ≈ Q(1/(1 + a/2))` on `[0.75, 9.2]`.
const ERFC_LARGE: [f32; 10] = [
    0.564_166_34,
    0.000_641_081,
    -0.078_216_66,
    -0.088_332_11,
    -0.412_267_3,
    0.459_541_08,
    -1.247_118_4,
    1.227_650_1,
    -0.494_708_93,
    0.068_535_56,
];
/// Where the small-argument polynomial hands over to the tail form.
const SPLIT: f32 = 0.75;
/// Beyond this `a`, `erfc(a)` and `φ` are taken as 0 (`erfc(9) = 4.1e-37`).
const CUTOFF: f32 = 9.0;
const FRAC_1_SQRT_PI_2: f32 = 0.398_942_3; // 1/√(2π)

/// `(cdf, pdf)` of the standard normal at `x`: `Φ(x)` and `φ(x) = e^{−x²/2}/√(2π)`.
#[inline(always)]
fn normal_cdf_pdf(x: f32) -> (f32, f32) {
    let abs = x.abs();
    let a = abs * core::f32::consts::FRAC_1_SQRT_2;
    // e^{−x²/2} from x itself, not from the rounded a: erfc's tail amplifies a relative
    // error in its argument by 2a². x² = hi² + (x − hi)(x + hi) with hi = x's upper
    // 12 significand bits, so hi² and its half are exact.
    let clamped = if abs < CUTOFF * core::f32::consts::SQRT_2 { abs } else { CUTOFF * core::f32::consts::SQRT_2 };
    let hi = f32::from_bits(clamped.to_bits() & 0xFFFF_F000);
    let square_lo = (clamped - hi) * (clamped + hi);
    let e = exp_hi_lo(-0.5 * (hi * hi), -0.5 * square_lo);
    let small = fma(-a, horner(&ERF_SMALL, a * a), 1.0);
    // One division serves both t = 1/(1 + a/2) and √2/|x| (divisions dominate the cost).
    let denominator = fma(0.5, a, 1.0);
    let reciprocal = 1.0 / (denominator * clamped);
    let t = clamped * reciprocal;
    let tail = e * horner(&ERFC_LARGE, t) * (core::f32::consts::SQRT_2 * denominator * reciprocal);
    let erfc = if a < SPLIT {
        small
    } else if a < CUTOFF {
        tail
    } else {
        0.0
    };
    let cdf = if x < 0.0 { 0.5 * erfc } else { fma(-0.5, erfc, 1.0) };
    let pdf = if a < CUTOFF { e * FRAC_1_SQRT_PI_2 } else { 0.0 };
    (cdf, pdf)
}

/// `gelu(x) = x·Φ(x)`.
#[inline(always)]
pub fn gelu_f32(x: f32) -> f32 {
    x * normal_cdf_pdf(x).0
}

/// `g · gelu′(x) = g·(Φ(x) + x·φ(x))`.
#[inline(always)]
pub fn gelu_backward_f32(x: f32, g: f32) -> f32 {
    let (cdf, pdf) = normal_cdf_pdf(x);
    g * fma(x, pdf, cdf)
}

multiversion!(gelu_slice_inplace(values: &mut [f32]) {
    for v in values {
        *v = gelu_f32(*v);
    }
});

multiversion!(gelu_slice(x: &[f32], out: &mut [MaybeUninit<f32>]) {
    for (o, &x) in out.iter_mut().zip(x) {
        o.write(gelu_f32(x));
    }
});

multiversion!(gelu_backward_slice_into(x: &[f32], grad: &[f32], out: &mut [MaybeUninit<f32>]) {
    for ((o, &x), &g) in out.iter_mut().zip(x).zip(grad) {
        o.write(gelu_backward_f32(x, g));
    }
});

multiversion!(gelu_backward_slice(x: &[f32], grad: &mut [f32]) {
    for (g, &x) in grad.iter_mut().zip(x) {
        *g = gelu_backward_f32(x, *g);
    }
});

/// Whether `tensor` may be overwritten in place as one dense f32 slice.
pub(crate) fn writable_in_place(tensor: &FlexTensor) -> bool {
    tensor.is_unique()
        && tensor.is_contiguous()
        && tensor.layout().start_offset() == 0
        && tensor.bytes().len() == tensor.layout().num_elements() * 4
}

/// A fresh contiguous f32 tensor of `shape`, element `i` written by `fill(start, end,
/// out)` for chunks `[start, end)` in parallel.
fn new_f32(
    shape: burn_backend::Shape,
    fill: impl Fn(usize, usize, &mut [MaybeUninit<f32>]) + Sync + Send,
) -> FlexTensor {
    let n = shape.num_elements();
    let mut out: Vec<f32> = Vec::with_capacity(n);
    let ptr = SendPtr(out.spare_capacity_mut().as_mut_ptr());
    for_each_chunk(n, |start, end| {
        // SAFETY: chunks are disjoint ranges of the reserved capacity.
        fill(start, end, unsafe { ptr.slice(start, end) });
    });
    // SAFETY: every element in 0..n was written above.
    unsafe { out.set_len(n) };
    FlexTensor::new(
        burn_std::Bytes::from_elems(out),
        Layout::contiguous(shape),
        DType::F32,
    )
}

/// Exact GELU of an f32 tensor, in place when the buffer is not shared.
pub fn gelu_tensor(tensor: FlexTensor) -> FlexTensor {
    debug_assert_eq!(tensor.dtype(), DType::F32);
    let mut tensor = tensor.into_contiguous();
    if writable_in_place(&tensor) {
        let values: &mut [f32] = tensor.storage_mut();
        let ptr = SendPtr(values.as_mut_ptr());
        for_each_chunk(values.len(), |start, end| {
            // SAFETY: disjoint chunks of `values`.
            gelu_slice_inplace(unsafe { ptr.slice(start, end) });
        });
        return tensor;
    }
    let shape = tensor.layout().shape().clone();
    let x: &[f32] = tensor.as_slice().expect("contiguous f32");
    new_f32(shape, |start, end, out| gelu_slice(&x[start..end], out))
}

/// `grad · gelu′(x)` for f32 tensors of one shape, written into `grad` when possible.
pub fn gelu_backward_tensor(x: FlexTensor, grad: FlexTensor) -> FlexTensor {
    debug_assert_eq!(x.dtype(), DType::F32);
    let x = x.into_contiguous();
    let mut grad = grad.into_contiguous();
    let xs: &[f32] = x.as_slice().expect("contiguous f32");
    if writable_in_place(&grad) {
        let values: &mut [f32] = grad.storage_mut();
        let ptr = SendPtr(values.as_mut_ptr());
        for_each_chunk(values.len(), |start, end| {
            // SAFETY: disjoint chunks of `values`.
            gelu_backward_slice(&xs[start..end], unsafe { ptr.slice(start, end) });
        });
        return grad;
    }
    let shape = grad.layout().shape().clone();
    let gs: &[f32] = grad.as_slice().expect("contiguous f32");
    new_f32(shape, |start, end, out| {
        gelu_backward_slice_into(&xs[start..end], &gs[start..end], out)
    })
}

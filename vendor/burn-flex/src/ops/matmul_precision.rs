//! Reduced-precision compute for f32 matrix products (ept patch).
//!
//! The process-wide [`MatmulPrecision`] says how an f32 `matmul` computes, as PyTorch's
//! `torch.set_float32_matmul_precision` and oneDNN's "fpmath mode" do: tensors, weights
//! and results stay f32; only the products inside a matmul are formed from operands
//! rounded to bf16 or f16, and summed in f32 — the arithmetic of a bf16/f16 GEMM with
//! f32 accumulation (AMX, tensor cores, `vdpbf16ps`).
//!
//! On x86-64 CPUs with bf16 hardware that beats the f32 GEMM, bf16 products run
//! natively: `ops::bf16_gemm` packs the operands into bf16 tiles and multiplies them on
//! AMX tiles (`tdpbf16ps`, Intel Sapphire Rapids and later, several times the f32 rate)
//! or with AVX512-BF16's `vdpbf16ps` (AMD Zen 4 and later, twice the f32 multiply-adds
//! per cycle), both with f32 accumulation. Everywhere else (and always for f16) the
//! operands are rounded into f32 copies (a bf16 or f16 number is exactly representable
//! in f32, and a product of two is exact in f32's 24-bit significand), so the f32 GEMM
//! computes exactly those products: the same numerics at the f32 GEMM's speed plus one
//! rounding pass (Intel cores without AMX issue `vdpbf16ps` at half the FMA rate, so a
//! bf16 GEMM could not be faster there).
//!
//! f16 has 5 exponent bits, so each f16 operand is first multiplied by a power of two
//! that puts its largest magnitude in `[2^14, 2^15)` (exact in f32) and the product is
//! divided by both factors afterwards — per-tensor dynamic scaling, the per-matmul form
//! of mixed-precision training's loss scaling. Without it, gradients below 2^-24 would
//! flush to zero and activations above 65504 would overflow.

use core::sync::atomic::{AtomicU8, Ordering};

use alloc::vec::Vec;
use burn_backend::DType;
use burn_std::Bytes;

use crate::FlexTensor;
use crate::parallel::{collect_indexed, map_inplace};

/// How an f32 matrix product forms its products.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MatmulPrecision {
    /// Plain f32 (the default).
    #[default]
    F32,
    /// Operands rounded to bfloat16 (round to nearest even), f32 accumulation.
    Bf16,
    /// Operands scaled by a power of two and rounded to IEEE half, f32 accumulation.
    F16,
}

static PRECISION: AtomicU8 = AtomicU8::new(0);

/// Set the precision of every f32 matmul in this process from now on.
pub fn set_matmul_precision(precision: MatmulPrecision) {
    let code = match precision {
        MatmulPrecision::F32 => 0,
        MatmulPrecision::Bf16 => 1,
        MatmulPrecision::F16 => 2,
    };
    PRECISION.store(code, Ordering::Relaxed);
}

/// The precision f32 matmuls currently use.
pub fn matmul_precision() -> MatmulPrecision {
    match PRECISION.load(Ordering::Relaxed) {
        1 => MatmulPrecision::Bf16,
        2 => MatmulPrecision::F16,
        _ => MatmulPrecision::F32,
    }
}

/// `x` rounded to the nearest bfloat16 (ties to even), as an f32. NaN stays NaN;
/// values beyond bf16's largest finite number round to ±infinity.
#[inline]
pub fn round_to_bf16(x: f32) -> f32 {
    if x.is_nan() {
        return x;
    }
    let bits = x.to_bits();
    let rounded = bits.wrapping_add(0x7FFF + ((bits >> 16) & 1)) & 0xFFFF_0000;
    f32::from_bits(rounded)
}

/// `x` rounded to the nearest IEEE half (ties to even), as an f32: subnormal halves
/// included, magnitudes of 65520 and more become ±infinity, NaN stays NaN.
#[inline]
pub fn round_to_f16(x: f32) -> f32 {
    const SMALLEST_NORMAL: f32 = 6.103_515_6e-5; // 2^-14
    const OVERFLOW: f32 = 65520.0; // halfway between 65504 and 2^16: rounds up
    let magnitude = x.abs();
    let rounded = if magnitude < SMALLEST_NORMAL {
        // Subnormal halves are multiples of 2^-24, the ulp of f32 at 0.5: adding and
        // removing 0.5 rounds to that grid, ties to even.
        (magnitude + 0.5) - 0.5
    } else if magnitude >= OVERFLOW {
        f32::INFINITY
    } else {
        // Keep 10 of f32's 23 fraction bits, ties to even.
        let bits = magnitude.to_bits();
        f32::from_bits(bits.wrapping_add(0x0FFF + ((bits >> 13) & 1)) & 0xFFFF_E000)
    };
    if x.is_nan() { x } else { rounded.copysign(x) }
}

/// The exponent `e` of the power of two `2^e` that moves `max_abs` into
/// `[2^14, 2^15)`; 0 when there is nothing to scale (zero or non-finite).
fn f16_scale_exponent(max_abs: f32) -> i32 {
    if max_abs == 0.0 || !max_abs.is_finite() {
        return 0;
    }
    let exponent = if max_abs.is_normal() {
        ((max_abs.to_bits() >> 23) & 0xFF) as i32 - 127
    } else {
        // Subnormal f32: log2 from the position of the highest set bit.
        -149 + (31 - max_abs.to_bits().leading_zeros() as i32)
    };
    (14 - exponent).clamp(-126, 127)
}

/// `2^e` for `e` in f32's normal exponent range.
fn pow2(e: i32) -> f32 {
    f32::from_bits(((127 + e) as u32) << 23)
}

/// An f32 operand rounded as `precision` asks, with the power-of-two exponent it was
/// scaled by (0 unless f16).
fn rounded_operand(tensor: FlexTensor, precision: MatmulPrecision) -> (FlexTensor, i32) {
    if precision == MatmulPrecision::F32 {
        return (tensor, 0);
    }
    // A narrow view into a big buffer (one head of a fused projection) is copied out
    // first; otherwise the whole buffer is rounded and the view keeps its layout
    // (broadcast weights are rounded once, not once per batch entry).
    let storage_len = tensor.storage::<f32>().len();
    let tensor = if tensor.layout().num_elements() * 2 < storage_len {
        tensor.to_contiguous()
    } else {
        tensor
    };
    let source: &[f32] = tensor.storage();
    let (values, exponent): (Vec<f32>, i32) = if precision == MatmulPrecision::F16 {
        // Branch-free so it vectorises; NaN compares false and is skipped too.
        let max_abs = source.iter().fold(0.0f32, |m, v| {
            let a = v.abs();
            if a > m && a < f32::INFINITY { a } else { m }
        });
        let exponent = f16_scale_exponent(max_abs);
        let scale = pow2(exponent);
        (collect_indexed(source.len(), |i| round_to_f16(source[i] * scale)), exponent)
    } else {
        (collect_indexed(source.len(), |i| round_to_bf16(source[i])), 0)
    };
    let layout = tensor.layout().clone();
    (FlexTensor::new(Bytes::from_elems(values), layout, DType::F32), exponent)
}

/// `lhs · rhs` for f32 tensors at a reduced `precision` (see the module docs); `gemm`
/// is the plain f32 matmul.
pub(crate) fn matmul_reduced(
    lhs: FlexTensor,
    rhs: FlexTensor,
    precision: MatmulPrecision,
    gemm: impl FnOnce(FlexTensor, FlexTensor) -> FlexTensor,
) -> FlexTensor {
    let (lhs, lhs_exponent) = rounded_operand(lhs, precision);
    let (rhs, rhs_exponent) = rounded_operand(rhs, precision);
    let mut output = gemm(lhs, rhs);
    if lhs_exponent != 0 || rhs_exponent != 0 {
        // Two exact power-of-two steps: their product could leave f32's range.
        let (undo_lhs, undo_rhs) = (pow2(-lhs_exponent), pow2(-rhs_exponent));
        map_inplace(output.storage_mut::<f32>(), |v| v * undo_lhs * undo_rhs);
    }
    output
}

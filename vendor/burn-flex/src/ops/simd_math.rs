//! Branch-free f32 math for vectorised kernels (ept patch): a polynomial evaluator, an
//! exponential without libm, and `multiversion!`, which compiles a slice loop for
//! AVX-512F, AVX2 + FMA and the baseline and picks one at run time. Products that feed
//! an addition are fused multiply-adds (`fma`): one rounding each, so every path gives
//! the same bits — the SIMD paths with the FMA instruction, the baseline with libm's
//! correctly rounded software `fma` (slow, and only taken on CPUs without AVX2/FMA).
//! Users: `gelu_simd` (GELU and its derivative) and the f32 softmax.

/// `a·b + c` with one rounding.
#[inline(always)]
pub(crate) fn fma(a: f32, b: f32, c: f32) -> f32 {
    #[cfg(feature = "std")]
    {
        a.mul_add(b, c)
    }
    #[cfg(not(feature = "std"))]
    {
        libm::fmaf(a, b, c)
    }
}

/// `e^r ≈ E(r)` on `[−ln2/2, ln2/2]`.
const EXP: [f32; 7] = [
    1.0,
    1.000_000_04,
    0.499_999_92,
    0.166_664_2,
    0.041_668_226,
    0.008_374_816,
    0.001_383_684_2,
];
#[inline(always)]
pub(crate) fn horner<const N: usize>(c: &[f32; N], x: f32) -> f32 {
    let mut acc = c[N - 1];
    for k in (0..N - 1).rev() {
        acc = fma(acc, x, c[k]);
    }
    acc
}

/// `e^{hi + lo}` for `hi` in `[−85, 0]` exact-ish and `|lo|` tiny: the reduction
/// `hi − n·ln2` is exact (Sterbenz), `lo` joins the reduced argument.
#[inline(always)]
pub(crate) fn exp_hi_lo(hi: f32, lo: f32) -> f32 {
    const LOG2E: f32 = core::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_359_4; // 355/512: n·LN2_HI is exact for |n| < 2^15
    const LN2_LO: f32 = -2.121_944_4e-4;
    const ROUND: f32 = 12_582_912.0; // 1.5·2^23: adding it rounds to an integer
    let shifted = fma(hi, LOG2E, ROUND);
    let n = shifted - ROUND;
    let r = fma(-n, LN2_LO, fma(-n, LN2_HI, hi)) + lo;
    // 2^n from the integer sitting in the low mantissa bits of `shifted`.
    let bits = (shifted.to_bits() as i32).wrapping_sub(0x4B40_0000).wrapping_add(127) << 23;
    horner(&EXP, r) * f32::from_bits(bits as u32)
}

/// `e^x` for f32 `x ≤ 0` (softmax's shifted logits): 0 below −87.3, where the result
/// would leave f32's normal range (libm would return subnormals down to −103.3); NaN
/// stays NaN. Within 2 ulp of the exact value (measured 0.93 ulp,
/// `crates/ept-backend/tests/gelu_simd.rs`).
#[inline(always)]
pub fn exp_nonpositive(x: f32) -> f32 {
    const MIN: f32 = -87.3;
    let clamped = if x > MIN { x } else { MIN };
    let e = exp_hi_lo(clamped, 0.0);
    // `x > MIN` is false for NaN and −∞: pick NaN through `x` itself, 0 otherwise.
    if x > MIN { e } else if x.is_nan() { x } else { 0.0 }
}

/// Compile `$body` (a slice loop over the inline functions above) for AVX-512F (which
/// includes FMA), AVX2 + FMA and the baseline, and pick one at run time.
macro_rules! multiversion {
    // `unsafe name(..)`: the same for a function whose caller upholds a contract.
    (unsafe $name:ident ( $($arg:ident : $ty:ty),* ) $body:block) => {
        pub unsafe fn $name($($arg: $ty),*) {
            #[inline(always)]
            unsafe fn body($($arg: $ty),*) $body
            #[cfg(all(feature = "std", target_arch = "x86_64"))]
            {
                #[target_feature(enable = "avx512f")]
                unsafe fn avx512($($arg: $ty),*) { unsafe { body($($arg),*) } }
                #[target_feature(enable = "avx2,fma")]
                unsafe fn avx2($($arg: $ty),*) { unsafe { body($($arg),*) } }
                if std::arch::is_x86_feature_detected!("avx512f") {
                    // SAFETY: the CPU supports the enabled features (checked above);
                    // the caller upholds `body`'s contract.
                    return unsafe { avx512($($arg),*) };
                }
                if std::arch::is_x86_feature_detected!("avx2")
                    && std::arch::is_x86_feature_detected!("fma")
                {
                    // SAFETY: as above.
                    return unsafe { avx2($($arg),*) };
                }
            }
            // SAFETY: the caller upholds `body`'s contract.
            unsafe { body($($arg),*) }
        }
    };
    // A safe function: the unsafe form with nothing for the caller to uphold.
    ($name:ident ( $($arg:ident : $ty:ty),* ) $body:block) => {
        pub fn $name($($arg: $ty),*) {
            multiversion!(unsafe dispatch($($arg: $ty),*) $body);
            // SAFETY: `body` is safe code; only the feature dispatch is unsafe.
            unsafe { dispatch($($arg),*) }
        }
    };
}
pub(crate) use multiversion;

//! `--precision bf16|f16` (burn-flex's `MatmulPrecision`, an ept patch): the rounding
//! functions agree with the `half` crate's conversions bit for bit, and a reduced-
//! precision matmul equals an f64 product of operands rounded by `half` — for plain,
//! transposed and broadcast-batched operands, and for f16 operands far outside half's
//! range, which the per-operand power-of-two scaling must carry through. bf16 products
//! run on the AMX kernel (Intel CPUs with AMX-BF16), the AVX512-BF16 kernel (AMD CPUs
//! with AVX512-BF16) or the rounding emulation (elsewhere); each must meet the same
//! reference, and this test checks whichever this CPU runs.
//!
//! One test function: the precision is process-wide, so nothing else in this binary
//! may run a matmul concurrently.

#![cfg(feature = "flex")]

use burn::tensor::{Device, Distribution, Tensor, bf16, f16};
use burn_flex::{MatmulPrecision, round_to_bf16, round_to_f16};
use ept_backend::{BackendKind, DeviceSpec, Precision, set_precision};

/// f32 bit patterns spread over the whole space (every sign, exponent and fraction
/// region), plus the edge cases of both formats.
fn sample_floats() -> Vec<f32> {
    let mut values: Vec<f32> = (0..1u64 << 22)
        .map(|i| f32::from_bits((i * 1031 + (i >> 7)) as u32))
        .collect();
    values.extend([
        0.0,
        -0.0,
        1.0,
        65504.0,
        65519.99,
        65520.0,
        -65520.0,
        6.1035156e-5,
        5.9604645e-8,
        2.980232e-8,
        2.9802326e-8,
        1e-30,
        f32::MAX,
        f32::MIN_POSITIVE,
        f32::INFINITY,
        f32::NEG_INFINITY,
        3.3895314e38,
        3.3961776e38,
    ]);
    values
}

fn same_value(a: f32, b: f32) -> bool {
    a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan())
}

fn check_rounding() {
    let mut bf16_wrong = 0;
    let mut f16_wrong = 0;
    for x in sample_floats() {
        if !same_value(round_to_bf16(x), bf16::from_f32(x).to_f32()) {
            bf16_wrong += 1;
        }
        if !same_value(round_to_f16(x), f16::from_f32(x).to_f32()) {
            f16_wrong += 1;
            if f16_wrong < 5 {
                eprintln!("f16 {x:e}: {} vs {}", round_to_f16(x), f16::from_f32(x).to_f32());
            }
        }
    }
    assert_eq!((bf16_wrong, f16_wrong), (0, 0), "values rounded unlike `half`");
}

fn values<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data().try_to_vec::<f32>().unwrap()
}

/// `a · b` in f64 for row-major `a` [m, k], `b` [k, n], each element first passed
/// through `round` (which may also scale it).
fn reference(a: &[f32], b: &[f32], m: usize, k: usize, n: usize, round: impl Fn(f32) -> f64) -> Vec<f64> {
    let mut out = vec![0.0; m * n];
    for i in 0..m {
        for j in 0..n {
            out[i * n + j] = (0..k).map(|p| round(a[i * k + p]) * round(b[p * n + j])).sum();
        }
    }
    out
}

/// Largest |got − want| relative to the largest |want|.
fn relative_error(got: &[f32], want: &[f64]) -> f64 {
    assert_eq!(got.len(), want.len());
    let scale = want.iter().fold(0.0f64, |m, w| m.max(w.abs()));
    assert!(scale > 0.0, "reference is all zeros");
    got.iter()
        .zip(want)
        .map(|(g, w)| (*g as f64 - w).abs())
        .fold(0.0, f64::max)
        / scale
}

fn check_matmuls(device: &Device) {
    let (m, k, n) = (6, 300, 5);
    let normal = Distribution::Normal(0.0, 1.0);
    let a: Tensor<2> = Tensor::random([m, k], normal, device);
    let b_t: Tensor<2> = Tensor::random([n, k], normal, device); // used transposed
    let b = b_t.clone().transpose();
    let (a_host, b_host) = (values(a.clone()), values(b.clone()));
    let f32_result = values(a.clone().matmul(b.clone()));

    // bf16: plain 2-D with a transposed right operand, and broadcast batched.
    set_precision(Precision::Bf16, BackendKind::Flex).unwrap();
    let want = reference(&a_host, &b_host, m, k, n, |x| bf16::from_f32(x).to_f64());
    let got = values(a.clone().matmul(b.clone()));
    assert!(
        relative_error(&got, &want) < 2e-5,
        "bf16 2-D: {}",
        relative_error(&got, &want)
    );
    assert!(
        relative_error(&f32_result, &want) > 1e-4,
        "the bf16 reference must differ from plain f32, or this test proves nothing"
    );
    let batched = values(
        a.clone()
            .unsqueeze::<3>()
            .repeat_dim(0, 3)
            .matmul(b.clone().unsqueeze()),
    );
    for chunk in batched.chunks(m * n) {
        assert!(relative_error(chunk, &want) < 2e-5, "bf16 batched");
    }
    // Several 32 × 32 blocks with ragged edges and a product large enough to be split
    // across threads, with a transposed (column-major) left operand; then tall products
    // with a transposed right operand (a linear layer's input gradient, `dY · Wᵀ`),
    // whole blocks stored straight from the tiles, and an odd inner extent (a
    // half-filled bf16 pair in the last tile).
    let cases = [
        (70, 100, 90, "left"),
        (300, 200, 260, "left"),
        (288, 96, 64, "right"),
        (260, 33, 70, "right"),
    ];
    for (rows, inner, cols, transposed) in cases {
        let matrix = |outer: usize, along: usize, stored_transposed: bool| -> Tensor<2> {
            if stored_transposed {
                Tensor::<2>::random([along, outer], normal, device).transpose()
            } else {
                Tensor::random([outer, along], normal, device)
            }
        };
        let left = matrix(rows, inner, transposed == "left");
        let right = matrix(inner, cols, transposed == "right");
        let (l, r) = (values(left.clone()), values(right.clone()));
        let want = reference(&l, &r, rows, inner, cols, |x| bf16::from_f32(x).to_f64());
        let error = relative_error(&values(left.matmul(right)), &want);
        assert!(
            error < 2e-5,
            "bf16 {rows}×{inner}×{cols}, transposed {transposed}: {error}"
        );
    }

    // A weight reused across products (on AMX its packed tiles come from the cache the
    // second time), then changed in place: the next product must see the new values.
    let (rows, inner, cols) = (40, 256, 320);
    let x: Tensor<2> = Tensor::random([rows, inner], normal, device);
    let weight: Tensor<2> = Tensor::random([inner, cols], normal, device);
    let x_host = values(x.clone());
    let bf16_round = |v: f32| bf16::from_f32(v).to_f64();
    let want = reference(&x_host, &values(weight.clone()), rows, inner, cols, bf16_round);
    for attempt in 0..2 {
        let error = relative_error(&values(x.clone().matmul(weight.clone())), &want);
        assert!(error < 2e-5, "bf16 reused weight, product {attempt}: {error}");
    }
    let weight = weight.add_scalar(0.5);
    let want = reference(&x_host, &values(weight.clone()), rows, inner, cols, bf16_round);
    let error = relative_error(&values(x.matmul(weight)), &want);
    assert!(
        error < 2e-5,
        "bf16 weight changed after a cached product: {error}"
    );

    // A NaN whose payload lies only in the bits bf16 drops must stay NaN, not become ∞.
    let low_payload_nan = f32::from_bits(0x7F80_0001);
    let mut poisoned = a_host.clone();
    poisoned[0] = low_payload_nan;
    let poisoned = Tensor::<2>::from_data(burn::tensor::TensorData::new(poisoned, [m, k]), device);
    let row = values(poisoned.matmul(b.clone()));
    assert!(
        row[..n].iter().all(|v| v.is_nan()),
        "NaN lost in a bf16 product: {:?}",
        &row[..n]
    );

    // f16 at ordinary, tiny (gradient-like) and huge magnitudes: the per-operand
    // power-of-two scale keeps all of them inside half's range.
    set_precision(Precision::F16, BackendKind::Flex).unwrap();
    for (a_scale, b_scale) in [(1.0f32, 1.0f32), (1e-9, 1.0), (1e6, 3e5)] {
        let a_scaled = a.clone() * a_scale;
        let b_scaled = b.clone() * b_scale;
        let (a_vals, b_vals) = (values(a_scaled.clone()), values(b_scaled.clone()));
        let exponent = |data: &[f32]| {
            let max = data.iter().fold(0.0f32, |m, v| m.max(v.abs()));
            14 - max.log2().floor() as i32
        };
        let (ea, eb) = (exponent(&a_vals), exponent(&b_vals));
        let round_a = |x: f32| f16::from_f32(x * 2f32.powi(ea)).to_f64() / 2f64.powi(ea);
        let round_b = |x: f32| f16::from_f32(x * 2f32.powi(eb)).to_f64() / 2f64.powi(eb);
        let mut want = vec![0.0; m * n];
        for i in 0..m {
            for j in 0..n {
                want[i * n + j] = (0..k)
                    .map(|p| round_a(a_vals[i * k + p]) * round_b(b_vals[p * n + j]))
                    .sum();
            }
        }
        let got = values(a_scaled.matmul(b_scaled));
        let error = relative_error(&got, &want);
        assert!(error < 2e-5, "f16 at scales {a_scale:e}·{b_scale:e}: {error}");
    }
    assert_eq!(burn_flex::matmul_precision(), MatmulPrecision::F16);

    // Back to f32: bit-identical to the first plain product.
    set_precision(Precision::F32, BackendKind::Flex).unwrap();
    let again = values(a.matmul(b));
    assert!(
        f32_result
            .iter()
            .zip(&again)
            .all(|(x, y)| x.to_bits() == y.to_bits())
    );
}

#[test]
fn reduced_precision_matmuls_round_their_operands_exactly() {
    check_rounding();
    let device = "flex".parse::<DeviceSpec>().unwrap().device();
    check_matmuls(&device);
}

//! burn-flex's vectorised exact GELU (`ops::gelu_simd`, an ept patch) against an f64
//! reference built on libm's `erfc`, and the tensor ops that route through it against
//! the scalar kernel: bit-identical for contiguous, shared and transposed inputs, on
//! whichever SIMD path the CPU takes and across the parallel chunks.

#![cfg(feature = "flex")]

use burn::tensor::{Device, Tensor, TensorData, activation::gelu};
use burn_flex::ops::gelu_simd::{gelu_backward_f32, gelu_f32};
use burn_flex::ops::simd_math::exp_nonpositive;
use ept_backend::DeviceSpec;

/// `Φ(x)` and `φ(x)` in f64 (libm's erfc: no cancellation in the negative tail).
fn normal_cdf_pdf(x: f64) -> (f64, f64) {
    let cdf = 0.5 * libm::erfc(-x / std::f64::consts::SQRT_2);
    let pdf = (-0.5 * x * x).exp() / (2.0 * std::f64::consts::PI).sqrt();
    (cdf, pdf)
}

/// Every 37th f32 in [-20, 20] (both signs, all exponents down to 1e-30), plus edges.
fn sweep() -> Vec<f32> {
    let positive = (0..20f32.to_bits()).step_by(37).map(f32::from_bits);
    let mut values: Vec<f32> = positive.flat_map(|x| [x, -x]).collect();
    // The kernel's region boundaries (a = |x|/√2 = 0.75 and 9) and subnormal inputs.
    for boundary in [0.75 * std::f32::consts::SQRT_2, 9.0 * std::f32::consts::SQRT_2] {
        let bits = boundary.to_bits();
        values.extend((bits - 4..bits + 4).map(f32::from_bits).flat_map(|x| [x, -x]));
    }
    values.extend([1e-38, -1e-38, 1e-44]);
    values
}

#[test]
fn gelu_and_its_derivative_match_an_f64_reference() {
    let ulp = f64::from(f32::EPSILON);
    // (relative error, x) of the worst value and derivative.
    let (mut worst_value, mut worst_slope) = ((0f64, 0f32), (0f64, 0f32));
    for x in sweep() {
        let (cdf, pdf) = normal_cdf_pdf(f64::from(x));
        let reference = f64::from(x) * cdf;
        // Relative error; where |gelu| < 1e-28 (x < −11) an absolute 1e-28·ε suffices.
        let value_err = (f64::from(gelu_f32(x)) - reference).abs() / reference.abs().max(1e-28);
        // The derivative Φ(x) + xφ(x) crosses zero near x = −0.75: measure the error
        // against the size of its terms, the scale its rounding is bounded by.
        let slope = cdf + f64::from(x) * pdf;
        let scale = cdf.abs() + (f64::from(x) * pdf).abs();
        let slope_err = (f64::from(gelu_backward_f32(x, 1.0)) - slope).abs() / scale.max(1e-28);
        if value_err > worst_value.0 {
            worst_value = (value_err, x);
        }
        if slope_err > worst_slope.0 {
            worst_slope = (slope_err, x);
        }
    }
    eprintln!(
        "gelu: worst relative error {:.2} ulp at {:e}; derivative {:.2} ulp at {:e}",
        worst_value.0 / ulp,
        worst_value.1,
        worst_slope.0 / ulp,
        worst_slope.1
    );
    assert!(worst_value.0 < 5.0 * ulp && worst_slope.0 < 5.0 * ulp);
    // Non-finite inputs give what the composed formulas x·Φ(x) and Φ(x) + x·φ(x) give
    // (burn-flex's previous kernel, PyTorch): ∞·0 is NaN.
    assert!(gelu_f32(f32::NAN).is_nan());
    assert!(gelu_backward_f32(f32::NAN, 1.0).is_nan());
    assert_eq!(gelu_f32(f32::INFINITY), f32::INFINITY);
    assert!(gelu_f32(f32::NEG_INFINITY).is_nan());
    assert!(gelu_backward_f32(f32::INFINITY, 2.0).is_nan());
    assert_eq!(gelu_f32(0.0), 0.0);
    assert_eq!(gelu_backward_f32(0.0, 2.0), 1.0);
}

#[test]
fn exponential_of_nonpositive_arguments_is_within_two_ulp() {
    let ulp = f64::from(f32::EPSILON);
    let mut worst = 0f64;
    // Every 7th f32 in [-87.3, 0] (the softmax's shifted logits).
    for x in (0..87.3f32.to_bits()).step_by(7).map(|b| -f32::from_bits(b)) {
        let exact = f64::from(x).exp();
        worst = worst.max((f64::from(exp_nonpositive(x)) - exact).abs() / exact);
    }
    eprintln!("exp: worst relative error {:.2} ulp", worst / ulp);
    assert!(worst < 2.0 * ulp, "{worst:e}");
    assert_eq!(exp_nonpositive(0.0), 1.0);
    assert_eq!(exp_nonpositive(-100.0), 0.0);
    assert_eq!(exp_nonpositive(f32::NEG_INFINITY), 0.0);
    assert!(exp_nonpositive(f32::NAN).is_nan());
}

/// `rows × cols` values spread over [-12, 12], deterministic.
fn values(rows: usize, cols: usize) -> Vec<f32> {
    (0..rows * cols)
        .map(|i| ((i * 7919 % 24_001) as f32 / 1000.0) - 12.0)
        .collect()
}

fn read(t: Tensor<2>) -> Vec<f32> {
    t.into_data().try_into_vec::<f32>().unwrap()
}

#[test]
fn tensor_gelu_forward_and_backward_equal_the_scalar_kernel() {
    let spec: DeviceSpec = "flex".parse().unwrap();
    let device: Device = spec.autodiff_device();
    // 300 × 700 = 210 000 elements: several parallel chunks of odd lengths.
    let (rows, cols) = (300, 700);
    let data = values(rows, cols);
    let input = Tensor::<2>::from_data(TensorData::new(data.clone(), [rows, cols]), &device);
    let expected: Vec<f32> = data.iter().map(|&x| gelu_f32(x)).collect();

    // Shared input (the autodiff graph keeps it): a fresh output buffer.
    let shared = input.clone().require_grad();
    let output = gelu(shared.clone());
    assert_eq!(read(output.clone()), expected, "forward, shared input");
    // Backward with a non-uniform upstream gradient g = x / 4.
    let upstream = input.clone().div_scalar(4.0);
    let grads = (output * upstream).sum().backward();
    let grad = read(shared.grad(&grads).unwrap().reshape([rows, cols]));
    let expected_grad: Vec<f32> = data.iter().map(|&x| gelu_backward_f32(x, x / 4.0)).collect();
    assert_eq!(grad, expected_grad, "backward");

    // Uniquely owned input: written in place.
    let owned = Tensor::<2>::from_data(TensorData::new(data.clone(), [rows, cols]), &spec.device());
    assert_eq!(read(gelu(owned)), expected, "forward, in place");

    // Transposed view: copied to contiguous first, values follow the view.
    let transposed = gelu(input.clone().transpose());
    let expected_t: Vec<f32> = (0..cols)
        .flat_map(|c| (0..rows).map(move |r| (r, c)))
        .map(|(r, c)| expected[r * cols + c])
        .collect();
    assert_eq!(read(transposed), expected_t, "forward, transposed view");
}

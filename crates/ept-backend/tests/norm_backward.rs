//! Layer norm and softmax as single autodiff ops (ept patches to burn-backend,
//! burn-autodiff and burn-flex): their gradients against an f64 reference computed
//! here on the host. The reference gradient formula is itself checked against central
//! finite differences of the f64 forward pass, so nothing below trusts the formula the
//! kernels implement. Runs on flex (fused f32 kernels) and on ndarray (burn-backend's
//! composed default of the same backward).

use burn::tensor::module::layer_norm;
use burn::tensor::{Device, Tensor, TensorData, activation::softmax};
use ept_backend::DeviceSpec;

const EPSILON: f64 = 1e-6;

/// Deterministic values in about [-3, 3] with a per-row offset and spread, so rows
/// have different means and variances.
fn values(rows: usize, cols: usize, salt: usize) -> Vec<f32> {
    (0..rows * cols)
        .map(|i| {
            let (r, c) = (i / cols, i % cols);
            let wave = (((c * 7919 + r * 104_729 + salt * 31) % 1000) as f32 / 500.0) - 1.0;
            wave * (1.0 + (r % 5) as f32) + (r % 3) as f32 - 1.0 + (c % 7) as f32 * 0.01
        })
        .collect()
}

fn read<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data().convert::<f32>().try_into_vec::<f32>().unwrap()
}

/// f64 layer norm of one row.
fn layer_norm_row(x: &[f64], gamma: &[f64], beta: &[f64]) -> Vec<f64> {
    let d = x.len() as f64;
    let mean = x.iter().sum::<f64>() / d;
    let variance = x.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / d;
    let rstd = 1.0 / (variance + EPSILON).sqrt();
    x.iter()
        .zip(gamma.iter().zip(beta))
        .map(|(v, (g, b))| (v - mean) * rstd * g + b)
        .collect()
}

/// f64 gradients `(dx, dγ, dβ)` of `Σ upstream ⊙ layer_norm(x)` for row-major rows.
fn layer_norm_grads(x: &[f64], gamma: &[f64], upstream: &[f64]) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
    let d = gamma.len();
    let mut dx = vec![0.0; x.len()];
    let (mut dgamma, mut dbeta) = (vec![0.0; d], vec![0.0; d]);
    for (row, (x, dy)) in x.chunks(d).zip(upstream.chunks(d)).enumerate() {
        let n = d as f64;
        let mean = x.iter().sum::<f64>() / n;
        let variance = x.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n;
        let rstd = 1.0 / (variance + EPSILON).sqrt();
        let normalized: Vec<f64> = x.iter().map(|v| (v - mean) * rstd).collect();
        let g: Vec<f64> = dy.iter().zip(gamma).map(|(a, b)| a * b).collect();
        let mean_g = g.iter().sum::<f64>() / n;
        let mean_gn = g.iter().zip(&normalized).map(|(a, b)| a * b).sum::<f64>() / n;
        for j in 0..d {
            dx[row * d + j] = rstd * (g[j] - mean_g - normalized[j] * mean_gn);
            dgamma[j] += dy[j] * normalized[j];
            dbeta[j] += dy[j];
        }
    }
    (dx, dgamma, dbeta)
}

/// Largest |got − want| over the largest |want|.
fn relative_error(got: &[f32], want: &[f64]) -> f64 {
    assert_eq!(got.len(), want.len());
    let scale = want.iter().fold(0.0f64, |m, w| m.max(w.abs()));
    got.iter()
        .zip(want)
        .map(|(g, w)| (*g as f64 - w).abs())
        .fold(0.0, f64::max)
        / scale
}

#[test]
fn reference_layer_norm_gradient_matches_finite_differences() {
    let (rows, d) = (3, 9);
    let x: Vec<f64> = values(rows, d, 1).iter().map(|&v| v as f64).collect();
    let gamma: Vec<f64> = (0..d).map(|j| 0.5 + j as f64 * 0.1).collect();
    let beta: Vec<f64> = (0..d).map(|j| j as f64 * 0.05 - 0.2).collect();
    let upstream: Vec<f64> = values(rows, d, 2).iter().map(|&v| v as f64).collect();
    let loss = |x: &[f64], gamma: &[f64], beta: &[f64]| -> f64 {
        x.chunks(d)
            .zip(upstream.chunks(d))
            .map(|(row, dy)| {
                layer_norm_row(row, gamma, beta)
                    .iter()
                    .zip(dy)
                    .map(|(a, b)| a * b)
                    .sum::<f64>()
            })
            .sum()
    };
    let (dx, dgamma, dbeta) = layer_norm_grads(&x, &gamma, &upstream);
    let h = 1e-6;
    let central = |f: &dyn Fn(f64) -> f64| (f(h) - f(-h)) / (2.0 * h);
    for i in 0..x.len() {
        let numeric = central(&|step| {
            let mut moved = x.clone();
            moved[i] += step;
            loss(&moved, &gamma, &beta)
        });
        assert!((numeric - dx[i]).abs() < 1e-6, "dx[{i}]: {numeric} vs {}", dx[i]);
    }
    for j in 0..d {
        let numeric_gamma = central(&|step| {
            let mut moved = gamma.clone();
            moved[j] += step;
            loss(&x, &moved, &beta)
        });
        let numeric_beta = central(&|step| {
            let mut moved = beta.clone();
            moved[j] += step;
            loss(&x, &gamma, &moved)
        });
        assert!((numeric_gamma - dgamma[j]).abs() < 1e-6, "dγ[{j}]");
        assert!((numeric_beta - dbeta[j]).abs() < 1e-6, "dβ[{j}]");
    }
}

/// Layer norm's gradients on `device`, for a transposed (non-contiguous) input, with
/// the affine parameters tracked and frozen, against the f64 reference.
fn check_layer_norm(device: &Device) {
    // 133 rows of 200: several parallel row chunks, a width that is no multiple of 16.
    let (rows, d) = (133, 200);
    let x_data = values(rows, d, 3);
    let upstream_data = values(rows, d, 4);
    let gamma_data: Vec<f32> = (0..d).map(|j| 0.6 + (j % 11) as f32 * 0.07).collect();
    let beta_data: Vec<f32> = (0..d).map(|j| (j % 13) as f32 * 0.03 - 0.2).collect();
    let wide = |data: &[f32]| data.iter().map(|&v| v as f64).collect::<Vec<f64>>();
    let (want_dx, want_dgamma, want_dbeta) =
        layer_norm_grads(&wide(&x_data), &wide(&gamma_data), &wide(&upstream_data));

    // The input arrives as a transposed view of its [d, rows] transpose.
    let x_t: Vec<f32> = (0..d * rows).map(|i| x_data[(i % rows) * d + i / rows]).collect();
    let upstream = Tensor::<2>::from_data(TensorData::new(upstream_data, [rows, d]), device);
    for params_tracked in [false, true] {
        let leaf = Tensor::<2>::from_data(TensorData::new(x_t.clone(), [d, rows]), device).require_grad();
        let x = leaf.clone().transpose();
        let mut gamma = Tensor::<1>::from_data(TensorData::new(gamma_data.clone(), [d]), device);
        let mut beta = Tensor::<1>::from_data(TensorData::new(beta_data.clone(), [d]), device);
        if params_tracked {
            gamma = gamma.require_grad();
            beta = beta.require_grad();
        }
        let output = layer_norm(x.clone(), gamma.clone(), Some(beta.clone()), EPSILON);
        let grads = (output * upstream.clone()).sum().backward();
        let dx = read(leaf.grad(&grads).unwrap().transpose());
        let error = relative_error(&dx, &want_dx);
        assert!(error < 1e-5, "dx (parameters tracked: {params_tracked}): {error}");
        if params_tracked {
            let error = relative_error(&read(gamma.grad(&grads).unwrap()), &want_dgamma);
            assert!(error < 1e-5, "dγ: {error}");
            let error = relative_error(&read(beta.grad(&grads).unwrap()), &want_dbeta);
            assert!(error < 1e-5, "dβ: {error}");
        } else {
            assert!(gamma.grad(&grads).is_none() && beta.grad(&grads).is_none());
        }
    }
}

/// Softmax's input gradient on `device` along the last dimension (fused on flex) and
/// along a middle one (composed everywhere) against the f64 reference.
fn check_softmax(device: &Device) {
    let (batch, rows, len) = (3, 41, 197);
    let logits_data: Vec<f32> = values(batch * rows, len, 5).iter().map(|v| v * 2.0).collect();
    let upstream_data = values(batch * rows, len, 6);
    let mut want = vec![0.0f64; logits_data.len()];
    for ((logits, dy), out) in logits_data
        .chunks(len)
        .zip(upstream_data.chunks(len))
        .zip(want.chunks_mut(len))
    {
        let max = logits.iter().fold(f64::MIN, |m, &v| m.max(v as f64));
        let exp: Vec<f64> = logits.iter().map(|&v| (v as f64 - max).exp()).collect();
        let total: f64 = exp.iter().sum();
        let y: Vec<f64> = exp.iter().map(|e| e / total).collect();
        let dot: f64 = y.iter().zip(dy).map(|(a, &b)| a * b as f64).sum();
        for j in 0..len {
            out[j] = y[j] * (dy[j] as f64 - dot);
        }
    }
    let shape = [batch, rows, len];
    let upstream = Tensor::<3>::from_data(TensorData::new(upstream_data, shape), device);
    let logits = Tensor::<3>::from_data(TensorData::new(logits_data, shape), device).require_grad();
    let grads = (softmax(logits.clone(), 2) * upstream.clone()).sum().backward();
    let error = relative_error(&read(logits.grad(&grads).unwrap()), &want);
    assert!(error < 1e-5, "softmax along the last dimension: {error}");

    // The same rows laid along dimension 1 (a non-last softmax dimension).
    let swapped = logits.clone().swap_dims(1, 2);
    let grads = (softmax(swapped, 1) * upstream.swap_dims(1, 2)).sum().backward();
    let error = relative_error(&read(logits.grad(&grads).unwrap()), &want);
    assert!(error < 1e-5, "softmax along dimension 1: {error}");
}

#[test]
fn layer_norm_and_softmax_gradients_match_the_reference_on_flex() {
    let device = "flex".parse::<DeviceSpec>().unwrap().autodiff_device();
    check_layer_norm(&device);
    check_softmax(&device);
}

#[test]
fn layer_norm_and_softmax_gradients_match_the_reference_on_ndarray() {
    let device = "ndarray".parse::<DeviceSpec>().unwrap().autodiff_device();
    check_layer_norm(&device);
    check_softmax(&device);
}

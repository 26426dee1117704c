//! Separable 2-D resampling of planar `f32` grids, matching PyTorch bit-for-bit in
//! semantics: used for position-embedding interpolation (timm) and image resizing
//! (torchvision / PIL). Work is done on the host in `f64` and is tiny compared with a
//! forward pass, so no tensor backend is involved.

/// How to interpolate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResizeMode {
    /// `torch.nn.functional.interpolate(mode="bicubic", align_corners=False)`:
    /// Keys cubic with a = -0.75, border pixels replicated.
    Bicubic,
    /// `interpolate(mode="bicubic", antialias=True)` — PIL's filter: Keys cubic with
    /// a = -0.5, widened by the scale when shrinking, weights renormalised at borders.
    BicubicAntialias,
    /// `interpolate(mode="bilinear", align_corners=False)`.
    Bilinear,
}

/// For one output position: the input indices it reads and their weights.
type Taps = Vec<(usize, f64)>;

fn cubic(x: f64, a: f64) -> f64 {
    let x = x.abs();
    if x <= 1.0 {
        ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0
    } else if x < 2.0 {
        ((a * x - 5.0 * a) * x + 8.0 * a) * x - 4.0 * a
    } else {
        0.0
    }
}

/// Interpolation taps along one axis of length `input` resized to `output`.
fn axis_taps(input: usize, output: usize, mode: ResizeMode) -> Vec<Taps> {
    let scale = input as f64 / output as f64;
    let clamp = |i: i64| i.clamp(0, input as i64 - 1) as usize;
    (0..output)
        .map(|o| match mode {
            ResizeMode::Bicubic => {
                let real = scale * (o as f64 + 0.5) - 0.5;
                let base = real.floor();
                let t = real - base;
                let base = base as i64;
                let a = -0.75;
                let w = [
                    cubic(t + 1.0, a),
                    cubic(t, a),
                    cubic(1.0 - t, a),
                    cubic(2.0 - t, a),
                ];
                (0..4).map(|k| (clamp(base - 1 + k as i64), w[k])).collect()
            }
            ResizeMode::Bilinear => {
                let real = (scale * (o as f64 + 0.5) - 0.5).max(0.0);
                let base = real.floor();
                let t = real - base;
                let base = base as i64;
                vec![(clamp(base), 1.0 - t), (clamp(base + 1), t)]
            }
            ResizeMode::BicubicAntialias => {
                let support = if scale >= 1.0 { 2.0 * scale } else { 2.0 };
                let inv = if scale >= 1.0 { 1.0 / scale } else { 1.0 };
                let center = scale * (o as f64 + 0.5);
                let lo = ((center - support + 0.5).floor() as i64).max(0) as usize;
                let hi = ((center + support + 0.5).floor() as i64).min(input as i64) as usize;
                let mut taps: Taps = (lo..hi)
                    .map(|j| (j, cubic((j as f64 - center + 0.5) * inv, -0.5)))
                    .collect();
                let total: f64 = taps.iter().map(|t| t.1).sum();
                if total != 0.0 {
                    taps.iter_mut().for_each(|t| t.1 /= total);
                }
                taps
            }
        })
        .collect()
}

/// Resize `channels` planes of `height × width` (row-major, plane after plane) to
/// `out_height × out_width`. Panics only if `data.len()` disagrees with the sizes,
/// which is a programming error inside ept, never user input.
pub fn resize_planes(
    data: &[f32],
    channels: usize,
    (height, width): (usize, usize),
    (out_height, out_width): (usize, usize),
    mode: ResizeMode,
) -> Vec<f32> {
    assert_eq!(
        data.len(),
        channels * height * width,
        "resize_planes: size mismatch"
    );
    let taps_w = axis_taps(width, out_width, mode);
    let taps_h = axis_taps(height, out_height, mode);
    let mut out = vec![0f32; channels * out_height * out_width];
    let mut rows = vec![0f64; height * out_width];
    for c in 0..channels {
        let plane = &data[c * height * width..(c + 1) * height * width];
        for y in 0..height {
            for (x, taps) in taps_w.iter().enumerate() {
                rows[y * out_width + x] = taps.iter().map(|&(i, w)| plane[y * width + i] as f64 * w).sum();
            }
        }
        let dst = &mut out[c * out_height * out_width..(c + 1) * out_height * out_width];
        for (y, taps) in taps_h.iter().enumerate() {
            for x in 0..out_width {
                dst[y * out_width + x] = taps
                    .iter()
                    .map(|&(i, w)| rows[i * out_width + x] * w)
                    .sum::<f64>() as f32;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_size_is_identity() {
        let data: Vec<f32> = (0..2 * 5 * 7).map(|v| v as f32 * 0.37 - 3.0).collect();
        for mode in [
            ResizeMode::Bicubic,
            ResizeMode::BicubicAntialias,
            ResizeMode::Bilinear,
        ] {
            let out = resize_planes(&data, 2, (5, 7), (5, 7), mode);
            for (a, b) in data.iter().zip(&out) {
                assert!((a - b).abs() < 1e-5, "{mode:?}: {a} vs {b}");
            }
        }
    }

    #[test]
    fn constant_stays_constant() {
        let data = vec![2.5f32; 3 * 4 * 4];
        for mode in [
            ResizeMode::Bicubic,
            ResizeMode::BicubicAntialias,
            ResizeMode::Bilinear,
        ] {
            for size in [(2, 3), (7, 9), (4, 4)] {
                let out = resize_planes(&data, 3, (4, 4), size, mode);
                assert!(out.iter().all(|v| (v - 2.5).abs() < 1e-5), "{mode:?} {size:?}");
            }
        }
    }

    #[test]
    fn bilinear_upsample_matches_hand_computed_values() {
        // torch: F.interpolate([[0, 1]], size=4, mode="bilinear", align_corners=False)
        // gives [0, 0.25, 0.75, 1] along the resized axis.
        let out = resize_planes(&[0.0, 1.0], 1, (1, 2), (1, 4), ResizeMode::Bilinear);
        assert_eq!(out, vec![0.0, 0.25, 0.75, 1.0]);
    }
}

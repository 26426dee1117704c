//! Sliding-window inference over a whole volume, as MONAI's `sliding_window_inference`:
//! windows of the model's input size step by `roi · (1 − overlap)` (at least one voxel)
//! with the last window of each axis flush with the border, predictions are blended with
//! a constant or Gaussian importance map, and volumes smaller than the window are padded
//! and the padding cut off again.
//!
//! Blending is accumulated in `f64` on the host, so a model that returns its input
//! reconstructs the volume exactly (the property test in this file checks it).

use burn::tensor::{Device, Tensor, TensorData};

/// How overlapping window predictions are weighted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Blend {
    /// Every voxel of a window counts the same.
    Constant,
    /// A Gaussian centred on the window (σ = 0.125 · window size per axis), as MONAI.
    #[default]
    Gaussian,
}

/// Window size, overlap and blending.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SlidingWindow {
    /// Window size `[X, Y, Z]` in voxels (`Z = 1` for 2-D models).
    pub roi: [usize; 3],
    /// Fraction of a window shared with its neighbour, in `[0, 1)`.
    pub overlap: f64,
    pub blend: Blend,
    /// Windows passed to the model at once.
    pub batch: usize,
}

/// A volume on the host: `channels × X × Y × Z`, Z fastest.
#[derive(Debug, Clone, PartialEq)]
pub struct HostVolume {
    pub channels: usize,
    pub dims: [usize; 3],
    pub data: Vec<f32>,
}

impl HostVolume {
    fn index(&self, c: usize, [x, y, z]: [usize; 3]) -> usize {
        ((c * self.dims[0] + x) * self.dims[1] + y) * self.dims[2] + z
    }
}

/// Window start positions along one axis of length `len` (already ≥ `roi`).
pub fn window_starts(len: usize, roi: usize, overlap: f64) -> Vec<usize> {
    if len <= roi {
        return vec![0];
    }
    let step = ((roi as f64 * (1.0 - overlap)).floor() as usize).max(1);
    let count = (len - roi).div_ceil(step) + 1;
    (0..count).map(|i| (i * step).min(len - roi)).collect()
}

/// The importance map of one window, `X × Y × Z`.
fn importance(roi: [usize; 3], blend: Blend) -> Vec<f64> {
    let axis = |n: usize| -> Vec<f64> {
        match blend {
            Blend::Constant => vec![1.0; n],
            Blend::Gaussian => {
                let sigma = 0.125 * n as f64;
                let centre = (n as f64 - 1.0) / 2.0;
                (0..n)
                    .map(|i| (-0.5 * ((i as f64 - centre) / sigma).powi(2)).exp())
                    .collect()
            }
        }
    };
    let (ax, ay, az) = (axis(roi[0]), axis(roi[1]), axis(roi[2]));
    let mut map = Vec::with_capacity(roi.iter().product());
    for wx in &ax {
        for wy in &ay {
            for wz in &az {
                // MONAI clamps tiny weights so that no voxel gets a zero total.
                map.push((wx * wy * wz).max(1e-3));
            }
        }
    }
    map
}

impl SlidingWindow {
    /// Run `model` over `volume` and blend its `classes`-channel outputs into one
    /// volume of the input's size. `model` gets `[n, C, X, Y, Z]` windows and must
    /// return `[n, classes, X, Y, Z]`.
    pub fn infer<E>(
        &self,
        volume: &HostVolume,
        classes: usize,
        device: &Device,
        mut model: impl FnMut(Tensor<5>) -> Result<Tensor<5>, E>,
    ) -> Result<HostVolume, E> {
        let roi = self.roi;
        let padded = std::array::from_fn::<usize, 3, _>(|a| volume.dims[a].max(roi[a]));
        let starts: Vec<[usize; 3]> = {
            let per_axis: Vec<Vec<usize>> = (0..3)
                .map(|a| window_starts(padded[a], roi[a], self.overlap))
                .collect();
            let mut all = Vec::new();
            for &x in &per_axis[0] {
                for &y in &per_axis[1] {
                    for &z in &per_axis[2] {
                        all.push([x, y, z]);
                    }
                }
            }
            all
        };
        let weights = importance(roi, self.blend);
        let voxels = volume.dims.iter().product::<usize>();
        let mut sum = vec![0f64; classes * voxels];
        let mut total = vec![0f64; voxels];
        let window_len = roi.iter().product::<usize>();
        for chunk in starts.chunks(self.batch.max(1)) {
            let mut input = vec![0f32; chunk.len() * volume.channels * window_len];
            for (w, start) in chunk.iter().enumerate() {
                for c in 0..volume.channels {
                    let base = (w * volume.channels + c) * window_len;
                    for_each_inside(*start, roi, volume.dims, |local, global| {
                        input[base + local] = volume.data[volume.index(c, global)];
                    });
                }
            }
            let shape = [chunk.len(), volume.channels, roi[0], roi[1], roi[2]];
            let output = model(Tensor::from_data(TensorData::new(input, shape), device))?;
            let output: Vec<f32> = output
                .into_data()
                .convert::<f32>()
                .try_to_vec::<f32>()
                .expect("converted to f32");
            for (w, start) in chunk.iter().enumerate() {
                for_each_inside(*start, roi, volume.dims, |local, global| {
                    let flat = (global[0] * volume.dims[1] + global[1]) * volume.dims[2] + global[2];
                    total[flat] += weights[local];
                    for k in 0..classes {
                        let value = output[(w * classes + k) * window_len + local] as f64;
                        sum[k * voxels + flat] += weights[local] * value;
                    }
                });
            }
        }
        let data = sum
            .iter()
            .enumerate()
            .map(|(i, s)| (s / total[i % voxels]) as f32)
            .collect();
        Ok(HostVolume {
            channels: classes,
            dims: volume.dims,
            data,
        })
    }
}

/// Call `f(local index in the window, global voxel)` for every window voxel that lies
/// inside the (unpadded) volume.
fn for_each_inside(
    start: [usize; 3],
    roi: [usize; 3],
    dims: [usize; 3],
    mut f: impl FnMut(usize, [usize; 3]),
) {
    for i in 0..roi[0] {
        let x = start[0] + i;
        if x >= dims[0] {
            break;
        }
        for j in 0..roi[1] {
            let y = start[1] + j;
            if y >= dims[1] {
                break;
            }
            for k in 0..roi[2] {
                let z = start[2] + k;
                if z >= dims[2] {
                    break;
                }
                f((i * roi[1] + j) * roi[2] + k, [x, y, z]);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn starts_cover_the_axis_and_end_flush() {
        assert_eq!(window_starts(10, 4, 0.5), vec![0, 2, 4, 6]);
        assert_eq!(window_starts(11, 4, 0.5), vec![0, 2, 4, 6, 7]);
        assert_eq!(window_starts(4, 4, 0.5), vec![0]);
        assert_eq!(window_starts(5, 4, 0.0), vec![0, 1]);
        assert_eq!(window_starts(9, 3, 0.9), (0..7).collect::<Vec<_>>());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]
        /// A model that returns its input reconstructs the volume exactly, whatever the
        /// sizes, overlap and weighting (including windows larger than the volume).
        #[test]
        fn identity_model_reconstructs_exactly(
            dims in prop::array::uniform3(1usize..12),
            roi in prop::array::uniform3(1usize..7),
            overlap in 0.0f64..0.9,
            gaussian in any::<bool>(),
            batch in 1usize..5,
            seed in any::<u64>(),
        ) {
            let mut rng = ept_backend::rng::Rng::new(seed);
            let voxels: usize = dims.iter().product();
            let volume = HostVolume {
                channels: 2,
                dims,
                data: (0..2 * voxels).map(|_| rng.uniform(-100.0, 100.0) as f32).collect(),
            };
            let blend = if gaussian { Blend::Gaussian } else { Blend::Constant };
            let window = SlidingWindow { roi, overlap, blend, batch };
            let device = Device::flex();
            let out = window
                .infer(&volume, 2, &device, Ok::<_, ()>)
                .unwrap();
            prop_assert_eq!(out, volume);
        }
    }
}

//! Window geometry of the windowed attention: padding to whole windows, the cyclic
//! shift of the second ("shifted") sub-block, cutting `[B, C, X, Y, Z]` into
//! `[B·P, N, C]` window tokens and back, the additive mask that keeps shifted windows
//! from mixing voxels that were not neighbours, and the relative-position indices.
//!
//! Deliberate differences to the reference (documented in the crate README): the
//! shift mask is Swin's (−∞ between different regions; the reference multiplies logits
//! by an inverted 0/1 mask), padded voxels are masked as keys, and only axes that need
//! it are padded.

use burn::tensor::{Device, Tensor, TensorData};

use super::config::WindowLayout;

/// A masked logit: large enough to vanish in a softmax, finite so that a row with every
/// key masked stays finite.
const MASKED: f32 = -1e9;

/// Where the windows of one feature map lie.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WindowGeometry {
    /// Spatial size of the (unpadded) map.
    pub dims: [usize; 3],
    /// Effective window: the configured one, or the map's side where that is smaller.
    pub window: [usize; 3],
    /// Cyclic shift (half a window on axes with more than one window; else 0).
    pub shift: [usize; 3],
    pub pad_lo: [usize; 3],
    pub padded: [usize; 3],
    /// Windows per axis.
    pub counts: [usize; 3],
    pub layout: WindowLayout,
}

impl WindowGeometry {
    pub fn new(dims: [usize; 3], configured: [usize; 3], shifted: bool, layout: WindowLayout) -> Self {
        let window: [usize; 3] = std::array::from_fn(|a| configured[a].min(dims[a]).max(1));
        let padded: [usize; 3] = std::array::from_fn(|a| dims[a].div_ceil(window[a]) * window[a]);
        let pad_lo = std::array::from_fn(|a| (padded[a] - dims[a]) / 2);
        let counts = std::array::from_fn(|a| padded[a] / window[a]);
        let shift = std::array::from_fn(|a| {
            if shifted && dims[a] > window[a] {
                window[a] / 2
            } else {
                0
            }
        });
        WindowGeometry {
            dims,
            window,
            shift,
            pad_lo,
            padded,
            counts,
            layout,
        }
    }

    /// Tokens per window.
    pub fn tokens(&self) -> usize {
        self.window.iter().product()
    }

    /// Windows per map.
    pub fn windows(&self) -> usize {
        self.counts.iter().product()
    }

    fn is_padded(&self) -> bool {
        self.padded != self.dims
    }

    /// Padded-grid coordinate along `axis` of in-window index `i` of window `p`.
    fn grid(&self, axis: usize, p: usize, i: usize) -> usize {
        match self.layout {
            WindowLayout::Contiguous => p * self.window[axis] + i,
            WindowLayout::Strided => i * self.counts[axis] + p,
        }
    }

    /// Pad, shift and cut `[B, C, X, Y, Z]` into window tokens `[B·P, N, C]`.
    pub fn partition(&self, x: Tensor<5>) -> Tensor<3> {
        let [b, c, ..] = x.dims();
        let mut x = x;
        for a in 0..3 {
            let extra = self.padded[a] - self.dims[a];
            if extra > 0 {
                x = pad_axis(x, a + 2, self.pad_lo[a], extra - self.pad_lo[a]);
            }
        }
        if self.shift.iter().any(|s| *s > 0) {
            let shifts: Vec<i64> = self.shift.iter().map(|s| -(*s as i64)).collect();
            x = x.roll(&shifts, &[2, 3, 4]);
        }
        let ([nx, ny, nz], [wx, wy, wz]) = (self.counts, self.window);
        let x = match self.layout {
            WindowLayout::Contiguous => x
                .reshape([b, c, nx, wx, ny, wy, nz, wz])
                .permute([0, 2, 4, 6, 3, 5, 7, 1]),
            WindowLayout::Strided => x
                .reshape([b, c, wx, nx, wy, ny, wz, nz])
                .permute([0, 3, 5, 7, 2, 4, 6, 1]),
        };
        x.reshape([b * self.windows(), self.tokens(), c])
    }

    /// The inverse of [`partition`](Self::partition).
    pub fn merge(&self, tokens: Tensor<3>, batch: usize) -> Tensor<5> {
        let c = tokens.dims()[2];
        let ([nx, ny, nz], [wx, wy, wz]) = (self.counts, self.window);
        let x = tokens.reshape([batch, nx, ny, nz, wx, wy, wz, c]);
        let x = match self.layout {
            WindowLayout::Contiguous => x.permute([0, 7, 1, 4, 2, 5, 3, 6]),
            WindowLayout::Strided => x.permute([0, 7, 4, 1, 5, 2, 6, 3]),
        };
        let mut x: Tensor<5> = x.reshape([batch, c, self.padded[0], self.padded[1], self.padded[2]]);
        if self.shift.iter().any(|s| *s > 0) {
            let shifts: Vec<i64> = self.shift.iter().map(|s| *s as i64).collect();
            x = x.roll(&shifts, &[2, 3, 4]);
        }
        for a in 0..3 {
            if self.padded[a] != self.dims[a] {
                x = x.narrow(a + 2, self.pad_lo[a], self.dims[a]);
            }
        }
        x
    }

    /// Additive mask `[P, N, prompts + N]` (0 = attend), or `None` when nothing is masked.
    /// Keys that are padding, and (shifted windows) keys from another region of the
    /// rolled map, are masked; prompt keys never are.
    pub fn mask(&self, prompts: usize, device: &Device) -> Option<Tensor<3>> {
        let shifted = self.shift.iter().any(|s| *s > 0);
        if !shifted && !self.is_padded() {
            return None;
        }
        // Per axis and padded-grid coordinate of the rolled map: (region, is padding).
        let axis_info = |a: usize| -> Vec<(usize, bool)> {
            let (n, w, s) = (self.padded[a], self.window[a], self.shift[a]);
            (0..n)
                .map(|i| {
                    let region = if s == 0 || i < n - w {
                        0
                    } else if i < n - s {
                        1
                    } else {
                        2
                    };
                    let original = (i + s) % n;
                    let padding = original < self.pad_lo[a] || original >= self.pad_lo[a] + self.dims[a];
                    (region, padding)
                })
                .collect()
        };
        let info = [axis_info(0), axis_info(1), axis_info(2)];
        let n = self.tokens();
        let width = prompts + n;
        let mut mask = vec![0f32; self.windows() * n * width];
        let [cx, cy, cz] = self.counts;
        let [wx, wy, wz] = self.window;
        let mut labels = vec![(0usize, false); n];
        for px in 0..cx {
            for py in 0..cy {
                for pz in 0..cz {
                    let p = (px * cy + py) * cz + pz;
                    for ix in 0..wx {
                        for iy in 0..wy {
                            for iz in 0..wz {
                                let (rx, fx) = info[0][self.grid(0, px, ix)];
                                let (ry, fy) = info[1][self.grid(1, py, iy)];
                                let (rz, fz) = info[2][self.grid(2, pz, iz)];
                                labels[(ix * wy + iy) * wz + iz] = (rx * 9 + ry * 3 + rz, fx || fy || fz);
                            }
                        }
                    }
                    for (q, (region_q, _)) in labels.iter().enumerate() {
                        let row = &mut mask[(p * n + q) * width + prompts..(p * n + q + 1) * width];
                        for (k, (region_k, padding_k)) in labels.iter().enumerate() {
                            if *padding_k || region_k != region_q {
                                row[k] = MASKED;
                            }
                        }
                    }
                }
            }
        }
        Some(Tensor::from_data(
            TensorData::new(mask, [self.windows(), n, width]),
            device,
        ))
    }

    /// For every (query, key) pair of in-window positions, flattened query-major, the
    /// index `key − query + (W − 1)` along `axis` into a relative-position table of the
    /// configured window `W`.
    pub fn relative_indices(&self, axis: usize, configured: usize) -> Vec<i64> {
        let n = self.tokens();
        let coord = |t: usize| -> i64 {
            let [_, wy, wz] = self.window;
            (match axis {
                0 => t / (wy * wz),
                1 => (t / wz) % wy,
                _ => t % wz,
            }) as i64
        };
        let mut out = Vec::with_capacity(n * n);
        for q in 0..n {
            for k in 0..n {
                out.push(coord(k) - coord(q) + configured as i64 - 1);
            }
        }
        out
    }

    /// Row of every in-window position in the configured window's token order (equal to
    /// the position itself unless the map is smaller than the window).
    pub fn configured_rows(&self, configured: [usize; 3]) -> Vec<usize> {
        let [wx, wy, wz] = self.window;
        let mut rows = Vec::with_capacity(self.tokens());
        for ix in 0..wx {
            for iy in 0..wy {
                for iz in 0..wz {
                    rows.push((ix * configured[1] + iy) * configured[2] + iz);
                }
            }
        }
        rows
    }
}

/// Zero-pad `axis` of `x` by `lo` in front and `hi` behind.
fn pad_axis(x: Tensor<5>, axis: usize, lo: usize, hi: usize) -> Tensor<5> {
    let mut parts = Vec::with_capacity(3);
    let mut dims = x.dims();
    let device = x.device();
    if lo > 0 {
        dims[axis] = lo;
        parts.push(Tensor::zeros(dims, &device));
    }
    parts.push(x);
    if hi > 0 {
        dims[axis] = hi;
        parts.push(Tensor::zeros(dims, &device));
    }
    Tensor::cat(parts, axis)
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::Distribution;

    #[test]
    fn partition_then_merge_is_the_identity() {
        let device = Device::flex();
        for layout in [WindowLayout::Contiguous, WindowLayout::Strided] {
            for (dims, shifted) in [([16, 12, 1], true), ([14, 14, 1], false), ([7, 9, 4], true)] {
                let g = WindowGeometry::new(dims, [8, 8, 2], shifted, layout);
                let x = Tensor::<5>::random(
                    [2, 3, dims[0], dims[1], dims[2]],
                    Distribution::Normal(0.0, 1.0),
                    &device,
                );
                let tokens = g.partition(x.clone());
                assert_eq!(tokens.dims(), [2 * g.windows(), g.tokens(), 3]);
                let back = g.merge(tokens, 2);
                let diff: f32 = (back - x).abs().max().into_scalar();
                assert_eq!(diff, 0.0, "{layout:?} {dims:?}");
            }
        }
    }

    #[test]
    fn contiguous_windows_hold_neighbouring_voxels_and_strided_ones_a_subgrid() {
        let device = Device::flex();
        // 4×4 map, values = 10·x + y, window 2×2 → 4 windows
        let values: Vec<f32> = (0..4)
            .flat_map(|x| (0..4).map(move |y| (10 * x + y) as f32))
            .collect();
        let x = Tensor::<5>::from_data(TensorData::new(values, [1, 1, 4, 4, 1]), &device);
        let first = |layout| -> Vec<f32> {
            let g = WindowGeometry::new([4, 4, 1], [2, 2, 1], false, layout);
            g.partition(x.clone())
                .narrow(0, 0, 1)
                .into_data()
                .try_to_vec::<f32>()
                .unwrap()
        };
        assert_eq!(first(WindowLayout::Contiguous), vec![0.0, 1.0, 10.0, 11.0]);
        assert_eq!(first(WindowLayout::Strided), vec![0.0, 2.0, 20.0, 22.0]);
    }

    #[test]
    fn shift_mask_separates_wrapped_regions_and_padding() {
        let device = Device::flex();
        // 8×1 map, window 4 shifted by 2: the last window holds rolled positions 4..8,
        // i.e. original voxels 6, 7 (region 1) and 0, 1 (region 2, wrapped around).
        let g = WindowGeometry::new([8, 1, 1], [4, 1, 1], true, WindowLayout::Contiguous);
        let mask: Vec<f32> = g
            .mask(1, &device)
            .unwrap()
            .into_data()
            .try_to_vec::<f32>()
            .unwrap();
        let row = |p: usize, q: usize| mask[(p * 4 + q) * 5..(p * 4 + q + 1) * 5].to_vec();
        assert_eq!(row(0, 0), vec![0.0; 5]);
        assert_eq!(row(1, 0), vec![0.0, 0.0, 0.0, MASKED, MASKED]);
        assert_eq!(row(1, 3), vec![0.0, MASKED, MASKED, 0.0, 0.0]);
        // 6 voxels, window 4 → padded to 8 with one voxel each side: those keys are masked
        let g = WindowGeometry::new([6, 1, 1], [4, 1, 1], false, WindowLayout::Contiguous);
        let mask: Vec<f32> = g
            .mask(0, &device)
            .unwrap()
            .into_data()
            .try_to_vec::<f32>()
            .unwrap();
        assert_eq!(&mask[..4], &[MASKED, 0.0, 0.0, 0.0]);
        assert!(
            WindowGeometry::new([8, 8, 1], [8, 8, 1], true, WindowLayout::Contiguous)
                .mask(0, &device)
                .is_none()
        );
    }
}

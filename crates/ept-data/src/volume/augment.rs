//! Seeded augmentation of volume crops, and the crop extraction it is built into.
//!
//! The in-plane affine (rotation about Z by `±rotate_deg`, zoom in `scale`) is applied
//! while the crop is sampled from the whole volume — in mm, so anisotropic in-plane
//! spacing stays correct, around the crop centre — bilinear for the image (padding
//! −1 outside), nearest for labels (0 outside); crops never show rotated-in corners of a
//! smaller crop. Then per-axis flips, intensity scale/shift and gaussian noise on the
//! image. Every option is off by default; the loader never augments in evaluation.
//! Random numbers are drawn in a fixed order from the caller's generator (the loader's
//! `(seed, epoch, index)` stream), so a crop is reproducible.
//!
//! ```toml
//! augment = { flip = [0.5, 0.5, 0.0], rotate_deg = 15.0, scale = [0.9, 1.1], intensity_scale = 0.1, intensity_shift = 0.1, noise_std = 0.02 }
//! ```

use ept_backend::Rng;
use serde::{Deserialize, Serialize};

use super::geometry::crop_window;
use super::source::IMAGE_PAD;
use super::{LabelMap, Volume};
use crate::error::DataError;

fn unit() -> [f64; 2] {
    [1.0, 1.0]
}

/// Augmentation options (all off by default).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AugmentConfig {
    /// Flip probability per axis `[X, Y, Z]`.
    #[serde(default)]
    pub flip: [f64; 3],
    /// In-plane rotation, uniform in `[-rotate_deg, rotate_deg]` degrees.
    #[serde(default)]
    pub rotate_deg: f64,
    /// In-plane zoom factor range (`> 1` magnifies); `[1, 1]` is off.
    #[serde(default = "unit")]
    pub scale: [f64; 2],
    /// Multiply intensities by a factor uniform in `[1 - a, 1 + a]`.
    #[serde(default)]
    pub intensity_scale: f64,
    /// Add a value uniform in `[-b, b]`.
    #[serde(default)]
    pub intensity_shift: f64,
    /// Standard deviation of additive gaussian noise.
    #[serde(default)]
    pub noise_std: f64,
}

impl Default for AugmentConfig {
    fn default() -> Self {
        AugmentConfig {
            flip: [0.0; 3],
            rotate_deg: 0.0,
            scale: unit(),
            intensity_scale: 0.0,
            intensity_shift: 0.0,
            noise_std: 0.0,
        }
    }
}

impl AugmentConfig {
    pub fn validate(&self) -> Result<(), DataError> {
        let bad = |m: String| Err(DataError::Invalid(format!("augment: {m}")));
        if self.flip.iter().any(|p| !(0.0..=1.0).contains(p)) {
            return bad(format!("flip probabilities {:?} must be in [0, 1]", self.flip));
        }
        let [lo, hi] = self.scale;
        if !(lo.is_finite() && hi.is_finite() && lo > 0.0 && lo <= hi) {
            return bad(format!(
                "scale range {:?} must be positive with min <= max",
                self.scale
            ));
        }
        for (name, v) in [
            ("rotate_deg", self.rotate_deg),
            ("intensity_scale", self.intensity_scale),
            ("intensity_shift", self.intensity_shift),
            ("noise_std", self.noise_std),
        ] {
            if !v.is_finite() || v < 0.0 {
                return bad(format!("{name} {v} must be finite and non-negative"));
            }
        }
        Ok(())
    }

    fn has_affine(&self) -> bool {
        self.rotate_deg > 0.0 || self.scale != [1.0, 1.0]
    }
}

/// Cut the `dims` crop starting at `start` out of `image` and `labels` (same grid),
/// applying `augment` with random numbers from `rng`. Returns the image and label voxels
/// in C order over `dims`.
pub fn augmented_crop(
    image: &Volume<f32>,
    labels: &LabelMap,
    start: [isize; 3],
    dims: [usize; 3],
    augment: &AugmentConfig,
    rng: &mut Rng,
) -> Result<(Vec<f32>, Vec<u16>), DataError> {
    if image.dims != labels.dims {
        return Err(DataError::Invalid(format!(
            "augmented crop: image dims {:?} differ from label dims {:?}",
            image.dims, labels.dims
        )));
    }
    let angle = if augment.rotate_deg > 0.0 {
        rng.uniform(-augment.rotate_deg, augment.rotate_deg).to_radians()
    } else {
        0.0
    };
    let zoom = if augment.scale[0] < augment.scale[1] {
        rng.uniform(augment.scale[0], augment.scale[1])
    } else {
        augment.scale[0]
    };
    let (mut img, mut lab) = if augment.has_affine() && (angle != 0.0 || zoom != 1.0) {
        affine_crop(image, labels, start, dims, angle, zoom)
    } else {
        (
            crop_window(image, start, dims, IMAGE_PAD)?.data,
            crop_window(labels, start, dims, 0)?.data,
        )
    };
    for axis in 0..3 {
        if augment.flip[axis] > 0.0 && rng.chance(augment.flip[axis]) {
            flip(&mut img, dims, axis);
            flip(&mut lab, dims, axis);
        }
    }
    if augment.intensity_scale > 0.0 || augment.intensity_shift > 0.0 {
        let a = 1.0 + rng.uniform(-augment.intensity_scale, augment.intensity_scale);
        let b = rng.uniform(-augment.intensity_shift, augment.intensity_shift);
        img.iter_mut().for_each(|v| *v = (f64::from(*v) * a + b) as f32);
    }
    if augment.noise_std > 0.0 {
        img.iter_mut()
            .for_each(|v| *v += (rng.normal() * augment.noise_std) as f32);
    }
    Ok((img, lab))
}

/// Sample the crop through an in-plane rotation/zoom about its centre (in mm).
fn affine_crop(
    image: &Volume<f32>,
    labels: &LabelMap,
    start: [isize; 3],
    dims: [usize; 3],
    angle: f64,
    zoom: f64,
) -> (Vec<f32>, Vec<u16>) {
    let n = dims[0] * dims[1] * dims[2];
    let (mut img, mut lab) = (vec![IMAGE_PAD; n], vec![0u16; n]);
    let [nx, ny, nz] = image.dims;
    let (sx, sy) = (f64::from(image.spacing[0]), f64::from(image.spacing[1]));
    let centre = [0, 1].map(|k| start[k] as f64 + (dims[k] as f64 - 1.0) / 2.0);
    // output offset (mm) p → input offset R(−θ)·p / zoom
    let (sin, cos) = (-angle).sin_cos();
    for ox in 0..dims[0] {
        for oy in 0..dims[1] {
            let u = (ox as f64 - (dims[0] as f64 - 1.0) / 2.0) * sx;
            let v = (oy as f64 - (dims[1] as f64 - 1.0) / 2.0) * sy;
            let px = centre[0] + (cos * u - sin * v) / zoom / sx;
            let py = centre[1] + (sin * u + cos * v) / zoom / sy;
            let (x0, y0) = (px.floor(), py.floor());
            let (wx, wy) = ((px - x0) as f32, (py - y0) as f32);
            let (x0, y0) = (x0 as isize, y0 as isize);
            let inside = |x: isize, y: isize| x >= 0 && y >= 0 && (x as usize) < nx && (y as usize) < ny;
            let (rx, ry) = (px.round() as isize, py.round() as isize);
            for oz in 0..dims[2] {
                let z = start[2] + oz as isize;
                if z < 0 || z as usize >= nz {
                    continue;
                }
                let z = z as usize;
                let at = |x: isize, y: isize| {
                    if inside(x, y) {
                        image.data[(x as usize * ny + y as usize) * nz + z]
                    } else {
                        IMAGE_PAD
                    }
                };
                let top = at(x0, y0) * (1.0 - wy) + at(x0, y0 + 1) * wy;
                let bottom = at(x0 + 1, y0) * (1.0 - wy) + at(x0 + 1, y0 + 1) * wy;
                let o = (ox * dims[1] + oy) * dims[2] + oz;
                img[o] = top * (1.0 - wx) + bottom * wx;
                if inside(rx, ry) {
                    lab[o] = labels.data[(rx as usize * ny + ry as usize) * nz + z];
                }
            }
        }
    }
    (img, lab)
}

/// Reverse `data` (C order over `dims`) along `axis`.
fn flip<T>(data: &mut [T], dims: [usize; 3], axis: usize) {
    let [_, ny, nz] = dims;
    match axis {
        0 => {
            let plane = ny * nz;
            for x in 0..dims[0] / 2 {
                let (a, b) = data.split_at_mut((dims[0] - 1 - x) * plane);
                a[x * plane..(x + 1) * plane].swap_with_slice(&mut b[..plane]);
            }
        }
        1 => {
            for x in 0..dims[0] {
                for y in 0..ny / 2 {
                    let (a, b) = data.split_at_mut((x * ny + ny - 1 - y) * nz);
                    a[(x * ny + y) * nz..(x * ny + y + 1) * nz].swap_with_slice(&mut b[..nz]);
                }
            }
        }
        _ => data.chunks_mut(nz).for_each(<[T]>::reverse),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vols(dims: [usize; 3]) -> (Volume<f32>, LabelMap) {
        let n: usize = dims.iter().product();
        let img = Volume::new(dims, [1.0; 3], (0..n).map(|i| i as f32).collect()).unwrap();
        let lab = img.map(|&v| (v as u16) % 5);
        (img, lab)
    }

    #[test]
    fn flips_reverse_each_axis_and_twice_is_identity() {
        let dims = [3, 4, 5];
        let orig: Vec<u32> = (0..60).collect();
        for axis in 0..3 {
            let mut d = orig.clone();
            flip(&mut d, dims, axis);
            let idx = |x: usize, y: usize, z: usize| (x * 4 + y) * 5 + z;
            let (x, y, z) = (0, 1, 2);
            let m = [2 - x, 3 - y, 4 - z];
            let want = match axis {
                0 => idx(m[0], y, z),
                1 => idx(x, m[1], z),
                _ => idx(x, y, m[2]),
            };
            assert_eq!(d[idx(x, y, z)], want as u32);
            flip(&mut d, dims, axis);
            assert_eq!(d, orig);
        }
    }

    #[test]
    fn off_is_a_plain_crop_and_rotation_keeps_labels_existing() {
        let (img, lab) = vols([8, 8, 3]);
        let mut rng = Rng::new(1);
        let off = AugmentConfig::default();
        let (i, l) = augmented_crop(&img, &lab, [2, 2, 0], [4, 4, 3], &off, &mut rng).unwrap();
        assert_eq!(
            i,
            crop_window(&img, [2, 2, 0], [4, 4, 3], IMAGE_PAD).unwrap().data
        );
        assert_eq!(l, crop_window(&lab, [2, 2, 0], [4, 4, 3], 0).unwrap().data);
        let rot = AugmentConfig {
            rotate_deg: 30.0,
            scale: [0.8, 1.2],
            ..AugmentConfig::default()
        };
        let (i, l) = augmented_crop(&img, &lab, [2, 2, 0], [4, 4, 3], &rot, &mut rng).unwrap();
        assert!(l.iter().all(|&v| v < 5));
        assert!(i.iter().all(|v| v.is_finite()));
    }

    #[test]
    fn a_90_degree_rotation_of_a_centred_crop_permutes_voxels() {
        let (img, lab) = vols([5, 5, 1]);
        let (i, _) = affine_crop(&img, &lab, [0, 0, 0], [5, 5, 1], std::f64::consts::FRAC_PI_2, 1.0);
        let mut a = i.clone();
        let mut b = img.data.clone();
        a.sort_by(f32::total_cmp);
        b.sort_by(f32::total_cmp);
        for (x, y) in a.iter().zip(&b) {
            assert!((x - y).abs() < 1e-3, "{x} vs {y}");
        }
        assert_ne!(i, img.data);
    }
}

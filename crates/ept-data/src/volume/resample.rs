//! Resampling a volume to another voxel spacing (and back).
//!
//! **Convention — voxel centres, shared corner.** Voxel `i` of a grid with spacing `s`
//! covers `[i·s, (i+1)·s)` mm along its axis, measured from the outer corner of voxel 0,
//! which both grids share. Output voxel `i` at spacing `t` therefore reads the input at
//! the continuous index `c = (i + 0.5)·t/s − 0.5`, clamped to `[0, n_in − 1]`
//! (edge voxels repeat). The inverse map is the same formula with the roles swapped, so
//! [`resample_to_dims`] back to the original dims and spacing is the consistent inverse
//! of [`resample_to_spacing`]. (Not MONAI `Spacing` / scipy `zoom` alignment.)
//! Output dims are `round(n·s/t)` (at least 1); the affine is updated to match
//! (columns scaled by `t/s`, origin moved to the new voxel 0 centre).
//!
//! [`Interp::Trilinear`] is for images; [`Interp::Nearest`] (index `floor(c + 0.5)`)
//! for label maps — it only ever copies existing values.

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::{Volume, check_grid, rescaled_affine};
use crate::error::DataError;

/// Interpolation used by [`resample_to_spacing`] / [`resample_to_dims`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Interp {
    Trilinear,
    Nearest,
}

/// A voxel type that can be resampled: continuous types blend, discrete ones may only
/// use [`Interp::Nearest`].
pub trait Voxel: Copy + Send + Sync + 'static {
    /// `Some(a + (b − a)·w)` for continuous types; `None` for labels.
    fn lerp(a: Self, b: Self, w: f32) -> Option<Self>;
}

impl Voxel for f32 {
    #[inline]
    fn lerp(a: f32, b: f32, w: f32) -> Option<f32> {
        Some(if w == 0.0 { a } else { a + (b - a) * w })
    }
}

impl Voxel for u16 {
    fn lerp(_: u16, _: u16, _: f32) -> Option<u16> {
        None
    }
}

impl Voxel for u8 {
    fn lerp(_: u8, _: u8, _: f32) -> Option<u8> {
        None
    }
}

/// Per output index along one axis: the two input neighbours, the weight of the second,
/// and the nearest input index.
struct AxisMap {
    lo: Vec<usize>,
    hi: Vec<usize>,
    w: Vec<f32>,
    nearest: Vec<usize>,
}

fn axis_map(n_in: usize, n_out: usize, ratio: f64) -> AxisMap {
    let last = (n_in - 1) as f64;
    let mut m = AxisMap {
        lo: Vec::with_capacity(n_out),
        hi: Vec::with_capacity(n_out),
        w: Vec::with_capacity(n_out),
        nearest: Vec::with_capacity(n_out),
    };
    for i in 0..n_out {
        let c = ((i as f64 + 0.5) * ratio - 0.5).clamp(0.0, last);
        let lo = c.floor();
        m.lo.push(lo as usize);
        m.hi.push((lo as usize + 1).min(n_in - 1));
        m.w.push((c - lo) as f32);
        m.nearest.push(((c + 0.5).floor() as usize).min(n_in - 1));
    }
    m
}

/// Output dims for resampling `dims` at `spacing` to `target`: `round(n·s/t)`, ≥ 1.
pub fn dims_for_spacing(dims: [usize; 3], spacing: [f32; 3], target: [f32; 3]) -> [usize; 3] {
    std::array::from_fn(|k| {
        ((dims[k] as f64 * f64::from(spacing[k]) / f64::from(target[k])).round() as usize).max(1)
    })
}

/// Resample to `target` mm spacing (see the module docs for the convention).
pub fn resample_to_spacing<T: Voxel>(
    volume: &Volume<T>,
    target: [f32; 3],
    interp: Interp,
) -> Result<Volume<T>, DataError> {
    if target.iter().any(|t| !t.is_finite() || *t <= 0.0) {
        return Err(DataError::Invalid(format!(
            "target spacing {target:?} must be positive and finite"
        )));
    }
    let dims = dims_for_spacing(volume.dims, volume.spacing, target);
    resample_to_dims(volume, dims, target, interp)
}

/// Resample onto the grid of `dims` voxels at `spacing` mm sharing this volume's voxel-0
/// corner — e.g. a prediction back onto its source grid (original dims and spacing).
pub fn resample_to_dims<T: Voxel>(
    volume: &Volume<T>,
    dims: [usize; 3],
    spacing: [f32; 3],
    interp: Interp,
) -> Result<Volume<T>, DataError> {
    check_grid(volume.dims, volume.spacing, volume.data.len())?;
    let n_out = super::voxel_count(dims)
        .filter(|&n| n > 0 && n <= super::MAX_VOXELS)
        .ok_or_else(|| {
            DataError::Invalid(format!(
                "resampling {:?} voxels of {:?} mm to {spacing:?} mm gives {dims:?} voxels \
                 (at most {} are allowed): check the file's voxel size (pixdim) and the target spacing",
                volume.dims,
                volume.spacing,
                super::MAX_VOXELS
            ))
        })?;
    check_grid(dims, spacing, n_out)?;
    if interp == Interp::Trilinear && T::lerp(volume.data[0], volume.data[0], 0.5).is_none() {
        return Err(DataError::Invalid(
            "trilinear interpolation of a label map; use nearest".into(),
        ));
    }
    let ratio: [f64; 3] = std::array::from_fn(|k| f64::from(spacing[k]) / f64::from(volume.spacing[k]));
    let [mx, my, mz] = std::array::from_fn(|k| axis_map(volume.dims[k], dims[k], ratio[k]));
    let [_, ny, nz] = volume.dims;
    let src = &volume.data;
    let at = |x: usize, y: usize, z: usize| src[(x * ny + y) * nz + z];
    let mut out = vec![volume.data[0]; n_out];
    out.par_chunks_mut(dims[1] * dims[2])
        .enumerate()
        .for_each(|(ox, plane)| {
            for oy in 0..dims[1] {
                let row = &mut plane[oy * dims[2]..(oy + 1) * dims[2]];
                match interp {
                    Interp::Nearest => {
                        let (x, y) = (mx.nearest[ox], my.nearest[oy]);
                        for (oz, v) in row.iter_mut().enumerate() {
                            *v = at(x, y, mz.nearest[oz]);
                        }
                    }
                    Interp::Trilinear => {
                        let (x0, x1, wx) = (mx.lo[ox], mx.hi[ox], mx.w[ox]);
                        let (y0, y1, wy) = (my.lo[oy], my.hi[oy], my.w[oy]);
                        for (oz, v) in row.iter_mut().enumerate() {
                            let (z0, z1, wz) = (mz.lo[oz], mz.hi[oz], mz.w[oz]);
                            let l = |a, b, w| T::lerp(a, b, w).unwrap_or(a);
                            let c00 = l(at(x0, y0, z0), at(x0, y0, z1), wz);
                            let c01 = l(at(x0, y1, z0), at(x0, y1, z1), wz);
                            let c10 = l(at(x1, y0, z0), at(x1, y0, z1), wz);
                            let c11 = l(at(x1, y1, z0), at(x1, y1, z1), wz);
                            *v = l(l(c00, c01, wy), l(c10, c11, wy), wx);
                        }
                    }
                }
            }
        });
    let affine = rescaled_affine(&volume.affine, ratio, ratio.map(|r| 0.5 * r - 0.5));
    Ok(volume.with_grid(dims, spacing, affine, out))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ramp(dims: [usize; 3], spacing: [f32; 3], coef: [f32; 3]) -> Volume<f32> {
        let mut data = Vec::new();
        for x in 0..dims[0] {
            for y in 0..dims[1] {
                for z in 0..dims[2] {
                    data.push(coef[0] * x as f32 + coef[1] * y as f32 + coef[2] * z as f32 + 1.0);
                }
            }
        }
        Volume::new(dims, spacing, data).unwrap()
    }

    #[test]
    fn output_dims_round_and_affine_follows() {
        let v = ramp([181, 217, 181], [1.0; 3], [1.0, 0.0, 0.0]);
        let r = resample_to_spacing(&v, [1.25, 1.25, 2.5], Interp::Trilinear).unwrap();
        assert_eq!(r.dims, [145, 174, 72]); // 144.8, 173.6, 72.4 rounded
        assert_eq!(r.spacing, [1.25, 1.25, 2.5]);
        // new voxel 0 centre = old index 0.125 along x/y, 0.75 along z
        assert_eq!(r.affine[0], [1.25, 0.0, 0.0, 0.125]);
        assert_eq!(r.affine[2], [0.0, 0.0, 2.5, 0.75]);
    }

    #[test]
    fn trilinear_reproduces_a_linear_ramp_in_the_interior() {
        let v = ramp([12, 10, 8], [1.0, 1.0, 1.0], [1.0, -2.0, 0.5]);
        let r = resample_to_spacing(&v, [0.7, 1.3, 0.9], Interp::Trilinear).unwrap();
        for x in 0..r.dims[0] {
            for y in 0..r.dims[1] {
                for z in 0..r.dims[2] {
                    let c = |i: usize, k: usize| (i as f64 + 0.5) * f64::from(r.spacing[k]) - 0.5;
                    let (cx, cy, cz) = (c(x, 0), c(y, 1), c(z, 2));
                    let inside = [cx, cy, cz]
                        .iter()
                        .zip(v.dims)
                        .all(|(c, n)| *c >= 0.0 && *c <= (n - 1) as f64);
                    if inside {
                        let want = cx - 2.0 * cy + 0.5 * cz + 1.0;
                        let got = r.get(x, y, z).unwrap() as f64;
                        assert!((got - want).abs() < 1e-4, "({x},{y},{z}): {got} vs {want}");
                    }
                }
            }
        }
    }

    #[test]
    fn trilinear_on_labels_is_refused() {
        let v = Volume::new([2, 2, 2], [1.0; 3], vec![1u16; 8]).unwrap();
        assert!(resample_to_spacing(&v, [2.0; 3], Interp::Trilinear).is_err());
        assert!(resample_to_spacing(&v, [2.0; 3], Interp::Nearest).is_ok());
    }
}

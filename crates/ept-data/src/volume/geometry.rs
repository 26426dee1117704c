//! Grid geometry without interpolation: cutting a window out of a volume (padding where
//! it leaves the grid), centred pad/crop to fixed dims, and the exact inverse of that
//! pad/crop for labels and predictions. Every operation keeps the affine true: output
//! voxel `o` is input voxel `start + o`, so the origin moves by `start` voxels.
//!
//! Centring: per axis with `d = target − n`, padding puts `⌊d/2⌋` voxels before and the
//! rest after; cropping drops `⌊−d/2⌋` voxels at the start and the rest at the end.

use super::{Volume, rescaled_affine};
use crate::error::DataError;

/// What [`pad_or_crop_to`] did, so [`undo_pad_or_crop`] can invert it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PadCrop {
    /// Dims before.
    pub from_dims: [usize; 3],
    /// Dims after.
    pub to_dims: [usize; 3],
    /// Per axis: output index = input index + shift (positive: padded before).
    pub shift: [isize; 3],
}

/// The `dims` window whose voxel `o` is input voxel `start + o`; voxels outside the input
/// are `pad`.
pub fn crop_window<T: Copy>(
    volume: &Volume<T>,
    start: [isize; 3],
    dims: [usize; 3],
    pad: T,
) -> Result<Volume<T>, DataError> {
    super::check_grid(volume.dims, volume.spacing, volume.data.len())?;
    let n = super::voxel_count(dims)
        .filter(|&n| n > 0)
        .ok_or_else(|| DataError::Invalid(format!("window dims {dims:?} must be positive")))?;
    let [nx, ny, nz] = volume.dims.map(|d| d as isize);
    let mut out = vec![pad; n];
    // The z range of the window that lies inside the input is the same on every row.
    let z_lo = (-start[2]).clamp(0, dims[2] as isize) as usize;
    let z_hi = (nz - start[2]).clamp(0, dims[2] as isize) as usize;
    for ox in 0..dims[0] {
        let x = start[0] + ox as isize;
        if x < 0 || x >= nx {
            continue;
        }
        for oy in 0..dims[1] {
            let y = start[1] + oy as isize;
            if y < 0 || y >= ny || z_lo >= z_hi {
                continue;
            }
            // z_lo ≥ −start[2], so the first source index is not negative.
            let src = ((x * ny + y) * nz + start[2] + z_lo as isize) as usize;
            let dst = (ox * dims[1] + oy) * dims[2];
            out[dst + z_lo..dst + z_hi].copy_from_slice(&volume.data[src..src + (z_hi - z_lo)]);
        }
    }
    let affine = rescaled_affine(&volume.affine, [1.0; 3], start.map(|s| s as f64));
    Ok(volume.with_grid(dims, volume.spacing, affine, out))
}

/// The per-axis shift of a centred pad/crop from `from` to `to` dims.
pub fn centred_shift(from: [usize; 3], to: [usize; 3]) -> [isize; 3] {
    std::array::from_fn(|k| (to[k] as isize - from[k] as isize) / 2)
}

/// Pad (with `pad`) or crop each axis to `target`, centred.
pub fn pad_or_crop_to<T: Copy>(
    volume: &Volume<T>,
    target: [usize; 3],
    pad: T,
) -> Result<(Volume<T>, PadCrop), DataError> {
    let shift = centred_shift(volume.dims, target);
    let out = crop_window(volume, shift.map(|s| -s), target, pad)?;
    Ok((
        out,
        PadCrop {
            from_dims: volume.dims,
            to_dims: target,
            shift,
        },
    ))
}

/// Map a volume on the padded/cropped grid back to the original grid: exact for padded
/// axes; voxels that were cropped away come back as `pad`.
pub fn undo_pad_or_crop<T: Copy>(volume: &Volume<T>, how: &PadCrop, pad: T) -> Result<Volume<T>, DataError> {
    if volume.dims != how.to_dims {
        return Err(DataError::Invalid(format!(
            "undo pad/crop: volume has dims {:?}, expected {:?}",
            volume.dims, how.to_dims
        )));
    }
    crop_window(volume, how.shift, how.from_dims, pad)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seq(dims: [usize; 3]) -> Volume<u16> {
        Volume::new(
            dims,
            [1.0; 3],
            (1..=dims.iter().product::<usize>() as u16).collect(),
        )
        .unwrap()
    }

    #[test]
    fn pad_centres_with_the_extra_voxel_after() {
        let v = seq([1, 1, 2]);
        let (p, how) = pad_or_crop_to(&v, [1, 1, 5], 0).unwrap();
        assert_eq!(p.data, vec![0, 1, 2, 0, 0]);
        assert_eq!(how.shift, [0, 0, 1]);
        assert_eq!(p.affine[2][3], -1.0);
    }

    #[test]
    fn crop_centres_and_undo_restores_the_kept_part() {
        let v = seq([1, 1, 5]);
        let (c, how) = pad_or_crop_to(&v, [1, 1, 2], 0).unwrap();
        assert_eq!(c.data, vec![2, 3]);
        let back = undo_pad_or_crop(&c, &how, 0).unwrap();
        assert_eq!(back.data, vec![0, 2, 3, 0, 0]);
        assert_eq!(back.affine, v.affine);
    }

    #[test]
    fn window_outside_the_volume_is_all_padding() {
        let v = seq([2, 2, 2]);
        let w = crop_window(&v, [5, 0, 0], [1, 2, 2], 9).unwrap();
        assert!(w.data.iter().all(|&x| x == 9));
        let w = crop_window(&v, [0, 0, -3], [1, 1, 2], 9).unwrap();
        assert_eq!(w.data, vec![9, 9]);
    }
}

//! 3-D medical volumes (CT/MRI) with label maps, for the prompt-able UNet (PUNet).
//!
//! A [`Volume<T>`] is a grid of voxels in **C order over `[X, Y, Z]`** (`z` fastest:
//! voxel `(x, y, z)` is `data[(x * Y + y) * Z + z]`), the layout of a burn tensor
//! `[X, Y, Z]`, with its spacing (mm), its voxel-to-world affine and the NIfTI header it
//! came from (kept so predictions are written back with the same metadata). Images are
//! `Volume<f32>`, label maps [`LabelMap`] = `Volume<u16>`.
//!
//! Module map: [`nifti_io`] (read/write `.nii`/`.nii.gz`, image/label pair checks) →
//! [`resample`] (to a spacing and back), [`intensity`] (windowing), [`geometry`]
//! (centred pad/crop and its inverse) → [`source`] (the `image,label` CSV list, label
//! grouping, train/val/test split, preprocessing cached in memory) → [`sampling`]
//! (axial slices / 3-D patches with foreground-weighted centres) + [`augment`] (seeded
//! flips, in-plane affine, intensity) → [`batch`] (host batches, tensors, the epoch loader).

pub mod augment;
pub mod batch;
pub mod geometry;
pub mod intensity;
pub mod nifti_io;
pub mod resample;
pub mod sampling;
pub mod source;

use std::path::PathBuf;

pub use nifti::NiftiHeader;

use crate::error::DataError;

/// A voxel-to-world (mm) affine, row-major 4×4 (last row `0 0 0 1`).
pub type Affine = [[f64; 4]; 4];

/// A label map: one non-negative integer class per voxel.
pub type LabelMap = Volume<u16>;

/// A 3-D grid of voxels with its geometry and source header (see the module docs for
/// the memory layout).
#[derive(Debug, Clone, PartialEq)]
pub struct Volume<T = f32> {
    /// `[X, Y, Z]` voxel counts.
    pub dims: [usize; 3],
    /// Voxel size in mm along X, Y, Z.
    pub spacing: [f32; 3],
    /// Voxel index `(i, j, k, 1)` → world mm (sform if `sform_code > 0`, else qform).
    pub affine: Affine,
    /// `dims[0] * dims[1] * dims[2]` voxels, C order (z fastest).
    pub data: Vec<T>,
    /// The header of the file this came from (a default one for in-memory volumes).
    pub header: NiftiHeader,
    /// The file this came from (empty for in-memory volumes).
    pub path: PathBuf,
}

/// The most voxels one volume may hold, read or resampled: 2³¹ (8 GiB as f32; a
/// 512 × 512 × 2000 CT is a quarter of it). A header or spacing asking for more is a
/// named error, not a multi-terabyte allocation.
pub const MAX_VOXELS: usize = 1 << 31;

/// `dims[0] * dims[1] * dims[2]`, or `None` on overflow.
pub(crate) fn voxel_count(dims: [usize; 3]) -> Option<usize> {
    dims[0].checked_mul(dims[1])?.checked_mul(dims[2])
}

/// The affine of an axis-aligned grid: `diag(spacing)`, origin at voxel 0.
pub fn diagonal_affine(spacing: [f32; 3]) -> Affine {
    let s = spacing.map(f64::from);
    [
        [s[0], 0.0, 0.0, 0.0],
        [0.0, s[1], 0.0, 0.0],
        [0.0, 0.0, s[2], 0.0],
        [0.0, 0.0, 0.0, 1.0],
    ]
}

/// The affine of a grid whose voxel `i` (new) sits at voxel `scale * i + offset` (old) of
/// the grid described by `affine`, per axis.
pub(crate) fn rescaled_affine(affine: &Affine, scale: [f64; 3], offset: [f64; 3]) -> Affine {
    let mut out = *affine;
    for (row, out_row) in affine.iter().zip(out.iter_mut()).take(3) {
        for k in 0..3 {
            out_row[k] = row[k] * scale[k];
        }
        out_row[3] = row[3] + (0..3).map(|k| row[k] * offset[k]).sum::<f64>();
    }
    out
}

impl<T> Volume<T> {
    /// An in-memory volume with an axis-aligned affine (`diag(spacing)`) and a default
    /// header. Fails when `data` does not hold `X * Y * Z` voxels, a dimension is zero or
    /// a spacing is not a positive finite number.
    pub fn new(dims: [usize; 3], spacing: [f32; 3], data: Vec<T>) -> Result<Self, DataError> {
        check_grid(dims, spacing, data.len())?;
        let mut header = NiftiHeader::default();
        header.pixdim[1..4].copy_from_slice(&spacing);
        header.qform_code = 0;
        header.sform_code = 2;
        let affine = diagonal_affine(spacing);
        header.srow_x = affine[0].map(|v| v as f32);
        header.srow_y = affine[1].map(|v| v as f32);
        header.srow_z = affine[2].map(|v| v as f32);
        Ok(Volume {
            dims,
            spacing,
            affine,
            data,
            header,
            path: PathBuf::new(),
        })
    }

    /// Number of voxels.
    pub fn len(&self) -> usize {
        self.data.len()
    }

    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// Flat index of voxel `(x, y, z)` (no bounds check beyond the slice's own).
    #[inline]
    pub fn index(&self, x: usize, y: usize, z: usize) -> usize {
        (x * self.dims[1] + y) * self.dims[2] + z
    }

    /// A volume on a new grid that keeps this one's header and path.
    pub fn with_grid<U>(
        &self,
        dims: [usize; 3],
        spacing: [f32; 3],
        affine: Affine,
        data: Vec<U>,
    ) -> Volume<U> {
        Volume {
            dims,
            spacing,
            affine,
            data,
            header: self.header.clone(),
            path: self.path.clone(),
        }
    }

    /// The same grid with every voxel mapped through `f`.
    pub fn map<U>(&self, f: impl FnMut(&T) -> U) -> Volume<U> {
        self.with_grid(
            self.dims,
            self.spacing,
            self.affine,
            self.data.iter().map(f).collect(),
        )
    }
}

impl<T: Copy> Volume<T> {
    /// Voxel `(x, y, z)`, or `None` outside the grid.
    pub fn get(&self, x: usize, y: usize, z: usize) -> Option<T> {
        if x < self.dims[0] && y < self.dims[1] && z < self.dims[2] {
            self.data.get(self.index(x, y, z)).copied()
        } else {
            None
        }
    }
}

pub(crate) fn check_grid(dims: [usize; 3], spacing: [f32; 3], len: usize) -> Result<(), DataError> {
    if dims.contains(&0) {
        return Err(DataError::Invalid(format!("volume dims {dims:?} contain a zero")));
    }
    if spacing.iter().any(|s| !s.is_finite() || *s <= 0.0) {
        return Err(DataError::Invalid(format!(
            "volume spacing {spacing:?} must be positive and finite"
        )));
    }
    match voxel_count(dims) {
        Some(n) if n == len => Ok(()),
        _ => Err(DataError::Invalid(format!(
            "volume dims {dims:?} need {} voxels, data has {len}",
            voxel_count(dims).map_or("too many".into(), |n| n.to_string())
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_is_c_order_with_z_fastest() {
        let v = Volume::new([2, 3, 4], [1.0; 3], (0..24).collect::<Vec<u16>>()).unwrap();
        assert_eq!(v.get(0, 0, 1), Some(1));
        assert_eq!(v.get(0, 1, 0), Some(4));
        assert_eq!(v.get(1, 0, 0), Some(12));
        assert_eq!(v.get(2, 0, 0), None);
    }

    #[test]
    fn wrong_length_zero_dims_and_bad_spacing_are_errors() {
        assert!(Volume::new([2, 2, 2], [1.0; 3], vec![0f32; 7]).is_err());
        assert!(Volume::new([0, 2, 2], [1.0; 3], Vec::<f32>::new()).is_err());
        assert!(Volume::new([1, 1, 1], [1.0, 0.0, 1.0], vec![0f32]).is_err());
        assert!(Volume::new([1, 1, 1], [1.0, f32::NAN, 1.0], vec![0f32]).is_err());
    }

    #[test]
    fn rescaled_affine_moves_voxel_centres() {
        let a = diagonal_affine([2.0, 1.0, 1.0]);
        let b = rescaled_affine(&a, [0.5, 1.0, 1.0], [-0.25, 3.0, 0.0]);
        // new voxel 0 along x sits at old voxel -0.25 = world -0.5 mm; spacing halves.
        assert_eq!(b[0], [1.0, 0.0, 0.0, -0.5]);
        assert_eq!(b[1], [0.0, 1.0, 0.0, 3.0]);
    }
}

//! Where training crops come from. A crop is a window of fixed dims — an axial slice
//! (`[sx, sy, 1]`, a 2-D sample along Z) or a 3-D patch — placed by its start voxel on a
//! [`PreparedVolume`]'s grid; parts outside the volume are padded later.
//!
//! Training: with probability `p_fg` the crop is centred on a random voxel of a random
//! foreground class present in the volume (class first, then voxel, both uniform), so
//! small organs are seen as often as large ones; otherwise its start is uniform over all
//! positions that keep the crop inside the volume (or inside the crop, when the volume is
//! smaller). Evaluation: every slice (centred in-plane) or tiles covering the volume.
//!
//! ```toml
//! sampling = { shape = { kind = "slice2d", size = [128, 160] }, p_fg = 0.5 }
//! sampling = { shape = { kind = "patch3d", size = [96, 96, 32] }, samples_per_volume = 4 }
//! ```

use ept_backend::Rng;
use serde::{Deserialize, Serialize};

use super::geometry::centred_shift;
use super::source::PreparedVolume;
use crate::error::DataError;

/// Crop shape: an axial slice or a 3-D patch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum PatchShape {
    /// `[sx, sy]` in-plane; one voxel along Z.
    Slice2d { size: [usize; 2] },
    /// `[sx, sy, sz]`.
    Patch3d { size: [usize; 3] },
}

impl PatchShape {
    /// Crop dims `[X, Y, Z]` (Z = 1 for slices).
    pub fn dims(&self) -> [usize; 3] {
        match *self {
            PatchShape::Slice2d { size } => [size[0], size[1], 1],
            PatchShape::Patch3d { size } => size,
        }
    }
}

fn half() -> f64 {
    0.5
}
fn one() -> usize {
    1
}

/// How training crops are drawn.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SamplingConfig {
    pub shape: PatchShape,
    /// Probability of a foreground-centred crop (default 0.5).
    #[serde(default = "half")]
    pub p_fg: f64,
    /// Crops per training volume per epoch (default 1).
    #[serde(default = "one")]
    pub samples_per_volume: usize,
}

impl SamplingConfig {
    pub fn new(shape: PatchShape) -> Self {
        SamplingConfig {
            shape,
            p_fg: half(),
            samples_per_volume: 1,
        }
    }

    pub fn validate(&self) -> Result<(), DataError> {
        if self.shape.dims().contains(&0) {
            return Err(DataError::Invalid(format!(
                "sampling: crop dims {:?} contain a zero",
                self.shape.dims()
            )));
        }
        if !(0.0..=1.0).contains(&self.p_fg) {
            return Err(DataError::Invalid(format!(
                "sampling: p_fg {} must be in [0, 1]",
                self.p_fg
            )));
        }
        if self.samples_per_volume == 0 {
            return Err(DataError::Invalid(
                "sampling: samples_per_volume must be at least 1".into(),
            ));
        }
        Ok(())
    }
}

/// Which crop of which volume: the window start on the prepared grid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PatchOrigin {
    /// Index into [`super::source::VolumeSet::volumes`].
    pub volume: usize,
    pub start: [isize; 3],
    pub dims: [usize; 3],
}

/// Draw a training crop start (foreground-centred with probability `p_fg`).
pub fn random_start(volume: &PreparedVolume, dims: [usize; 3], p_fg: f64, rng: &mut Rng) -> [isize; 3] {
    let fg_roll = rng.chance(p_fg);
    let present: Vec<&Vec<u32>> = volume.foreground.iter().filter(|l| !l.is_empty()).collect();
    let n = volume.labels.dims;
    if fg_roll && !present.is_empty() {
        let list = present[rng.below(present.len())];
        let flat = list[rng.below(list.len())] as usize;
        let centre = [flat / (n[1] * n[2]), (flat / n[2]) % n[1], flat % n[2]];
        return std::array::from_fn(|k| centre[k] as isize - (dims[k] / 2) as isize);
    }
    std::array::from_fn(|k| {
        let slack = n[k] as isize - dims[k] as isize;
        let (lo, hi) = (slack.min(0), slack.max(0));
        lo + rng.below((hi - lo) as usize + 1) as isize
    })
}

/// Deterministic evaluation crops covering `volume`: for slices, every Z with the
/// in-plane window centred; for patches, per axis either one centred window (axis not
/// longer than the crop) or windows at stride `dims[k]` with the last one flush with the end.
pub fn eval_starts(volume_dims: [usize; 3], shape: PatchShape) -> Vec<[isize; 3]> {
    let dims = shape.dims();
    let centred = centred_shift(volume_dims, dims).map(|s| -s);
    let axis = |k: usize| -> Vec<isize> {
        let (n, d) = (volume_dims[k], dims[k]);
        if matches!(shape, PatchShape::Slice2d { .. }) && k == 2 {
            return (0..n as isize).collect();
        }
        if n <= d || matches!(shape, PatchShape::Slice2d { .. }) {
            return vec![centred[k]];
        }
        let mut v: Vec<isize> = (0..n - d).step_by(d).map(|s| s as isize).collect();
        v.push((n - d) as isize);
        v
    };
    let (xs, ys, zs) = (axis(0), axis(1), axis(2));
    let mut out = Vec::with_capacity(xs.len() * ys.len() * zs.len());
    for &x in &xs {
        for &y in &ys {
            for &z in &zs {
                out.push([x, y, z]);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eval_tiles_cover_every_voxel() {
        let starts = eval_starts([10, 4, 7], PatchShape::Patch3d { size: [4, 6, 3] });
        let mut hit = vec![false; 10 * 4 * 7];
        for s in &starts {
            for x in 0..4 {
                for y in 0..6 {
                    for z in 0..3 {
                        let p = [s[0] + x, s[1] + y, s[2] + z];
                        if (0..10).contains(&p[0]) && (0..4).contains(&p[1]) && (0..7).contains(&p[2]) {
                            hit[((p[0] * 4 + p[1]) * 7 + p[2]) as usize] = true;
                        }
                    }
                }
            }
        }
        assert!(hit.iter().all(|&h| h));
        // x: 0, 4, 6 (flush); y: centred (−1); z: 0, 3, 4
        assert_eq!(starts.len(), 3 * 3); // one y window
        assert_eq!(starts[0], [0, -1, 0]);
        assert_eq!(starts.last(), Some(&[6, -1, 4]));
    }

    #[test]
    fn eval_slices_are_every_z() {
        let starts = eval_starts([10, 8, 5], PatchShape::Slice2d { size: [8, 8] });
        assert_eq!(starts.len(), 5);
        assert_eq!(starts[3], [1, 0, 3]);
    }
}

//! CPA's views of one slice: the teacher sees the whole (geometrically augmented) crop,
//! each student a random sub-crop of it with stronger intensity augmentation. Every view
//! carries, per feature position, its coordinates in the teacher crop, which is how
//! student and teacher positions are matched.

use ept_backend::rng::Rng;

/// One student crop of a batch: images `[B, X, Y]` (row-major, Y fastest), labels, and
/// the crop offsets inside the teacher crop.
pub struct StudentView {
    pub size: [usize; 2],
    pub images: Vec<f32>,
    pub labels: Vec<i64>,
    pub offsets: Vec<[usize; 2]>,
}

/// Cut student views out of teacher crops `[B, X, Y]`, augmenting intensities with
/// `[scale, shift, noise]`.
pub fn student_view(
    images: &[f32],
    labels: &[i64],
    batch: usize,
    teacher: [usize; 2],
    size: [usize; 2],
    intensity: [f64; 3],
    rngs: &mut [Rng],
) -> StudentView {
    let [tx, ty] = teacher;
    let [sx, sy] = size;
    let mut out = StudentView {
        size,
        images: Vec::with_capacity(batch * sx * sy),
        labels: Vec::with_capacity(batch * sx * sy),
        offsets: Vec::with_capacity(batch),
    };
    for (b, rng) in rngs.iter_mut().enumerate().take(batch) {
        let (ox, oy) = (rng.below(tx - sx + 1), rng.below(ty - sy + 1));
        let scale = 1.0 + rng.uniform(-intensity[0], intensity[0]);
        let shift = rng.uniform(-intensity[1], intensity[1]);
        for x in 0..sx {
            for y in 0..sy {
                let i = (b * tx + ox + x) * ty + oy + y;
                let noise = intensity[2] * rng.normal();
                out.images.push((images[i] as f64 * scale + shift + noise) as f32);
                out.labels.push(labels[i]);
            }
        }
        out.offsets.push([ox, oy]);
    }
    out
}

/// Coordinates `[N, 3]` (row-major, z = 0) of a `[h, w]` feature grid whose cells span
/// `factor` input pixels, in a crop at `offset` of the teacher crop: cell centres.
pub fn grid_coords(h: usize, w: usize, factor: usize, offset: [usize; 2]) -> Vec<f32> {
    let centre = (factor as f32 - 1.0) / 2.0;
    let mut coords = Vec::with_capacity(h * w * 3);
    for i in 0..h {
        for j in 0..w {
            coords.extend([
                offset[0] as f32 + (factor * i) as f32 + centre,
                offset[1] as f32 + (factor * j) as f32 + centre,
                0.0,
            ]);
        }
    }
    coords
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn student_pixels_come_from_their_offset_in_the_teacher_crop() {
        let (tx, ty) = (6, 5);
        let images: Vec<f32> = (0..2 * tx * ty).map(|v| v as f32).collect();
        let labels: Vec<i64> = (0..2 * tx * ty).map(|v| v as i64).collect();
        let mut rngs = vec![Rng::new(1), Rng::new(2)];
        let view = student_view(&images, &labels, 2, [tx, ty], [3, 2], [0.0, 0.0, 0.0], &mut rngs);
        for b in 0..2 {
            let [ox, oy] = view.offsets[b];
            for x in 0..3 {
                for y in 0..2 {
                    let expected = ((b * tx + ox + x) * ty + oy + y) as f32;
                    assert_eq!(view.images[(b * 3 + x) * 2 + y], expected);
                    assert_eq!(view.labels[(b * 3 + x) * 2 + y], expected as i64);
                }
            }
        }
    }

    #[test]
    fn grid_centres_follow_the_pooling_factor() {
        assert_eq!(
            grid_coords(1, 2, 4, [10, 0]),
            vec![11.5, 1.5, 0.0, 11.5, 5.5, 0.0]
        );
    }
}
